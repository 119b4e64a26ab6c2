//! Writing rows: the events table's schema (and its migration), and the two ways rows go
//! in, both as Arrow record batches through DuckDB's appender (typed columns, no text
//! casts):
//!
//! - [`insert_new`]: rows the caller guarantees are not stored yet (the collector's
//!   dedupe at acceptance), appended straight into the events table with the ingest-log
//!   position, in one transaction. Its cost does not depend on the table's size: there is
//!   no primary-key index to update.
//! - [`insert_checked`]: rows that may repeat stored ones (`EventStore::append`, and the
//!   replay after a restart): staged, then inserted where no stored row has the same
//!   `event_id` within the batch's `occurred_at` range (a resend carries its event's own
//!   time, and the range lets DuckDB skip the row groups outside it).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use duckdb::arrow::array::{
    Array as _, ArrayRef, BooleanBuilder, FixedSizeBinaryBuilder, Int64Builder, ListBuilder, MapBuilder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use duckdb::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::{Connection, Transaction, params};
use tally_store::{AppendStatus, DAY_MS, EventRow, StoreError};

use crate::backend;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    event_id        UUID NOT NULL,
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
-- Events per app and UTC day (days since 1970-01-01), added in every transaction that adds or
-- deletes events: what the rollup's files are checked against when the store opens, read
-- without scanning the events table. Rows are deltas summed when read, compacted to one per
-- (app, day) when the store opens and at each retention run; no key, so no index (and no
-- upsert) on the write path.
DROP TABLE IF EXISTS day_counts;
CREATE TABLE IF NOT EXISTS day_events (
    app    VARCHAR NOT NULL,
    day    BIGINT NOT NULL,
    events BIGINT NOT NULL
);
";

/// Stores made before the ingest log had `event_id` as the primary key, whose index made
/// every insert slower as the table grew. DuckDB cannot drop a constraint, so the table is
/// copied once into the new schema.
pub(crate) fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let keyed: i64 = conn
        .query_row(
            "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'events' AND constraint_type = 'PRIMARY KEY'",
            [],
            |r| r.get(0),
        )
        .map_err(backend)?;
    if keyed == 0 {
        return Ok(());
    }
    let ddl = SCHEMA.split(';').next().expect("the events table comes first").replace("events (", "events_v2 (");
    conn.execute_batch(&format!(
        "BEGIN; {ddl}; INSERT INTO events_v2 SELECT * FROM events; DROP TABLE events; \
         ALTER TABLE events_v2 RENAME TO events; COMMIT; CHECKPOINT;"
    ))
    .map_err(backend)
}

fn uuid_field(name: &str) -> Field {
    Field::new(name, DataType::FixedSizeBinary(16), false).with_metadata(std::collections::HashMap::from([(
        "ARROW:extension:name".to_string(),
        "arrow.uuid".to_string(),
    )]))
}

