//! The writer thread: group commit.
//!
//! Appenders copy framed records into the pending batch and wait on its group. The writer
//! takes the whole batch, writes it (rolling to new segments as they fill), calls
//! `fdatasync` once per segment it wrote to, publishes the new durable end and completes
//! the group. While it writes and syncs, the next batch fills; the more appenders wait,
//! the more each sync carries.
//!
//! When a write or sync fails, the whole group fails: no record of it is acknowledged or
//! becomes visible to readers. The segment being written is truncated back to its last
//! synced end (best effort) and abandoned — its file descriptor is not trusted again after
//! a failed sync — and the next batch starts a new segment at its own first position. The
//! failed batch's positions are skipped, never reused while the process runs; after a
//! restart they may be (they were never acknowledged nor read).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::LogError;
use crate::error::io_error;
use crate::format::{self, HEADER_LEN};
use crate::state::{Batch, MARK_BYTES, MARK_MS, Mark, SegmentMeta, Shared};

/// The segment the writer appends to; only the writer thread holds it.
pub(crate) struct Active {
    pub first: u64,
    pub file: File,
    /// The position after the last byte written.
    pub end: u64,
    /// The position after the last byte synced.
    pub synced: u64,
}

pub(crate) struct Writer {
    pub shared: Arc<Shared>,
    /// `None` after a failure, until the next batch creates a segment.
    pub active: Option<Active>,
    pub ordinal: u64,
    /// Position and time of the last mark.
    pub last_mark: (u64, u64),
}

/// What a successful batch changed, published under the state lock.
struct Written {
    segments: Vec<SegmentMeta>,
    marks: Vec<Mark>,
}

impl Writer {
    pub fn run(mut self) {
        loop {
            let batch = {
                let mut st = self.shared.lock();
                loop {
                    if st.pending.records > 0 {
                        st.writing_since = Some(st.pending.since_ms);
                        break std::mem::replace(&mut st.pending, Batch::new());
                    }
                    if st.closing {
                        return;
                    }
                    st = self.shared.work.wait(st).unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            };
            let result = self.write(&batch);
            {
                let mut st = self.shared.lock();
                st.in_flight_bytes -= batch.bytes.len() as u64;
                st.in_flight_records -= batch.records;
                st.writing_since = None;
                if let Ok(written) = &result {
                    for meta in &written.segments {
                        match st.segments.last_mut() {
                            Some(last) if last.first == meta.first => last.end = meta.end,
                            _ => st.segments.push(*meta),
                        }
                    }
                    st.marks.extend(written.marks.iter().copied());
                    st.durable_records += batch.records;
                    st.durable_unapplied += batch.bytes.len() as u64;
                }
            }
            self.shared.advanced.notify_all();
            batch.group.complete(result.map(|_| ()));
        }
    }

    fn write(&mut self, batch: &Batch) -> Result<Written, LogError> {
        let mut written = Written { segments: Vec::new(), marks: Vec::new() };
        let mut created = Vec::new();
        let mut last_mark = self.last_mark;
        match self.write_frames(batch, &mut written, &mut created, &mut last_mark) {
            Ok(()) => {
                self.ordinal += batch.records;
                self.last_mark = last_mark;
                Ok(written)
            }
            Err(e) => {
                if let Some(active) = self.active.take() {
                    let path = format::segment_path(&self.shared.dir, active.first);
                    // Best effort: a failing disk may refuse these too. Leftover complete
                    // frames are harmless (unacknowledged records a restart may find);
                    // truncating avoids reporting a partial frame as corruption later.
                    if created.contains(&active.first) {
                        let _ = fs::remove_file(&path);
                    } else {
                        let _ = active.file.set_len(HEADER_LEN + (active.synced - active.first));
                    }
                }
                Err(e)
            }
        }
    }

    fn write_frames(
        &mut self,
        batch: &Batch,
        written: &mut Written,
        created: &mut Vec<u64>,
        last_mark: &mut (u64, u64),
    ) -> Result<(), LogError> {
        let segment_bytes = self.shared.options.segment_bytes;
        let bytes = &batch.bytes;
        let (mut offset, mut start, mut position) = (0usize, 0usize, batch.first_position);
        let mut ordinal = self.ordinal;
        while offset < bytes.len() {
            let frame = format::frame_len(&bytes[offset..]);
            // `position - a.first` counts the bytes of the segment so far, this batch's
            // included.
            let roll = match &self.active {
                None => true,
                Some(a) => position > a.first && position - a.first + frame > segment_bytes,
            };
            if roll {
                if let Some(a) = self.active.as_mut() {
                    flush(&self.shared, a, &bytes[start..offset], written)?;
                }
                self.active = Some(create_segment(&self.shared.dir, position, &self.shared.fsyncs)?);
                created.push(position);
                start = offset;
            }
            // Every segment's first record has a mark: counting records never crosses a
            // segment.
            let first_in_segment = self.active.as_ref().is_some_and(|a| a.first == position);
            let mark = first_in_segment
                || position - last_mark.0 >= MARK_BYTES
                || (offset == 0 && batch.since_ms.saturating_sub(last_mark.1) >= MARK_MS);
            if mark {
                written.marks.push(Mark { position, ordinal, ms: batch.since_ms });
                *last_mark = (position, batch.since_ms);
            }
            offset += frame as usize;
            position += frame;
            ordinal += 1;
        }
        let a = self.active.as_mut().expect("a batch has at least one record, so a segment");
        flush(&self.shared, a, &bytes[start..], written)
    }
}

/// Writes `bytes` at the end of `a` and syncs it.
fn flush(shared: &Shared, a: &mut Active, bytes: &[u8], written: &mut Written) -> Result<(), LogError> {
    if bytes.is_empty() {
        return Ok(());
    }
    let path = format::segment_path(&shared.dir, a.first);
    a.file.write_all(bytes).map_err(io_error("write", &path))?;
    a.end += bytes.len() as u64;
    sync_file(&a.file, &path, &shared.fsyncs)?;
    a.synced = a.end;
    written.segments.push(SegmentMeta { first: a.first, end: a.end });
    Ok(())
}

/// Creates the segment file for `first` with its header, synced, and its directory entry
/// synced; on failure removes what it created.
pub(crate) fn create_segment(dir: &Path, first: u64, fsyncs: &AtomicU64) -> Result<Active, LogError> {
    let path = format::segment_path(dir, first);
    let mut file = OpenOptions::new().append(true).create_new(true).open(&path).map_err(io_error("create", &path))?;
    let done = file
        .write_all(&format::encode_header(first, format::now_ms()))
        .map_err(io_error("write", &path))
        .and_then(|()| sync_file(&file, &path, fsyncs))
        .and_then(|()| sync_dir(dir, fsyncs));
    if let Err(e) = done {
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    Ok(Active { first, file, end: first, synced: first })
}

pub(crate) fn sync_file(file: &File, path: &Path, fsyncs: &AtomicU64) -> Result<(), LogError> {
    file.sync_data().map_err(io_error("sync", path))?;
    fsyncs.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Makes the directory's entries (created or removed files) durable.
pub(crate) fn sync_dir(dir: &Path, fsyncs: &AtomicU64) -> Result<(), LogError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_error("sync", dir))?;
    fsyncs.fetch_add(1, Ordering::Relaxed);
    Ok(())
}
