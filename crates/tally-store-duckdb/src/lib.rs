//! The embedded default backend: one DuckDB file in the data directory.
//!
//! - **Durability**: [`EventStore::append`] runs one transaction (staging table, then one
//!   `INSERT OR IGNORE … RETURNING`) and returns after DuckDB's commit, which writes and
//!   syncs its write-ahead log. The collector groups many requests into one append.
//! - **Idempotence**: `event_id` is the primary key; the rows DuckDB did not insert are the
//!   duplicates.
//! - **One writer**: DuckDB locks the file. A second process gets
//!   [`StoreError::Locked`] with a message saying what to do.
//! - Reads use their own connections to the same database, so queries do not wait for
//!   writes.
//!
//! - **Rollups**: a [`Rollup`] of the events (one folded row per project, machine, context,
//!   event, error kind and plugin set per day, dictionary-encoded) is built from the events
//!   table when the store opens and kept up to date by every append, erase and retention
//!   run. Queries over whole UTC days are answered from it; others, and stores opened
//!   read-only, use plain SQL over the events table ([`DuckDbStore::query_sql`]).
//!
//! This is the only crate that writes SQL for DuckDB.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, RwLock};

use duckdb::{AccessMode, Config, Connection, params, params_from_iter};
use tally_protocol::PropValue;
use tally_store::rollup::{Context, Group};
use tally_store::{
    AppendStatus, Cell, ContextField, DAY_MS, Dimension, EventRow, EventStore, Key16, KnownValues, ProjectKey, Query,
    QueryKind, Rollup, StoreError, Table,
};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "tally.duckdb";

/// Separator of list items in the staging table (refused in stored strings).
const SEP: char = '\u{1f}';

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    event_id        UUID PRIMARY KEY,
    received_at     TIMESTAMP NOT NULL,
    occurred_at     TIMESTAMP NOT NULL,
    app             VARCHAR NOT NULL,
    app_version     VARCHAR NOT NULL,
    event           VARCHAR NOT NULL,
    project         UUID NOT NULL,
    machine         UUID NOT NULL,
    env             VARCHAR NOT NULL,
    os              VARCHAR NOT NULL,
    os_version      VARCHAR NOT NULL,
    arch            VARCHAR NOT NULL,
    runtime         VARCHAR NOT NULL,
    runtime_version VARCHAR NOT NULL,
    ci              VARCHAR NOT NULL,
    container       BOOLEAN NOT NULL,
    plugins         VARCHAR[] NOT NULL,
    duration_ms     BIGINT,
    error_kind      VARCHAR,
    -- property name -> JSON scalar (\"text\", 12, 0.5, true)
    props           MAP(VARCHAR, VARCHAR) NOT NULL
);
";

const STAGING: &str = "
CREATE TEMP TABLE IF NOT EXISTS staging (
    event_id VARCHAR, received_at BIGINT, occurred_at BIGINT, app VARCHAR, app_version VARCHAR,
    event VARCHAR, project VARCHAR, machine VARCHAR, env VARCHAR, os VARCHAR, os_version VARCHAR,
    arch VARCHAR, runtime VARCHAR, runtime_version VARCHAR, ci VARCHAR, container BOOLEAN,
    plugins VARCHAR, duration_ms BIGINT, error_kind VARCHAR, prop_keys VARCHAR, prop_values VARCHAR
);
";

const INSERT_FROM_STAGING: &str = "
INSERT OR IGNORE INTO events
SELECT event_id::UUID, epoch_ms(received_at), epoch_ms(occurred_at), app, app_version, event,
       project::UUID, machine::UUID, env, os, os_version, arch, runtime, runtime_version, ci, container,
       CASE WHEN plugins = '' THEN []::VARCHAR[] ELSE string_split(plugins, chr(31)) END,
       duration_ms, error_kind,
       CASE WHEN prop_keys = '' THEN MAP {}::MAP(VARCHAR, VARCHAR)
            ELSE map(string_split(prop_keys, chr(31)), string_split(prop_values, chr(31))) END