/// The rows as one Arrow record batch in the events table's column order.
fn record_batch(rows: &[&EventRow]) -> Result<RecordBatch, StoreError> {
    let arrow = |e: duckdb::arrow::error::ArrowError| StoreError::Backend(e.to_string());
    let n = rows.len();
    let mut ids = FixedSizeBinaryBuilder::with_capacity(n, 16);
    let mut projects = FixedSizeBinaryBuilder::with_capacity(n, 16);
    let mut machines = FixedSizeBinaryBuilder::with_capacity(n, 16);
    let (mut received, mut occurred) =
        (TimestampMicrosecondBuilder::with_capacity(n), TimestampMicrosecondBuilder::with_capacity(n));
    let mut texts: Vec<StringBuilder> = (0..10).map(|_| StringBuilder::with_capacity(n, n * 8)).collect();
    let mut container = BooleanBuilder::with_capacity(n);
    let mut plugins = ListBuilder::new(StringBuilder::new());
    let mut duration = Int64Builder::with_capacity(n);
    let mut error_kind = StringBuilder::new();
    let mut props = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for r in rows {
        ids.append_value(r.event_id.as_bytes()).map_err(arrow)?;
        projects.append_value(r.project.as_uuid().as_bytes()).map_err(arrow)?;
        machines.append_value(r.machine.as_uuid().as_bytes()).map_err(arrow)?;
        received.append_value(r.received_at_ms * 1000);
        occurred.append_value(r.occurred_at_ms * 1000);
        let values = [
            r.app.as_str(),
            &r.app_version,
            &r.event,
            r.env.as_str(),
            &r.os,
            &r.os_version,
            &r.arch,
            &r.runtime,
            &r.runtime_version,
            &r.ci,
        ];
        for (b, v) in texts.iter_mut().zip(values) {
            b.append_value(v);
        }
        container.append_value(r.container);
        for p in &r.plugins {
            plugins.values().append_value(p);
        }
        plugins.append(true);
        duration.append_option(r.duration_ms.map(|d| d as i64));
        error_kind.append_option(r.error_kind.as_deref());
        for (k, v) in &r.props {
            props.keys().append_value(k);
            props.values().append_value(serde_json::to_string(v).expect("prop values serialize"));
        }
        props.append(true).map_err(arrow)?;
    }
    let mut texts = texts.into_iter().map(|mut b| Arc::new(b.finish()) as ArrayRef);
    let mut text = || texts.next().expect("ten text columns");
    let (app, app_version, event, env, os, os_version, arch, runtime, runtime_version, ci) =
        (text(), text(), text(), text(), text(), text(), text(), text(), text(), text());
    let props = props.finish();
    let plugins = plugins.finish();
    let time = || DataType::Timestamp(TimeUnit::Microsecond, None);
    let string = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
    let schema = Schema::new(vec![
        uuid_field("event_id"),
        Field::new("received_at", time(), false),
        Field::new("occurred_at", time(), false),
        string("app", false),
        string("app_version", false),
        string("event", false),
        uuid_field("project"),
        uuid_field("machine"),
        string("env", false),
        string("os", false),
        string("os_version", false),
        string("arch", false),
        string("runtime", false),
        string("runtime_version", false),
        string("ci", false),
        Field::new("container", DataType::Boolean, false),
        Field::new("plugins", plugins.data_type().clone(), false),
        Field::new("duration_ms", DataType::Int64, true),
        string("error_kind", true),
        Field::new("props", props.data_type().clone(), false),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ids.finish()),
        Arc::new(received.finish()),
        Arc::new(occurred.finish()),
        app,
        app_version,
        event,
        Arc::new(projects.finish()),
        Arc::new(machines.finish()),
        env,
        os,
        os_version,
        arch,
        runtime,
        runtime_version,
        ci,
        Arc::new(container.finish()),
        Arc::new(plugins),
        Arc::new(duration.finish()),
        Arc::new(error_kind.finish()),
        Arc::new(props),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).map_err(arrow)
}

/// Rows per record batch handed to the appender: DuckDB's vector size. The appender cuts a
/// larger batch into slices of this size, and a slice of a list or map column still carries
/// the whole batch's child values, which it copies again for every slice (quadratic: a
/// 250,000-row batch spent two thirds of its time in `StringVector::AddStringOrBlob`).
const CHUNK_ROWS: usize = 2048;

/// Appends `rows` through `app`, one record batch per [`CHUNK_ROWS`].
fn append_rows(app: &mut duckdb::Appender<'_>, rows: &[&EventRow]) -> Result<(), StoreError> {
    for chunk in rows.chunks(CHUNK_ROWS) {
        app.append_record_batch(record_batch(chunk)?).map_err(backend)?;
    }
    app.flush().map_err(backend)
}

fn set_position(tx: &Transaction<'_>, through: Option<u64>) -> Result<(), StoreError> {
    if let Some(position) = through {
        let position = i64::try_from(position).map_err(|_| StoreError::Backend("log position past i64".into()))?;
        tx.execute("INSERT OR REPLACE INTO log_position VALUES (1, ?)", params![position]).map_err(backend)?;
    }
    Ok(())
}

