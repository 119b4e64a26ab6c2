//! A rollup saved in a directory and read back, so that a store opens in the time it takes
//! to read its folded days rather than to fold all its raw rows again.
//!
//! The directory holds:
//! - `dict.bin`: the dictionaries, rewritten when they grew. Numbers only grow and it is
//!   written after the day files of a save are encoded, so no day file names a number the
//!   dictionaries on disk lack;
//! - `a<app>-d<day>.day`: one app's day (app number, UTC day number): its event count,
//!   folded rows, durations and index, rewritten when the day changed since.
//!
//! Every file is `TLYROLL1`, the CRC-32 of the rest, and the rest: postcard, compressed
//! with zstd. Rows, durations and sets go into postcard as byte strings of fixed-width
//! little-endian numbers ([`raw`]): postcard's per-number varints made reading a day
//! slower than folding it anew.
//!
//! The files are a cache of the raw rows, never the record. [`RollupFiles::load`] keeps a
//! day only when its event count equals the backend's count of raw rows for that day; a
//! file missing, damaged or stale costs reading that day's raw rows again, nothing more.
//! Counts only rise while rows are added; a deletion (erasure, retention) could lower a
//! day's count and later events raise it back to what an old file says, so a backend
//! deletes the files of the days it is about to delete rows from ([`Paused::forget`]),
//! before it deletes them, while holding [`RollupFiles::pause`] so that a save in progress
//! cannot write them back.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, RwLock};

use super::day::{Day, DayKey};
use super::dict::{Dictionaries, NONE};
use super::{Rollup, in_parts};

const MAGIC: &[u8; 8] = b"TLYROLL1";
const DICT_FILE: &str = "dict.bin";

/// The rollup's files in one directory (see the module documentation).
#[derive(Debug)]
pub struct RollupFiles {
    dir: PathBuf,
    saving: Mutex<SaveState>,
}

#[derive(Debug, Default)]
struct SaveState {
    /// The dictionaries' sizes as `dict.bin` holds them.
    dict_sizes: Option<[usize; 8]>,
}

/// What a save wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Saved {
    /// Day files written.
    pub days: usize,
    /// Bytes written, the dictionaries included.
    pub bytes: u64,
}

/// A rollup read back, and what it lacks.
#[derive(Debug)]
pub struct Loaded {
    /// The days whose files matched, with the dictionaries.
    pub rollup: Rollup,
    /// The (app, UTC day) pairs of the counts given that no file matched: the backend
    /// adds their raw rows, then calls [`Rollup::finish_load`].
    pub missing: Vec<(String, i64)>,
    /// How many days came from files.
    pub from_files: usize,
}

/// One app's day, as the files name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRef(DayKey);

/// Held while rows are deleted: no save runs meanwhile.
#[derive(Debug)]
pub struct Paused<'f> {
    files: &'f RollupFiles,
    _state: MutexGuard<'f, SaveState>,
}

fn day_file(k: DayKey) -> String {
    format!("a{}-d{}.day", k.app, k.day)
}

fn parse_day_file(name: &str) -> Option<DayKey> {
    let (app, day) = name.strip_prefix('a')?.strip_suffix(".day")?.split_once("-d")?;
    Some(DayKey { app: app.parse().ok()?, day: day.parse().ok()? })
}

/// zstd's level for the files: level 3 keeps about 45 % of the bytes, and reading back
/// costs the same at any level.
const ZSTD_LEVEL: i32 = 3;

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let plain = postcard::to_allocvec(value).expect("a rollup part encodes");
    let body = zstd::bulk::compress(&plain, ZSTD_LEVEL).expect("zstd compresses in memory");
    let mut out = Vec::with_capacity(body.len() + 12);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let body = bytes.strip_prefix(MAGIC)?;
    let (crc, body) = body.split_at_checked(4)?;
    if crc32fast::hash(body).to_le_bytes() != crc {
        return None;
    }
    let plain = zstd::stream::decode_all(body).ok()?;
    postcard::from_bytes(&plain).ok()
}

/// A day file's contents.
#[derive(serde::Serialize)]
struct DayOut<'a> {
    app: &'a str,
    day_number: i64,
    events: u64,
    day: &'a Day,
}

#[derive(serde::Deserialize)]
struct DayIn {
    app: String,
    day_number: i64,
    events: u64,
    day: Day,
}

/// Writes `bytes` to a temporary file beside `dir/name` and returns its path; renaming it
/// over `name` then replaces the file whole, so a reader sees the old file or the new one.
fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes)?;
    Ok(tmp)
}

