//! The outbox directory's files and its lock, at the level of bytes and lines.
//!
//! `outbox.lock` serializes changes between processes (`File::lock`, released by the OS
//! even when a process dies) and holds the directory's *generation*, a number that every
//! rewrite and every clear increases. A rewrite is done in three steps: [`snapshot`] copies
//! the bytes under the lock; the caller parses them and computes the new content without
//! it; [`commit`] takes the lock again and replaces the file only when the generation is
//! unchanged (nobody rewrote or cleared it meanwhile), keeping the lines appended since
//! the snapshot. The lock is therefore held for file copies and a rename, never for
//! parsing, and a host appending at exit waits for at most that, whatever the outbox holds.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// How long the sender thread waits for another process's lock before giving up.
pub(super) const LOCK_WAIT: Duration = Duration::from_millis(500);

/// The directory's lock, held while the value lives.
pub(super) struct Locked {
    file: File,
}

impl Locked {
    /// Takes the lock of `dir`, waiting at most `wait` for another process; past that the
    /// error is `WouldBlock`.
    pub(super) fn within(dir: &Path, wait: Duration) -> io::Result<Locked> {
        fs::create_dir_all(dir).map_err(|e| at_path(e, dir))?;
        let path = dir.join("outbox.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| at_path(e, &path))?;
        let deadline = Instant::now() + wait;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Locked { file }),
                Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    // Others hold it for a file copy or an append: poll finely.
                    std::thread::sleep(Duration::from_micros(50));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(io::Error::new(io::ErrorKind::WouldBlock, "another process holds the outbox lock"));
                }
                Err(fs::TryLockError::Error(e)) => return Err(at_path(e, &path)),
            }
        }
    }

    /// The generation: 0 for a lock file that is new (or was written by an older version).
    fn generation(&mut self) -> io::Result<u64> {
        let mut text = String::new();
        self.file.seek(SeekFrom::Start(0))?;
        self.file.read_to_string(&mut text)?;
        Ok(text.trim().parse().unwrap_or(0))
    }

    /// Records that the files were rewritten or deleted.
    pub(super) fn bump(&mut self) -> io::Result<()> {
        let next = self.generation()?.wrapping_add(1);
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(next.to_string().as_bytes())
    }
}

/// What [`snapshot`] saw, for [`commit`].
pub(super) struct Snapshot {
    generation: u64,
    /// Bytes of the outbox file copied; lines appended after them survive a commit.
    len: u64,
    /// The spill files copied (a commit deletes exactly those).
    spills: Vec<PathBuf>,
}

/// The bytes of the outbox file and of its spill files, oldest first.
pub(super) struct Copy {
    pub(super) main: Vec<u8>,
    pub(super) spills: Vec<Vec<u8>>,
    pub(super) snapshot: Snapshot,
}

/// Copies the outbox file `main` and the spill files of `dir` under the lock.
pub(super) fn snapshot(dir: &Path, main: &Path) -> io::Result<Copy> {
    let mut lock = Locked::within(dir, LOCK_WAIT)?;
    let generation = lock.generation()?;
    let bytes = read_or_empty(main)?;
    let mut spills = Vec::new();
    let mut paths = Vec::new();
    for path in spill_files(dir) {
        match fs::read(&path) {
            Ok(b) => {
                spills.push(b);
                paths.push(path);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(at_path(e, &path)),
        }
    }
    drop(lock);
    let snapshot = Snapshot { generation, len: bytes.len() as u64, spills: paths };
    Ok(Copy { main: bytes, spills, snapshot })
}

/// The outbox file and the spill files, opened under the lock so that they are one
/// consistent state (a rewrite renames and deletes; open files keep what they were).
pub(super) fn open_all(dir: &Path, main: &Path) -> io::Result<Vec<File>> {
    let _lock = Locked::within(dir, LOCK_WAIT)?;
    let mut files = Vec::new();
    for path in std::iter::once(main.to_path_buf()).chain(spill_files(dir)) {
        match File::open(&path) {
            Ok(f) => files.push(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(at_path(e, &path)),
        }
    }
    Ok(files)
}

/// Calls `f` with every non-empty line of `files` from their start, in order, through one
/// small buffer, until `f` returns `false`.
pub(super) fn each_line(files: &mut [File], mut f: impl FnMut(&[u8]) -> bool) -> io::Result<()> {
    let mut line = Vec::new();
    for file in files {
        file.seek(SeekFrom::Start(0))?;
        let mut reader = io::BufReader::with_capacity(64 * 1024, &*file);
        loop {
            line.clear();
            if io::BufRead::read_until(&mut reader, b'\n', &mut line)? == 0 {
                break;
            }
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            if !text.is_empty() && !f(text) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Replaces what `snapshot` saw of `main` with `text` (JSON lines; empty deletes the
/// file), keeping what was appended since, and deletes the spill files it saw. `false`
/// when another process rewrote or cleared the outbox meanwhile: nothing was changed.
pub(super) fn commit(dir: &Path, main: &Path, snapshot: &Snapshot, text: &str) -> io::Result<bool> {
    // Written before taking the lock, so that the lock is held only for the tail and the rename.
    let tmp = temp_path(main);
    if !text.is_empty() {
        fs::write(&tmp, text).map_err(|e| at_path(e, &tmp))?;
    }
    let done = commit_locked(dir, main, snapshot, text, &tmp);
    // Still there after a conflict or an error.
    let _ = fs::remove_file(&tmp);
    done
}

fn commit_locked(dir: &Path, main: &Path, snapshot: &Snapshot, text: &str, tmp: &Path) -> io::Result<bool> {
    let mut lock = Locked::within(dir, LOCK_WAIT)?;
    if lock.generation()? != snapshot.generation {
        return Ok(false);
    }
    let tail = read_from(main, snapshot.len)?;
    if text.is_empty() && tail.is_empty() {
        remove_if_exists(main)?;
    } else {
        if !tail.is_empty() {
            let mut f = File::options().create(true).append(true).open(tmp).map_err(|e| at_path(e, tmp))?;
            f.write_all(&tail).map_err(|e| at_path(e, tmp))?;
        }
        fs::rename(tmp, main).map_err(|e| at_path(e, main))?;
    }
    for s in &snapshot.spills {
        remove_if_exists(s)?;
    }
    lock.bump()?;
    Ok(true)
}

/// A temporary name next to `path`, unique per process and call (several clients of one
/// process may rewrite at once).
pub(super) fn temp_path(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("outbox");
    path.with_file_name(format!("{name}.{}-{n}.tmp", std::process::id()))
}

/// Whether a file of the directory is a temporary one (left behind by a process that died
/// between writing and renaming it).
pub(super) fn is_temp(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "tmp")
}

/// Deletes the temporary files of `dir` older than `age`: a process that died between
/// writing one and renaming it left it behind.
pub(super) fn remove_stale_temps(dir: &Path, age: Duration) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| is_temp(p)) {
        let old = fs::metadata(&path).and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|a| a > age));
        if old {
            let _ = fs::remove_file(&path);
        }
    }
}

/// The spill files of `dir`, oldest first.
pub(super) fn spill_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("spill-") && n.ends_with(".jsonl"))
        })
        .collect();
    out.sort();
    out
}

