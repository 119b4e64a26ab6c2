//! The on-disk outbox: events not sent yet, and the sent-log: what was sent recently.
//!
//! Both are JSON-lines files in the tool's data directory that the user can read
//! (`telemetry show` prints them). Every change takes an exclusive lock on `outbox.lock`,
//! so several processes of the tool can add and remove events at once without losing
//! any. Adding appends one line (cheap at exit, whatever the outbox holds); removing and
//! compacting copy the bytes under the lock, parse and compute without it, and commit
//! the new content by an atomic rename, keeping what was appended meanwhile (`file.rs`).
//!
//! The outbox is bounded in bytes (oldest events go first) and drops events older than 14
//! days; events are unique by id, so writing the same event twice keeps one.
//!
//! The host thread only ever appends ([`Outbox::append_at_exit`]): one line, whatever the
//! outbox holds, and it waits for the lock no longer than what is left of its exit budget;
//! when another process holds the lock it writes a spill file of its own instead, merged
//! by the next compaction. Reading, bounding and rewriting happen on the sender thread.
//!
//! A batch that was posted but not answered before the process exited is marked *posted*
//! (a chunk with `posted_at`, or a mark line naming the ids): the collector most likely
//! has it, so later runs do not post it again until `resend_after` has passed, twice that
//! after a second unanswered post, and so on (until the 14 days are up). This is what keeps
//! a command shorter than one round trip from posting the same events run after run, and
//! what an offline machine's connect attempts cost is a few posts, not a loss.

mod file;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tally_protocol::{Context, Event};
use uuid::Uuid;

pub(crate) use file::at_path;
use file::{Copy, LOCK_WAIT, Locked};

/// Default bound of the outbox file.
pub const DEFAULT_MAX_BYTES: u64 = 512 * 1024;
/// Default age after which unsent events are dropped: 14 days.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(14 * 24 * 60 * 60);
/// Bound of the sent-log file.
const SENT_LOG_MAX_BYTES: u64 = 256 * 1024;
/// At most this many events per line: a sender that needs the oldest few events parses
/// a line or two, and compaction drops no more than this many at a time.
pub(crate) const LINE_EVENTS: usize = 50;
/// How often a rewrite is tried again when another process rewrote the outbox meanwhile.
const REWRITE_TRIES: usize = 4;
/// Age after which a temporary file is taken as left behind by a process that died.
const STALE_TEMP_AGE: Duration = Duration::from_secs(10 * 60);
/// Default time after which a posted, unanswered batch is posted again.
pub const DEFAULT_RESEND_AFTER: Duration = Duration::from_secs(10 * 60);

/// Events that share a context, as stored in the outbox (one JSON line each).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Chunk {
    /// The context the events were recorded with.
    pub context: Context,
    /// The events.
    pub events: Vec<Event>,
    /// When they were last posted without an answer seen (the process exited first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posted_at: Option<DateTime<Utc>>,
    /// How many posts went unanswered.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub posts: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Chunk {
    /// Events not posted yet.
    pub fn new(context: Context, events: Vec<Event>) -> Chunk {
        Chunk { context, events, posted_at: None, posts: 0 }
    }

    /// Whether a sender may post these events now: never posted, or posted without an
    /// answer longer ago than `resend_after`, doubled for each further unanswered post.
    pub fn due(&self, now: DateTime<Utc>, resend_after: Duration) -> bool {
        due(self.posted_at, self.posts, now, resend_after)
    }
}

/// See [`Chunk::due`].
fn due(posted_at: Option<DateTime<Utc>>, posts: u32, now: DateTime<Utc>, resend_after: Duration) -> bool {
    let wait = resend_after.saturating_mul(1 << posts.saturating_sub(1).min(16));
    posted_at.is_none_or(|at| now.signed_duration_since(at).to_std().is_ok_and(|age| age >= wait))
}

/// A line of the outbox file: events, or a mark that some were posted without an answer.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
enum Line {
    Chunk(Box<Chunk>),
    Mark { posted_at: DateTime<Utc>, ids: Vec<Uuid> },
}

