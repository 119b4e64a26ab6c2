//! The embedded default backend: one DuckDB file in the data directory.
//!
//! - **Durability**: [`EventStore::apply`] and [`EventStore::append`] run one transaction
//!   each and return after DuckDB's commit, which writes and syncs its write-ahead log.
//! - **Idempotence**: `apply` takes rows the caller has deduplicated (the collector checks
//!   every `event_id` at acceptance, across the acceptance window) and appends them as
//!   they are, so its cost does not grow with the table: there is no primary-key index.
//!   `append` checks each `event_id` against the stored rows of the batch's time range.
//! - **One writer**: DuckDB locks the file. A second process gets
//!   [`StoreError::Locked`] with a message saying what to do.
//! - Reads use their own connections to the same database, so queries do not wait for
//!   writes.
//!
//! - **Rollups**: a [`Rollup`] of the events (one folded row per project, machine, context,
//!   event, error kind and plugin set per day, dictionary-encoded) is kept up to date by
//!   every append, erase and retention run. Queries over whole UTC days are answered from
//!   it; others, and stores opened read-only, use plain SQL over the events table
//!   ([`DuckDbStore::query_sql`]). A store on disk saves its rollup in `rollup/` next to
//!   the database ([`RollupFiles`]: the days changed, every [`SAVE_ROLLUP_EVERY`] and when
//!   the store is dropped) and reads it back when it opens, folding from the events table
//!   only the days whose files are missing or whose event count differs.
//!
//! This is the only crate that writes SQL for DuckDB. `append` owns the events table's
//! schema and the two insert paths (Arrow record batches through the appender), `load`
//! builds the rollup from the events table, and `sql` answers queries with plain SQL.

mod append;
mod export;
mod load;
mod sql;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use duckdb::{AccessMode, Config, Connection, params};
use tally_protocol::PropValue;
use tally_store::rollup::{RollupFiles, Saved};
use tally_store::{
    AppendStatus, ContextField, DAY_MS, EventRow, EventStore, KnownValues, ProjectKey, Query, Rollup, StoreError, Table,
};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "tally.duckdb";

/// The directory of the saved rollup inside the data directory.
pub const ROLLUP_DIR: &str = "rollup";

/// How often a store on disk saves the days of its rollup that changed. A store killed
/// before a save folds those days from the events table when it opens again.
pub const SAVE_ROLLUP_EVERY: Duration = Duration::from_secs(60);

/// A DuckDB-backed [`EventStore`].
pub struct DuckDbStore {
    path: Option<PathBuf>,
    writer: Mutex<Connection>,
    /// `None` when opened read-only.
    rollup: Option<Arc<RwLock<Rollup>>>,
    /// The saved rollup (a store on disk opened for writing).
    files: Option<Arc<RollupFiles>>,
    saver: Option<Saver>,
    opened: Opened,
}

/// How the rollup was made when the store opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Opened {
    /// Days read from the rollup's files.
    pub days_from_files: usize,
    /// Days folded from the events table (all of them when no file was usable).
    pub days_folded: usize,
    /// How long opening took, the rollup included.
    pub took: Duration,
}

/// The thread saving the rollup every [`SAVE_ROLLUP_EVERY`], and once more when stopped.
struct Saver {
    stop: Arc<(Mutex<bool>, Condvar)>,
    enabled: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Saver {
    fn start(files: Arc<RollupFiles>, rollup: Arc<RwLock<Rollup>>) -> Saver {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let enabled = Arc::new(AtomicBool::new(true));
        let (stop2, enabled2) = (stop.clone(), enabled.clone());
        let thread = std::thread::Builder::new()
            .name("tally-rollup-save".into())
            .spawn(move || {
                let (lock, wake) = &*stop2;
                let mut stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    // Read before saving: a stop that comes during a save gets one more
                    // save after it, of what changed meanwhile.
                    let last = *stopped;
                    drop(stopped);
                    // The files are a cache: a failed save (a full disk) costs folding those
                    // days again at the next start, and the next round tries again.
                    if enabled2.load(Ordering::Acquire) {
                        let _ = files.save(&rollup);
                    }
                    if last {
                        return;
                    }
                    stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
                    if !*stopped {
                        stopped = wake.wait_timeout(stopped, SAVE_ROLLUP_EVERY).unwrap_or_else(|e| e.into_inner()).0;
                    }
                }
            })
            .expect("spawn the rollup saver");
        Saver { stop, enabled, thread: Some(thread) }
    }
}

