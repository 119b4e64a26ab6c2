//! The on-disk outbox: events not sent yet, and the sent-log: what was sent recently.
//!
//! Both are JSON-lines files in the tool's data directory that the user can read
//! (`telemetry show` prints them). Every change takes an exclusive lock on `outbox.lock`
//! (`File::lock`, released by the OS even when a process dies), so several processes of
//! the tool can add and remove events at once without losing any. Adding appends one line
//! (cheap at exit, whatever the outbox holds); removing and compacting write the new
//! content to a temporary file that atomically replaces the old one.
//!
//! The outbox is bounded in bytes (oldest events go first) and drops events older than 14
//! days; events are unique by id, so writing the same event twice keeps one.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tally_protocol::{Context, Event};
use uuid::Uuid;

/// Default bound of the outbox file.
pub const DEFAULT_MAX_BYTES: u64 = 512 * 1024;
/// Default age after which unsent events are dropped: 14 days.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(14 * 24 * 60 * 60);
/// Bound of the sent-log file.
const SENT_LOG_MAX_BYTES: u64 = 256 * 1024;
/// How long a writer waits for another process's lock before giving up.
const LOCK_WAIT: Duration = Duration::from_millis(500);

/// Events that share a context, as stored in the outbox (one JSON line each).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Chunk {
    /// The context the events were recorded with.
    pub context: Context,
    /// The events.
    pub events: Vec<Event>,
}

/// One delivered batch, as kept in the sent-log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SentRecord {
    /// When the collector acknowledged it.
    pub sent_at: DateTime<Utc>,
    /// The batch's context.
    pub context: Context,
    /// The events sent.
    pub events: Vec<Event>,
    /// Events the collector stored, already had, or refused.
    pub accepted: usize,
    /// See `accepted`.
    pub duplicate: usize,
    /// See `accepted`.
    pub rejected: usize,
}

/// The outbox and sent-log of one tool, in one directory.
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
    max_bytes: u64,
    max_age: Duration,
    sent_max_bytes: u64,
}

impl Outbox {
    /// The outbox in `dir`; nothing is touched until it is used.
    pub fn new(dir: impl Into<PathBuf>) -> Outbox {
        Outbox {
            dir: dir.into(),
            max_bytes: DEFAULT_MAX_BYTES,
            max_age: DEFAULT_MAX_AGE,
            sent_max_bytes: SENT_LOG_MAX_BYTES,
        }
    }

    /// Sets the size bound and the age after which events are dropped.
    pub fn with_limits(mut self, max_bytes: u64, max_age: Duration) -> Outbox {
        self.max_bytes = max_bytes;
        self.max_age = max_age;
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self) -> PathBuf {
        self.dir.join("outbox.jsonl")
    }

    fn sent_file(&self) -> PathBuf {
        self.dir.join("sent.jsonl")
    }

    /// Adds events. The common case appends one line (constant time, whatever the
    /// outbox holds); when the file would outgrow its bound it is compacted instead:
    /// expired events and repeated ids dropped, then the oldest events until it fits.
    /// Returns how many of `events` were written.
    pub fn append(&self, context: &Context, events: &[Event]) -> io::Result<usize> {
        self.append_at(context, events, Utc::now())
    }

    pub(crate) fn append_at(&self, context: &Context, events: &[Event], now: DateTime<Utc>) -> io::Result<usize> {
        let fresh: Vec<Event> = events.iter().filter(|e| !self.expired(e, now)).cloned().collect();
        if fresh.is_empty() {
            return Ok(0);
        }
        let chunk = Chunk { context: context.clone(), events: fresh };
        let mut line = serde_json::to_string(&chunk).map_err(io::Error::other)?;
        line.push('\n');
        let _lock = self.lock()?;
        let size = fs::metadata(self.file()).map_or(0, |m| m.len());
        if size + line.len() as u64 <= self.max_bytes {
            append_line(&self.file(), &line)?;
            return Ok(chunk.events.len());
        }
        let ids: HashSet<Uuid> = chunk.events.iter().map(|e| e.event_id).collect();
        let mut chunks = self.read_unlocked(now)?;
        chunks.push(chunk);
        let chunks = self.bound(dedupe(chunks));
        self.write_unlocked(&self.file(), &chunks)?;
        Ok(chunks.iter().flat_map(|c| &c.events).filter(|e| ids.contains(&e.event_id)).count())
    }

    /// The events waiting, oldest first, without expired ones.
    pub fn chunks(&self) -> io::Result<Vec<Chunk>> {
        if !self.file().exists() {
            return Ok(Vec::new());
        }
        let _lock = self.lock()?;
        self.read_unlocked(Utc::now())
    }

    /// How many events are waiting.
    pub fn len(&self) -> io::Result<usize> {
        Ok(self.chunks()?.iter().map(|c| c.events.len()).sum())
    }