FROM staging
RETURNING event_id::VARCHAR
";

/// A DuckDB-backed [`EventStore`].
pub struct DuckDbStore {
    path: Option<PathBuf>,
    writer: Mutex<Connection>,
    /// `None` when opened read-only.
    rollup: Option<RwLock<Rollup>>,
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
        let conn = Connection::open_with_flags(&path, Config::default()).map_err(|e| open_error(&path, e))?;
        conn.execute_batch(SCHEMA).map_err(backend)?;
        Self::with_rollup(conn, Some(path))
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
        Ok(DuckDbStore { path: Some(path), writer: Mutex::new(conn), rollup: None })
    }

    /// A store in memory (tests).
    pub fn open_in_memory() -> Result<DuckDbStore, StoreError> {
        let conn = Connection::open_in_memory().map_err(backend)?;
        conn.execute_batch(SCHEMA).map_err(backend)?;
        Self::with_rollup(conn, None)
    }

    fn with_rollup(conn: Connection, path: Option<PathBuf>) -> Result<DuckDbStore, StoreError> {
        let mut rollup = Rollup::new();
        load_rollup(&conn, &mut rollup, None)?;
        Ok(DuckDbStore { path, writer: Mutex::new(conn), rollup: Some(RwLock::new(rollup)) })
    }

    fn rollup_mut(&self) -> Option<std::sync::RwLockWriteGuard<'_, Rollup>> {
        self.rollup.as_ref().map(|r| r.write().unwrap_or_else(|e| e.into_inner()))
    }

    /// See [`Rollup::set_reindex_after`] (tests set 0 to read the day indexes everywhere).
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
    /// (default 16 MiB). A checkpoint also rewrites the `event_id` index, whose size grows
    /// with the table, so bulk loads (the benchmark's generator) raise this.
    pub fn set_checkpoint_threshold(&self, bytes: u64) -> Result<(), StoreError> {
        self.writer().execute_batch(&format!("SET checkpoint_threshold = '{bytes}B'")).map_err(backend)
    }

    /// Writes the WAL into the database file (done by DuckDB on its own too).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.writer().execute_batch("CHECKPOINT").map_err(backend)
    }
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