/// The size of `path`, 0 when it does not exist.
pub(super) fn size(path: &Path) -> u64 {
    fs::metadata(path).map_or(0, |m| m.len())
}

fn read_or_empty(path: &Path) -> io::Result<Vec<u8>> {
    match fs::read(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        r => r.map_err(|e| at_path(e, path)),
    }
}

/// The bytes of `path` from `offset` on (none when it does not exist).
fn read_from(path: &Path, offset: u64) -> io::Result<Vec<u8>> {
    let mut f = match File::open(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        r => r.map_err(|e| at_path(e, path))?,
    };
    let mut out = Vec::new();
    f.seek(SeekFrom::Start(offset))?;
    f.read_to_end(&mut out).map_err(|e| at_path(e, path))?;
    Ok(out)
}

pub(super) fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(at_path(e, path)),
        _ => Ok(()),
    }
}

/// The error with the file it happened on, for a message a user can act on.
pub(crate) fn at_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Appends a line; first ends a line a crashed writer left unfinished, so that only its
/// own (unparsable, skipped) line is lost.
pub(super) fn append_line(path: &Path, line: &str) -> io::Result<()> {
    let mut f = File::options().create(true).read(true).append(true).open(path).map_err(|e| at_path(e, path))?;
    let len = f.metadata()?.len();
    if len > 0 {
        let mut last = [0u8; 1];
        f.seek(SeekFrom::End(-1))?;
        f.read_exact(&mut last)?;
        if last[0] != b'\n' {
            f.write_all(b"\n")?;
        }
    }
    f.write_all(line.as_bytes()).map_err(|e| at_path(e, path))
}

/// The text of a copy with the spill files after the outbox file's lines, without its
/// oldest whole lines beyond `keep` bytes (a line cut short by a crashed writer is ended,
/// so that it loses only itself).
pub(super) fn newest_lines(copy: &Copy, keep: u64) -> String {
    let mut all = Vec::with_capacity(copy.main.len() + copy.spills.iter().map(Vec::len).sum::<usize>());
    for text in std::iter::once(&copy.main).chain(&copy.spills) {
        all.extend_from_slice(text);
        if all.last().is_some_and(|b| *b != b'\n') {
            all.push(b'\n');
        }
    }
    let start = line_start_after(&all, all.len().saturating_sub(usize::try_from(keep).unwrap_or(usize::MAX)));
    // Every writer writes whole `String`s, so this is valid UTF-8; a damaged byte only
    // makes its own line unparsable.
    String::from_utf8_lossy(&all[start..]).into_owned()
}

/// The first line start at or after byte `cut`.
fn line_start_after(bytes: &[u8], cut: usize) -> usize {
    if cut == 0 {
        return 0;
    }
    bytes[cut - 1..].iter().position(|b| *b == b'\n').map_or(bytes.len(), |i| cut + i)
}

/// Keeps the newest whole lines of `path` that fit in `keep` bytes (under the lock: a
/// byte search, no parsing).
pub(super) fn keep_tail(path: &Path, keep: u64) -> io::Result<()> {
    let bytes = read_or_empty(path)?;
    let start = line_start_after(&bytes, bytes.len().saturating_sub(keep as usize));
    let tmp = temp_path(path);
    fs::write(&tmp, &bytes[start..]).map_err(|e| at_path(e, &tmp))?;
    fs::rename(&tmp, path).map_err(|e| at_path(e, path))
}

/// Parses JSON lines, skipping lines that do not parse (a newer or damaged file must not
/// stop the tool).
pub(super) fn lines<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> impl Iterator<Item = T> + 'a {
    bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()).filter_map(|l| serde_json::from_slice(l).ok())
}
