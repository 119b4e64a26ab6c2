//! The shared conformance suite, on DuckDB in memory and on a file.

mod in_memory {
    tally_store::conformance_tests!(Box::new(tally_store_duckdb::DuckDbStore::open_in_memory().expect("open")));
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
