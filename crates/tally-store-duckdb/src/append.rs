//! Writing rows: the events table's schema, and an append as one transaction (the rows
//! go into a temporary staging table through DuckDB's appender, then one `INSERT OR IGNORE
//! … RETURNING` moves them into the events table and names the rows that were new).

use std::collections::HashSet;

use duckdb::{Connection, params};
use tally_protocol::PropValue;
use tally_store::{AppendStatus, EventRow, StoreError};

use crate::backend;

/// Separator of list items in the staging table (refused in stored strings).
const SEP: char = '\u{1f}';

pub(crate) const SCHEMA: &str = "
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
-- One row: the ingest-log position applied, written in the same transaction as the rows.
CREATE TABLE IF NOT EXISTS log_position (
    id       INTEGER PRIMARY KEY,
    position BIGINT NOT NULL
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

/// Refuses rows holding the staging table's separator (checked before the writer's lock
/// is taken).
pub(crate) fn check_rows(rows: &[EventRow]) -> Result<(), StoreError> {
    rows.iter().try_for_each(check_no_separator)
}

/// Inserts the rows not yet stored in one transaction, with the ingest-log position
/// `through` when given, and commits; one status per row.
pub(crate) fn insert(
    conn: &mut Connection,
    rows: &[EventRow],
    through: Option<u64>,
) -> Result<Vec<AppendStatus>, StoreError> {
    let mut first = HashSet::with_capacity(rows.len());
    let unique: Vec<bool> = rows.iter().map(|r| first.insert(r.event_id)).collect();
    let tx = conn.transaction().map_err(backend)?;
    if let Some(position) = through {
        let position = i64::try_from(position).map_err(|_| StoreError::Backend("log position past i64".into()))?;
        tx.execute("INSERT OR REPLACE INTO log_position VALUES (1, ?)", params![position]).map_err(backend)?;
    }
    if rows.is_empty() {
        tx.commit().map_err(backend)?;
        return Ok(vec![]);
    }
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
    Ok(status)
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