fn remove_if_there(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl Dictionaries {
    fn sizes(&self) -> [usize; 8] {
        [
            self.projects.len(),
            self.machines.len(),
            self.contexts.len(),
            self.apps.len(),
            self.names.len(),
            self.errors.len(),
            self.plugins.len(),
            self.sets.len(),
        ]
    }

    /// Whether every number of the day's rows is in the dictionaries, and its rows are of
    /// its app.
    fn covers(&self, k: DayKey, day: &Day) -> bool {
        let [projects, machines, contexts, _, names, errors, _, sets] = self.sizes();
        let key_ok = |key: &super::dict::Key| {
            (key.pid as usize) < projects
                && (key.mid as usize) < machines
                && (key.ctx as usize) < contexts
                && self.ctx_app.get(key.ctx as usize) == Some(&k.app)
                && (key.name as usize) < names
                && (key.error == NONE || (key.error as usize) < errors)
                && (key.set as usize) < sets
        };
        day.folded <= day.rows.len()
            && day.index.as_ref().is_none_or(|i| i.rows <= day.rows.len())
            && day.rows.iter().all(|r| key_ok(&r.key))
            && day.timed.values().flatten().all(|t| key_ok(&t.key))
    }
}

impl RollupFiles {
    /// The files in `dir` (created by the first save).
    pub fn new(dir: impl Into<PathBuf>) -> RollupFiles {
        RollupFiles { dir: dir.into(), saving: Mutex::new(SaveState::default()) }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn state(&self) -> MutexGuard<'_, SaveState> {
        self.saving.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the saved rollup back, keeping each day whose event count equals `counts`'
    /// entry for its (app, UTC day); deletes the files of other days. Never fails: what
    /// cannot be read is listed in [`Loaded::missing`].
    pub fn load(&self, counts: &HashMap<(String, i64), u64>) -> Loaded {
        let mut state = self.state();
        let mut rollup = Rollup::new();
        let all_missing = |rollup| Loaded { rollup, missing: counts.keys().cloned().collect(), from_files: 0 };
        let Some(dict) = std::fs::read(self.dir.join(DICT_FILE)).ok().and_then(|b| decode::<Dictionaries>(&b)) else {
            // Nothing usable: start over (the day files name numbers of lost dictionaries).
            let _ = std::fs::remove_dir_all(&self.dir);
            return all_missing(rollup);
        };
        state.dict_sizes = Some(dict.sizes());
        rollup.dict = dict;
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return all_missing(rollup) };
        let mut files = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == DICT_FILE {
                continue;
            }
            let wanted = parse_day_file(&name).and_then(|k| {
                let app = rollup.dict.apps.values.get(k.app as usize)?;
                counts.get(&(app.clone(), k.day)).map(|n| (k, app.clone(), *n))
            });
            match wanted {
                Some(w) => files.push((entry.path(), w)),
                // Temporary files of an interrupted save, days no longer stored.
                None => drop(std::fs::remove_file(entry.path())),
            }
        }
        let dict = &rollup.dict;
        let read: Vec<(DayKey, Option<Day>)> = in_parts(|part, parts| {
            files
                .iter()
                .enumerate()
                .filter(|(i, _)| i % parts == part)
                .map(|(_, (path, (k, app, count)))| {
                    let day = std::fs::read(path)
                        .ok()
                        .and_then(|b| decode::<DayIn>(&b))
                        .filter(|d| {
                            d.app == *app && d.day_number == k.day && d.events == *count && d.day.events() == *count
                        })
                        .filter(|d| dict.covers(*k, &d.day))
                        .map(|d| d.day);
                    if day.is_none() {
                        let _ = std::fs::remove_file(path);
                    }
                    (*k, day)
                })
                .collect::<Vec<_>>()
        })
        .into_iter()
        .flatten()
        .collect();
        let mut loaded = HashSet::new();
        for (k, day) in read {
            if let Some(day) = day {
                loaded.insert((rollup.dict.apps.values[k.app as usize].clone(), k.day));
                rollup.days.insert(k, day);
            }
        }
        let missing = counts.keys().filter(|k| !loaded.contains(*k)).cloned().collect();
        Loaded { rollup, missing, from_files: loaded.len() }
    }

    /// Writes the days changed since they were last written, then the dictionaries if
    /// they grew. Takes the rollup's read lock one day at a time, never during I/O.
    pub fn save(&self, rollup: &RwLock<Rollup>) -> io::Result<Saved> {
        let mut state = self.state();
        let read = || rollup.read().unwrap_or_else(|e| e.into_inner());
        let keys: Vec<DayKey> = read().days.iter().filter(|(_, d)| d.unsaved()).map(|(k, _)| *k).collect();
        let dict_sizes = read().dict.sizes();
        if keys.is_empty() && state.dict_sizes == Some(dict_sizes) {
            return Ok(Saved::default());
        }
        std::fs::create_dir_all(&self.dir)?;
        let mut saved = Saved::default();
        let mut written = Vec::new();
        let result = (|| {
            for k in keys {
                let encoded = {
                    let r = read();
                    r.days.get(&k).filter(|d| d.unsaved()).map(|d| {
                        let app = &r.dict.apps.values[k.app as usize];
                        (encode(&DayOut { app, day_number: k.day, events: d.events(), day: d }), d.changes)
                    })
                };
                let Some((bytes, changes)) = encoded else { continue };
                let tmp = write_file(&self.dir, &day_file(k), &bytes)?;
                saved.bytes += bytes.len() as u64;
                written.push((k, changes, tmp));
            }
            // After the days: the dictionaries hold every number they name.
            let (bytes, sizes) = {
                let r = read();
                (encode(&r.dict), r.dict.sizes())
            };
            if state.dict_sizes != Some(sizes) {
                let tmp = write_file(&self.dir, DICT_FILE, &bytes)?;
                std::fs::rename(tmp, self.dir.join(DICT_FILE))?;
                saved.bytes += bytes.len() as u64;
                state.dict_sizes = Some(sizes);
            }
            for (k, changes, tmp) in written.drain(..) {
                std::fs::rename(&tmp, self.dir.join(day_file(k)))?;
                saved.days += 1;
                if let Some(d) = read().days.get(&k) {
                    d.saved.store(changes, std::sync::atomic::Ordering::Release);
                }
            }
            Ok(saved)
        })();
        for (_, _, tmp) in written {
            let _ = std::fs::remove_file(tmp);
        }
        result
    }

    /// Waits for a save in progress and keeps the next from starting until dropped.
    pub fn pause(&self) -> Paused<'_> {
        Paused { files: self, _state: self.state() }
    }
}

