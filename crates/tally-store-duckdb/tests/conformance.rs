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
    use tally_store::{AppendStatus, EventRow, EventStore, KnownValues, ProjectKey, Query, StoreError, Table};
    use tally_store_duckdb::DuckDbStore;

    struct PlainSql(DuckDbStore);

    impl EventStore for PlainSql {
        fn append(&self, rows: &[EventRow]) -> Result<Vec<AppendStatus>, StoreError> {
            self.0.append(rows)
        }
        fn query(&self, q: &Query) -> Result<Table, StoreError> {
            self.0.query_sql(q)
        }
        fn erase_project(&self, project: &ProjectKey) -> Result<u64, StoreError> {
            self.0.erase_project(project)
        }
        fn apply_retention(&self, before_ms: i64) -> Result<u64, StoreError> {
            self.0.apply_retention(before_ms)
        }
        fn known_values(&self, app: &str) -> Result<KnownValues, StoreError> {
            self.0.known_values(app)
        }
        fn count_events(&self) -> Result<u64, StoreError> {
            self.0.count_events()
        }
    }

    tally_store::conformance_tests!(Box::new(PlainSql(DuckDbStore::open_in_memory().expect("open"))));
}
