//! Storage for tally: the [`EventStore`] trait every backend implements, the row model
//! ([`EventRow`]), the typed insight query model ([`Query`] → [`Table`]), keyed hashing of
//! project and machine ids ([`ServerSecret`]), an in-memory backend for fast tests
//! ([`MemoryStore`]) and the conformance suite every backend must pass (`conformance`,
//! behind the `testsuite` feature so that release binaries do not carry it).
//!
//! Nothing outside a backend crate writes SQL: callers describe what they want with a
//! [`Query`], and the backend answers with a [`Table`] whose columns and row order the
//! query's documentation fixes, so that every backend returns the same table.

#[cfg(any(test, feature = "testsuite"))]
pub mod conformance;
mod keys;
mod memory;
mod query;
pub mod rollup;
mod row;

pub use keys::SECRET_FILE;
pub use keys::{Key16, MachineKey, ProjectKey, ServerSecret};
pub use memory::MemoryStore;
pub use query::{
    Cell, Column, ColumnType, Dimension, Filters, Period, Query, QueryKind, Table, compare_versions, drop_support_rows,
    version_prefix,
};
pub use rollup::Rollup;
pub use row::{AppendStatus, ContextField, EventRow, KnownValues};

/// Milliseconds in a day.
pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be reached or failed; retrying later may work.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The data directory is locked by another process (embedded backends allow one
    /// writer).
    #[error("{0}")]
    Locked(String),
    /// The query is not valid for this backend or these parameters.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// Anything else the backend reports.
    #[error("storage error: {0}")]
    Backend(String),
}

impl StoreError {
    /// Whether the same call may succeed if retried later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Where events are kept and insights computed.
///
/// Implementations are blocking; async callers run them on a blocking thread. Every
/// backend passes `conformance`, so that the same rows give the same tables everywhere.
pub trait EventStore: Send + Sync {
    /// Appends `rows` atomically and durably: when this returns `Ok`, every row reported
    /// [`AppendStatus::Inserted`] survives a crash of the process (`kill -9`) and of the
    /// machine as far as `fsync` allows. Idempotent by `event_id`: a row whose id is
    /// already stored, or appears earlier in `rows`, is not stored again and is reported
    /// [`AppendStatus::Duplicate`]. The result has one status per row, in order. On `Err`,
    /// nothing of `rows` was stored.
    fn append(&self, rows: &[EventRow]) -> Result<Vec<AppendStatus>, StoreError>;

    /// Stores `rows` and records `through` as the ingest-log position applied, in the same
    /// transaction: after a crash either both the rows and the position are stored or
    /// neither is, so the applier resumes exactly after what was stored. `rows` may be
    /// empty (the position alone advances). Positions only grow; the caller never passes a
    /// smaller one than [`EventStore::applied_position`].
    ///
    /// The caller guarantees that no row's `event_id` is stored yet nor repeated in `rows`
    /// (the collector deduplicates at acceptance, across its whole acceptance window), so a
    /// backend may store them without looking (DuckDB does: no index to grow with the
    /// table). Where that guarantee does not hold, e.g. when replaying records a crashed
    /// process may have stored in part, the caller uses [`EventStore::append`] and then
    /// `apply(&[], through)`. Every row is reported [`AppendStatus::Inserted`] unless the
    /// backend found it stored.
    fn apply(&self, rows: &[EventRow], through: u64) -> Result<Vec<AppendStatus>, StoreError>;

    /// The last position recorded by [`EventStore::apply`]; `None` if it never ran.
    fn applied_position(&self) -> Result<Option<u64>, StoreError>;

    /// The id and `occurred_at` (ms) of every stored event that occurred at or after
    /// `since_ms`, in no particular order: seeds the collector's dedupe index at start.
    fn event_ids_since(&self, since_ms: i64) -> Result<Vec<(uuid::Uuid, i64)>, StoreError>;

    /// Answers a typed insight query. The columns and the row order are those documented
    /// on [`QueryKind`]; the answer reflects every append that returned before the call.
    fn query(&self, query: &Query) -> Result<Table, StoreError>;

    /// Deletes every row of `project` (all apps); returns how many rows were deleted.
    fn erase_project(&self, project: &ProjectKey) -> Result<u64, StoreError>;

    /// Deletes every row of `app` whose `occurred_at` is before `before_ms`; returns how
    /// many. A cut at midnight UTC (what the collector's schedule uses) drops whole days.
    fn apply_retention(&self, app: &str, before_ms: i64) -> Result<u64, StoreError>;

    /// The distinct plugin names, string property values and non-empty string context
    /// values ([`ContextField`]) stored for `app`, used to enforce cardinality caps across
    /// restarts.
    fn known_values(&self, app: &str) -> Result<KnownValues, StoreError>;

    /// How many events are stored in all.
    fn count_events(&self) -> Result<u64, StoreError>;
}

impl<S: EventStore + ?Sized> EventStore for std::sync::Arc<S> {
    fn append(&self, rows: &[EventRow]) -> Result<Vec<AppendStatus>, StoreError> {
        (**self).append(rows)
    }
    fn apply(&self, rows: &[EventRow], through: u64) -> Result<Vec<AppendStatus>, StoreError> {
        (**self).apply(rows, through)
    }
    fn applied_position(&self) -> Result<Option<u64>, StoreError> {
        (**self).applied_position()
    }
    fn event_ids_since(&self, since_ms: i64) -> Result<Vec<(uuid::Uuid, i64)>, StoreError> {
        (**self).event_ids_since(since_ms)
    }
    fn query(&self, query: &Query) -> Result<Table, StoreError> {
        (**self).query(query)
    }
    fn erase_project(&self, project: &ProjectKey) -> Result<u64, StoreError> {
        (**self).erase_project(project)
    }
    fn apply_retention(&self, app: &str, before_ms: i64) -> Result<u64, StoreError> {
        (**self).apply_retention(app, before_ms)
    }
    fn known_values(&self, app: &str) -> Result<KnownValues, StoreError> {
        (**self).known_values(app)
    }
    fn count_events(&self) -> Result<u64, StoreError> {
        (**self).count_events()
    }
}