impl Paused<'_> {
    /// Deletes the files of `days` (before their raw rows are deleted).
    pub fn forget(&self, days: &[DayRef]) -> io::Result<()> {
        days.iter().try_for_each(|d| remove_if_there(&self.files.dir.join(day_file(d.0))))
    }
}

impl Rollup {
    /// The days holding rows of `project`.
    pub fn days_of_project(&self, project: &crate::Key16) -> Vec<DayRef> {
        let Some(pid) = self.dict.projects.get(project) else { return vec![] };
        self.days.iter().filter(|(_, d)| d.rows.iter().any(|r| r.key.pid == pid)).map(|(k, _)| DayRef(*k)).collect()
    }

    /// `app`'s days up to and including `day`.
    pub fn days_through(&self, app: &str, day: i64) -> Vec<DayRef> {
        let Some(app) = self.dict.apps.get(&app.to_string()) else { return vec![] };
        self.days.range(DayKey::range(app, i64::MIN, day + 1)).map(|(k, _)| DayRef(*k)).collect()
    }
}

/// Serde adapters writing slices of fixed-width records as one byte string of
/// little-endian numbers (`#[serde(with = "…")]` on the fields that hold most bytes).
pub(super) mod raw {
    use serde::{Deserialize, Deserializer, Serializer};

    /// A record of fixed width.
    pub(crate) trait Fixed: Sized {
        const SIZE: usize;
        fn put(&self, out: &mut Vec<u8>);
        /// Reads one from exactly `SIZE` bytes.
        fn take(bytes: &[u8]) -> Self;
    }

    pub(crate) fn u32_at(b: &[u8], i: usize) -> u32 {
        u32::from_le_bytes(b[4 * i..4 * i + 4].try_into().expect("four bytes"))
    }

    impl Fixed for u32 {
        const SIZE: usize = 4;
        fn put(&self, out: &mut Vec<u8>) {
            out.extend_from_slice(&self.to_le_bytes());
        }
        fn take(b: &[u8]) -> Self {
            u32_at(b, 0)
        }
    }

    impl Fixed for u64 {
        const SIZE: usize = 8;
        fn put(&self, out: &mut Vec<u8>) {
            out.extend_from_slice(&self.to_le_bytes());
        }
        fn take(b: &[u8]) -> Self {
            u64::from_le_bytes(b.try_into().expect("eight bytes"))
        }
    }

    fn bytes_of<T: Fixed>(v: &[T]) -> Vec<u8> {
        let mut out = Vec::with_capacity(v.len() * T::SIZE);
        v.iter().for_each(|x| x.put(&mut out));
        out
    }

    fn from_bytes<'de, T: Fixed, D: Deserializer<'de>>(d: D) -> Result<Vec<T>, D::Error> {
        let bytes = <&[u8]>::deserialize(d)?;
        if bytes.len() % T::SIZE != 0 {
            return Err(serde::de::Error::custom("a record list of the wrong length"));
        }
        Ok(bytes.chunks_exact(T::SIZE).map(T::take).collect())
    }

