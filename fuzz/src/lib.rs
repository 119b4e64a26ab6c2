//! What the fuzz targets share: the collector's schemas, a fixed clock and the last step of
//! the ingest path (accepted events to stored rows), as `post_batch` and the Strapi routes
//! run them, minus HTTP and the store.

use std::path::Path;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use tally_collector::Metrics;
use tally_collector::ingest::{self, Caps};
use tally_protocol::{CheckedBatch, SchemaSet};
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

/// Turns every accepted event of `checked` into a row, as the handlers do before writing.
pub fn to_rows(checked: CheckedBatch) {
    let schema = SCHEMAS.get(&checked.context.app).expect("check_batch found the schema");
    // Fresh caps per input: a crash must not depend on what earlier inputs admitted.
    let caps = Caps::default();
    for (_, result) in checked.events {
        if let Ok(Some(accepted)) = result {
            ingest::to_row(&checked.context, accepted, now().timestamp_millis(), &SECRET, schema, &caps, &METRICS);
        }
    }
}
