//! The conformance check of [`QueryKind::DropSupport`]: newest versions per project across
//! its machines, numeric version order, values that are not versions, several runtimes.

use super::{append_all, check, query, row};
use crate::query::{Cell, Dimension, Filters, QueryKind};
use crate::{EventStore, StoreError};
use tally_protocol::Env;

fn version_row(runtime: &str, version: &str, newest: i64, left: i64, total: i64) -> Vec<Cell> {
    vec![
        Cell::Text(runtime.into()),
        Cell::Text(version.into()),
        Cell::Int(newest),
        Cell::Int(left),
        Cell::Int(total - left),
        Cell::Int(total),
    ]
}

/// Project 1 runs Node 18 and 20.9 on two machines, 2 runs 20.11, 3 runs 18 and 22, 4 an
/// unrecognised version (`other`), 6 runs Node 9 (and 24 after the range); 5 runs Bun.
pub fn drop_support(store: &dyn EventStore) {
    let on = |id: u128, day: i64, p: u8, m: u8, runtime: &str, version: &str, env: Env| {
        let mut r = row(id, day, 0, p, m);
        r.runtime = runtime.into();
        r.runtime_version = version.into();
        r.env = env;
        r
    };
    let dev = Env::Development;
    append_all(
        store,
        &[
            on(1, 0, 1, 1, "node", "18.20.4", dev),
            on(2, 1, 1, 2, "node", "20.9.0", dev),
            on(3, 2, 2, 3, "node", "20.11.1", Env::Production),
            on(4, 3, 3, 4, "node", "22.1.0", Env::Production),
            on(5, 4, 3, 5, "node", "18.20.4", dev),
            on(6, 5, 4, 6, "node", "other", dev),
            on(7, 6, 5, 7, "bun", "1.1.0", dev),
            on(8, 7, 6, 8, "node", "9.11.2", dev),
            on(9, 40, 6, 8, "node", "24.0.0", dev),
        ],
    );
    let ask = |dimension| query(QueryKind::DropSupport { dimension });
    check(
        store,
        &ask(Dimension::RuntimeMajor),
        vec![
            version_row("bun", "1", 1, 1, 1),
            version_row("node", "9", 1, 1, 5),
            version_row("node", "18", 0, 1, 5),
            version_row("node", "20", 2, 3, 5),
            version_row("node", "22", 1, 4, 5),
            version_row("node", "other", 1, 5, 5),
        ],
    );
    check(
        store,
        &ask(Dimension::RuntimeMinor),
        vec![
            version_row("bun", "1.1", 1, 1, 1),
            version_row("node", "9.11", 1, 1, 5),
            version_row("node", "18.20", 0, 1, 5),
            version_row("node", "20.9", 1, 2, 5),
            version_row("node", "20.11", 1, 3, 5),
            version_row("node", "22.1", 1, 4, 5),
            version_row("node", "other", 1, 5, 5),
        ],
    );
    let mut production = ask(Dimension::RuntimeVersion);
    production.filters = Filters { env: Some(Env::Production), ..Filters::default() };
    check(store, &production, vec![version_row("node", "20.11.1", 1, 1, 2), version_row("node", "22.1.0", 1, 2, 2)]);
    let refused = store.query(&ask(Dimension::Os));
    assert!(matches!(refused, Err(StoreError::InvalidQuery(_))), "{refused:?}");
}