impl Drop for Saver {
    fn drop(&mut self) {
        let (lock, wake) = &*self.stop;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for DuckDbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuckDbStore").field("path", &self.path).finish_non_exhaustive()
    }
}

fn backend(e: duckdb::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl DuckDbStore {
    /// Opens (creating if needed) `data_dir/tally.duckdb` for reading and writing.
    pub fn open(data_dir: &Path) -> Result<DuckDbStore, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Unavailable(format!("cannot create data dir {}: {e}", data_dir.display())))?;
        let path = data_dir.join(DB_FILE);
        let started = Instant::now();
        let conn = Connection::open_with_flags(&path, Config::default()).map_err(|e| open_error(&path, e))?;
        conn.execute_batch(append::SCHEMA).map_err(backend)?;
        append::migrate(&conn)?;
        let files = RollupFiles::new(data_dir.join(ROLLUP_DIR));
        Self::with_rollup(conn, Some(path), Some(files), started)
    }

    /// Opens an existing `data_dir/tally.duckdb` read-only (for the CLI when no collector
    /// runs). Fails with [`StoreError::Locked`] while a collector holds the file.
    pub fn open_read_only(data_dir: &Path) -> Result<DuckDbStore, StoreError> {
        let path = data_dir.join(DB_FILE);
        if !path.exists() {
            return Err(StoreError::Unavailable(format!(
                "no tally database at {}; start a collector with `tally serve --data-dir {}` first",
                path.display(),
                data_dir.display()
            )));
        }
        let config = Config::default().access_mode(AccessMode::ReadOnly).map_err(backend)?;
        let conn = Connection::open_with_flags(&path, config).map_err(|e| open_error(&path, e))?;
        // One-shot readers answer from SQL: building the rollup would cost more than it saves.
        Ok(DuckDbStore {
            path: Some(path),
            writer: Mutex::new(conn),
            rollup: None,
            files: None,
            saver: None,
            opened: Opened::default(),
        })
    }

    /// A store in memory (tests).
    pub fn open_in_memory() -> Result<DuckDbStore, StoreError> {
        let conn = Connection::open_in_memory().map_err(backend)?;
        conn.execute_batch(append::SCHEMA).map_err(backend)?;
        Self::with_rollup(conn, None, None, Instant::now())
    }

    /// Makes the rollup: read from its files where they match the events table, folded
    /// from the table for the rest.
    fn with_rollup(
        mut conn: Connection,
        path: Option<PathBuf>,
        files: Option<RollupFiles>,
        started: Instant,
    ) -> Result<DuckDbStore, StoreError> {
        let mut opened = Opened::default();
        let rollup = match &files {
            Some(files) => {
                let counts = load::day_counts(&mut conn)?;
                let loaded = files.load(&counts);
                opened.days_from_files = loaded.from_files;
                opened.days_folded = loaded.missing.len();
                let mut rollup = loaded.rollup;
                if loaded.from_files == 0 {
                    load::load_rollup(&conn, &mut rollup, None)?;
                } else {
                    load::load_days(&conn, &mut rollup, loaded.missing)?;
                }
                rollup.finish_load();
                rollup
            }
            None => {
                let mut rollup = Rollup::new();
                load::load_rollup(&conn, &mut rollup, None)?;
                rollup.finish_load();
                rollup
            }
        };
        let rollup = Arc::new(RwLock::new(rollup));
        let files = files.map(Arc::new);
        let saver = files.as_ref().map(|f| Saver::start(f.clone(), rollup.clone()));
        opened.took = started.elapsed();
        Ok(DuckDbStore { path, writer: Mutex::new(conn), rollup: Some(rollup), files, saver, opened })
    }

    /// How the rollup was made when the store opened.
    pub fn opened(&self) -> Opened {
        self.opened
    }

    /// Saves the days of the rollup changed since the last save now (a store on disk
    /// does so every [`SAVE_ROLLUP_EVERY`] and when dropped).
    pub fn save_rollup(&self) -> Result<Saved, StoreError> {
        match (&self.files, &self.rollup) {
            (Some(files), Some(rollup)) => files.save(rollup).map_err(|e| io_error(files, e)),
            _ => Ok(Saved::default()),
        }
    }

    /// Stops saving the rollup, also when dropped (tests: what a store killed before its
    /// next save leaves).
    pub fn stop_saving_rollup(&self) {
        if let Some(s) = &self.saver {
            s.enabled.store(false, Ordering::Release);
        }
    }

    fn rollup_read(&self) -> Option<std::sync::RwLockReadGuard<'_, Rollup>> {
        self.rollup.as_ref().map(|r| r.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn rollup_mut(&self) -> Option<std::sync::RwLockWriteGuard<'_, Rollup>> {
        self.rollup.as_ref().map(|r| r.write().unwrap_or_else(|e| e.into_inner()))
    }

    /// See [`Rollup::set_reindex_after`] (tests set 0 so that whole-day queries read the indexes).
    pub fn set_reindex_after(&self, rows: usize) {
        if let Some(mut rollup) = self.rollup_mut() {
            rollup.set_reindex_after(rows);
        }
    }

    /// How many folded rows the rollup holds (`None` when opened read-only).
    pub fn rollup_rows(&self) -> Option<usize> {
        self.rollup.as_ref().map(|r| r.read().unwrap_or_else(|e| e.into_inner()).len())
    }

    /// The database file, when on disk.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// One insert transaction (`checked`: skipping stored event ids; otherwise the rows are
    /// new, with the log position `through`), and the rollup after it.
    fn insert(&self, rows: &[EventRow], through: Option<u64>, checked: bool) -> Result<Vec<AppendStatus>, StoreError> {
        let mut conn = self.writer();
        let status = if checked {
            append::insert_checked(&mut conn, rows)?
        } else {
            append::insert_new(&mut conn, rows, through)?
        };
        // Still under the writer's lock: the rollup sees appends in commit order.
        if let Some(mut rollup) = self.rollup_mut() {
            rollup.add(rows.iter().zip(&status).filter(|(_, s)| **s == AppendStatus::Inserted).map(|(r, _)| r));
        }
        Ok(status)
    }

    /// Appends rows that are known not to be stored (no `event_id` check), without a log
    /// position: the benchmark's bulk generator.
    pub fn load_new(&self, rows: &[EventRow]) -> Result<(), StoreError> {
        self.insert(rows, None, false).map(drop)
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection for reading, independent of the writer's lock.
    fn reader(&self) -> Result<Connection, StoreError> {
        self.writer().try_clone().map_err(backend)
    }

    /// Answers a query with plain SQL over the raw events table, never from rollups (the
    /// benchmark's baseline, and the reference the rollups are checked against).
    pub fn query_sql(&self, q: &Query) -> Result<Table, StoreError> {
        q.validate()?;
        let conn = self.reader()?;
        sql::run(&conn, q)
    }

    /// Lets the write-ahead log grow to `bytes` before DuckDB checkpoints it into the file
    /// (default 16 MiB); bulk loads (the benchmark's generator) raise it.
    pub fn set_checkpoint_threshold(&self, bytes: u64) -> Result<(), StoreError> {
        self.writer().execute_batch(&format!("SET checkpoint_threshold = '{bytes}B'")).map_err(backend)
    }

    /// Caps the memory DuckDB itself uses (buffer pool, query operators) at `bytes`; past it
    /// a query spills to a temporary directory next to the database or fails with an
    /// out-of-memory error, rather than take the machine's memory (DuckDB's default is 80 %
    /// of RAM). The rollup is not DuckDB's and is not counted.
    pub fn set_memory_limit(&self, bytes: u64) -> Result<(), StoreError> {
        self.writer().execute_batch(&format!("SET memory_limit = '{bytes}B'")).map_err(backend)
    }

    /// DuckDB's memory limit in bytes, as it reports it.
    pub fn memory_limit(&self) -> Result<u64, StoreError> {
        self.writer()
            .query_row("SELECT current_setting('memory_limit')", [], |r| r.get::<_, String>(0))
            .map_err(backend)
            .map(|text| parse_size(&text).unwrap_or(0))
    }

    /// Writes the WAL into the database file (done by DuckDB on its own too).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.writer().execute_batch("CHECKPOINT").map_err(backend)
    }
}