/// Folds the events of `[from, to)` (all, without a range) into `rollup`: the rows are
/// streamed as Arrow batches (no per-value allocation) and folded in memory.
fn load_rollup(conn: &Connection, rollup: &mut Rollup, range: Option<(i64, i64)>) -> Result<(), StoreError> {
    use duckdb::arrow::array::{Array, AsArray};
    use duckdb::arrow::datatypes::Int64Type;

    let mut text = "SELECT epoch_ms(occurred_at), project::VARCHAR, machine::VARCHAR, app, app_version, env, os, \
                    arch, runtime, runtime_version, ci, container, event, error_kind, plugins, duration_ms FROM events"
        .to_string();
    let mut args = Vec::new();
    if let Some((from, to)) = range {
        text.push_str(" WHERE occurred_at >= epoch_ms(?) AND occurred_at < epoch_ms(?)");
        args = vec![from, to];
    }
    let mut stmt = conn.prepare(&text).map_err(backend)?;
    let key = |s: &str| -> Result<Key16, StoreError> {
        uuid::Uuid::parse_str(s).map(|u| Key16(*u.as_bytes())).map_err(|e| StoreError::Backend(e.to_string()))
    };
    let bad = |what: &str| StoreError::Backend(format!("unexpected Arrow type for {what} in the events table"));
    let mut context: Option<Context> = None;
    let mut plugins: Vec<String> = Vec::new();
    for batch in stmt.stream_arrow(params_from_iter(args.iter())).map_err(backend)? {
        let batch = batch.map_err(backend)?;
        let col = |i: usize| batch.column(i);
        let at = col(0).as_primitive_opt::<Int64Type>().ok_or_else(|| bad("occurred_at"))?;
        let text = |i: usize, what: &str| col(i).as_string_opt::<i32>().ok_or_else(|| bad(what));
        let (project, machine, app, app_version, env, os, arch, runtime, runtime_version, ci, event, error_kind) = (
            text(1, "project")?,
            text(2, "machine")?,
            text(3, "app")?,
            text(4, "app_version")?,
            text(5, "env")?,
            text(6, "os")?,
            text(7, "arch")?,
            text(8, "runtime")?,
            text(9, "runtime_version")?,
            text(10, "ci")?,
            text(12, "event")?,
            text(13, "error_kind")?,
        );
        let container = col(11).as_boolean_opt().ok_or_else(|| bad("container"))?;
        let lists = col(14).as_list_opt::<i32>().ok_or_else(|| bad("plugins"))?;
        let durations = col(15).as_primitive_opt::<Int64Type>().ok_or_else(|| bad("duration_ms"))?;
        for i in 0..batch.num_rows() {
            let same = context.as_ref().is_some_and(|c| {
                c.app == app.value(i)
                    && c.app_version == app_version.value(i)
                    && c.env.as_str() == env.value(i)
                    && c.os == os.value(i)
                    && c.arch == arch.value(i)
                    && c.runtime == runtime.value(i)
                    && c.runtime_version == runtime_version.value(i)
                    && c.ci == ci.value(i)
                    && c.container == container.value(i)
            });
            if !same {
                let env = tally_protocol::Env::parse(env.value(i)).ok_or_else(|| {
                    StoreError::Backend(format!("unknown env {:?} in the events table", env.value(i)))
                })?;
                context = Some(Context {
                    app: app.value(i).into(),
                    app_version: app_version.value(i).into(),
                    env,
                    os: os.value(i).into(),
                    arch: arch.value(i).into(),
                    runtime: runtime.value(i).into(),
                    runtime_version: runtime_version.value(i).into(),
                    ci: ci.value(i).into(),
                    container: container.value(i),
                });
            }
            plugins.clear();
            let list = lists.value(i);
            let names = list.as_string_opt::<i32>().ok_or_else(|| bad("plugins"))?;
            plugins.extend((0..names.len()).map(|j| names.value(j).to_string()));
            let duration = (!durations.is_null(i)).then(|| durations.value(i)).and_then(|d| u64::try_from(d).ok());
            rollup.add_group(&Group {
                day: at.value(i).div_euclid(DAY_MS),
                project: key(project.value(i))?,
                machine: key(machine.value(i))?,
                context: context.as_ref().expect("set above"),
                event: event.value(i),
                error_kind: (!error_kind.is_null(i)).then(|| error_kind.value(i)),
                plugins: &plugins,
                events: 1,
                durations: duration.as_slice(),
            });
        }
    }
    rollup.finish_load();
    Ok(())
}

fn join(items: impl Iterator<Item = String>) -> String {
    let mut out = String::new();
    for (i, s) in items.enumerate() {
        if i > 0 {
            out.push(SEP);
        }
        out.push_str(&s);
    }
    out
}

fn prop_json(v: &PropValue) -> String {
    serde_json::to_string(v).expect("prop values serialize")
}

fn check_no_separator(row: &EventRow) -> Result<(), StoreError> {
    let bad = row.plugins.iter().any(|p| p.contains(SEP))
        || row.props.iter().any(|(k, v)| k.contains(SEP) || matches!(v, PropValue::Str(s) if s.contains(SEP)));
    if bad {
        return Err(StoreError::InvalidQuery(format!("event {} holds a control character U+001F", row.event_id)));
    }
    Ok(())
}

