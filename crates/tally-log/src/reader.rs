//! Reading records in position order, across segments, while the log grows.
//!
//! A reader sees only durable records (synced and published by the writer), so nothing it
//! hands out can vanish in a crash, and a position the applier stores is always one a
//! reopened log still has. Segment boundaries and gaps (skipped corrupt bytes, positions of
//! a failed group) are crossed silently: a record's position is all the applier keeps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::LogError;
use crate::error::io_error;
use crate::format::{self, Frame, SegmentFile};
use crate::state::Shared;

/// One record read from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Where the record starts; unique and increasing.
    pub position: u64,
    /// The bytes given to [`crate::Log::append`].
    pub payload: Vec<u8>,
}

impl Record {
    /// The position just after this record: what the applier stores (and later passes to
    /// [`crate::Log::release`] and [`crate::Log::read_from`]) once it has applied it.
    pub fn next_position(&self) -> u64 {
        self.position + format::FRAME_HEADER_LEN + self.payload.len() as u64
    }
}

/// A cursor over the log from a position on; made by [`crate::Log::read_from`].
pub struct Reader {
    shared: Arc<Shared>,
    position: u64,
    file: Option<SegmentFile>,
    /// The durable end of the segment `file` reads, as last looked up.
    segment_end: u64,
}

impl Reader {
    pub(crate) fn new(shared: Arc<Shared>, position: u64) -> Reader {
        Reader { shared, position, file: None, segment_end: 0 }
    }

    /// The position of the next record this reader returns (or of the next record to be
    /// appended, once it has caught up).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The next durable record, or `None` when the reader has caught up with the durable
    /// end (call again later, or [`Reader::wait`]). An error leaves the reader where it was.
    pub fn next_record(&mut self) -> Result<Option<Record>, LogError> {
        if self.file.is_none() || self.position >= self.segment_end {
            let Some((first, end)) = self.locate()? else { return Ok(None) };
            if self.file.as_ref().is_none_or(|f| f.first != first) {
                let path = format::segment_path(&self.shared.dir, first);
                self.file = Some(SegmentFile::open(&path, first, self.position).map_err(io_error("open", &path))?);
            }
            self.segment_end = end;
        }
        let file = self.file.as_mut().expect("located above");
        let (first, position) = (file.first, file.position);
        let mut payload = Vec::new();
        let path = || format::segment_path(&self.shared.dir, first);
        match file.read(self.segment_end, &mut payload).map_err(|e| io_error("read", &path())(e))? {
            Frame::Record => {
                self.position = file.position;
                Ok(Some(Record { position, payload }))
            }
            Frame::End => Ok(None),
            Frame::Bad(reason) => {
                let offset = format::HEADER_LEN + (position - first);
                // The next read must seek again rather than trust the buffer's position.
                self.file = None;
                Err(LogError::Corrupt { path: path(), offset, reason: reason.to_string() })
            }
        }
    }

    /// Finds the segment holding the next record and moves `position` over any gap;
    /// `None` when there is no durable record at or after `position`.
    fn locate(&mut self) -> Result<Option<(u64, u64)>, LogError> {
        let st = self.shared.lock();
        let Some(mut i) = st.segment_at(self.position) else {
            return Err(LogError::Position { position: self.position, reason: "it was released" });
        };
        loop {
            let s = st.segments[i];
            if self.position < s.end {
                return Ok(Some((s.first, s.end)));
            }
            match st.segments.get(i + 1) {
                Some(next) => {
                    self.position = self.position.max(next.first);
                    i += 1;
                }
                None => return Ok(None),
            }
        }
    }

    /// Blocks until a record is available at or after [`Reader::position`] (`true`), the
    /// timeout passes or the log is closed (`false`).
    pub fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        loop {
            if st.has_record_from(self.position) {
                return true;
            }
            let now = Instant::now();
            if st.closing || now >= deadline {
                return false;
            }
            st = self
                .shared
                .advanced
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }
}