    /// For `Vec<T>`.
    pub(crate) mod vec {
        use super::*;
        pub(crate) fn serialize<T: Fixed, S: Serializer>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&bytes_of(v))
        }
        pub(crate) fn deserialize<'de, T: Fixed, D: Deserializer<'de>>(d: D) -> Result<Vec<T>, D::Error> {
            from_bytes(d)
        }
    }

    /// A `Vec<T>` read from one byte string.
    struct Records<T>(Vec<T>);

    /// A borrowed slice written as [`Records`] are.
    struct RecordsRef<'a, T>(&'a [T]);

    impl<T: Fixed> serde::Serialize for RecordsRef<'_, T> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&bytes_of(self.0))
        }
    }

    impl<'de, T: Fixed> Deserialize<'de> for Records<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            from_bytes(d).map(Records)
        }
    }

    /// For `HashMap<u32, Vec<T>>`, as (key, records) pairs.
    pub(crate) mod map {
        use std::collections::HashMap;

        use super::*;
        pub(crate) fn serialize<T: Fixed, S: Serializer>(m: &HashMap<u32, Vec<T>>, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(m.iter().map(|(k, v)| (*k, RecordsRef(v))))
        }
        pub(crate) fn deserialize<'de, T: Fixed, D: Deserializer<'de>>(d: D) -> Result<HashMap<u32, Vec<T>>, D::Error> {
            let pairs = Vec::<(u32, Records<T>)>::deserialize(d)?;
            Ok(pairs.into_iter().map(|(k, v)| (k, v.0)).collect())
        }
    }

    /// For `Box<[T]>`.
    pub(crate) mod boxed {
        use super::*;
        pub(crate) fn serialize<T: Fixed, S: Serializer>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&bytes_of(v))
        }
        pub(crate) fn deserialize<'de, T: Fixed, D: Deserializer<'de>>(d: D) -> Result<Box<[T]>, D::Error> {
            from_bytes(d).map(Vec::into_boxed_slice)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::row;

    fn rollup() -> Rollup {
        let mut r = Rollup::new();
        let mut rows: Vec<_> =
            (0..40u128).map(|i| row(i + 1, (i % 3) as i64, (i % 24) as i64, (i % 5) as u8, 1)).collect();
        rows[3].error_kind = Some("EACCES".into());
        rows[4].duration_ms = Some(1234);
        rows[5].plugins = vec!["a".into(), "b".into()];
        r.add(&rows);
        r.finish_load();
        r
    }

    #[test]
    fn the_saved_format_is_pinned() {
        // A change to what a day file holds (a field of Day, DayIndex, Slice, Set, Row or
        // Timed, or their order) changes these bytes. Old files would still pass their
        // CRC and could decode into wrong numbers: change MAGIC's version with the format,
        // then this value.
        let r = rollup();
        let (k, d) = r.days.iter().next().expect("a day");
        let plain = postcard::to_allocvec(&DayOut { app: "demo", day_number: k.day, events: d.events(), day: d })
            .expect("encodes");
        assert_eq!((MAGIC, crc32fast::hash(&plain)), (b"TLYROLL1", 1_162_031_240), "the day file format changed");
    }

    #[test]
    fn a_saved_rollup_reads_back_with_the_same_days() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = RollupFiles::new(dir.path().join("rollup"));
        let lock = RwLock::new(rollup());
        let saved = files.save(&lock).expect("save");
        assert_eq!(saved.days, 3);
        assert_eq!(files.save(&lock).expect("save again"), Saved::default(), "nothing changed");
        let r = lock.read().expect("lock");
        let counts: HashMap<(String, i64), u64> =
            r.days.iter().map(|(k, d)| (("demo".to_string(), k.day), d.events())).collect();
        let loaded = files.load(&counts);
        assert_eq!(loaded.from_files, 3);
        assert!(loaded.missing.is_empty());
        for (k, d) in &r.days {
            let back = &loaded.rollup.days[k];
            assert_eq!(back.rows.len(), d.rows.len());
            assert_eq!(back.events(), d.events());
            assert!(!back.unsaved(), "a day read back is not written again");
        }
        assert_eq!(loaded.rollup.dict.sizes(), r.dict.sizes());
        // A count that differs: that day is missing, its file deleted.
        let mut off = counts.clone();
        *off.values_mut().next().expect("a day") += 1;
        let loaded = files.load(&off);
        assert_eq!((loaded.from_files, loaded.missing.len()), (2, 1));
    }
}