impl EventStore for DuckDbStore {
    fn append(&self, rows: &[EventRow]) -> Result<Vec<AppendStatus>, StoreError> {
        if rows.is_empty() {
            return Ok(vec![]);
        }
        for r in rows {
            check_no_separator(r)?;
        }
        let mut conn = self.writer();
        let mut first = HashSet::with_capacity(rows.len());
        let unique: Vec<bool> = rows.iter().map(|r| first.insert(r.event_id)).collect();
        let tx = conn.transaction().map_err(backend)?;
        tx.execute_batch(STAGING).map_err(backend)?;
        tx.execute_batch("DELETE FROM staging").map_err(backend)?;
        {
            let mut app = tx.appender_to_catalog_and_db("staging", "temp", "main").map_err(backend)?;
            for (r, _) in rows.iter().zip(&unique).filter(|(_, u)| **u) {
                app.append_row(params![
                    r.event_id.to_string(),
                    r.received_at_ms,
                    r.occurred_at_ms,
                    r.app,
                    r.app_version,
                    r.event,
                    r.project.as_uuid().to_string(),
                    r.machine.as_uuid().to_string(),
                    r.env.as_str(),
                    r.os,
                    r.os_version,
                    r.arch,
                    r.runtime,
                    r.runtime_version,
                    r.ci,
                    r.container,
                    join(r.plugins.iter().cloned()),
                    r.duration_ms.map(|d| d as i64),
                    r.error_kind,
                    join(r.props.keys().cloned()),
                    join(r.props.values().map(prop_json)),
                ])
                .map_err(backend)?;
            }
            app.flush().map_err(backend)?;
        }
        let inserted: HashSet<String> = {
            let mut stmt = tx.prepare(INSERT_FROM_STAGING).map_err(backend)?;
            stmt.query_map([], |row| row.get::<_, String>(0))
                .map_err(backend)?
                .collect::<Result<_, _>>()
                .map_err(backend)?
        };
        tx.execute_batch("DELETE FROM staging").map_err(backend)?;
        tx.commit().map_err(backend)?;
        let status: Vec<AppendStatus> = rows
            .iter()
            .zip(unique)
            .map(|(r, u)| {
                if u && inserted.contains(&r.event_id.to_string()) {
                    AppendStatus::Inserted
                } else {
                    AppendStatus::Duplicate
                }
            })
            .collect();
        // Still under the writer's lock: the rollup sees appends in commit order.
        if let Some(mut rollup) = self.rollup_mut() {
            rollup.add(rows.iter().zip(&status).filter(|(_, s)| **s == AppendStatus::Inserted).map(|(r, _)| r));
        }
        Ok(status)
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
        let conn = self.writer();
        let n = conn
            .execute("DELETE FROM events WHERE project = ?::UUID", params![project.as_uuid().to_string()])
            .map_err(backend)?;
        if let Some(mut rollup) = self.rollup_mut() {
            rollup.remove_project(project);
        }
        Ok(n as u64)
    }

    fn apply_retention(&self, before_ms: i64) -> Result<u64, StoreError> {
        let conn = self.writer();
        let n =
            conn.execute("DELETE FROM events WHERE occurred_at < epoch_ms(?)", params![before_ms]).map_err(backend)?;
        if let Some(mut rollup) = self.rollup_mut() {
            // Drop the whole days up to the cut, then fold back what remains of the cut's day.
            let day = before_ms.div_euclid(DAY_MS);
            rollup.remove_days_through(day);
            load_rollup(&conn, &mut rollup, Some((day * DAY_MS, (day + 1) * DAY_MS)))?;
        }
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
    fn query(&self, q: &Query) -> Result<Table, StoreError> {
        self.0.query_sql(q)
    }
    fn erase_project(&self, project: &ProjectKey) -> Result<u64, StoreError> {
        self.0.erase_project(project)
    }
    fn apply_retention(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.0.apply_retention(before_ms)
    }
    fn known_values(&self, app: &str) -> Result<KnownValues, StoreError> {
        self.0.known_values(app)
    }
    fn count_events(&self) -> Result<u64, StoreError> {
        self.0.count_events()
    }
}

/// Translation of typed queries to SQL.
mod sql {
    use super::*;
    use chrono::DateTime;
    use duckdb::types::Value;
    use tally_store::{ColumnType, DAY_MS, Period};

