//! Opening a log directory: checking every segment, repairing a torn tail, and reporting.
//!
//! Every frame of every segment is read and its checksum checked, in position order. The
//! rules:
//!
//! - **The last segment's tail** may be torn by a crash (a write cut short, or blocks the
//!   disk never wrote). Its valid prefix is kept, the rest is truncated, and appends go on
//!   in a *new* segment that starts at the position the old file's end stood for, so a
//!   position that was ever in a file is never given to another record (readers only see
//!   synced records, so a torn tail was never read; the jump also covers the case where
//!   the damaged bytes had been synced). Reported as [`ProblemKind::TornTail`].
//! - **An older segment** with a bad frame (or header) keeps its valid prefix; the rest of
//!   that segment is skipped by readers but the file is left as it is, for inspection, until
//!   the applier releases past it. The following segments are read as usual: they hold
//!   acknowledged records too. Reported as [`ProblemKind::Corrupt`], which the caller
//!   should log as an error (acknowledged records may be lost).
//! - A last segment shorter than its header is a crash while it was being created: it is
//!   removed and created again.
//! - A header of a newer format version, or segments that overlap, refuse the open.
//!
//! After open there is always a segment file that stands for the next position, so the end
//! of the log survives a restart even when every older segment was released.

use std::collections::VecDeque;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;

use crate::LogError;
use crate::error::io_error;
use crate::format::{self, Frame, HEADER_LEN, HeaderError, SegmentFile};
use crate::state::{MARK_BYTES, Mark, SegmentMeta};
use crate::writer::{self, Active};

/// What opening the log found.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Recovery {
    /// Segment files read.
    pub segments: usize,
    /// Valid records found.
    pub records: u64,
    /// What was repaired or skipped, in position order.
    pub problems: Vec<Problem>,
}

/// One damaged place found when the log opened.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Problem {
    /// Torn tail (expected after a crash) or corruption (acknowledged records may be lost).
    pub kind: ProblemKind,
    /// The segment file.
    pub path: PathBuf,
    /// The byte offset in the file where valid data ends.
    pub offset: u64,
    /// Bytes after `offset` that are truncated (torn tail) or skipped (corrupt).
    pub dropped_bytes: u64,
    /// What was wrong with the first bad frame or header.
    pub reason: &'static str,
}

/// See [`Problem::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// The last segment ended in an incomplete or damaged record, truncated.
    TornTail,
    /// An older segment has a damaged record; the rest of that segment is skipped.
    Corrupt,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match self.kind {
            ProblemKind::TornTail => write!(
                f,
                "torn tail in {path} at byte {} ({}): {} bytes truncated, never acknowledged unless the disk lost synced data",
                self.offset, self.reason, self.dropped_bytes
            ),
            ProblemKind::Corrupt => write!(
                f,
                "{path} is corrupt at byte {} ({}): the {} bytes after it are skipped and may hold acknowledged records; keep a copy of the file to investigate",
                self.offset, self.reason, self.dropped_bytes
            ),
        }
    }
}

/// A log directory as found, checked and repaired, ready for the writer.
pub(crate) struct Opened {
    pub segments: Vec<SegmentMeta>,
    pub marks: VecDeque<Mark>,
    pub records: u64,
    pub active: Active,
    pub recovery: Recovery,
}