    /// Whether no event is waiting.
    pub fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Removes the events with these ids (sent, or refused for good).
    pub fn remove(&self, ids: &HashSet<Uuid>) -> io::Result<()> {
        if ids.is_empty() || !self.file().exists() {
            return Ok(());
        }
        let _lock = self.lock()?;
        let mut chunks = self.read_unlocked(Utc::now())?;
        for c in &mut chunks {
            c.events.retain(|e| !ids.contains(&e.event_id));
        }
        self.write_unlocked(&self.file(), &chunks)
    }

    /// Deletes every waiting event and the sent-log.
    pub fn clear(&self) -> io::Result<()> {
        let _lock = self.lock()?;
        for f in [self.file(), self.sent_file()] {
            match fs::remove_file(f) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Adds a delivered batch to the sent-log, keeping it under its bound (newest kept).
    pub fn log_sent(&self, record: &SentRecord) -> io::Result<()> {
        let mut line = serde_json::to_string(record).map_err(io::Error::other)?;
        line.push('\n');
        let _lock = self.lock()?;
        let size = fs::metadata(self.sent_file()).map_or(0, |m| m.len());
        if size + line.len() as u64 <= self.sent_max_bytes {
            return append_line(&self.sent_file(), &line);
        }
        let mut records: Vec<SentRecord> = read_lines(&self.sent_file())?;
        records.push(record.clone());
        let mut size: u64 = records.iter().map(line_len).sum();
        let mut skip = 0;
        // Compact to half the bound, so the next appends are cheap again.
        while size > self.sent_max_bytes / 2 && skip + 1 < records.len() {
            size -= line_len(&records[skip]);
            skip += 1;
        }
        self.write_unlocked(&self.sent_file(), &records[skip..])
    }

    /// The sent-log, oldest first.
    pub fn sent(&self) -> io::Result<Vec<SentRecord>> {
        if !self.sent_file().exists() {
            return Ok(Vec::new());
        }
        let _lock = self.lock()?;
        read_lines(&self.sent_file())
    }

    fn expired(&self, e: &Event, now: DateTime<Utc>) -> bool {
        let age = now.signed_duration_since(e.occurred_at);
        age.to_std().is_ok_and(|a| a > self.max_age)
    }

    /// The chunks without expired events and without repeats of an id.
    fn read_unlocked(&self, now: DateTime<Utc>) -> io::Result<Vec<Chunk>> {
        let mut chunks: Vec<Chunk> = read_lines(&self.file())?;
        for c in &mut chunks {
            c.events.retain(|e| !self.expired(e, now));
        }
        Ok(dedupe(chunks))
    }

    /// Drops the oldest events until the file fits in `max_bytes`.
    fn bound(&self, mut chunks: Vec<Chunk>) -> Vec<Chunk> {
        let mut size: u64 = chunks.iter().map(line_len).sum();
        while size > self.max_bytes && !chunks.is_empty() {
            let first = &mut chunks[0];
            let before = line_len(first);
            first.events.remove(0);
            if first.events.is_empty() {
                chunks.remove(0);
                size -= before;
            } else {
                size = size - before + line_len(&chunks[0]);
            }
        }
        chunks
    }

    fn write_unlocked<T: Serialize>(&self, path: &Path, items: &[T]) -> io::Result<()> {
        if items.is_empty() {
            return match fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        }
        let mut text = String::new();
        for item in items {
            text.push_str(&serde_json::to_string(item).map_err(io::Error::other)?);
            text.push('\n');
        }
        let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
        fs::write(&tmp, text)?;
        fs::rename(&tmp, path)
    }

    /// Takes the directory's lock, waiting at most [`LOCK_WAIT`] for another process.
    fn lock(&self) -> io::Result<File> {
        fs::create_dir_all(&self.dir)?;
        let file = File::options().create(true).truncate(false).write(true).open(self.dir.join("outbox.lock"))?;
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    // Others hold it for a file read or append: poll finely.
                    std::thread::sleep(Duration::from_micros(50));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(io::Error::new(io::ErrorKind::WouldBlock, "another process holds the outbox lock"));
                }
                Err(fs::TryLockError::Error(e)) => return Err(e),
            }
        }
    }
}

/// Appends a line; first ends a line a crashed writer left unfinished, so that only its
/// own (unparsable, skipped) line is lost.
fn append_line(path: &Path, line: &str) -> io::Result<()> {
    let mut f = File::options().create(true).read(true).append(true).open(path)?;
    let len = f.metadata()?.len();
    if len > 0 {
        let mut last = [0u8; 1];
        f.seek(SeekFrom::End(-1))?;
        f.read_exact(&mut last)?;
        if last[0] != b'\n' {
            f.write_all(b"\n")?;
        }
    }
    f.write_all(line.as_bytes())
}

/// Keeps the first occurrence of each event id; drops empty chunks.
fn dedupe(mut chunks: Vec<Chunk>) -> Vec<Chunk> {
    let mut seen = HashSet::new();
    for c in &mut chunks {
        c.events.retain(|e| seen.insert(e.event_id));
    }
    chunks.retain(|c| !c.events.is_empty());
    chunks
}

fn line_len<T: Serialize>(item: &T) -> u64 {
    serde_json::to_string(item).map_or(0, |s| s.len() as u64 + 1)
}

