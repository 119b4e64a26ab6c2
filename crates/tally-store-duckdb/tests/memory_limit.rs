//! DuckDB's memory limit (`tally serve --duckdb-memory-limit`): set, reported, and queries
//! still answer under it.

use tally_store::EventStore as _;
use tally_store_duckdb::{DuckDbStore, parse_size};

#[test]
fn the_memory_limit_is_set_and_reported_and_queries_answer_under_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = DuckDbStore::open(dir.path()).expect("open");
    let default = store.memory_limit().expect("limit");
    store.set_memory_limit(256 * 1024 * 1024).expect("set");
    assert_eq!(store.memory_limit().expect("limit"), 256 * 1024 * 1024, "default was {default}");
    assert_eq!(store.count_events().expect("a query under the limit"), 0);
}

#[test]
fn sizes_parse_in_duckdb_s_units() {
    let check = |text: &str, expected: Option<u64>| assert_eq!(parse_size(text), expected, "{text:?}");
    check("2GiB", Some(2 << 30));
    check("256.0 MiB", Some(256 << 20));
    check("1.5GB", Some(1_500_000_000));
    check("1000000", Some(1_000_000));
    check("512kb", Some(512_000));
    for bad in ["", "GiB", "-1GiB", "0", "2 parsecs", "1e400", "2GiB; DROP TABLE events"] {
        check(bad, None);
    }
}
