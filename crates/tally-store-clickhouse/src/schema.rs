//! The tables tally creates, and their migrations, recorded in a `schema_version` table.
//!
//! `events` is what every query and insert names. On one server it is the
//! `ReplacingMergeTree` itself; in cluster mode it is a `Distributed` table over
//! `events_local` on every shard, sharded by a hash of `event_id` so that every copy of an
//! event lands on the same shard, where `FINAL` collapses them. Partitioned by month of
//! `day` (retention drops whole months), ordered by `(app, day, event_id)`: every insight
//! reads one app over a range of days, and the id check before an insert reads the
//! batch's apps and days only. The metadata tables (`schema_version`, `log_position`) live
//! on the first server of the URL only.

use tally_store::StoreError;

use crate::http::{Node, quote};

/// The schema this build writes and reads. A store with a newer version is refused.
pub(crate) const VERSION: u32 = 1;

/// The MergeTree table of events on each server.
pub(crate) fn local_table(cluster: Option<&str>) -> &'static str {
    if cluster.is_some() { "events_local" } else { "events" }
}

const EVENT_COLUMNS: &str = "
    event_id        UUID,
    day             Date,
    occurred_at     Int64,
    received_at     Int64,
    app             String,
    app_version     String,
    event           String,
    project         UUID,
    machine         UUID,
    env             String,
    os              String,
    os_version      String,
    arch            String,
    runtime         String,
    runtime_version String,
    ci              String,
    container       UInt8,
    plugins         Array(String),
    duration_ms     Nullable(UInt64),
    error_kind      Nullable(String),
    prop_keys       Array(String),
    -- each property's value as a JSON scalar (\"text\", 12, 0.5, true)
    prop_values     Array(String)";

/// Creates the database and tables where missing and runs the migrations the store has
/// not had yet. `nodes[0]` holds the metadata; every node gets the event tables.
pub(crate) fn migrate(nodes: &[Node], cluster: Option<&str>) -> Result<(), StoreError> {
    let meta = &nodes[0];
    let db = &meta.database;
    for node in nodes {
        node.execute(&format!("CREATE DATABASE IF NOT EXISTS {db}"))?;
    }
    meta.execute(&format!(
        "CREATE TABLE IF NOT EXISTS {db}.schema_version (version UInt32, applied_at DateTime DEFAULT now()) \
         ENGINE = MergeTree ORDER BY version"
    ))?;
    let current = meta
        .rows("SELECT max(version) FROM schema_version")?
        .first()
        .and_then(|r| r.first())
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    if current > u64::from(VERSION) {
        return Err(StoreError::Backend(format!(
            "the clickhouse database {db} has schema version {current}, newer than this tally's {VERSION}; upgrade tally"
        )));
    }
    if current < 1 {
        version_1(nodes, cluster)?;
        meta.execute(&format!("INSERT INTO {db}.schema_version (version) VALUES (1)"))?;
    }
    for node in nodes {
        fsync_parts(node, local_table(cluster))?;
    }
    Ok(())
}

/// On servers that have them (current releases; 18.16 has neither the settings nor
/// `system.merge_tree_settings`), makes the events table `fsync` each inserted part and its
/// directory before the insert returns, so that what the applier inserted, and the log then
/// let go of, survives a power loss of the ClickHouse machine. Checked on every open: a
/// server upgraded under an existing database gets them too. The applier inserts large
/// parts about once a second, so one `fsync` per part costs little.
fn fsync_parts(node: &Node, table: &str) -> Result<(), StoreError> {
    let supported = match node.rows(
        "SELECT count() FROM system.merge_tree_settings WHERE name IN ('fsync_after_insert', 'fsync_part_directory')",
    ) {
        Ok(rows) => rows.first().and_then(|r| r.first()).and_then(serde_json::Value::as_u64) == Some(2),
        Err(StoreError::Backend(_)) => false,
        Err(e) => return Err(e),
    };
    if supported {
        node.execute(&format!(
            "ALTER TABLE {}.{table} MODIFY SETTING fsync_after_insert = 1, fsync_part_directory = 1",
            node.database
        ))?;
    }
    Ok(())
}

/// The events tables and the log positions.
fn version_1(nodes: &[Node], cluster: Option<&str>) -> Result<(), StoreError> {
    let db = &nodes[0].database;
    let local = local_table(cluster);
    for node in nodes {
        node.execute(&format!(
            "CREATE TABLE IF NOT EXISTS {db}.{local} ({EVENT_COLUMNS}) ENGINE = ReplacingMergeTree \
             PARTITION BY toYYYYMM(day) ORDER BY (app, day, event_id)"
        ))?;
        if let Some(cluster) = cluster {
            node.execute(&format!(
                "CREATE TABLE IF NOT EXISTS {db}.events AS {db}.{local} \
                 ENGINE = Distributed({}, {db}, {local}, cityHash64(toString(event_id)))",
                quote(cluster)
            ))?;
        }
    }
    // One row per apply; `max(position)` per writer is its position, and merges keep only
    // the largest row per writer.
    nodes[0].execute(&format!(
        "CREATE TABLE IF NOT EXISTS {db}.log_position (writer String, position UInt64) \
         ENGINE = ReplacingMergeTree(position) ORDER BY writer"
    ))?;
    // Which server secret the stored keys were made with (a keyed hash of a constant).
    nodes[0].execute(&format!(
        "CREATE TABLE IF NOT EXISTS {db}.secret_fingerprint (fingerprint String) ENGINE = MergeTree ORDER BY fingerprint"
    ))
}