/// A line as parsed: one struct for both kinds of [`Line`], since an untagged enum would
/// buffer and parse every line twice (most of the cost of reading a full outbox).
#[derive(Deserialize)]
struct ParsedLine {
    context: Option<Context>,
    #[serde(default)]
    events: Vec<Event>,
    posted_at: Option<DateTime<Utc>>,
    #[serde(default)]
    posts: u32,
    #[serde(default)]
    ids: Vec<Uuid>,
}

impl ParsedLine {
    fn into_line(self) -> Option<Line> {
        let ParsedLine { context, events, posted_at, posts, ids } = self;
        match (context, posted_at) {
            (Some(context), posted_at) => Some(Line::Chunk(Box::new(Chunk { context, events, posted_at, posts }))),
            (None, Some(posted_at)) if !ids.is_empty() => Some(Line::Mark { posted_at, ids }),
            _ => None,
        }
    }
}

/// The event ids of a chunk line without parsing it, or `None` when the line has a
/// `posted_at` of its own (then [`LineIds`] is parsed). serde_json writes each id as
/// `"event_id":"<uuid>"` and escapes every quote inside a string, so the key cannot appear
/// inside a value; a property of that name adds an id that is not an event's, which at
/// worst makes the caller parse the line.
fn scan_ids(line: &[u8]) -> Option<Vec<Uuid>> {
    const KEY: &str = "\"event_id\":\"";
    let text = std::str::from_utf8(line).ok()?;
    if text.contains("\"posted_at\":") {
        return None;
    }
    text.match_indices(KEY).map(|(at, _)| text.get(at + KEY.len()..at + KEY.len() + 36)?.parse().ok()).collect()
}

/// What [`Outbox::next_batch`] reads of a chunk line to decide whether to parse it.
#[derive(Deserialize)]
struct LineIds {
    #[serde(default)]
    events: Vec<EventId>,
    posted_at: Option<DateTime<Utc>>,
    #[serde(default)]
    posts: u32,
}

#[derive(Deserialize)]
struct EventId {
    event_id: Uuid,
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
    /// Properties the collector dropped because the app's schema does not declare them.
    #[serde(default)]
    pub dropped_props: usize,
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

    /// Adds events: appends one line, then compacts when the file outgrew its bound (see
    /// [`Outbox::compact`]). Returns how many of `events` were written (expired ones are
    /// not).
    pub fn append(&self, context: &Context, events: &[Event]) -> io::Result<usize> {
        self.append_at(context, events, Utc::now())
    }

    pub(crate) fn append_at(&self, context: &Context, events: &[Event], now: DateTime<Utc>) -> io::Result<usize> {
        let fresh: Vec<Event> = events.iter().filter(|e| !self.expired(e, now)).cloned().collect();
        if fresh.is_empty() {
            return Ok(0);
        }
        let n = fresh.len();
        let line = to_text(&lines_of(Chunk::new(context.clone(), fresh)))?;
        {
            let _lock = self.lock()?;
            file::append_line(&self.file(), &line)?;
        }
        self.compact()?;
        Ok(n)
    }