/// Parses a size such as `2GiB`, `512 MiB`, `1.5GB` or `1000000` (bytes) into bytes: the
/// form of `tally serve --duckdb-memory-limit` and of DuckDB's own `memory_limit` setting.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" | "bytes" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = number * factor;
    (bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

fn io_error(files: &RollupFiles, e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("the rollup's files in {}: {e}", files.dir().display()))
}

fn open_error(path: &Path, e: duckdb::Error) -> StoreError {
    let text = e.to_string();
    if text.contains("lock") {
        StoreError::Locked(format!(
            "the database {} is in use by another process (DuckDB allows one writer): \
             query the running collector with `tally insights --server URL`, or stop it first ({text})",
            path.display()
        ))
    } else {
        StoreError::Unavailable(format!("cannot open {}: {text}", path.display()))
    }
}

impl EventStore for DuckDbStore {
    fn append(&self, rows: &[EventRow]) -> Result<Vec<AppendStatus>, StoreError> {
        if rows.is_empty() {
            return Ok(vec![]);
        }
        self.insert(rows, None, true)
    }

    fn apply(&self, rows: &[EventRow], through: u64) -> Result<Vec<AppendStatus>, StoreError> {
        self.insert(rows, Some(through), false)
    }

    fn applied_position(&self) -> Result<Option<u64>, StoreError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare("SELECT position FROM log_position WHERE id = 1").map_err(backend)?;
        let mut rows = stmt.query_map([], |r| r.get::<_, i64>(0)).map_err(backend)?;
        match rows.next() {
            Some(p) => Ok(Some(p.map_err(backend)? as u64)),
            None => Ok(None),
        }
    }

    fn event_ids_since(&self, since_ms: i64) -> Result<Vec<(uuid::Uuid, i64)>, StoreError> {
        let conn = self.reader()?;
        let mut stmt = conn
            .prepare("SELECT event_id::VARCHAR, epoch_ms(occurred_at) FROM events WHERE occurred_at >= epoch_ms(?)")
            .map_err(backend)?;
        let rows = stmt
            .query_map(params![since_ms], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(backend)?;
        rows.map(|r| {
            let (id, at) = r.map_err(backend)?;
            let id = id.parse().map_err(|e| StoreError::Backend(format!("stored event_id {id:?}: {e}")))?;
            Ok((id, at))
        })
        .collect()
    }

    fn query(&self, q: &Query) -> Result<Table, StoreError> {
        q.validate()?;
        // The rollup's lock is released before SQL runs (appends take the writer's lock, then
        // the rollup's).
        let folded = self.rollup.as_ref().and_then(|r| r.read().unwrap_or_else(|e| e.into_inner()).answer(q));
        match folded {
            Some(table) => Ok(table),
            None => self.query_sql(q),
        }
    }

    fn erase_project(&self, project: &ProjectKey) -> Result<u64, StoreError> {
        let mut conn = self.writer();
        // The saved days holding the project go first (see RollupFiles), and no save runs
        // until the rollup has lost its rows too.
        let paused = self.files.as_ref().map(|f| f.pause());
        if let (Some(paused), Some(rollup)) = (&paused, self.rollup_read()) {
            paused.forget(&rollup.days_of_project(project)).map_err(|e| io_error(self.files.as_ref().unwrap(), e))?;
        }
        // The counts per day are counted again whole: erasure is rare, and which days the
        // project had is not worth a query of its own.
        let tx = conn.transaction().map_err(backend)?;
        let n = tx
            .execute("DELETE FROM events WHERE project = ?::UUID", params![project.as_uuid().to_string()])
            .map_err(backend)?;
        if n > 0 {
            append::recount_days(&tx, None)?;
        }
        tx.commit().map_err(backend)?;
        if let Some(mut rollup) = self.rollup_mut() {
            rollup.remove_project(project);
        }
        Ok(n as u64)
    }

    fn apply_retention(&self, app: &str, before_ms: i64) -> Result<u64, StoreError> {
        let mut conn = self.writer();
        let day = before_ms.div_euclid(DAY_MS);
        let whole_days = before_ms.rem_euclid(DAY_MS) == 0;
        let paused = self.files.as_ref().map(|f| f.pause());
        if let (Some(paused), Some(rollup)) = (&paused, self.rollup_read()) {
            let through = if whole_days { day - 1 } else { day };
            paused.forget(&rollup.days_through(app, through)).map_err(|e| io_error(self.files.as_ref().unwrap(), e))?;
        }
        let tx = conn.transaction().map_err(backend)?;
        let n = tx
            .execute("DELETE FROM events WHERE app = ? AND occurred_at < epoch_ms(?)", params![app, before_ms])
            .map_err(backend)?;
        tx.execute("DELETE FROM day_events WHERE app = ? AND day < ?", params![app, day]).map_err(backend)?;
        if !whole_days {
            // The cut's own day keeps its rows after the cut.
            append::recount_days(&tx, Some((app, day)))?;
        }
        // Retention runs every hour: the deltas of that hour become one row per day.
        append::compact_days(&tx)?;
        tx.commit().map_err(backend)?;
        if let Some(mut rollup) = self.rollup_mut() {
            if whole_days {
                // A cut at midnight: whole days go, nothing is folded again.
                rollup.remove_days_through(app, day - 1);
                rollup.finish_load();
            } else {
                // Drop the days up to the cut, then fold back what remains of the cut's day.
                rollup.remove_days_through(app, day);
                load::load_rollup(&conn, &mut rollup, Some((app, day * DAY_MS, (day + 1) * DAY_MS)))?;
                rollup.finish_load();
            }
        }
        drop(paused);
        Ok(n as u64)
    }

    fn known_values(&self, app: &str) -> Result<KnownValues, StoreError> {
        let conn = self.reader()?;
        let mut known = KnownValues::default();
        let mut stmt = conn
            .prepare("SELECT DISTINCT p FROM (SELECT unnest(plugins) AS p FROM events WHERE app = ?)")
            .map_err(backend)?;
        for p in stmt.query_map(params![app], |r| r.get::<_, String>(0)).map_err(backend)? {
            known.plugins.insert(p.map_err(backend)?);
        }
        let mut stmt = conn
            .prepare(
                "SELECT DISTINCT k, v FROM (
                    SELECT unnest(map_keys(props)) AS k, unnest(map_values(props)) AS v FROM events WHERE app = ?
                 ) WHERE v LIKE '\"%'",
            )
            .map_err(backend)?;
        let pairs =
            stmt.query_map(params![app], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).map_err(backend)?;
        for pair in pairs {
            let (k, v) = pair.map_err(backend)?;
            if let Ok(PropValue::Str(s)) = serde_json::from_str::<PropValue>(&v) {
                known.props.entry(k).or_default().insert(s);
            }
        }
        for field in ContextField::ALL {
            // The column name is one of ContextField's fixed names, never input.
            let column = field.name();
            let mut stmt = conn
                .prepare(&format!("SELECT DISTINCT {column} FROM events WHERE app = ? AND {column} <> ''"))
                .map_err(backend)?;
            for v in stmt.query_map(params![app], |r| r.get::<_, String>(0)).map_err(backend)? {
                known.context.entry(field).or_default().insert(v.map_err(backend)?);
            }
        }
        Ok(known)
    }

    fn count_events(&self) -> Result<u64, StoreError> {
        let conn = self.reader()?;
        let n: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0)).map_err(backend)?;
        Ok(n as u64)
    }
}