/// Adds the rows to `day_events` (inside the transaction that inserted them).
fn count_days<'r>(tx: &Transaction<'_>, rows: impl Iterator<Item = &'r EventRow>) -> Result<(), StoreError> {
    let mut per_day: HashMap<(&str, i64), i64> = HashMap::new();
    for r in rows {
        *per_day.entry((r.app.as_str(), r.occurred_at_ms.div_euclid(DAY_MS))).or_default() += 1;
    }
    if per_day.is_empty() {
        return Ok(());
    }
    // One statement for all of them: a backfill's group spans many days, and a statement
    // each cost the applier more than the rows' own append.
    let values = vec!["(?, ?, ?)"; per_day.len()].join(", ");
    let args: Vec<duckdb::types::Value> =
        per_day.into_iter().flat_map(|((app, day), n)| [app.to_string().into(), day.into(), n.into()]).collect();
    tx.execute(&format!("INSERT INTO day_events VALUES {values}"), duckdb::params_from_iter(args.iter()))
        .map_err(backend)?;
    Ok(())
}

/// Counts the events table's rows of `app` on `day` (every app and day without them) into
/// `day_events` again, inside `tx`, replacing what it held for them.
pub(crate) fn recount_days(tx: &Transaction<'_>, only: Option<(&str, i64)>) -> Result<(), StoreError> {
    match only {
        None => tx.execute_batch(
            "DELETE FROM day_events; INSERT INTO day_events SELECT app, d - DATE '1970-01-01', n FROM \
             (SELECT app, occurred_at::DATE AS d, count(*) AS n FROM events GROUP BY ALL)",
        ),
        Some((app, day)) => tx
            .execute("DELETE FROM day_events WHERE app = ? AND day = ?", params![app, day])
            .and_then(|_| {
                tx.execute(
                    "INSERT INTO day_events SELECT app, ?, count(*) FROM events \
                     WHERE app = ? AND occurred_at >= epoch_ms(?) AND occurred_at < epoch_ms(?) GROUP BY app",
                    params![day, app, day * DAY_MS, (day + 1) * DAY_MS],
                )
            })
            .map(drop),
    }
    .map_err(backend)
}

/// Sums `day_events` into one row per (app, day), inside `tx`.
pub(crate) fn compact_days(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute_batch(
        "CREATE OR REPLACE TEMP TABLE day_events_sum AS SELECT app, day, sum(events)::BIGINT AS events \
         FROM day_events GROUP BY ALL; DELETE FROM day_events; INSERT INTO day_events SELECT * FROM day_events_sum; \
         DROP TABLE day_events_sum;",
    )
    .map_err(backend)
}

/// Appends rows known to be new, with the log position `through` when given, in one
/// transaction; every row is reported inserted.
pub(crate) fn insert_new(
    conn: &mut Connection,
    rows: &[EventRow],
    through: Option<u64>,
) -> Result<Vec<AppendStatus>, StoreError> {
    let tx = conn.transaction().map_err(backend)?;
    set_position(&tx, through)?;
    if !rows.is_empty() {
        let mut app = tx.appender("events").map_err(backend)?;
        append_rows(&mut app, &rows.iter().collect::<Vec<_>>())?;
    }
    count_days(&tx, rows.iter())?;
    tx.commit().map_err(backend)?;
    Ok(vec![AppendStatus::Inserted; rows.len()])
}

