//! What the fuzz targets share: the collector's schemas, a fixed clock and the collector's
//! ingest pipeline up to the write (`tally_collector::ingest::prepare`), which both
//! `POST /v1/batch` and the Strapi routes end in.

use std::path::Path;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use tally_collector::Metrics;
use tally_collector::ingest::{self, Caps, Prepared};
use tally_protocol::limits::MAX_EVENT_AGE_MS;
use tally_protocol::{Rejection, SchemaSet};
use tally_store::ServerSecret;

/// The protocol vectors' schema (app `vector-app`), so seeds from `vectors/` get past the
/// schema check.
const VECTOR_SCHEMA: &str = include_str!("../../crates/tally-protocol/vectors/schema.toml");

/// The built-in schemas (`demo`, `strapi`) plus the vectors' one.
pub static SCHEMAS: LazyLock<SchemaSet> = LazyLock::new(|| {
    let mut set = tally_collector::builtin::load(None).expect("built-in schemas are valid");
    set.insert(tally_protocol::AppSchema::parse(VECTOR_SCHEMA, Path::new("vectors/schema.toml")).expect("valid"));
    set
});

/// The collector's key for hashing ids.
pub static SECRET: LazyLock<ServerSecret> = LazyLock::new(|| ServerSecret::from_bytes([7; 32]));

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The collector's clock: the vectors' `now`, so that their events are neither too old nor
/// in the future. Fixed, so that a crash reproduces.
pub fn now() -> DateTime<Utc> {
    "2026-11-01T12:00:00Z".parse().expect("a valid time")
}

/// Checks a (decompressed) batch and builds its rows, as the collector does before writing.
pub fn prepare(batch: &[u8]) -> Result<Prepared, Rejection> {
    // Fresh caps per input: a crash must not depend on what earlier inputs admitted.
    let caps = Caps::default();
    let prepared = ingest::prepare(batch, &SCHEMAS, now(), MAX_EVENT_AGE_MS, &SECRET, &caps, &METRICS, None)?;
    let accepted = prepared.outcomes.iter().filter(|(_, r)| matches!(r, Ok(Some(())))).count();
    assert_eq!(prepared.rows.len(), accepted, "one row per accepted event");
    Ok(prepared)
}
