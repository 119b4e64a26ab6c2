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
//! This is the only crate that writes SQL for DuckDB.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use duckdb::{AccessMode, Config, Connection, params, params_from_iter};
use tally_protocol::PropValue;
use tally_store::{
    AppendStatus, Cell, Dimension, EventRow, EventStore, KnownValues, ProjectKey, Query, QueryKind, StoreError, Table,
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
        Self::with_connection(conn, Some(path))
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
        Self::with_connection(conn, Some(path))
    }

    /// A store in memory (tests).
    pub fn open_in_memory() -> Result<DuckDbStore, StoreError> {
        let conn = Connection::open_in_memory().map_err(backend)?;
        conn.execute_batch(SCHEMA).map_err(backend)?;
        Self::with_connection(conn, None)
    }

    fn with_connection(conn: Connection, path: Option<PathBuf>) -> Result<DuckDbStore, StoreError> {
        Ok(DuckDbStore { path, writer: Mutex::new(conn) })
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
        Ok(rows
            .iter()
            .zip(unique)
            .map(|(r, u)| {
                if u && inserted.contains(&r.event_id.to_string()) {
                    AppendStatus::Inserted
                } else {
                    AppendStatus::Duplicate
                }
            })
            .collect())
    }

    fn query(&self, q: &Query) -> Result<Table, StoreError> {
        let conn = self.reader()?;
        sql::run(&conn, q)
    }

    fn erase_project(&self, project: &ProjectKey) -> Result<u64, StoreError> {
        let conn = self.writer();
        let n = conn
            .execute("DELETE FROM events WHERE project = ?::UUID", params![project.as_uuid().to_string()])
            .map_err(backend)?;
        Ok(n as u64)
    }

    fn apply_retention(&self, before_ms: i64) -> Result<u64, StoreError> {
        let conn = self.writer();
        let n =
            conn.execute("DELETE FROM events WHERE occurred_at < epoch_ms(?)", params![before_ms]).map_err(backend)?;
        Ok(n as u64)
    }

    fn known_values(&self, app: &str) -> Result<KnownValues, StoreError> {
        let conn = self.reader()?;
        let mut known = KnownValues::default();
        let mut stmt = conn.prepare("SELECT DISTINCT unnest(plugins) FROM events WHERE app = ?").map_err(backend)?;
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
        Ok(known)
    }

    fn count_events(&self) -> Result<u64, StoreError> {
        let conn = self.reader()?;
        let n: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0)).map_err(backend)?;
        Ok(n as u64)
    }
}

/// Translation of typed queries to SQL.
mod sql {
    use super::*;
    use chrono::DateTime;
    use duckdb::ToSql;
    use tally_store::DAY_MS;

    /// A WHERE clause with its parameters.
    struct Where {
        sql: String,
        params: Vec<Box<dyn ToSql>>,
    }

    impl Where {
        fn new(q: &Query) -> Where {
            let mut w = Where { sql: "app = ?".into(), params: vec![Box::new(q.app.clone())] };
            let f = &q.filters;
            if let Some(env) = f.env {
                w.and("env = ?", env.as_str().to_string());
            }
            if let Some(os) = &f.os {
                w.and("os = ?", os.clone());
            }
            if let Some(v) = &f.app_version {
                w.and("app_version = ?", v.clone());
            }
            if let Some(p) = &f.plugin {
                w.and("list_contains(plugins, ?)", p.clone());
            }
            w
        }

        fn and<T: ToSql + 'static>(&mut self, clause: &str, value: T) {
            self.sql.push_str(" AND ");
            self.sql.push_str(clause);
            self.params.push(Box::new(value));
        }

