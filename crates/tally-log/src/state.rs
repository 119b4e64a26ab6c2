//! The state appenders, the writer thread, readers and the applier share, and the group
//! completion that tickets wait on.
//!
//! One mutex guards [`State`]; it is held only to copy a record into the pending batch, to
//! swap batches, and to publish what the writer made durable. File I/O never happens under
//! it.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};

use crate::{LogError, Options};

/// Where a segment's records are: positions `first..end` (durable, checked).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentMeta {
    pub first: u64,
    pub end: u64,
}

/// A sparse index entry: the record at `position` is the `ordinal`-th durable record of
/// this process's view of the log, appended no earlier than `ms`. The writer adds one at
/// each segment's first record, every [`MARK_BYTES`], and at a batch starting a second or
/// more after the last mark, so that counting records from a mark reads little and an age
/// taken from a mark is early by about a second at most.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    pub position: u64,
    pub ordinal: u64,
    pub ms: u64,
}

pub(crate) const MARK_BYTES: u64 = 64 * 1024;
pub(crate) const MARK_MS: u64 = 1000;

/// Records accepted but not yet handed to the writer: framed, back to back.
pub(crate) struct Batch {
    pub bytes: Vec<u8>,
    pub first_position: u64,
    pub records: u64,
    /// When the first record was appended.
    pub since_ms: u64,
    pub group: Arc<Group>,
}

impl Batch {
    pub fn new() -> Batch {
        Batch { bytes: Vec::new(), first_position: 0, records: 0, since_ms: 0, group: Arc::new(Group::default()) }
    }
}

pub(crate) struct State {
    /// The position the next append gets.
    pub next_position: u64,
    pub pending: Batch,
    /// Bytes and records accepted and not yet durable (pending and being written).
    pub in_flight_bytes: u64,
    pub in_flight_records: u64,
    /// `since_ms` of the batch the writer is writing.
    pub writing_since: Option<u64>,
    pub closing: bool,
    /// Durable segments in position order; the last one is where the writer appends.
    pub segments: Vec<SegmentMeta>,
    pub marks: VecDeque<Mark>,
    /// Durable records counted since open, including those found on open.
    pub durable_records: u64,
    /// Durable bytes at or after `released`.
    pub durable_unapplied: u64,
    /// Every record before this position is applied.
    pub released: u64,
    /// The ordinal of the first record at or after `released`.
    pub released_ordinal: u64,
}

impl State {
    /// The end of the durable records.
    pub fn durable_end(&self) -> u64 {
        self.segments.last().map_or(0, |s| s.end)
    }

    /// Whether a durable record starts at or after `position`.
    pub fn has_record_from(&self, position: u64) -> bool {
        self.segments.iter().rev().take_while(|s| s.end > position).any(|s| s.end > position.max(s.first))
    }

    /// The index of the segment holding `position`, or the one before a gap holding it.
    pub fn segment_at(&self, position: u64) -> Option<usize> {
        self.segments.partition_point(|s| s.first <= position).checked_sub(1)
    }

    /// Durable bytes at or after `position`.
    pub fn durable_bytes_from(&self, position: u64) -> u64 {
        self.segments.iter().map(|s| s.end.saturating_sub(position.max(s.first))).sum()
    }
}

pub(crate) struct Shared {
    pub dir: PathBuf,
    pub options: Options,
    pub state: Mutex<State>,
    /// The writer waits here for records.
    pub work: Condvar,
    /// Readers wait here for durable records.
    pub advanced: Condvar,
    pub fsyncs: AtomicU64,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere does not leave the state half-updated in a way that matters
        // more than refusing every later call would.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The outcome of one group commit, shared by every ticket of the group.
#[derive(Default)]
pub(crate) struct Group {
    inner: Mutex<GroupState>,
    done: Condvar,
}

#[derive(Default)]
struct GroupState {
    result: Option<Result<(), LogError>>,
    wakers: Vec<Waker>,
}

impl Group {
    fn lock(&self) -> MutexGuard<'_, GroupState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes the outcome and wakes every waiter, blocking or async.
    pub fn complete(&self, result: Result<(), LogError>) {
        let wakers = {
            let mut g = self.lock();
            g.result = Some(result);
            std::mem::take(&mut g.wakers)
        };
        self.done.notify_all();
        for w in wakers {
            w.wake();
        }
    }

    pub fn wait(&self) -> Result<(), LogError> {
        let mut g = self.lock();
        loop {
            if let Some(r) = &g.result {
                return r.clone();
            }
            g = self.done.wait(g).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// `slot` remembers where this ticket's waker is, so that polling again replaces it
    /// instead of growing the list.
    pub fn poll(&self, slot: &mut Option<usize>, waker: &Waker) -> Poll<Result<(), LogError>> {
        let mut g = self.lock();
        if let Some(r) = &g.result {
            return Poll::Ready(r.clone());
        }
        match *slot {
            Some(i) if !g.wakers[i].will_wake(waker) => g.wakers[i] = waker.clone(),
            Some(_) => {}
            None => {
                *slot = Some(g.wakers.len());
                g.wakers.push(waker.clone());
            }
        }
        Poll::Pending
    }
}