/// A store seen through plain SQL over its events table, never its rollup: the
/// benchmark's baseline and the conformance suite's SQL variant. Writes go to the store.
#[derive(Debug)]
pub struct PlainSql<S>(pub S);

impl<S: std::ops::Deref<Target = DuckDbStore> + Send + Sync> EventStore for PlainSql<S> {
    fn append(&self, rows: &[EventRow]) -> Result<Vec<AppendStatus>, StoreError> {
        self.0.append(rows)
    }
    fn apply(&self, rows: &[EventRow], through: u64) -> Result<Vec<AppendStatus>, StoreError> {
        self.0.apply(rows, through)
    }
    fn applied_position(&self) -> Result<Option<u64>, StoreError> {
        self.0.applied_position()
    }
    fn event_ids_since(&self, since_ms: i64) -> Result<Vec<(uuid::Uuid, i64)>, StoreError> {
        self.0.event_ids_since(since_ms)
    }
    fn query(&self, q: &Query) -> Result<Table, StoreError> {
        self.0.query_sql(q)
    }
    fn erase_project(&self, project: &ProjectKey) -> Result<u64, StoreError> {
        self.0.erase_project(project)
    }
    fn apply_retention(&self, app: &str, before_ms: i64) -> Result<u64, StoreError> {
        self.0.apply_retention(app, before_ms)
    }
    fn known_values(&self, app: &str) -> Result<KnownValues, StoreError> {
        self.0.known_values(app)
    }
    fn count_events(&self) -> Result<u64, StoreError> {
        self.0.count_events()
    }
}