        fn range(&mut self, from_ms: i64, to_ms: i64) {
            self.and("occurred_at >= epoch_ms(?)", from_ms);
            self.and("occurred_at < epoch_ms(?)", to_ms);
        }
    }

    fn column_name(d: Dimension) -> &'static str {
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
        }
    }

    pub(super) fn run(conn: &Connection, q: &Query) -> Result<Table, StoreError> {
        let mut table = Table::new(Table::columns_for(&q.kind));
        let mut w = Where::new(q);
        let (sql, extra): (String, Vec<Box<dyn ToSql>>) = match &q.kind {
            QueryKind::EventsPerDay => {
                w.range(q.from_ms, q.to_ms);
                (
                    format!(
                        "SELECT epoch_ms(occurred_at) // {DAY_MS} AS day, count(*), count(DISTINCT project), count(DISTINCT machine)
                         FROM events WHERE {} GROUP BY day ORDER BY day",
                        w.sql
                    ),
                    vec![],
                )
            }
            QueryKind::Active { windows } => {
                if windows.is_empty() {
                    return Ok(table);
                }
                let longest = windows.iter().max().copied().unwrap_or(0);
                w.range(q.to_ms - i64::from(longest) * DAY_MS, q.to_ms);
                let mut cols = Vec::new();
                let mut extra: Vec<Box<dyn ToSql>> = Vec::new();
                for &win in windows {
                    cols.push(
                        "count(DISTINCT project) FILTER (WHERE occurred_at >= epoch_ms(?)), \
                         count(DISTINCT machine) FILTER (WHERE occurred_at >= epoch_ms(?))"
                            .to_string(),
                    );
                    let start = q.to_ms - i64::from(win) * DAY_MS;
                    extra.push(Box::new(start));
                    extra.push(Box::new(start));
                }
                (format!("SELECT {} FROM events WHERE {}", cols.join(", "), w.sql), extra)
            }
            QueryKind::TopPlugins { limit } => {
                w.range(q.from_ms, q.to_ms);
                (
                    format!(
                        "SELECT plugin, count(DISTINCT project) AS p, count(DISTINCT machine) AS m, count(*) AS e
                         FROM (SELECT unnest(plugins) AS plugin, project, machine FROM events WHERE {})
                         GROUP BY plugin ORDER BY p DESC, e DESC, plugin LIMIT {limit}",
                        w.sql
                    ),
                    vec![],
                )
            }
            QueryKind::Split { dimension } => {
                w.range(q.from_ms, q.to_ms);
                let col = column_name(*dimension);
                if *dimension == Dimension::ErrorKind {
                    w.sql.push_str(" AND error_kind IS NOT NULL");
                }
                (
                    format!(
                        "SELECT {col} AS v, count(DISTINCT project) AS p, count(DISTINCT machine) AS m, count(*) AS e
                         FROM events WHERE {} GROUP BY v ORDER BY p DESC, e DESC, v",
                        w.sql
                    ),
                    vec![],
                )
            }
        };
        // Parameters: the extra (SELECT list) ones come first in the text, then WHERE's.
        let params: Vec<&dyn ToSql> = extra.iter().chain(w.params.iter()).map(|b| b.as_ref()).collect();
        let mut stmt = conn.prepare(&sql).map_err(backend)?;
        let ncols = match &q.kind {
            QueryKind::Active { windows } => windows.len() * 2,
            _ => table.columns.len(),
        };
        let mut rows = stmt.query(params_from_iter(params)).map_err(backend)?;
        while let Some(r) = rows.next().map_err(backend)? {
            let mut values = Vec::with_capacity(ncols);
            for i in 0..ncols {
                values.push(r.get_ref(i).map_err(backend)?.to_owned());
            }
            match &q.kind {
                QueryKind::EventsPerDay => {
                    let day = int(&values[0])?;
                    let date = DateTime::from_timestamp_millis(day * DAY_MS)
                        .ok_or_else(|| StoreError::Backend(format!("day {day} out of range")))?
                        .date_naive();
                    table.rows.push(vec![
                        Cell::Date(date),
                        Cell::Int(int(&values[1])?),
                        Cell::Int(int(&values[2])?),
                        Cell::Int(int(&values[3])?),
                    ]);
                }
                QueryKind::Active { windows } => {
                    for (i, win) in windows.iter().enumerate() {
                        table.rows.push(vec![
                            Cell::Int(i64::from(*win)),
                            Cell::Int(int(&values[2 * i])?),
                            Cell::Int(int(&values[2 * i + 1])?),
                        ]);
                    }
                }
                QueryKind::TopPlugins { .. } | QueryKind::Split { .. } => {
                    let label = match &values[0] {
                        duckdb::types::Value::Text(s) => s.clone(),
                        other => {
                            return Err(StoreError::Backend(format!("unexpected group value {other:?}")));
                        }
                    };
                    table.rows.push(vec![
                        Cell::Text(label),
                        Cell::Int(int(&values[1])?),
                        Cell::Int(int(&values[2])?),
                        Cell::Int(int(&values[3])?),
                    ]);
                }
            }
        }
        Ok(table)
    }

    fn int(v: &duckdb::types::Value) -> Result<i64, StoreError> {
        use duckdb::types::Value::*;
        match v {
            TinyInt(i) => Ok(i64::from(*i)),
            SmallInt(i) => Ok(i64::from(*i)),
            Int(i) => Ok(i64::from(*i)),
            BigInt(i) => Ok(*i),
            HugeInt(i) => i64::try_from(*i).map_err(|e| StoreError::Backend(e.to_string())),
            UBigInt(i) => i64::try_from(*i).map_err(|e| StoreError::Backend(e.to_string())),
            UInteger(i) => Ok(i64::from(*i)),
            other => Err(StoreError::Backend(format!("expected an integer, got {other:?}"))),
        }
    }
}
