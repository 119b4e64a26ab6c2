//! The rollup a store saves in `rollup/` and reads back when it opens: it answers like
//! the one folded from the events table, and a file that no longer matches the table
//! (stale, damaged, or of a day rows were deleted from) is folded again, never trusted.

use std::path::Path;

use tally_store::conformance::{T0, answers_like_reference, matches_reference, project, row};
use tally_store::{DAY_MS, Dimension, EventStore, Filters, Query, QueryKind};
use tally_store_duckdb::{DuckDbStore, ROLLUP_DIR};

/// Questions over whole days (answered from the rollup), compared with plain SQL.
fn answers_like_sql(store: &DuckDbStore) {
    let kinds = [
        QueryKind::EventsPerDay,
        QueryKind::Active { windows: vec![1, 7, 28] },
        QueryKind::TopPlugins { limit: 10 },
        QueryKind::Split { dimension: Dimension::Os },
        QueryKind::Breakdown { period: None, dimensions: vec![Dimension::Plugin, Dimension::Env], limit: None },
    ];
    for kind in kinds {
        let q = Query { app: "demo".into(), from_ms: T0, to_ms: T0 + 63 * DAY_MS, filters: Filters::default(), kind };
        assert_eq!(store.query(&q).expect("query"), store.query_sql(&q).expect("sql"), "{q:?}");
    }
}

fn day_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join(ROLLUP_DIR))
        .expect("the rollup's files")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "day"))
        .collect();
    files.sort();
    files
}

#[test]
fn a_store_opened_from_its_rollup_files_answers_like_a_rebuilt_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = DuckDbStore::open(dir.path()).expect("open");
        matches_reference(&store);
        // Dropping the store saves what changed since its last save.
    }
    let store = DuckDbStore::open(dir.path()).expect("reopen");
    let opened = store.opened();
    assert!(opened.days_from_files > 50, "{opened:?}");
    assert_eq!(opened.days_folded, 0, "{opened:?}");
    answers_like_reference(&store);
    drop(store);

    std::fs::remove_dir_all(dir.path().join(ROLLUP_DIR)).expect("remove the files");
    let store = DuckDbStore::open(dir.path()).expect("reopen without files");
    assert_eq!(store.opened().days_from_files, 0);
    assert!(store.opened().days_folded > 50);
    answers_like_reference(&store);
}

#[test]
fn days_that_changed_after_the_last_save_are_folded_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = DuckDbStore::open(dir.path()).expect("open");
        store
            .append(&(0..40).map(|i| row(i + 1, i as i64 % 10, 3, (i % 7) as u8, 1)).collect::<Vec<_>>())
            .expect("append");
        assert!(store.save_rollup().expect("save").days > 0);
        // Killed before the next save: these rows are in the events table only.
        store.stop_saving_rollup();
        store.append(&[row(100, 2, 5, 9, 9), row(101, 2, 6, 10, 9), row(102, 12, 1, 1, 1)]).expect("append");
    }
    let store = DuckDbStore::open(dir.path()).expect("reopen");
    assert_eq!(store.opened().days_folded, 2, "{:?}", store.opened());
    assert_eq!(store.opened().days_from_files, 9);
    answers_like_sql(&store);
}

#[test]
fn erased_rows_never_come_back_from_the_rollup_files() {
    // The erased project's events leave day 3 with fewer events; as many new events bring
    // its count back to what the old file says. The file must have gone with the erasure.
    let dir = tempfile::tempdir().expect("tempdir");
    let erased = project(5);
    {
        let store = DuckDbStore::open(dir.path()).expect("open");
        let mut rows: Vec<_> = (0..30).map(|i| row(i + 1, 3, 2, (i % 4) as u8, 2)).collect();
        rows.extend((0..5).map(|i| row(50 + i, 3, 4, 5, 5)));
        rows.extend((0..5).map(|i| row(60 + i, 6, 4, 5, 5)));
        store.append(&rows).expect("append");
        store.save_rollup().expect("save");
        store.stop_saving_rollup();
        assert_eq!(store.erase_project(&erased).expect("erase"), 10);
        store.append(&(0..5).map(|i| row(70 + i, 3, 7, 1, 1)).collect::<Vec<_>>()).expect("append");
    }
    let store = DuckDbStore::open(dir.path()).expect("reopen");
    assert_eq!(store.opened().days_from_files, 0, "{:?}", store.opened());
    answers_like_sql(&store);
    let q = Query {
        app: "demo".into(),
        from_ms: T0,
        to_ms: T0 + 10 * DAY_MS,
        filters: Filters::default(),
        kind: QueryKind::Active { windows: vec![0] },
    };
    let active = store.query(&q).expect("active");
    assert_eq!(active, store.query_sql(&q).expect("sql"));
    assert_eq!(store.count_events().expect("count"), 35);
    // The files written since hold no row of the erased project.
    drop(store);
    let store = DuckDbStore::open(dir.path()).expect("reopen");
    assert_eq!(store.opened().days_folded, 0);
    answers_like_sql(&store);
}