    const WEEK_MS: i64 = 7 * DAY_MS;

    /// SQL text with its positional parameters, built in text order.
    #[derive(Default)]
    struct Sql {
        text: String,
        params: Vec<Value>,
    }

    impl Sql {
        fn push(&mut self, s: &str) -> &mut Self {
            self.text.push_str(s);
            self
        }

        fn param(&mut self, v: Value) -> &mut Self {
            self.text.push('?');
            self.params.push(v);
            self
        }

        fn int(&mut self, i: i64) -> &mut Self {
            self.param(Value::BigInt(i))
        }

        /// `app = ? AND <filters>` and, when given, the `[from, to)` range.
        fn filters(&mut self, q: &Query, range: Option<(i64, i64)>) -> &mut Self {
            self.push("app = ").param(Value::Text(q.app.clone()));
            let f = &q.filters;
            if let Some(env) = f.env {
                self.push(" AND env = ").param(Value::Text(env.as_str().into()));
            }
            if let Some(os) = &f.os {
                self.push(" AND os = ").param(Value::Text(os.clone()));
            }
            if let Some(v) = &f.app_version {
                self.push(" AND app_version = ").param(Value::Text(v.clone()));
            }
            if let Some(p) = &f.plugin {
                self.push(" AND list_contains(plugins, ").param(Value::Text(p.clone())).push(")");
            }
            if let Some((from, to)) = range {
                self.push(" AND occurred_at >= epoch_ms(")
                    .int(from)
                    .push(") AND occurred_at < epoch_ms(")
                    .int(to)
                    .push(")");
            }
            self
        }
    }

    /// A scalar expression for a dimension (not `Plugin`, which needs `unnest`).
    fn dimension_expr(d: Dimension) -> &'static str {
        match d {
            Dimension::Env => "env",
            Dimension::Os => "os",
            Dimension::Arch => "arch",
            Dimension::Runtime => "runtime",
            Dimension::RuntimeVersion => "runtime_version",
            Dimension::AppVersion => "app_version",
            Dimension::Ci => "ci",
            Dimension::Container => "CAST(container AS VARCHAR)",
            Dimension::Event => "event",
            Dimension::ErrorKind => "error_kind",
            Dimension::Plugin => "unnest(plugins)",
            Dimension::RuntimeMajor => "split_part(runtime_version, '.', 1)",
            Dimension::RuntimeMinor => "array_to_string(string_split(runtime_version, '.')[1:2], '.')",
        }
    }

    /// The start (ms) of the period holding `occurred_at`.
    fn period_expr(p: Option<Period>) -> String {
        match p {
            None => "0".into(),
            Some(Period::Day) => format!("(epoch_ms(occurred_at) // {DAY_MS}) * {DAY_MS}"),
            Some(Period::Week) => format!("((epoch_ms(occurred_at) // {DAY_MS} + 3) // 7 * 7 - 3) * {DAY_MS}"),
        }
    }

