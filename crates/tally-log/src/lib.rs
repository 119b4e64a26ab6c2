//! The durable ingest log: what the collector acknowledges is on disk here, before any
//! analytics store sees it.
//!
//! Appenders hand opaque byte records to [`Log::append`]; one writer thread writes
//! everything waiting and makes it durable with one `fdatasync` (group commit), then
//! completes every waiting [`Ticket`]. An applier reads the log with a [`Reader`] from the
//! position its backend last committed, applies records in large batches, stores "applied
//! up to position P" in the same backend transaction, and calls [`Log::release`]`(P)`,
//! which deletes segments that hold only applied records. On start, [`Log::open`] checks
//! every segment, repairs a torn tail and reports what it found ([`Recovery`]); appends
//! work at once, and the applier replays from its stored position. The file format and the
//! recovery rules are in `docs/ingest-log.md`, `format.rs` and `recovery.rs`.
//!
//! # Positions
//!
//! A position is a byte offset in the stream of frames (headers excluded): a segment named
//! `P.seg` holds the records from position `P` on, and a record at position `p` is at
//! offset `p - P` after the segment header. Byte positions make seeking free (no index
//! file), make the unapplied byte count a subtraction, and let gaps (skipped corruption, a
//! failed group, a torn tail) exist without renumbering anything. Positions only grow; a
//! position that was ever in a segment file is never given to another record, and
//! [`Reader`]s see only synced records, so a position an applier stored always means the
//! same record, across crashes and torn tails.
//!
//! # Waiting for durability, blocking or async
//!
//! [`Log::append`] copies the record into the pending batch under a short lock and returns
//! a [`Ticket`] at once; no thread is held while the disk works. The ticket completes when
//! its group is synced (or failed): [`Ticket::wait`] blocks the calling thread (tests, the
//! CLI, a blocking applier), and `Ticket` is also a `std::future::Future` that an async
//! handler awaits (`log.append(&bytes)?.await?`). The future registers its task's `Waker`
//! with the group and the writer thread wakes it after the sync, so a tokio worker is
//! never blocked and this crate needs no async runtime: `Future` and `Waker` are in `std`.
//! A handler that is dropped while waiting loses nothing: the record is written anyway.
//!
//! # Back-pressure and lag
//!
//! The bytes accepted but not yet released by the applier are bounded by
//! [`Options::max_unapplied_bytes`]; an append beyond it fails with [`LogError::Full`]
//! (the collector answers 503 with `Retry-After`) and appends are accepted again as soon
//! as the applier releases. [`Log::lag`] gives records, bytes and the age of the oldest
//! record not yet released, for `/healthz`.
//!
//! # Failures
//!
//! A failed write or sync (disk full, I/O error) fails every append of its group with
//! [`LogError::Io`]: nothing is acknowledged that is not synced, readers never see the
//! group, and the next group starts a fresh segment (see `writer.rs`).

mod error;
mod format;
mod reader;
mod recovery;
mod state;
mod writer;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

pub use error::{ErrorKind, LogError};
pub use reader::{Reader, Record};
pub use recovery::{Problem, ProblemKind, Recovery};

use format::{FRAME_HEADER_LEN, Frame, SegmentFile};
use state::{Batch, Group, Mark, Shared, State};

/// How the log is sized.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// A segment is closed and a new one started once it would grow past this many bytes
    /// (a record larger than this gets a segment of its own). Default 64 MiB.
    pub segment_bytes: u64,
    /// Appends fail with [`LogError::Full`] once the bytes accepted and not yet released
    /// would pass this. Default 1 GiB (about ten seconds of the collector's peak rate).
    pub max_unapplied_bytes: u64,
    /// The largest record accepted. Default 16 MiB.
    pub max_record_bytes: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options { segment_bytes: 64 << 20, max_unapplied_bytes: 1 << 30, max_record_bytes: 16 << 20 }
    }
}

/// How far the applier is behind what was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Lag {
    /// Records accepted and not yet released.
    pub records: u64,
    /// Their bytes, framing included (what [`Options::max_unapplied_bytes`] bounds).
    pub bytes: u64,
    /// How long ago the oldest of them was appended, at most about a second early; for
    /// records found when the log opened, counted from their segment's creation. `None`
    /// when nothing is unapplied.
    pub oldest: Option<Duration>,
}

/// The ingest log of one data directory. Dropping it writes and syncs what was accepted,
/// then stops the writer thread.
pub struct Log {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
    recovery: Recovery,
}