    /// Adds what a host leaves at exit: `queued` (never posted) and `posted` (posted, no
    /// answer seen) events of this run, and `posted_old` ids of the outbox that were being
    /// posted. Appends only, never reads or rewrites the outbox, and waits at most `wait`
    /// for the lock (a zero `wait` tries once); past that the lines go to a spill file of
    /// this process instead.
    pub(crate) fn append_at_exit(
        &self,
        context: &Context,
        queued: &[Event],
        posted: &[Event],
        posted_old: &[Uuid],
        wait: Duration,
    ) -> io::Result<()> {
        let now = Utc::now();
        let mut lines = Vec::new();
        if !queued.is_empty() {
            lines.extend(lines_of(Chunk::new(context.clone(), queued.to_vec())));
        }
        if !posted.is_empty() {
            lines.extend(lines_of(Chunk {
                posted_at: Some(now),
                posts: 1,
                ..Chunk::new(context.clone(), posted.to_vec())
            }));
        }
        if !posted_old.is_empty() {
            lines.push(Line::Mark { posted_at: now, ids: posted_old.to_vec() });
        }
        if lines.is_empty() {
            return Ok(());
        }
        let text = to_text(&lines)?;
        match Locked::within(&self.dir, wait) {
            Ok(_lock) => file::append_line(&self.file(), &text),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Written whole under a temporary name, so a reader never sees half of it.
                let name =
                    format!("spill-{:020}-{}", now.timestamp_nanos_opt().unwrap_or_default(), std::process::id());
                let tmp = self.dir.join(format!("{name}.tmp"));
                fs::write(&tmp, text).map_err(|e| at_path(e, &tmp))?;
                let path = self.dir.join(format!("{name}.jsonl"));
                fs::rename(&tmp, &path).map_err(|e| at_path(e, &path))
            }
            Err(e) => Err(e),
        }
    }

    /// Whether anything waits to be read: the outbox file or a spill file.
    pub(crate) fn has_waiting(&self) -> bool {
        self.file().exists() || !file::spill_files(&self.dir).is_empty()
    }

    /// Whether the outbox is over its bound or has spill files to merge.
    fn needs_compaction(&self) -> bool {
        file::size(&self.file()) > self.max_bytes || !file::spill_files(&self.dir).is_empty()
    }

    /// Merges the spill files into the outbox and, when it is over its bound, drops its
    /// oldest lines until it fits in three quarters of the bound (room for many runs'
    /// appends before the next compaction). A byte copy without parsing, done without
    /// holding the lock but for copies: a run far shorter than a parse of the outbox still
    /// finishes it. Expired events and repeated ids are dropped when read, and by the
    /// rewrite that removes delivered events. Reads nothing when the outbox is within its
    /// bound and has no spill file. The sender thread calls it, never the host thread.
    pub fn compact(&self) -> io::Result<()> {
        if !self.needs_compaction() {
            return Ok(());
        }
        for _ in 0..REWRITE_TRIES {
            let copy = file::snapshot(&self.dir, &self.file())?;
            let size = copy.main.len() + copy.spills.iter().map(Vec::len).sum::<usize>();
            let keep = if size as u64 > self.max_bytes { self.max_bytes - self.max_bytes / 4 } else { u64::MAX };
            let text = file::newest_lines(&copy, keep);
            if file::commit(&self.dir, &self.file(), &copy.snapshot, &text)? {
                file::remove_stale_temps(&self.dir, STALE_TEMP_AGE);
                return Ok(());
            }
        }
        Err(self.rewritten_meanwhile())
    }

    /// The oldest events due for a post (see [`Chunk::due`]), at most `max`, of one
    /// context. Streams the files and parses only what it needs: the mark lines, then the
    /// chunk lines from the oldest until the batch is full. A sender whose first post fails
    /// (the endpoint is unreachable) has then read the outbox once through a small buffer
    /// and parsed a line or two, whatever the outbox holds.
    pub(crate) fn next_batch(&self, resend_after: Duration, max: usize) -> io::Result<Option<Chunk>> {
        if !self.has_waiting() {
            return Ok(None);
        }
        let now = Utc::now();
        let mut files = file::open_all(&self.dir, &self.file())?;
        let is_chunk = |l: &[u8]| l.starts_with(b"{\"context\":");
        // Per event id: the last unanswered post a mark names, and how many marks name it.
        let mut marked: HashMap<Uuid, (DateTime<Utc>, u32)> = HashMap::new();
        file::each_line(&mut files, |line| {
            if !is_chunk(line)
                && let Some(Line::Mark { posted_at, ids }) =
                    serde_json::from_slice::<ParsedLine>(line).ok().and_then(ParsedLine::into_line)
            {
                for id in ids {
                    let entry = marked.entry(id).or_insert((posted_at, 0));
                    *entry = (posted_at, entry.1 + 1);
                }
            }
            true
        })?;
        let mut seen = HashSet::new();
        let mut batch: Option<Chunk> = None;
        // Whether an event of a line is due for a post (its age is checked by the caller).
        let waits = |id: &Uuid, posted_at: Option<DateTime<Utc>>, posts: u32| {
            let (posted_at, posts) = match marked.get(id) {
                Some((at, n)) => (Some(*at), posts + n),
                None => (posted_at, posts),
            };
            due(posted_at, posts, now, resend_after)
        };
        file::each_line(&mut files, |line| {
            // Lines of events posted a moment ago (the oldest, after an offline spell) are
            // skipped by their ids, without parsing their events.
            if !is_chunk(line) {
                return true;
            }
            let (ids, posted_at, posts) = match scan_ids(line) {
                Some(ids) => (ids, None, 0),
                None => match serde_json::from_slice::<LineIds>(line) {
                    Ok(l) => (l.events.into_iter().map(|e| e.event_id).collect(), l.posted_at, l.posts),
                    Err(_) => return true,
                },
            };
            if !ids.iter().any(|id| !seen.contains(id) && waits(id, posted_at, posts)) {
                seen.extend(ids);
                return true;
            }
            let Ok(chunk) = serde_json::from_slice::<Chunk>(line) else {
                return true;
            };
            for e in chunk.events {
                // The first occurrence of an id is the one kept (as `dedupe` does).
                if !seen.insert(e.event_id)
                    || self.expired(&e, now)
                    || !waits(&e.event_id, chunk.posted_at, chunk.posts)
                {
                    continue;
                }
                match &mut batch {
                    None => batch = Some(Chunk::new(chunk.context.clone(), vec![e])),
                    Some(b) if b.context == chunk.context => b.events.push(e),
                    // The next context waits for the next batch.
                    Some(_) => return false,
                }
                if batch.as_ref().is_some_and(|b| b.events.len() >= max) {
                    return false;
                }
            }
            true
        })?;
        Ok(batch)
    }

    /// The events waiting, oldest first, without expired ones.
    pub fn chunks(&self) -> io::Result<Vec<Chunk>> {
        self.chunks_at(Utc::now())
    }

    fn chunks_at(&self, now: DateTime<Utc>) -> io::Result<Vec<Chunk>> {
        if !self.has_waiting() {
            return Ok(Vec::new());
        }
        let copy = file::snapshot(&self.dir, &self.file())?;
        Ok(self.parse(&copy, now))
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
        if ids.is_empty() || !self.has_waiting() {
            return Ok(());
        }
        self.rewrite(Utc::now(), |chunks| {
            for c in chunks.iter_mut() {
                c.events.retain(|e| !ids.contains(&e.event_id));
            }
            chunks.retain(|c| !c.events.is_empty());
            true
        })
        .map(drop)
    }

    /// Deletes every waiting event and the sent-log (and files a process that died
    /// mid-rewrite left behind).
    pub fn clear(&self) -> io::Result<()> {
        let mut lock = self.lock()?;
        let temps = fs::read_dir(&self.dir)
            .map_err(|e| at_path(e, &self.dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| file::is_temp(p));
        let files: Vec<PathBuf> =
            [self.file(), self.sent_file()].into_iter().chain(file::spill_files(&self.dir)).chain(temps).collect();
        for f in files {
            file::remove_if_exists(&f)?;
        }
        // A rewrite that copied the outbox before this must not bring its events back.
        lock.bump()
    }

    /// Adds a delivered batch to the sent-log, keeping it under its bound (newest kept).
    pub fn log_sent(&self, record: &SentRecord) -> io::Result<()> {
        let line = to_text(std::slice::from_ref(record))?;
        let _lock = self.lock()?;
        file::append_line(&self.sent_file(), &line)?;
        if file::size(&self.sent_file()) > self.sent_max_bytes {
            // Down to half the bound, so the next appends are cheap again.
            file::keep_tail(&self.sent_file(), self.sent_max_bytes / 2)?;
        }
        Ok(())
    }

    /// The sent-log, oldest first.
    pub fn sent(&self) -> io::Result<Vec<SentRecord>> {
        if !self.sent_file().exists() {
            return Ok(Vec::new());
        }
        let bytes = {
            let _lock = self.lock()?;
            match fs::read(self.sent_file()) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                r => r.map_err(|e| at_path(e, &self.sent_file()))?,
            }
        };
        Ok(file::lines(&bytes).collect())
    }

    fn expired(&self, e: &Event, now: DateTime<Utc>) -> bool {
        let age = now.signed_duration_since(e.occurred_at);
        age.to_std().is_ok_and(|a| a > self.max_age)
    }

    /// Copies the outbox, lets `change` edit its chunks without holding the lock (`false`:
    /// nothing to write), and commits the result unless another process rewrote the
    /// outbox meanwhile (then all again, a few times). Lines appended meanwhile are kept
    /// but are not in the chunks returned.
    fn rewrite(&self, now: DateTime<Utc>, mut change: impl FnMut(&mut Vec<Chunk>) -> bool) -> io::Result<Vec<Chunk>> {
        for _ in 0..REWRITE_TRIES {
            let copy = file::snapshot(&self.dir, &self.file())?;
            let mut chunks = self.parse(&copy, now);
            if !change(&mut chunks) {
                return Ok(chunks);
            }
            let lines: Vec<Line> = chunks.iter().cloned().flat_map(lines_of).collect();
            if file::commit(&self.dir, &self.file(), &copy.snapshot, &to_text(&lines)?)? {
                return Ok(chunks);
            }
        }
        Err(self.rewritten_meanwhile())
    }

    fn rewritten_meanwhile(&self) -> io::Error {
        io::Error::other(format!("{}: rewritten by other processes meanwhile, try again", self.file().display()))
    }

    /// The chunks of a copy, without expired events and without repeats of an id.
    /// Spill files are read after the outbox file; marks apply to the events they name.
    fn parse(&self, copy: &Copy, now: DateTime<Utc>) -> Vec<Chunk> {
        let mut chunks = Vec::new();
        let mut marks: Vec<(DateTime<Utc>, HashSet<Uuid>)> = Vec::new();
        let texts = std::iter::once(&copy.main).chain(&copy.spills);
        for line in texts.flat_map(|t| file::lines::<ParsedLine>(t)).filter_map(ParsedLine::into_line) {
            match line {
                Line::Chunk(mut c) => {
                    c.events.retain(|e| !self.expired(e, now));
                    chunks.push(*c);
                }
                Line::Mark { posted_at, ids } => marks.push((posted_at, ids.into_iter().collect())),
            }
        }
        let mut chunks = dedupe(chunks);
        for (posted_at, ids) in marks {
            chunks = chunks
                .into_iter()
                .flat_map(|c| {
                    let Chunk { context, events, posted_at: was_posted, posts } = c;
                    let (hit, rest): (Vec<Event>, Vec<Event>) =
                        events.into_iter().partition(|e| ids.contains(&e.event_id));
                    let marked =
                        Chunk { context: context.clone(), events: hit, posted_at: Some(posted_at), posts: posts + 1 };
                    [Chunk { context, events: rest, posted_at: was_posted, posts }, marked]
                })
                .filter(|c| !c.events.is_empty())
                .collect();
        }
        chunks
    }

    /// Takes the directory's lock, waiting at most [`LOCK_WAIT`] for another process.
    fn lock(&self) -> io::Result<Locked> {
        Locked::within(&self.dir, LOCK_WAIT)
    }
}

/// The lines of a chunk, at most [`LINE_EVENTS`] events each.
fn lines_of(chunk: Chunk) -> Vec<Line> {
    let Chunk { context, events, posted_at, posts } = chunk;
    events
        .chunks(LINE_EVENTS)
        .map(|part| Line::Chunk(Box::new(Chunk { posted_at, posts, ..Chunk::new(context.clone(), part.to_vec()) })))
        .collect()
}

/// JSON lines, each ended by a newline.
fn to_text<T: Serialize>(items: &[T]) -> io::Result<String> {
    let mut text = String::new();
    for item in items {
        text.push_str(&serde_json::to_string(item).map_err(io::Error::other)?);
        text.push('\n');
    }
    Ok(text)
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
