//! Writing rows: which of a batch's ids are stored already, and the insert of the others
//! as one `JSONEachRow` request.
//!
//! ClickHouse has no transactions, so idempotence does the work a transaction does in
//! DuckDB: before inserting, the store asks which ids of the batch are stored (reading only
//! the batch's apps and days, a prefix of the table's order), and inserts the rest. A
//! crash or a failed request after part of an insert landed (an insert over several months
//! writes one part per month) leaves rows that the next attempt finds and skips, so a
//! replayed log record is stored once. Two writers inserting the same new id at the same
//! moment can both insert it; the table is a `ReplacingMergeTree` read with `FINAL`, so
//! the copies count once (see `schema.rs`).

use std::collections::{BTreeSet, HashSet};

use chrono::DateTime;
use serde_json::json;
use tally_protocol::PropValue;
use tally_store::{AppendStatus, DAY_MS, EventRow, StoreError};
use uuid::Uuid;

use crate::http::{Node, quote};

/// Ids asked for in one check query. Each id is a `toUUID('…')` call, about three nodes of
/// the query's syntax tree, and the server refuses a tree over 50,000 nodes (`max_ast_elements`):
/// 20,000 ids failed once the applier's groups grew past 17,000 rows.
const CHECK_CHUNK: usize = 5_000;

/// The ids of `rows` already in `events`.
pub(crate) fn stored_ids(node: &Node, rows: &[EventRow]) -> Result<HashSet<Uuid>, StoreError> {
    let mut found = HashSet::new();
    for chunk in rows.chunks(CHECK_CHUNK) {
        let apps: BTreeSet<&str> = chunk.iter().map(|r| r.app.as_str()).collect();
        let days: BTreeSet<String> = chunk.iter().map(|r| day(r.occurred_at_ms)).collect();
        let list = |items: &mut dyn Iterator<Item = String>| items.collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT DISTINCT toString(event_id) FROM events WHERE app IN ({}) AND day IN ({}) AND event_id IN ({})",
            list(&mut apps.iter().map(|a| quote(a))),
            list(&mut days.iter().map(|d| format!("toDate('{d}')"))),
            list(&mut chunk.iter().map(|r| format!("toUUID('{}')", r.event_id))),
        );
        for row in node.rows(&sql)? {
            let id = row.first().and_then(|v| v.as_str()).and_then(|s| Uuid::parse_str(s).ok());
            found.extend(id);
        }
    }
    Ok(found)
}

/// Inserts the rows whose ids are neither in `stored` nor earlier in `rows`; one status
/// per row. `settings` are the insert's (synchronous inserts into a Distributed table).
pub(crate) fn insert(
    node: &Node,
    rows: &[EventRow],
    stored: &HashSet<Uuid>,
    settings: &[(&str, &str)],
) -> Result<Vec<AppendStatus>, StoreError> {
    let mut seen = HashSet::with_capacity(rows.len());
    let mut lines = Vec::new();
    let mut status = Vec::with_capacity(rows.len());
    for r in rows {
        if stored.contains(&r.event_id) || !seen.insert(r.event_id) {
            status.push(AppendStatus::Duplicate);
            continue;
        }
        serde_json::to_writer(&mut lines, &line(r)).map_err(|e| StoreError::Backend(e.to_string()))?;
        lines.push(b'\n');
        status.push(AppendStatus::Inserted);
    }
    if !lines.is_empty() {
        node.insert("events", &lines, settings)?;
    }
    Ok(status)
}

/// The UTC date of a time, `YYYY-MM-DD`.
pub(crate) fn day(ms: i64) -> String {
    let days = ms.div_euclid(DAY_MS);
    DateTime::from_timestamp_millis(days * DAY_MS).map_or_else(|| "1970-01-01".into(), |d| d.date_naive().to_string())
}

fn line(r: &EventRow) -> serde_json::Value {
    json!({
        "event_id": r.event_id.to_string(),
        "day": day(r.occurred_at_ms),
        "occurred_at": r.occurred_at_ms,
        "received_at": r.received_at_ms,
        "app": r.app,
        "app_version": r.app_version,
        "event": r.event,
        "project": r.project.as_uuid().to_string(),
        "machine": r.machine.as_uuid().to_string(),
        "env": r.env.as_str(),
        "os": r.os,
        "os_version": r.os_version,
        "arch": r.arch,
        "runtime": r.runtime,
        "runtime_version": r.runtime_version,
        "ci": r.ci,
        "container": u8::from(r.container),
        "plugins": r.plugins,
        "duration_ms": r.duration_ms,
        "error_kind": r.error_kind,
        "prop_keys": r.props.keys().collect::<Vec<_>>(),
        "prop_values": r.props.values().map(prop_json).collect::<Vec<_>>(),
    })
}

fn prop_json(v: &PropValue) -> String {
    serde_json::to_string(v).expect("prop values serialize")
}