impl Log {
    /// Opens (or creates) the log in `<data_dir>/log`, checking every segment and repairing
    /// a torn tail; [`Log::recovery`] says what was found. One process at a time: the
    /// caller holds the data directory's lock.
    pub fn open(data_dir: &Path, options: Options) -> Result<Log, LogError> {
        let dir = data_dir.join("log");
        let fsyncs = AtomicU64::new(0);
        let opened = recovery::open_dir(&dir, &fsyncs)?;
        let start = opened.segments.first().map_or(0, |s| s.first);
        let next_position = opened.active.end.max(opened.segments.last().map_or(0, |s| s.end));
        let last_mark = opened.marks.back().map_or((start, 0), |m| (m.position, m.ms));
        let state = State {
            next_position,
            pending: Batch::new(),
            in_flight_bytes: 0,
            in_flight_records: 0,
            writing_since: None,
            closing: false,
            durable_unapplied: opened.segments.iter().map(|s| s.end - s.first).sum(),
            segments: opened.segments,
            marks: opened.marks,
            durable_records: opened.records,
            released: start,
            released_ordinal: 0,
        };
        let shared = Arc::new(Shared {
            dir,
            options,
            state: Mutex::new(state),
            work: Condvar::new(),
            advanced: Condvar::new(),
            fsyncs,
        });
        let writer =
            writer::Writer { shared: shared.clone(), active: Some(opened.active), ordinal: opened.records, last_mark };
        let handle = std::thread::Builder::new()
            .name("tally-log-writer".into())
            .spawn(move || writer.run())
            .map_err(error::io_error("start the writer thread for", &shared.dir))?;
        Ok(Log { shared, writer: Some(handle), recovery: opened.recovery })
    }

    /// What opening found: segments, records, and any torn tail or corruption (log a
    /// [`ProblemKind::Corrupt`] as an error: acknowledged records may be lost).
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The directory of the segment files.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Accepts `record` and returns at once with its position; the [`Ticket`] completes
    /// once it is durable. Fails with [`LogError::Full`] when the unapplied bound would be
    /// passed and [`LogError::TooLarge`] over the record limit; nothing is appended then.
    pub fn append(&self, record: &[u8]) -> Result<Ticket, LogError> {
        let len = record.len() as u64;
        let limit = self.shared.options.max_record_bytes.min(u64::from(u32::MAX));
        if len > limit {
            return Err(LogError::TooLarge { len, limit });
        }
        let frame = FRAME_HEADER_LEN + len;
        let mut st = self.shared.lock();
        let unapplied = st.durable_unapplied + st.in_flight_bytes;
        let max = self.shared.options.max_unapplied_bytes;
        if unapplied + frame > max {
            return Err(LogError::Full { unapplied, limit: max });
        }
        let position = st.next_position;
        let first_of_batch = st.pending.records == 0;
        if first_of_batch {
            st.pending.first_position = position;
            st.pending.since_ms = format::now_ms();
        }
        format::encode_frame(&mut st.pending.bytes, position, record);
        st.pending.records += 1;
        st.next_position += frame;
        st.in_flight_bytes += frame;
        st.in_flight_records += 1;
        let group = st.pending.group.clone();
        drop(st);
        if first_of_batch {
            self.shared.work.notify_one();
        }
        Ok(Ticket { position, group, slot: None })
    }

    /// A reader of the durable records from `position` on (an applier's stored position,
    /// or [`Log::start`] to read everything kept). Fails when `position` was released or is
    /// past [`Log::next_position`].
    pub fn read_from(&self, position: u64) -> Result<Reader, LogError> {
        let st = self.shared.lock();
        if st.segment_at(position).is_none() {
            return Err(LogError::Position { position, reason: "it was released" });
        }
        if position > st.next_position {
            return Err(LogError::Position { position, reason: "it is past the end of the log" });
        }
        Ok(Reader::new(self.shared.clone(), position))
    }