    fn build(q: &Query) -> Result<Sql, StoreError> {
        let mut s = Sql::default();
        let range = Some((q.from_ms, q.to_ms));
        match &q.kind {
            QueryKind::EventsPerDay => {
                s.push(&format!(
                    "SELECT epoch_ms(occurred_at) // {DAY_MS} * {DAY_MS} AS day, count(*), count(DISTINCT project), \
                     count(DISTINCT machine) FROM events WHERE "
                ))
                .filters(q, range)
                .push(" GROUP BY day ORDER BY day");
            }
            QueryKind::Active { windows } => {
                let longest = windows.iter().max().copied().unwrap_or(0);
                s.push("SELECT ");
                for (i, &win) in windows.iter().enumerate() {
                    let start = q.to_ms - i64::from(win) * DAY_MS;
                    if i > 0 {
                        s.push(", ");
                    }
                    s.push("count(DISTINCT project) FILTER (WHERE occurred_at >= epoch_ms(").int(start);
                    s.push(")), count(DISTINCT machine) FILTER (WHERE occurred_at >= epoch_ms(").int(start).push("))");
                }
                s.push(" FROM events WHERE ").filters(q, Some((q.to_ms - i64::from(longest) * DAY_MS, q.to_ms)));
            }
            QueryKind::TopPlugins { limit } => {
                s.push("SELECT plugin, count(DISTINCT project) AS p, count(DISTINCT machine) AS m, count(*) AS e FROM (SELECT unnest(plugins) AS plugin, project, machine FROM events WHERE ")
                    .filters(q, range)
                    .push(&format!(") GROUP BY plugin ORDER BY p DESC, e DESC, plugin LIMIT {limit}"));
            }
            QueryKind::Split { dimension } => {
                s.push(&format!(
                    "SELECT v, count(DISTINCT project) AS p, count(DISTINCT machine) AS m, count(*) AS e FROM (SELECT {} AS v, project, machine FROM events WHERE ",
                    dimension_expr(*dimension)
                ))
                .filters(q, range)
                .push(") WHERE v IS NOT NULL GROUP BY v ORDER BY p DESC, e DESC, v");
            }
            QueryKind::ActiveSeries { window_days } => {
                let window = i64::from(*window_days) * DAY_MS;
                let first = Period::Day.start_of(q.from_ms);
                let last = Period::Day.start_of(q.to_ms - 1);
                if last < first {
                    s.push("SELECT 0, 0, 0 WHERE false");
                    return Ok(s);
                }
                s.push("WITH days AS (SELECT unnest(generate_series(").int(first).push(", ").int(last);
                s.push(&format!(
                    ", {DAY_MS})) AS d), ev AS (SELECT epoch_ms(occurred_at) AS t, project, machine FROM events WHERE "
                ));
                s.filters(q, Some((first + DAY_MS - window, last + DAY_MS)));
                s.push(&format!(
                    ") SELECT d, count(DISTINCT project), count(DISTINCT machine) FROM days LEFT JOIN ev \
                     ON ev.t >= d + {DAY_MS} - {window} AND ev.t < d + {DAY_MS} GROUP BY d ORDER BY d"
                ));
            }
            QueryKind::Breakdown { period, dimensions, limit } => {
                if dimensions.len() > 2 {
                    return Err(StoreError::InvalidQuery("a breakdown takes at most two dimensions".into()));
                }
                let dim = |i: usize| dimensions.get(i).map_or("''", |d| dimension_expr(*d));
                s.push(&format!("WITH rows AS (SELECT {} AS period, * FROM events WHERE ", period_expr(*period)));
                s.filters(q, range);
                s.push(&format!(
                    "), pp AS (SELECT period, count(DISTINCT project) AS period_projects FROM rows GROUP BY period), \
                     t AS (SELECT * FROM (SELECT period, project, machine, {} AS d1, {} AS d2 FROM rows) WHERE d1 IS NOT NULL AND d2 IS NOT NULL), \
                     g AS (SELECT period, d1, d2, count(DISTINCT project) AS p, count(DISTINCT machine) AS m, count(*) AS e FROM t GROUP BY period, d1, d2)",
                    dim(0),
                    dim(1)
                ));
                let keep = match limit {
                    Some(n) => {
                        s.push(&format!(
                            ", top AS (SELECT d1, d2 FROM t GROUP BY d1, d2 ORDER BY count(DISTINCT project) DESC, count(*) DESC, d1, d2 LIMIT {n})"
                        ));
                        " SEMI JOIN top USING (d1, d2)"
                    }
                    None => "",
                };
                let mut cols = Vec::new();
                if period.is_some() {
                    cols.push("g.period");
                }
                cols.extend(["g.d1", "g.d2"].iter().take(dimensions.len()));
                cols.extend(["p", "m", "e", "period_projects"]);
                s.push(&format!(
                    " SELECT {} FROM g JOIN pp USING (period){keep} ORDER BY g.period, p DESC, e DESC, g.d1, g.d2",
                    cols.join(", ")
                ));
            }
            QueryKind::CoUsage { plugin, limit } => {
                s.push("WITH pp AS (SELECT DISTINCT project, plugin FROM (SELECT project, unnest(plugins) AS plugin FROM events WHERE ");
                s.filters(q, range);
                s.push(")), total AS (SELECT count(DISTINCT project) AS n FROM events WHERE ");
                s.filters(q, range);
                s.push("), per AS (SELECT plugin, count(*) AS n FROM pp GROUP BY plugin), wanted AS (");
                match plugin {
                    Some(p) => {
                        s.push("SELECT ").param(Value::Text(p.clone())).push(" AS plugin");
                    }
                    None => {
                        s.push(&format!("SELECT plugin FROM per ORDER BY n DESC, plugin LIMIT {limit}"));
                    }
                }
                let both_wanted = if plugin.is_some() { "" } else { " AND b.plugin IN (SELECT plugin FROM wanted)" };
                s.push(&format!(
                    "), pairs AS (SELECT a.plugin AS pa, b.plugin AS pb, count(*) AS both_n FROM pp a JOIN pp b \
                     ON a.project = b.project AND a.plugin <> b.plugin \
                     WHERE a.plugin IN (SELECT plugin FROM wanted){both_wanted} GROUP BY pa, pb) \
                     SELECT pa, pb, both_n, per_a.n, per_b.n, total.n FROM pairs \
                     JOIN per per_a ON per_a.plugin = pa JOIN per per_b ON per_b.plugin = pb CROSS JOIN total \
                     ORDER BY both_n DESC, pa, pb"
                ));
                if plugin.is_some() {
                    s.push(&format!(" LIMIT {limit}"));
                }
            }
            QueryKind::Durations { event, period, dimension } => {
                let dim = dimension.map_or("''", dimension_expr);
                s.push(&format!(
                    "SELECT period, d, count(*) AS n, count(DISTINCT project), \
                     list_sort(list(duration_ms))[greatest(1, (50 * count(*) + 99) // 100)], \
                     list_sort(list(duration_ms))[greatest(1, (90 * count(*) + 99) // 100)], \
                     list_sort(list(duration_ms))[greatest(1, (99 * count(*) + 99) // 100)] \
                     FROM (SELECT {} AS period, {dim} AS d, project, duration_ms FROM events WHERE duration_ms IS NOT NULL AND event = ",
                    period_expr(*period)
                ));
                s.param(Value::Text(event.clone())).push(" AND ").filters(q, range);
                s.push(") WHERE d IS NOT NULL GROUP BY period, d ORDER BY period, d");
            }
            QueryKind::Retention { weeks } => {
                s.push(&format!(
                    "WITH act AS (SELECT DISTINCT project, {} AS w FROM events WHERE ",
                    period_expr(Some(Period::Week))
                ));
                s.filters(q, None);
                s.push("), cohorts AS (SELECT project, min(w) AS c FROM act GROUP BY project), chosen AS (SELECT * FROM cohorts WHERE c + ");
                s.int(WEEK_MS).push(" > ").int(q.from_ms).push(" AND c < ").int(q.to_ms);
                s.push(&format!("), grid AS (SELECT c, n FROM (SELECT DISTINCT c FROM chosen) CROSS JOIN (SELECT unnest(range(0, {} + 1)) AS n) WHERE c + n * {WEEK_MS} < ", weeks));
                s.int(q.to_ms);
                s.push(&format!(
                    "), hits AS (SELECT ch.c, (a.w - ch.c) // {WEEK_MS} AS n, count(*) AS k FROM chosen ch JOIN act a USING (project) \
                     WHERE a.w >= ch.c AND a.w <= ch.c + {weeks}::BIGINT * {WEEK_MS} GROUP BY ch.c, n) \
                     SELECT grid.c, grid.n, coalesce(hits.k, 0) FROM grid LEFT JOIN hits USING (c, n) ORDER BY grid.c, grid.n"
                ));
            }
        }
        Ok(s)
    }