/// Inserts the rows whose `event_id` is not stored yet (nor earlier in `rows`), in one
/// transaction; one status per row.
pub(crate) fn insert_checked(conn: &mut Connection, rows: &[EventRow]) -> Result<Vec<AppendStatus>, StoreError> {
    let mut first = HashSet::with_capacity(rows.len());
    let unique: Vec<bool> = rows.iter().map(|r| first.insert(r.event_id)).collect();
    let candidates: Vec<&EventRow> = rows.iter().zip(&unique).filter(|(_, u)| **u).map(|(r, _)| r).collect();
    let (Some(lo), Some(hi)) =
        (candidates.iter().map(|r| r.occurred_at_ms).min(), candidates.iter().map(|r| r.occurred_at_ms).max())
    else {
        return Ok(vec![]);
    };
    let tx = conn.transaction().map_err(backend)?;
    tx.execute_batch("CREATE TEMP TABLE IF NOT EXISTS staging AS SELECT * FROM events LIMIT 0; DELETE FROM staging;")
        .map_err(backend)?;
    {
        let mut app = tx.appender_to_catalog_and_db("staging", "temp", "main").map_err(backend)?;
        append_rows(&mut app, &candidates)?;
    }
    let inserted: HashSet<uuid::Uuid> = {
        let mut stmt = tx
            .prepare(
                "INSERT INTO events SELECT s.* FROM staging s WHERE NOT EXISTS (
                     SELECT 1 FROM events e WHERE e.event_id = s.event_id
                        AND e.occurred_at BETWEEN epoch_ms(?) AND epoch_ms(?))
                 RETURNING event_id::VARCHAR",
            )
            .map_err(backend)?;
        let ids = stmt.query_map(params![lo, hi], |row| row.get::<_, String>(0)).map_err(backend)?;
        ids.map(|id| id.map_err(backend)?.parse().map_err(|e| StoreError::Backend(format!("stored event_id: {e}"))))
            .collect::<Result<_, _>>()?
    };
    tx.execute_batch("DELETE FROM staging").map_err(backend)?;
    count_days(&tx, candidates.iter().copied().filter(|r| inserted.contains(&r.event_id)))?;
    tx.commit().map_err(backend)?;
    Ok(rows
        .iter()
        .zip(unique)
        .map(
            |(r, u)| if u && inserted.contains(&r.event_id) { AppendStatus::Inserted } else { AppendStatus::Duplicate },
        )
        .collect())
}

#[cfg(test)]
mod tests {
    use tally_protocol::PropValue;
    use tally_store::conformance::row;
    use tally_store::{EventStore, Filters, Query, QueryKind};

    use crate::DuckDbStore;

    #[test]
    fn migration_copies_every_row_and_drops_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = DuckDbStore::open(dir.path()).expect("opens");
            let conn = store.writer();
            conn.execute_batch("DROP TABLE events").expect("drop");
            let keyed = super::SCHEMA
                .split(';')
                .next()
                .expect("events")
                .replace("event_id        UUID NOT NULL", "event_id UUID PRIMARY KEY");
            conn.execute_batch(&keyed).expect("old schema");
            drop(conn);
            // Rows written into the old, keyed table.
            super::insert_checked(&mut store.writer(), &[row(1, 0, 0, 1, 1), row(2, 0, 1, 1, 2)]).expect("insert");
        }
        let store = DuckDbStore::open(dir.path()).expect("migrates");
        let keys: i64 = store
            .writer()
            .query_row(
                "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'events' AND constraint_type = 'PRIMARY KEY'",
                [],
                |r| r.get(0),
            )
            .expect("constraints");
        assert_eq!(keys, 0);
        assert_eq!(store.count_events().expect("count"), 2);
        assert_eq!(store.append(&[row(2, 0, 1, 1, 2)]).expect("append"), vec![tally_store::AppendStatus::Duplicate]);
    }

    /// The staging table used to join list values with U+001F, so a client sending that
    /// character in a string prop had its events refused, and every group commit with them.
    #[test]
    fn a_string_prop_holding_u001f_is_stored_as_sent() {
        let store = DuckDbStore::open_in_memory().expect("opens");
        let mut r = row(1, 0, 0, 1, 1);
        r.props.insert("template".into(), PropValue::Str("a\u{1f}b".into()));
        r.plugins = vec!["x\u{1f}y".into()];
        store.apply(&[r, row(2, 0, 1, 1, 2)], 10).expect("stored");
        assert_eq!(store.count_events().expect("count"), 2);
        let q = Query {
            app: "demo".into(),
            from_ms: 0,
            to_ms: 4_102_444_800_000,
            filters: Filters::default(),
            kind: QueryKind::TopPlugins { limit: 10 },
        };
        let table = store.query_sql(&q).expect("query");
        assert!(table.rows.iter().any(|r| r[0] == tally_store::Cell::Text("x\u{1f}y".into())), "{table:?}");
    }
}