enum Scanned {
    /// The header is missing or damaged.
    BadHeader { file_len: u64, reason: &'static str },
    /// Valid records at `first..valid_end`; `limit` is where the file's bytes end;
    /// `bad` says why reading stopped before `limit`.
    Records { valid_end: u64, limit: u64, records: u64, bad: Option<&'static str> },
}

pub(crate) fn open_dir(dir: &Path, fsyncs: &AtomicU64) -> Result<Opened, LogError> {
    fs::create_dir_all(dir).map_err(io_error("create", dir))?;
    if let Some(parent) = dir.parent() {
        writer::sync_dir(parent, fsyncs)?;
    }
    let mut firsts = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error("list", dir))? {
        let entry = entry.map_err(io_error("list", dir))?;
        if let Some(first) = entry.file_name().to_str().and_then(format::parse_segment_name) {
            firsts.push(first);
        }
    }
    firsts.sort_unstable();

    let mut segments: Vec<SegmentMeta> = Vec::new();
    let mut marks = VecDeque::new();
    let mut recovery = Recovery { segments: firsts.len(), ..Recovery::default() };
    let mut next_position = 0;
    let mut reusable = None;
    for (i, &first) in firsts.iter().enumerate() {
        let last = i + 1 == firsts.len();
        let path = format::segment_path(dir, first);
        if first < next_position {
            return Err(LogError::Corrupt {
                path,
                offset: 0,
                reason: format!(
                    "the segment starts at position {first}, inside the one before it (ends at {next_position})"
                ),
            });
        }
        match scan(&path, first, recovery.records, &mut marks)? {
            Scanned::BadHeader { file_len, reason } if last && file_len <= HEADER_LEN => {
                fs::remove_file(&path).map_err(io_error("remove", &path))?;
                recovery.problems.push(Problem {
                    kind: ProblemKind::TornTail,
                    path,
                    offset: 0,
                    dropped_bytes: file_len,
                    reason,
                });
                next_position = first;
            }
            Scanned::BadHeader { file_len, reason } => {
                let dropped = file_len.saturating_sub(HEADER_LEN);
                recovery.problems.push(Problem {
                    kind: ProblemKind::Corrupt,
                    path,
                    offset: 0,
                    dropped_bytes: dropped,
                    reason,
                });
                segments.push(SegmentMeta { first, end: first });
                next_position = first + dropped;
            }
            Scanned::Records { valid_end, limit, records, bad } => {
                recovery.records += records;
                segments.push(SegmentMeta { first, end: valid_end });
                next_position = limit;
                let offset = HEADER_LEN + (valid_end - first);
                let dropped_bytes = limit - valid_end;
                match bad {
                    None if last => reusable = Some(valid_end),
                    None => {}
                    Some(reason) if last => {
                        truncate(&path, offset, fsyncs)?;
                        recovery.problems.push(Problem {
                            kind: ProblemKind::TornTail,
                            path,
                            offset,
                            dropped_bytes,
                            reason,
                        });
                    }
                    Some(reason) => {
                        recovery.problems.push(Problem {
                            kind: ProblemKind::Corrupt,
                            path,
                            offset,
                            dropped_bytes,
                            reason,
                        });
                    }
                }
            }
        }
    }

    let active = match (reusable, segments.last()) {
        (Some(end), Some(meta)) => {
            let path = format::segment_path(dir, meta.first);
            let file = OpenOptions::new().append(true).open(&path).map_err(io_error("open", &path))?;
            Active { first: meta.first, file, end, synced: end }
        }
        _ => {
            let active = writer::create_segment(dir, next_position, fsyncs)?;
            segments.push(SegmentMeta { first: next_position, end: next_position });
            active
        }
    };
    Ok(Opened { segments, marks, records: recovery.records, active, recovery })
}

/// Reads and checks one segment; adds a mark at its first record and every
/// [`MARK_BYTES`], dated by the segment's creation (records found on open have no time of
/// their own; this makes their age an upper bound).
fn scan(path: &Path, first: u64, ordinal: u64, marks: &mut VecDeque<Mark>) -> Result<Scanned, LogError> {
    let mut file = File::open(path).map_err(io_error("open", path))?;
    let file_len = file.metadata().map_err(io_error("read", path))?.len();
    let mut head = Vec::with_capacity(HEADER_LEN as usize);
    (&mut file).take(HEADER_LEN).read_to_end(&mut head).map_err(io_error("read", path))?;
    let header = match format::decode_header(&head) {
        Ok(h) if h.first == first => h,
        Ok(_) => return Ok(Scanned::BadHeader { file_len, reason: "the header names another position than the file" }),
        Err(HeaderError::Damaged(reason)) => return Ok(Scanned::BadHeader { file_len, reason }),
        Err(HeaderError::Version(v)) => {
            return Err(LogError::Corrupt {
                path: path.to_path_buf(),
                offset: 8,
                reason: format!("format version {v} is not known to this build; run the tally that wrote it"),
            });
        }
    };
    drop(file);
    let limit = first + (file_len - HEADER_LEN);
    let mut reader = SegmentFile::open(path, first, first).map_err(io_error("open", path))?;
    let mut payload = Vec::new();
    let mut records = 0;
    let mut last_mark = None;
    loop {
        let position = reader.position;
        match reader.read(limit, &mut payload).map_err(io_error("read", path))? {
            Frame::Record => {
                if last_mark.is_none_or(|m| position - m >= MARK_BYTES) {
                    marks.push_back(Mark { position, ordinal: ordinal + records, ms: header.created_ms });
                    last_mark = Some(position);
                }
                records += 1;
            }
            Frame::End => return Ok(Scanned::Records { valid_end: position, limit, records, bad: None }),
            Frame::Bad(reason) => {
                return Ok(Scanned::Records { valid_end: position, limit, records, bad: Some(reason) });
            }
        }
    }
}

fn truncate(path: &Path, len: u64, fsyncs: &AtomicU64) -> Result<(), LogError> {
    let file = OpenOptions::new().write(true).open(path).map_err(io_error("open", path))?;
    file.set_len(len).map_err(io_error("truncate", path))?;
    writer::sync_file(&file, path, fsyncs)
}
