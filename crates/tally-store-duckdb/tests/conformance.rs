//! The shared conformance suite, on DuckDB in memory and on a file (answers from the
//! rollups wherever a query covers whole days), and on plain SQL over the events table.

/// Day indexes rebuilt on every append, so that whole-day queries read them.
mod in_memory {
    fn open() -> Box<tally_store_duckdb::DuckDbStore> {
        let store = tally_store_duckdb::DuckDbStore::open_in_memory().expect("open");
        store.set_reindex_after(0);
        Box::new(store)
    }
    tally_store::conformance_tests!(open());
}

mod on_disk {
    struct OnDisk {
        store: tally_store_duckdb::DuckDbStore,
        _dir: tempfile::TempDir,
    }
    impl std::ops::Deref for OnDisk {
        type Target = dyn tally_store::EventStore;
        fn deref(&self) -> &Self::Target {
            &self.store
        }
    }
    fn open() -> OnDisk {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = tally_store_duckdb::DuckDbStore::open(dir.path()).expect("open");
        OnDisk { store, _dir: dir }
    }
    tally_store::conformance_tests!(open());
}

/// Every query answered by SQL over the raw events, never from the rollups.
mod plain_sql {
    use tally_store_duckdb::{DuckDbStore, PlainSql};

    tally_store::conformance_tests!(Box::new(PlainSql(Box::new(DuckDbStore::open_in_memory().expect("open")))));
}

/// The rollup a store builds from its events table when it opens answers like plain SQL
/// and like the rollup kept during ingest.
#[test]
fn a_reopened_store_answers_from_its_rebuilt_rollup_like_sql() {
    use tally_store::conformance::{T0, matches_reference};
    use tally_store::{DAY_MS, Dimension, EventStore, Filters, Period, Query, QueryKind};
    let dir = tempfile::tempdir().expect("tempdir");
    let kinds = vec![
        QueryKind::EventsPerDay,
        QueryKind::Active { windows: vec![1, 7, 28] },
        QueryKind::ActiveSeries { window_days: 7 },
        QueryKind::TopPlugins { limit: 10 },
        QueryKind::Split { dimension: Dimension::RuntimeMajor },
        QueryKind::Breakdown { period: Some(Period::Week), dimensions: vec![Dimension::Plugin], limit: Some(3) },
        QueryKind::Breakdown { period: None, dimensions: vec![Dimension::Plugin, Dimension::Env], limit: None },
        QueryKind::CoUsage { plugin: None, limit: 4 },
        QueryKind::Durations { event: "project.created".into(), period: Some(Period::Week), dimension: None },
        QueryKind::Retention { weeks: 4 },
        QueryKind::DropSupport { dimension: Dimension::RuntimeMinor },
    ];
    let queries: Vec<Query> = kinds
        .into_iter()
        .map(|kind| Query {
            app: "demo".into(),
            from_ms: T0,
            to_ms: T0 + 63 * DAY_MS,
            filters: Filters::default(),
            kind,
        })
        .collect();
    let before: Vec<_> = {
        let store = tally_store_duckdb::DuckDbStore::open(dir.path()).expect("open");
        matches_reference(&store);
        queries.iter().map(|q| store.query(q).expect("query")).collect()
    };
    let store = tally_store_duckdb::DuckDbStore::open(dir.path()).expect("reopen");
    assert!(store.rollup_rows().expect("a rollup") > 0);
    for (q, want) in queries.iter().zip(before) {
        assert_eq!(store.query(q).expect("query"), want, "{q:?}");
        assert_eq!(store.query_sql(q).expect("sql"), want, "{q:?}");
    }
}
