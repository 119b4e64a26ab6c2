//! What can go wrong in the log, and how a caller tells the cases apart.
//!
//! [`LogError::kind`] is what callers branch on: [`ErrorKind::Full`] means "answer 503 with
//! `Retry-After`" (the applier is behind; nothing was appended), [`ErrorKind::Io`] means
//! the disk failed (nothing of the failed group was acknowledged; a retry may work once
//! space is freed), [`ErrorKind::Corrupt`] means the files are not what this version
//! wrote, and [`ErrorKind::Invalid`] means the caller asked for something impossible (a
//! record over the size limit, a position the log does not hold).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a log operation failed. Cloneable because one disk error fails every append of its
/// group commit.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// Appending would take the bytes not yet applied past the configured bound.
    #[error("the ingest log is full ({unapplied} bytes not yet applied, limit {limit}); retry later")]
    Full {
        /// Bytes accepted but not yet released by the applier.
        unapplied: u64,
        /// [`crate::Options::max_unapplied_bytes`].
        limit: u64,
    },
    /// The record is larger than [`crate::Options::max_record_bytes`].
    #[error("a record of {len} bytes is over the ingest log's limit of {limit} bytes")]
    TooLarge {
        /// The record's length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// A file operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("write", "sync", "create", ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: Arc<io::Error>,
    },
    /// A file holds bytes this version cannot read.
    #[error("{} is corrupt at byte {offset}: {reason}", path.display())]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// The byte offset in the file.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A position the log does not hold (released already, past the end, or not the start
    /// of a record).
    #[error("position {position} is not in the ingest log: {reason}")]
    Position {
        /// The position asked for.
        position: u64,
        /// Why it is not there.
        reason: &'static str,
    },
}

/// The class of a [`LogError`], for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Back-pressure: retry later.
    Full,
    /// The disk failed; retrying later may work.
    Io,
    /// The files are damaged or from another version.
    Corrupt,
    /// The request itself is wrong; retrying it will not help.
    Invalid,
}

impl LogError {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            LogError::Full { .. } => ErrorKind::Full,
            LogError::Io { .. } => ErrorKind::Io,
            LogError::Corrupt { .. } => ErrorKind::Corrupt,
            LogError::TooLarge { .. } | LogError::Position { .. } => ErrorKind::Invalid,
        }
    }

    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind(), ErrorKind::Full | ErrorKind::Io)
    }
}

/// `map_err(io_error("write", &path))`.
pub(crate) fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LogError + 'a {
    move |source| LogError::Io { action, path: path.to_path_buf(), source: Arc::new(source) }
}