    pub(super) fn run(conn: &Connection, q: &Query) -> Result<Table, StoreError> {
        let mut table = Table::new(Table::columns_for(&q.kind));
        if let QueryKind::Active { windows } = &q.kind
            && windows.is_empty()
        {
            return Ok(table);
        }
        let sql = build(q)?;
        let mut stmt = conn.prepare(&sql.text).map_err(backend)?;
        let width = match &q.kind {
            QueryKind::Active { windows } => windows.len() * 2,
            // The query always returns period and dimension; unused ones are dropped below.
            QueryKind::Durations { .. } => 7,
            _ => table.columns.len(),
        };
        let mut rows = stmt.query(params_from_iter(sql.params.iter())).map_err(backend)?;
        while let Some(r) = rows.next().map_err(backend)? {
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                values.push(r.get_ref(i).map_err(backend)?.to_owned());
            }
            match &q.kind {
                QueryKind::Active { windows } => {
                    for (i, win) in windows.iter().enumerate() {
                        table.rows.push(vec![
                            Cell::Int(i64::from(*win)),
                            Cell::Int(int(&values[2 * i])?),
                            Cell::Int(int(&values[2 * i + 1])?),
                        ]);
                    }
                }
                QueryKind::Durations { period, dimension, .. } => {
                    let mut kept = Vec::new();
                    if period.is_some() {
                        kept.push(values[0].clone());
                    }
                    if dimension.is_some() {
                        kept.push(values[1].clone());
                    }
                    kept.extend(values[2..].iter().cloned());
                    table.rows.push(cells(&table.columns, &kept)?);
                }
                _ => table.rows.push(cells(&table.columns, &values)?),
            }
        }
        Ok(table)
    }

    /// Converts a result row to cells of the table's column types (dates arrive as ms).
    fn cells(columns: &[tally_store::Column], values: &[Value]) -> Result<Vec<Cell>, StoreError> {
        columns
            .iter()
            .zip(values)
            .map(|(c, v)| match c.ty {
                ColumnType::Int => Ok(Cell::Int(int(v)?)),
                ColumnType::Float => match v {
                    Value::Double(f) => Ok(Cell::Float(*f)),
                    other => Ok(Cell::Float(int(other)? as f64)),
                },
                ColumnType::Text => match v {
                    Value::Text(s) => Ok(Cell::Text(s.clone())),
                    other => Err(StoreError::Backend(format!("expected text, got {other:?}"))),
                },
                ColumnType::Date => {
                    let ms = int(v)?;
                    DateTime::from_timestamp_millis(ms)
                        .map(|d| Cell::Date(d.date_naive()))
                        .ok_or_else(|| StoreError::Backend(format!("time {ms} out of range")))
                }
            })
            .collect()
    }

    fn int(v: &Value) -> Result<i64, StoreError> {
        use duckdb::types::Value::*;
        match v {
            TinyInt(i) => Ok(i64::from(*i)),
            SmallInt(i) => Ok(i64::from(*i)),
            Int(i) => Ok(i64::from(*i)),
            BigInt(i) => Ok(*i),
            HugeInt(i) => i64::try_from(*i).map_err(|e| StoreError::Backend(e.to_string())),
            UBigInt(i) => i64::try_from(*i).map_err(|e| StoreError::Backend(e.to_string())),
            UInt(i) => Ok(i64::from(*i)),
            other => Err(StoreError::Backend(format!("expected an integer, got {other:?}"))),
        }
    }
}