    /// Declares every record before `position` applied (committed by the backend) and
    /// deletes the segments that hold nothing else. `position` is a record's
    /// [`Record::next_position`] or the durable end; releasing less than before does
    /// nothing.
    pub fn release(&self, position: u64) -> Result<(), LogError> {
        let (mark, within) = {
            let st = self.shared.lock();
            if position <= st.released {
                return Ok(());
            }
            if position > st.durable_end() {
                return Err(LogError::Position { position, reason: "it is past the durable end of the log" });
            }
            let within = st.segment_at(position).map(|i| st.segments[i]).filter(|s| position < s.end);
            let mark = match within {
                Some(_) => st.marks.iter().rev().find(|m| m.position <= position).copied(),
                None => None,
            };
            (mark, within)
        };
        let ordinal = match (within, mark) {
            (Some(segment), Some(mark)) => self.count_to(segment.first, segment.end, mark, position)?,
            _ => {
                let st = self.shared.lock();
                st.marks.iter().find(|m| m.position >= position).map_or(st.durable_records, |m| m.ordinal)
            }
        };
        let deleted = {
            let mut st = self.shared.lock();
            if position <= st.released {
                return Ok(());
            }
            st.released = position;
            st.released_ordinal = ordinal;
            let keep_from = st.marks.iter().rposition(|m| m.position <= position).unwrap_or(0);
            st.marks.drain(..keep_from);
            // The last segment always stays: its name carries the end of the log.
            let removable = st.segments[..st.segments.len() - 1].iter().take_while(|s| s.end <= position).count();
            let deleted: Vec<u64> = st.segments.drain(..removable).map(|s| s.first).collect();
            st.durable_unapplied = st.durable_bytes_from(position);
            deleted
        };
        if !deleted.is_empty() {
            for first in deleted {
                let path = format::segment_path(&self.shared.dir, first);
                std::fs::remove_file(&path).map_err(error::io_error("remove", &path))?;
            }
            writer::sync_dir(&self.shared.dir, &self.shared.fsyncs)?;
        }
        Ok(())
    }

    /// The ordinal of the record at `position` in the segment `first..end`, counted from
    /// `mark` (at most [`state::MARK_BYTES`] and one record before it).
    fn count_to(&self, first: u64, end: u64, mark: Mark, position: u64) -> Result<u64, LogError> {
        let path = format::segment_path(&self.shared.dir, first);
        let mut file = SegmentFile::open(&path, first, mark.position).map_err(error::io_error("open", &path))?;
        let mut ordinal = mark.ordinal;
        while file.position < position {
            match file.skip(end).map_err(error::io_error("read", &path))? {
                Frame::Record => ordinal += 1,
                Frame::End | Frame::Bad(_) => break,
            }
        }
        if file.position != position {
            return Err(LogError::Position { position, reason: "no record starts there" });
        }
        Ok(ordinal)
    }

    /// Records, bytes and age not yet released.
    pub fn lag(&self) -> Lag {
        let st = self.shared.lock();
        let durable_records = st.durable_records - st.released_ordinal;
        let since = if durable_records > 0 {
            st.marks.iter().rev().find(|m| m.position <= st.released).or(st.marks.front()).map(|m| m.ms)
        } else {
            st.writing_since.or((st.pending.records > 0).then_some(st.pending.since_ms))
        };
        Lag {
            records: durable_records + st.in_flight_records,
            bytes: st.durable_unapplied + st.in_flight_bytes,
            oldest: since.map(|ms| Duration::from_millis(format::now_ms().saturating_sub(ms))),
        }
    }

    /// The first position kept (records before it were released and deleted).
    pub fn start(&self) -> u64 {
        self.shared.lock().segments.first().map_or(0, |s| s.first)
    }

    /// The position after the last durable record.
    pub fn durable_end(&self) -> u64 {
        self.shared.lock().durable_end()
    }

    /// The position the next append gets. An applier whose stored position is past this
    /// was given another log (the log directory was deleted or replaced).
    pub fn next_position(&self) -> u64 {
        self.shared.lock().next_position
    }

    /// How many `fdatasync`/`fsync` calls the log has made (files and directories).
    pub fn fsyncs(&self) -> u64 {
        self.shared.fsyncs.load(Ordering::Relaxed)
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.work.notify_all();
        self.shared.advanced.notify_all();
        if let Some(handle) = self.writer.take() {
            let _ = handle.join();
        }
    }
}

/// An accepted record waiting to be durable: [`Ticket::wait`] blocks, `.await` does not.
/// Both yield the record's position once its group is synced, or the error that failed
/// the group (then the record is not acknowledged).
#[must_use = "a record is acknowledged only once its ticket completes"]
pub struct Ticket {
    position: u64,
    group: Arc<Group>,
    slot: Option<usize>,
}

impl Ticket {
    /// The record's position (known at once; durable only once the ticket completes).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Blocks until the record is durable; returns its position.
    pub fn wait(self) -> Result<u64, LogError> {
        self.group.wait().map(|()| self.position)
    }
}

impl Future for Ticket {
    type Output = Result<u64, LogError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.group.poll(&mut this.slot, cx.waker()).map(|r| r.map(|()| this.position))
    }
}