#[test]
fn a_retention_cut_deletes_the_files_of_the_days_it_cuts() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = DuckDbStore::open(dir.path()).expect("open");
        store
            .append(&(0..60).map(|i| row(i + 1, i as i64 % 12, (i % 24) as i64, (i % 5) as u8, 1)).collect::<Vec<_>>())
            .expect("append");
        store.save_rollup().expect("save");
        store.stop_saving_rollup();
        // Inside day 4: days 0-3 go, day 4 keeps its afternoon.
        store.apply_retention("demo", T0 + 4 * DAY_MS + 12 * 3_600_000).expect("retention");
    }
    assert!(day_files(dir.path()).len() <= 7, "{:?}", day_files(dir.path()));
    let store = DuckDbStore::open(dir.path()).expect("reopen");
    assert_eq!(store.opened().days_from_files, 7, "{:?}", store.opened());
    assert_eq!(store.opened().days_folded, 1, "{:?}", store.opened());
    answers_like_sql(&store);
}

#[test]
fn a_damaged_or_foreign_file_is_folded_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = DuckDbStore::open(dir.path()).expect("open");
        store
            .append(&(0..50).map(|i| row(i + 1, i as i64 % 5, 1, (i % 6) as u8, 1)).collect::<Vec<_>>())
            .expect("append");
    }
    let files = day_files(dir.path());
    assert_eq!(files.len(), 5);
    // A flipped byte, a truncated file, and one day's file under another day's name.
    let mut bytes = std::fs::read(&files[0]).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&files[0], bytes).expect("write");
    let bytes = std::fs::read(&files[1]).expect("read");
    std::fs::write(&files[1], &bytes[..bytes.len() / 2]).expect("write");
    std::fs::copy(&files[3], &files[2]).expect("copy");
    std::fs::write(dir.path().join(ROLLUP_DIR).join(".a0-d1.day.tmp"), b"half a save").expect("write");
    let store = DuckDbStore::open(dir.path()).expect("reopen");
    assert_eq!(store.opened().days_folded, 3, "{:?}", store.opened());
    assert_eq!(store.opened().days_from_files, 2);
    answers_like_sql(&store);
    drop(store);
    assert!(!dir.path().join(ROLLUP_DIR).join(".a0-d1.day.tmp").exists());

    std::fs::write(dir.path().join(ROLLUP_DIR).join("dict.bin"), b"TLYROLL1 not a dictionary").expect("write");
    let store = DuckDbStore::open(dir.path()).expect("reopen with a damaged dictionary");
    assert_eq!(store.opened().days_from_files, 0);
    answers_like_sql(&store);
}

#[test]
fn the_counts_per_day_follow_every_insert_and_delete() {
    // The counts the files are checked against are kept by the writes themselves: after
    // appends, duplicates, an erasure and a retention cut inside a day, a reopened store
    // reads every remaining day from its files (a count off by one would fold it again).
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = DuckDbStore::open(dir.path()).expect("open");
        let rows: Vec<_> = (0..80).map(|i| row(i + 1, i as i64 % 8, (i % 24) as i64, (i % 6) as u8, 1)).collect();
        store.append(&rows).expect("append");
        store.append(&rows[..30]).expect("resend: duplicates, counted once");
        store.apply(&[row(500, 9, 1, 2, 2)], 10).expect("apply");
        store.erase_project(&project(3)).expect("erase");
        store.apply_retention("demo", T0 + 2 * DAY_MS + 6 * 3_600_000).expect("retention");
    }
    let store = DuckDbStore::open(dir.path()).expect("reopen");
    assert_eq!(store.opened().days_folded, 0, "{:?}", store.opened());
    assert_eq!(store.opened().days_from_files, 7, "{:?}", store.opened());
    answers_like_sql(&store);
}

#[test]
fn a_store_dropped_during_a_save_saves_what_changed_meanwhile() {
    // The saver's first round starts when the store opens; rows keep arriving while it
    // runs, and the store is dropped at once: the last save must hold every day.
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = DuckDbStore::open(dir.path()).expect("open");
        for chunk in (0..2000u128).collect::<Vec<_>>().chunks(100) {
            let rows: Vec<_> = chunk.iter().map(|i| row(i + 1, (*i % 30) as i64, 1, (*i % 50) as u8, 1)).collect();
            store.append(&rows).expect("append");
        }
    }
    let store = DuckDbStore::open(dir.path()).expect("reopen");
    assert_eq!(store.opened().days_folded, 0, "{:?}", store.opened());
    assert_eq!(store.opened().days_from_files, 30);
    answers_like_sql(&store);
}