/// Parses a JSON-lines file, skipping lines that do not parse (a newer or damaged file
/// must not stop the tool); a missing file is empty.
fn read_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> io::Result<Vec<T>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for line in BufReader::new(file).lines() {
        if let Ok(item) = serde_json::from_str(&line?) {
            out.push(item);
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn context() -> Context {
        Context {
            app: "demo".into(),
            app_version: "1.0.0".into(),
            project: Uuid::new_v4(),
            machine: "m".repeat(64),
            env: tally_protocol::Env::Development,
            os: "linux".into(),
            os_version: "6.8".into(),
            arch: "x86_64".into(),
            runtime: "rust".into(),
            runtime_version: String::new(),
            ci: None,
            container: false,
        }
    }

    pub(crate) fn event_at(at: DateTime<Utc>) -> Event {
        Event {
            event_id: Uuid::now_v7(),
            event: "command.run".into(),
            occurred_at: at,
            plugins: vec![],
            duration_ms: None,
            error_kind: None,
            props: Default::default(),
        }
    }

    #[test]
    fn append_read_remove() {
        let d = tempfile::tempdir().unwrap();
        let o = Outbox::new(d.path());
        assert_eq!(o.len().unwrap(), 0);
        assert!(!d.path().join("outbox.jsonl").exists());
        let now = Utc::now();
        let events: Vec<_> = (0..3).map(|_| event_at(now)).collect();
        assert_eq!(o.append(&context(), &events).unwrap(), 3);
        // Same ids again: kept once.
        assert_eq!(o.append(&context(), &events).unwrap(), 3);
        assert_eq!(o.len().unwrap(), 3);
        o.remove(&[events[1].event_id].into_iter().collect()).unwrap();
        let left: Vec<_> = o.chunks().unwrap().into_iter().flat_map(|c| c.events).collect();
        assert_eq!(left, [events[0].clone(), events[2].clone()]);
        o.clear().unwrap();
        assert!(o.is_empty().unwrap());
    }

    #[test]
    fn bound_keeps_the_newest_events() {
        let d = tempfile::tempdir().unwrap();
        let o = Outbox::new(d.path()).with_limits(8 * 1024, DEFAULT_MAX_AGE);
        let now = Utc::now();
        let mut all = Vec::new();
        for _ in 0..50 {
            let batch: Vec<_> = (0..5).map(|_| event_at(now)).collect();
            o.append(&context(), &batch).unwrap();
            all.extend(batch);
        }
        let size = fs::metadata(d.path().join("outbox.jsonl")).unwrap().len();
        assert!(size <= 8 * 1024, "{size}");
        let kept: Vec<_> = o.chunks().unwrap().into_iter().flat_map(|c| c.events).collect();
        assert!(!kept.is_empty() && kept.len() < all.len());
        assert_eq!(kept[..], all[all.len() - kept.len()..], "the newest survive, in order");
    }

    #[test]
    fn events_expire_after_14_days() {
        let d = tempfile::tempdir().unwrap();
        let o = Outbox::new(d.path());
        let now = Utc::now();
        let day = chrono::Duration::days(1);
        let old = event_at(now - day * 15);
        let recent = event_at(now - day * 13);
        assert_eq!(o.append_at(&context(), &[old.clone(), recent.clone()], now).unwrap(), 1);
        assert_eq!(o.len().unwrap(), 1);
        // An event that was fresh when written expires later.
        o.append_at(&context(), &[event_at(now)], now).unwrap();
        let later = now + day * 14 - chrono::Duration::hours(1);
        let kept = o.read_unlocked(later).unwrap();
        assert_eq!(kept.iter().map(|c| c.events.len()).sum::<usize>(), 1);
    }

    #[test]
    fn a_half_written_line_loses_only_itself() {
        let d = tempfile::tempdir().unwrap();
        let o = Outbox::new(d.path());
        let first = event_at(Utc::now());
        o.append(&context(), std::slice::from_ref(&first)).unwrap();
        let mut f = File::options().append(true).open(d.path().join("outbox.jsonl")).unwrap();
        f.write_all(b"{\"context\":{\"app\":\"de").unwrap();
        let second = event_at(Utc::now());
        o.append(&context(), std::slice::from_ref(&second)).unwrap();
        let kept: Vec<_> = o.chunks().unwrap().into_iter().flat_map(|c| c.events).collect();
        assert_eq!(kept, [first, second]);
    }

    #[test]
    fn sent_log_is_bounded() {
        let d = tempfile::tempdir().unwrap();
        let mut o = Outbox::new(d.path());
        o.sent_max_bytes = 16 * 1024;
        let events: Vec<_> = (0..20).map(|_| event_at(Utc::now())).collect();
        for _ in 0..20 {
            o.log_sent(&SentRecord {
                sent_at: Utc::now(),
                context: context(),
                events: events.clone(),
                accepted: 20,
                duplicate: 0,
                rejected: 0,
            })
            .unwrap();
        }
        assert!(fs::metadata(d.path().join("sent.jsonl")).unwrap().len() <= 16 * 1024);
        assert!(!o.sent().unwrap().is_empty());
    }
}
