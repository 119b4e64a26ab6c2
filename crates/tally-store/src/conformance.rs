//! The conformance suite: the same rows in, the same tables out, for every backend.
//!
//! A backend crate runs it with [`conformance_tests!`](crate::conformance_tests), passing an
//! expression that makes a fresh, empty store. Each check builds a small hand-made
//! dataset whose answer is worked out by hand in the check.
//!
//! One file on purpose (about 750 lines): it is the storage contract as executable checks,
//! and a backend author reads it from top to bottom; splitting it would scatter the
//! datasets from the answers worked out for them. A newer check, `drop_support`, has its
//! own file, to keep this one from growing.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use tally_protocol::{Env, PropValue};
use uuid::Uuid;

use crate::query::{Cell, Dimension, Filters, Period, Query, QueryKind, Table};
use crate::row::{AppendStatus, ContextField, EventRow};
use crate::{DAY_MS, EventStore, Key16};

mod drop_support;
pub use drop_support::drop_support;

/// 2026-10-01T00:00:00Z, the day the datasets start.
pub const T0: i64 = 1_790_812_800_000;

/// A project key for tests.
pub fn project(n: u8) -> Key16 {
    Key16([n; 16])
}

/// A machine key for tests (distinct from every project key).
pub fn machine(n: u8) -> Key16 {
    let mut k = [n; 16];
    k[0] = 0xAA;
    Key16(k)
}

/// A row of app `demo` at `T0 + day days + hour hours`, with defaults for the rest.
pub fn row(id: u128, day: i64, hour: i64, p: u8, m: u8) -> EventRow {
    let at = T0 + day * DAY_MS + hour * 3_600_000;
    EventRow {
        event_id: Uuid::from_u128(id),
        received_at_ms: at + 1_000,
        occurred_at_ms: at,
        app: "demo".into(),
        app_version: "1.0.0".into(),
        event: "command.run".into(),
        project: project(p),
        machine: machine(m),
        env: Env::Development,
        os: "linux".into(),
        os_version: "6".into(),
        arch: "x86_64".into(),
        runtime: "node".into(),
        runtime_version: "20.11.1".into(),
        ci: String::new(),
        container: false,
        plugins: vec![],
        duration_ms: None,
        error_kind: None,
        props: BTreeMap::new(),
    }
}

fn query(kind: QueryKind) -> Query {
    Query { app: "demo".into(), from_ms: T0, to_ms: T0 + 30 * DAY_MS, filters: Filters::default(), kind }
}

fn date(d: u32) -> Cell {
    Cell::Date(NaiveDate::from_ymd_opt(2026, 10, d).expect("valid date"))
}

fn ints(v: &[i64]) -> Vec<Cell> {
    v.iter().map(|i| Cell::Int(*i)).collect()
}

fn labelled(label: &str, v: &[i64]) -> Vec<Cell> {
    let mut r = vec![Cell::Text(label.into())];
    r.extend(ints(v));
    r
}

fn check(store: &dyn EventStore, q: &Query, rows: Vec<Vec<Cell>>) {
    let got = store.query(q).expect("query succeeds");
    let want = Table { columns: Table::columns_for(&q.kind), rows };
    assert_eq!(got, want, "query {q:?}");
}

fn append_all(store: &dyn EventStore, rows: &[EventRow]) {
    let status = store.append(rows).expect("append succeeds");
    assert!(status.iter().all(|s| *s == AppendStatus::Inserted), "fresh rows all inserted: {status:?}");
}

/// Duplicates across calls and within one call are reported and not stored twice.
pub fn append_is_idempotent(store: &dyn EventStore) {
    let a = row(1, 0, 0, 1, 1);
    let b = row(2, 0, 1, 1, 1);
    assert_eq!(store.append(std::slice::from_ref(&a)).expect("append"), vec![AppendStatus::Inserted]);
    assert_eq!(
        store.append(&[a.clone(), b.clone(), b.clone()]).expect("append"),
        vec![AppendStatus::Duplicate, AppendStatus::Inserted, AppendStatus::Duplicate]
    );
    assert_eq!(store.count_events().expect("count"), 2);
    assert_eq!(store.append(&[]).expect("empty append"), vec![]);
    check(store, &query(QueryKind::EventsPerDay), vec![vec![date(1), Cell::Int(2), Cell::Int(1), Cell::Int(1)]]);
}

/// `apply` stores new rows and records the log position with them; the position only
/// moves with `apply`, and an empty apply moves it alone. `append` after `apply` still
/// finds the applied rows (the replay path after a crash).
pub fn apply_records_the_position(store: &dyn EventStore) {
    assert_eq!(store.applied_position().expect("position"), None);
    let a = row(1, 0, 0, 1, 1);
    let b = row(2, 0, 1, 1, 1);
    assert_eq!(store.apply(std::slice::from_ref(&a), 40).expect("apply"), vec![AppendStatus::Inserted]);
    assert_eq!(store.applied_position().expect("position"), Some(40));
    assert_eq!(store.apply(std::slice::from_ref(&b), 90).expect("apply"), vec![AppendStatus::Inserted]);
    assert_eq!(store.applied_position().expect("position"), Some(90));
    assert_eq!(
        store.append(&[a.clone(), b.clone()]).expect("replayed append"),
        vec![AppendStatus::Duplicate, AppendStatus::Duplicate]
    );
    store.append(&[row(3, 0, 2, 1, 1)]).expect("append");
    assert_eq!(store.applied_position().expect("position"), Some(90));
    assert_eq!(store.apply(&[], 120).expect("empty apply"), vec![]);
    assert_eq!(store.applied_position().expect("position"), Some(120));
    assert_eq!(store.count_events().expect("count"), 3);
}

/// `event_ids_since` names every stored event from a time on, with its `occurred_at`.
pub fn event_ids_since(store: &dyn EventStore) {
    store.append(&[row(1, 0, 0, 1, 1), row(2, 1, 0, 1, 1), row(3, 2, 5, 2, 1)]).expect("append");
    let mut ids = store.event_ids_since(T0 + DAY_MS).expect("ids");
    ids.sort();
    assert_eq!(ids, vec![(Uuid::from_u128(2), T0 + DAY_MS), (Uuid::from_u128(3), T0 + 2 * DAY_MS + 5 * 3_600_000)]);
    assert_eq!(store.event_ids_since(T0).expect("ids").len(), 3);
    assert!(store.event_ids_since(T0 + 3 * DAY_MS).expect("ids").is_empty());
}

/// Rows keep every field: a row stored is the row counted, whatever its contents.
pub fn rows_keep_their_fields(store: &dyn EventStore) {
    let mut r = row(1, 2, 5, 3, 4);
    r.plugins = vec!["@scope/a".into(), "b".into()];
    r.duration_ms = Some(1234);
    r.error_kind = Some("EACCES".into());
    r.ci = "github_actions".into();
    r.container = true;
    r.env = Env::Production;
    r.props = BTreeMap::from([
        ("s".to_string(), PropValue::Str("x y".into())),
        ("i".to_string(), PropValue::Int(-3)),
        ("f".to_string(), PropValue::Float(0.5)),
        ("b".to_string(), PropValue::Bool(true)),
    ]);
    append_all(store, &[r]);
    let split = |d| query(QueryKind::Split { dimension: d });
    check(store, &split(Dimension::Ci), vec![labelled("github_actions", &[1, 1, 1])]);
    check(store, &split(Dimension::Container), vec![labelled("true", &[1, 1, 1])]);
    check(store, &split(Dimension::ErrorKind), vec![labelled("EACCES", &[1, 1, 1])]);
    check(store, &split(Dimension::Env), vec![labelled("production", &[1, 1, 1])]);
    check(
        store,
        &query(QueryKind::TopPlugins { limit: 10 }),
        vec![labelled("@scope/a", &[1, 1, 1]), labelled("b", &[1, 1, 1])],
    );
    let known = store.known_values("demo").expect("known values");
    assert_eq!(known.plugins.into_iter().collect::<Vec<_>>(), vec!["@scope/a", "b"]);
    assert_eq!(known.props.get("s").map(|s| s.iter().cloned().collect::<Vec<_>>()), Some(vec!["x y".to_string()]));
    assert!(!known.props.contains_key("i"), "only string props are known values");
    let context: Vec<(&str, Vec<&str>)> =
        known.context.iter().map(|(f, v)| (f.name(), v.iter().map(String::as_str).collect())).collect();
    assert_eq!(
        context,
        [
            ("app_version", vec!["1.0.0"]),
            ("os", vec!["linux"]),
            ("os_version", vec!["6"]),
            ("arch", vec!["x86_64"]),
            ("runtime", vec!["node"]),
            ("runtime_version", vec!["20.11.1"]),
            ("ci", vec!["github_actions"]),
        ]
    );
    let mut other_app = row(2, 2, 5, 3, 4);
    other_app.app = "other".into();
    append_all(store, &[other_app]);
    assert_eq!(
        store.known_values("other").expect("known values").context.keys().copied().collect::<Vec<_>>(),
        ContextField::ALL[..6].to_vec(),
        "an empty context value (no CI) is not a known value"
    );
    assert!(store.known_values("other").expect("known values").plugins.is_empty());
}

/// Events per day: counts, distinct projects and machines, range ends, other apps.
pub fn events_per_day(store: &dyn EventStore) {
    let mut rows = vec![
        row(1, 0, 0, 1, 1),
        row(2, 0, 23, 1, 2),
        row(3, 0, 12, 2, 2),
        row(4, 2, 0, 1, 1),
        row(5, -1, 23, 1, 1), // before the range
        row(6, 30, 0, 1, 1),  // at the exclusive end
    ];
    let mut other = row(7, 0, 1, 9, 9);
    other.app = "other".into();
    rows.push(other);
    // Out of order arrival changes nothing.
    rows.reverse();
    append_all(store, &rows);
    check(
        store,
        &query(QueryKind::EventsPerDay),
        vec![
            vec![date(1), Cell::Int(3), Cell::Int(2), Cell::Int(2)],
            vec![date(3), Cell::Int(1), Cell::Int(1), Cell::Int(1)],
        ],
    );
    let mut empty = query(QueryKind::EventsPerDay);
    empty.from_ms = T0 + 10 * DAY_MS;
    empty.to_ms = T0 + 20 * DAY_MS;
    check(store, &empty, vec![]);
}

/// One project with many events (two machines, three days, repeated plugins, an error
/// and a timed event) counts once everywhere, whatever the number of its events.
pub fn one_busy_project(store: &dyn EventStore) {
    let mut rows = Vec::new();
    for i in 0..600u128 {
        let day = [0, 3, 8][(i % 3) as usize];
        let mut r = row(i + 1, day, (i % 24) as i64, 1, 1 + (i % 2) as u8);
        r.plugins = if i % 4 == 0 { vec!["a".into(), "b".into()] } else { vec!["a".into()] };
        if i == 7 {
            r.event = "error".into();
            r.error_kind = Some("EACCES".into());
        }
        if i % 100 == 0 {
            r.event = "build.finished".into();
            r.duration_ms = Some(1000 + i as u64);
        }
        rows.push(r);
    }
    append_all(store, &rows);
    // 200 events a day on days 0, 3 and 8 (October 1, 4 and 9).
    check(
        store,
        &query(QueryKind::EventsPerDay),
        vec![
            vec![date(1), Cell::Int(200), Cell::Int(1), Cell::Int(2)],
            vec![date(4), Cell::Int(200), Cell::Int(1), Cell::Int(2)],
            vec![date(9), Cell::Int(200), Cell::Int(1), Cell::Int(2)],
        ],
    );
    // Every window that holds a day with events sees the one project and its two machines.
    let mut q = query(QueryKind::Active { windows: vec![1, 7, 28] });
    q.to_ms = T0 + 9 * DAY_MS;
    check(store, &q, vec![ints(&[1, 1, 2]), ints(&[7, 1, 2]), ints(&[28, 1, 2])]);
    // "a" on all 600 events, "b" on every fourth (even numbers: machine 1 only).
    check(
        store,
        &query(QueryKind::TopPlugins { limit: 5 }),
        vec![labelled("a", &[1, 2, 600]), labelled("b", &[1, 1, 150])],
    );
    check(store, &query(QueryKind::Split { dimension: Dimension::ErrorKind }), vec![labelled("EACCES", &[1, 1, 1])]);
    check(
        store,
        &query(QueryKind::CoUsage { plugin: None, limit: 5 }),
        vec![
            vec![text("a"), text("b"), Cell::Int(1), Cell::Int(1), Cell::Int(1), Cell::Int(1)],
            vec![text("b"), text("a"), Cell::Int(1), Cell::Int(1), Cell::Int(1), Cell::Int(1)],
        ],
    );
    // Six builds (i = 0, 100, …, 500): nearest rank of 1000..1500 in steps of 100.
    check(
        store,
        &query(QueryKind::Durations { event: "build.finished".into(), period: None, dimension: None }),
        vec![ints(&[6, 1, 1200, 1500, 1500])],
    );
    // First seen in the week of October 1 (Monday September 28); active again in the weeks
    // of October 4 (the same week) and October 9 (the next).
    let mut q = query(QueryKind::Retention { weeks: 2 });
    q.to_ms = T0 + 21 * DAY_MS;
    check(
        store,
        &q,
        vec![
            vec![date_of(9, 28), Cell::Int(0), Cell::Int(1)],
            vec![date_of(9, 28), Cell::Int(1), Cell::Int(1)],
            vec![date_of(9, 28), Cell::Int(2), Cell::Int(0)],
        ],
    );
}

/// Active projects and machines over windows ending at `to_ms`.
pub fn active_windows(store: &dyn EventStore) {
    // to_ms = T0 + 30 days. Day 29 is inside the 1-day window, day 23 inside 7, day 2 inside 28.
    append_all(
        store,
        &[
            row(1, 29, 5, 1, 1),
            row(2, 29, 6, 1, 1),
            row(3, 23, 0, 2, 2),
            row(4, 23, 1, 3, 2),
            row(5, 2, 0, 4, 3),
            row(6, 1, 0, 5, 4),  // 29 days before the end: outside 28
            row(7, 30, 0, 6, 5), // at the end: outside every window
        ],
    );
    check(
        store,
        &query(QueryKind::Active { windows: vec![1, 7, 28] }),
        vec![ints(&[1, 1, 1]), ints(&[7, 3, 2]), ints(&[28, 4, 3])],
    );
}

/// Top plugins: by distinct projects, ties by name, limit.
pub fn top_plugins(store: &dyn EventStore) {
    let with = |id, p, plugins: &[&str]| {
        let mut r = row(id, 1, 0, p, p);
        r.plugins = plugins.iter().map(|s| s.to_string()).collect();
        r
    };
    append_all(
        store,
        &[
            with(1, 1, &["graphql", "i18n"]),
            with(2, 1, &["graphql"]),
            with(3, 2, &["graphql", "seo"]),
            with(4, 3, &["i18n", "seo"]),
            with(5, 4, &["users"]),
        ],
    );
    check(
        store,
        &query(QueryKind::TopPlugins { limit: 3 }),
        vec![labelled("graphql", &[2, 2, 3]), labelled("i18n", &[2, 2, 2]), labelled("seo", &[2, 2, 2])],
    );
    let mut q = query(QueryKind::TopPlugins { limit: 10 });
    q.filters.plugin = Some("seo".into());
    check(store, &q, vec![labelled("seo", &[2, 2, 2]), labelled("graphql", &[1, 1, 1]), labelled("i18n", &[1, 1, 1])]);
}

/// Splits by dimension, and every filter.
pub fn splits_and_filters(store: &dyn EventStore) {
    let with = |id, p, env, os: &str, version: &str| {
        let mut r = row(id, 3, 0, p, p);
        r.env = env;
        r.os = os.into();
        r.app_version = version.into();
        r
    };
    append_all(
        store,
        &[
            with(1, 1, Env::Development, "linux", "1.0.0"),
            with(2, 1, Env::Production, "linux", "1.0.0"),
            with(3, 2, Env::Production, "macos", "1.1.0"),
            with(4, 3, Env::Production, "windows", "1.1.0"),
            with(5, 3, Env::Production, "windows", "1.1.0"),
            with(6, 4, Env::Test, "linux", "1.1.0"),
        ],
    );
    let split = |d| query(QueryKind::Split { dimension: d });
    check(
        store,
        &split(Dimension::Env),
        vec![labelled("production", &[3, 3, 4]), labelled("development", &[1, 1, 1]), labelled("test", &[1, 1, 1])],
    );
    check(
        store,
        &split(Dimension::Os),
        vec![labelled("linux", &[2, 2, 3]), labelled("windows", &[1, 1, 2]), labelled("macos", &[1, 1, 1])],
    );
    let mut q = split(Dimension::Os);
    q.filters.env = Some(Env::Production);
    q.filters.app_version = Some("1.1.0".into());
    check(store, &q, vec![labelled("windows", &[1, 1, 2]), labelled("macos", &[1, 1, 1])]);
    let mut q = split(Dimension::AppVersion);
    q.filters.os = Some("linux".into());
    check(store, &q, vec![labelled("1.0.0", &[1, 1, 2]), labelled("1.1.0", &[1, 1, 1])]);
    check(store, &split(Dimension::ErrorKind), vec![]);
}

/// Erasing a project removes all its rows and nothing else.
pub fn erase_project(store: &dyn EventStore) {
    append_all(store, &[row(1, 0, 0, 1, 1), row(2, 1, 0, 1, 2), row(3, 1, 0, 2, 2)]);
    assert_eq!(store.erase_project(&project(1)).expect("erase"), 2);
    assert_eq!(store.erase_project(&project(1)).expect("erase again"), 0);
    assert_eq!(store.count_events().expect("count"), 1);
    check(store, &query(QueryKind::Active { windows: vec![30] }), vec![ints(&[30, 1, 1])]);
}

/// Retention deletes one app's rows older than the cut-off: at midnight whole days go; a
/// cut inside a day keeps the rest of that day; other apps keep everything.
pub fn retention(store: &dyn EventStore) {
    let mut other = row(4, 0, 0, 3, 3);
    other.app = "other".into();
    append_all(store, &[row(1, 0, 0, 1, 1), row(2, 5, 0, 1, 1), row(3, 10, 0, 2, 2), row(5, 10, 5, 1, 1), other]);
    assert_eq!(store.apply_retention("demo", T0 + 5 * DAY_MS).expect("retention"), 1);
    assert_eq!(store.count_events().expect("count"), 4);
    check(
        store,
        &query(QueryKind::EventsPerDay),
        vec![
            vec![date(6), Cell::Int(1), Cell::Int(1), Cell::Int(1)],
            vec![date(11), Cell::Int(2), Cell::Int(2), Cell::Int(2)],
        ],
    );
    assert_eq!(store.apply_retention("demo", T0 + 10 * DAY_MS + 2 * 3_600_000).expect("retention"), 2);
    check(store, &query(QueryKind::EventsPerDay), vec![vec![date(11), Cell::Int(1), Cell::Int(1), Cell::Int(1)]]);
    let mut q = query(QueryKind::EventsPerDay);
    q.app = "other".into();
    check(store, &q, vec![vec![date(1), Cell::Int(1), Cell::Int(1), Cell::Int(1)]]);
    assert_eq!(store.count_events().expect("count"), 2);
}

fn text(s: &str) -> Cell {
    Cell::Text(s.into())
}

fn date_of(month: u32, d: u32) -> Cell {
    Cell::Date(NaiveDate::from_ymd_opt(2026, month, d).expect("valid date"))
}

/// Daily and rolling distinct actives, one row per day, zeros included.
pub fn active_series(store: &dyn EventStore) {
    append_all(store, &[row(1, 0, 1, 1, 1), row(2, 1, 1, 2, 2), row(3, 3, 1, 1, 1), row(4, 3, 2, 3, 3)]);
    let mut q = query(QueryKind::ActiveSeries { window_days: 1 });
    q.to_ms = T0 + 5 * DAY_MS;
    let series = |v: [i64; 5]| (0..5).map(|d| vec![date(1 + d as u32), Cell::Int(v[d]), Cell::Int(v[d])]).collect();
    check(store, &q, series([1, 1, 0, 2, 0]));
    q.kind = QueryKind::ActiveSeries { window_days: 3 };
    check(store, &q, series([1, 2, 2, 3, 2]));
}

/// Breakdowns by period and dimensions, with shares' denominators and top-N.
pub fn breakdowns(store: &dyn EventStore) {
    let with = |id, day, p: u8, env, plugins: &[&str]| {
        let mut r = row(id, day, 0, p, p);
        r.env = env;
        r.plugins = plugins.iter().map(|s| s.to_string()).collect();
        r
    };
    append_all(
        store,
        &[
            with(1, 0, 1, Env::Development, &["a", "b"]),
            with(2, 1, 2, Env::Production, &["a"]),
            with(3, 4, 1, Env::Development, &["b"]),
            with(4, 5, 3, Env::Production, &[]),
        ],
    );
    let q =
        query(QueryKind::Breakdown { period: Some(Period::Week), dimensions: vec![Dimension::Plugin], limit: None });
    check(
        store,
        &q,
        vec![
            [vec![date_of(9, 28), text("a")], ints(&[2, 2, 2, 2])].concat(),
            [vec![date_of(9, 28), text("b")], ints(&[1, 1, 1, 2])].concat(),
            [vec![date(5), text("b")], ints(&[1, 1, 1, 2])].concat(),
        ],
    );
    let q = query(QueryKind::Breakdown {
        period: None,
        dimensions: vec![Dimension::Env, Dimension::Plugin],
        limit: Some(1),
    });
    check(store, &q, vec![[vec![text("development"), text("b")], ints(&[1, 1, 2, 3])].concat()]);
    let q = query(QueryKind::Breakdown { period: Some(Period::Day), dimensions: vec![], limit: None });
    check(
        store,
        &q,
        vec![
            [vec![date(1)], ints(&[1, 1, 1, 1])].concat(),
            [vec![date(2)], ints(&[1, 1, 1, 1])].concat(),
            [vec![date(5)], ints(&[1, 1, 1, 1])].concat(),
            [vec![date(6)], ints(&[1, 1, 1, 1])].concat(),
        ],
    );
}

/// Runtime versions grouped as major and major.minor.
pub fn runtime_version_groups(store: &dyn EventStore) {
    let with = |id, p: u8, v: &str| {
        let mut r = row(id, 0, 0, p, p);
        r.runtime_version = v.into();
        r
    };
    append_all(store, &[with(1, 1, "20.11.1"), with(2, 2, "20.18.0"), with(3, 3, "18.20.4"), with(4, 3, "20.11.0")]);
    let split = |d| query(QueryKind::Split { dimension: d });
    check(store, &split(Dimension::RuntimeMajor), vec![labelled("20", &[3, 3, 3]), labelled("18", &[1, 1, 1])]);
    check(
        store,
        &split(Dimension::RuntimeMinor),
        vec![labelled("20.11", &[2, 2, 2]), labelled("18.20", &[1, 1, 1]), labelled("20.18", &[1, 1, 1])],
    );
}

/// Co-usage of plugins per project, for one plugin and as a matrix.
pub fn co_usage(store: &dyn EventStore) {
    let with = |id, p: u8, plugins: &[&str]| {
        let mut r = row(id, 2, 0, p, p);
        r.plugins = plugins.iter().map(|s| s.to_string()).collect();
        r
    };
    append_all(
        store,
        &[
            with(1, 1, &["a", "b"]),
            with(2, 1, &["c"]),
            with(3, 2, &["b", "a"]),
            with(4, 3, &["a"]),
            with(5, 4, &["c"]),
            with(6, 5, &[]),
        ],
    );
    let pair = |a: &str, b: &str, v: &[i64]| [vec![text(a), text(b)], ints(v)].concat();
    check(
        store,
        &query(QueryKind::CoUsage { plugin: Some("a".into()), limit: 10 }),
        vec![pair("a", "b", &[2, 3, 2, 5]), pair("a", "c", &[1, 3, 2, 5])],
    );
    check(
        store,
        &query(QueryKind::CoUsage { plugin: None, limit: 2 }),
        vec![pair("a", "b", &[2, 3, 2, 5]), pair("b", "a", &[2, 2, 3, 5])],
    );
    check(store, &query(QueryKind::CoUsage { plugin: Some("zzz".into()), limit: 10 }), vec![]);
}

/// Nearest-rank percentiles of durations, overall and by week and OS.
pub fn durations(store: &dyn EventStore) {
    let timed = |id, day, p: u8, ms: Option<u64>, os: &str| {
        let mut r = row(id, day, 0, p, p);
        r.event = "project.created".into();
        r.duration_ms = ms;
        r.os = os.into();
        r
    };
    let mut other = timed(9, 0, 1, Some(999_999), "linux");
    other.event = "build.finished".into();
    append_all(
        store,
        &[
            timed(1, 0, 1, Some(100), "linux"),
            timed(2, 0, 2, Some(200), "macos"),
            timed(3, 1, 3, Some(300), "linux"),
            timed(4, 4, 1, Some(400), "linux"),
            timed(5, 4, 4, None, "linux"),
            other,
        ],
    );
    let event = "project.created".to_string();
    check(
        store,
        &query(QueryKind::Durations { event: event.clone(), period: None, dimension: None }),
        vec![ints(&[4, 3, 200, 400, 400])],
    );
    check(
        store,
        &query(QueryKind::Durations { event, period: Some(Period::Week), dimension: Some(Dimension::Os) }),
        vec![
            [vec![date_of(9, 28), text("linux")], ints(&[2, 2, 100, 300, 300])].concat(),
            [vec![date_of(9, 28), text("macos")], ints(&[1, 1, 200, 200, 200])].concat(),
            [vec![date(5), text("linux")], ints(&[1, 1, 400, 400, 400])].concat(),
        ],
    );
}

/// Weekly cohorts by first event ever, and their activity in later weeks.
pub fn retention_cohorts(store: &dyn EventStore) {
    append_all(
        store,
        &[
            row(1, 0, 0, 1, 1),
            row(2, 5, 0, 1, 1),
            row(3, 12, 0, 1, 1),
            row(4, 1, 0, 2, 2),
            row(5, 19, 0, 2, 2),
            row(6, 6, 0, 3, 3),
            row(7, -10, 0, 4, 4), // first seen before the range: not a cohort of it
            row(8, 2, 0, 4, 4),
        ],
    );
    let mut q = query(QueryKind::Retention { weeks: 2 });
    q.to_ms = T0 + 21 * DAY_MS;
    check(
        store,
        &q,
        vec![
            vec![date_of(9, 28), Cell::Int(0), Cell::Int(2)],
            vec![date_of(9, 28), Cell::Int(1), Cell::Int(1)],
            vec![date_of(9, 28), Cell::Int(2), Cell::Int(1)],
            vec![date(5), Cell::Int(0), Cell::Int(1)],
            vec![date(5), Cell::Int(1), Cell::Int(0)],
            vec![date(5), Cell::Int(2), Cell::Int(0)],
        ],
    );
}

/// A seeded mixed dataset (many projects and machines, every dimension varied, events out
/// of order over 60 days, repeated ids within and across appends) asked every kind of
/// question, over whole days and over ranges that cut days, with and without filters and
/// groupings: each answer must equal the reference semantics (the in-memory evaluator).
/// This is what keeps a backend's rollups and its raw rows answering alike.
pub fn matches_reference(store: &dyn EventStore) {
    let (rows, shuffled) = reference_dataset();
    // Out of order, in several appends, some ids sent twice.
    for chunk in shuffled.chunks(700) {
        let mut batch = chunk.to_vec();
        batch.extend(chunk.iter().take(20).cloned());
        store.append(&batch).expect("append");
    }
    store.append(&shuffled[..100]).expect("resend");
    assert_eq!(store.count_events().expect("count"), rows.len() as u64);
    answers_like_reference(store);
}

/// The rows of [`matches_reference`]'s dataset, and the same in the order it appends them.
fn reference_dataset() -> (Vec<EventRow>, Vec<EventRow>) {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    let mut rng = StdRng::seed_from_u64(7);
    let pick = |rng: &mut StdRng, xs: &[&str]| xs[rng.random_range(0..xs.len())].to_string();
    let plugins = ["a", "b", "c", "d", "e", "f"];
    let mut rows = Vec::new();
    for i in 0..3000u128 {
        let p = rng.random_range(0..60u8);
        let mut r = row(i + 1, rng.random_range(0..60), rng.random_range(0..24), p, p / 2 + rng.random_range(0..3u8));
        r.occurred_at_ms += rng.random_range(0..3_600_000);
        r.app = if rng.random_bool(0.9) { "demo".into() } else { "other".into() };
        r.env = [Env::Development, Env::Production, Env::Test, Env::Staging][rng.random_range(0..4)];
        r.os = pick(&mut rng, &["linux", "macos", "windows"]);
        r.arch = pick(&mut rng, &["x86_64", "aarch64"]);
        r.runtime_version = pick(&mut rng, &["18.20.4", "20.9.0", "20.11.1", "20.18.0", "22.9.0", "other", ""]);
        if r.app == "other" {
            // Several runtimes: what the rollup answers from rows rather than indexes.
            r.runtime = pick(&mut rng, &["node", "bun"]);
        }
        r.app_version = pick(&mut rng, &["1.0.0", "1.1.0", "2.0.0"]);
        r.ci = pick(&mut rng, &["", "", "github_actions"]);
        r.container = rng.random_bool(0.3);
        r.event = pick(&mut rng, &["command.run", "server.started", "project.created", "error"]);
        if r.event == "error" {
            r.error_kind = Some(pick(&mut rng, &["EACCES", "PORT_IN_USE"]));
        }
        if r.event == "project.created" || rng.random_bool(0.1) {
            r.duration_ms = Some(rng.random_range(1..100_000));
        }
        let n = rng.random_range(0..4);
        for _ in 0..n {
            let x = pick(&mut rng, &plugins);
            if !r.plugins.contains(&x) {
                r.plugins.push(x);
            }
        }
        rows.push(r);
    }
    let mut shuffled = rows.clone();
    for i in (1..shuffled.len()).rev() {
        shuffled.swap(i, rng.random_range(0..=i));
    }
    (rows, shuffled)
}

/// Asks a store holding exactly [`matches_reference`]'s dataset (a store reopened after
/// it, say) every question of it and compares with the reference semantics.
pub fn answers_like_reference(store: &dyn EventStore) {
    let (rows, _) = reference_dataset();
    let dims = [
        Dimension::Env,
        Dimension::Os,
        Dimension::Plugin,
        Dimension::ErrorKind,
        Dimension::Event,
        Dimension::RuntimeMajor,
        Dimension::RuntimeMinor,
        Dimension::AppVersion,
        Dimension::Container,
        Dimension::Ci,
    ];
    let mut kinds = vec![
        QueryKind::EventsPerDay,
        QueryKind::Active { windows: vec![1, 7, 28, 0] },
        QueryKind::TopPlugins { limit: 4 },
        QueryKind::ActiveSeries { window_days: 7 },
        QueryKind::ActiveSeries { window_days: 1 },
        QueryKind::CoUsage { plugin: None, limit: 3 },
        QueryKind::CoUsage { plugin: Some("a".into()), limit: 10 },
        QueryKind::CoUsage { plugin: Some("zz".into()), limit: 10 },
        QueryKind::Retention { weeks: 4 },
        QueryKind::Durations { event: "project.created".into(), period: Some(Period::Week), dimension: None },
        QueryKind::Durations { event: "command.run".into(), period: None, dimension: Some(Dimension::Plugin) },
        QueryKind::Durations {
            event: "project.created".into(),
            period: Some(Period::Day),
            dimension: Some(Dimension::Os),
        },
        QueryKind::Breakdown { period: None, dimensions: vec![], limit: None },
    ];
    let drop_support: Vec<QueryKind> = [Dimension::RuntimeMajor, Dimension::RuntimeMinor, Dimension::RuntimeVersion]
        .into_iter()
        .map(|dimension| QueryKind::DropSupport { dimension })
        .collect();
    kinds.extend(drop_support.iter().cloned());
    for d in dims {
        kinds.push(QueryKind::Split { dimension: d });
        kinds.push(QueryKind::Breakdown { period: Some(Period::Week), dimensions: vec![d], limit: Some(3) });
        let second = if d == Dimension::Env { Dimension::Os } else { Dimension::Env };
        kinds.push(QueryKind::Breakdown { period: Some(Period::Day), dimensions: vec![d, second], limit: None });
        if d != Dimension::Plugin {
            kinds.push(QueryKind::Breakdown { period: None, dimensions: vec![Dimension::Plugin, d], limit: Some(5) });
        }
        // Error kinds by a second dimension (the errors page), both orders: read from the
        // error kind × context value indexes where `d` is a context dimension.
        if d != Dimension::ErrorKind {
            kinds.push(QueryKind::Breakdown {
                period: None,
                dimensions: vec![Dimension::ErrorKind, d],
                limit: Some(3),
            });
            kinds.push(QueryKind::Breakdown {
                period: Some(Period::Week),
                dimensions: vec![d, Dimension::ErrorKind],
                limit: None,
            });
        }
    }
    let twice = QueryKind::Breakdown { period: None, dimensions: vec![Dimension::Plugin; 2], limit: None };
    let refused = store.query(&Query { kind: twice, ..query(QueryKind::EventsPerDay) });
    assert!(matches!(refused, Err(crate::StoreError::InvalidQuery(_))), "{refused:?}");
    let filters = [
        Filters::default(),
        Filters { env: Some(Env::Production), ..Filters::default() },
        Filters { os: Some("macos".into()), app_version: Some("1.1.0".into()), ..Filters::default() },
        Filters { plugin: Some("b".into()), ..Filters::default() },
        Filters { plugin: Some("nope".into()), ..Filters::default() },
    ];
    let ranges = [
        (T0, T0 + 60 * DAY_MS),
        (T0 + 10 * DAY_MS, T0 + 38 * DAY_MS),
        (T0 + 59 * DAY_MS, T0 + 61 * DAY_MS),
        (T0 + 70 * DAY_MS, T0 + 80 * DAY_MS),
        (T0 + 5 * DAY_MS + 3_600_000, T0 + 20 * DAY_MS + 7_200_000),
    ];
    // App `other` runs two runtimes.
    let asked = kinds.iter().map(|k| ("demo", k)).chain(drop_support.iter().map(|k| ("other", k)));
    for (app, kind) in asked {
        for f in &filters {
            for (from_ms, to_ms) in ranges {
                let q = Query { app: app.into(), from_ms, to_ms, filters: f.clone(), kind: kind.clone() };
                let want = crate::memory::evaluate(rows.iter(), &q);
                let got = store.query(&q).expect("query succeeds");
                assert_eq!(got, want, "query {q:?}");
            }
        }
    }
}

/// Generates one `#[test]` per conformance check for a backend; `$make` is an expression
/// returning a fresh empty store (anything that derefs to `dyn EventStore`, kept alive for
/// the test).
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            append_is_idempotent, apply_records_the_position, event_ids_since, rows_keep_their_fields, events_per_day, active_windows,
            top_plugins, splits_and_filters, erase_project, retention, active_series, breakdowns,
            runtime_version_groups, co_usage, durations, retention_cohorts, drop_support, matches_reference, one_busy_project);
    };
    (@each $make:expr; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                let store = $make;
                $crate::conformance::$name(&*store);
            }
        )*
    };
}

#[cfg(test)]
mod memory {
    crate::conformance_tests!(Box::new(crate::MemoryStore::new()));
}

#[cfg(test)]
mod memory_with_rollup {
    crate::conformance_tests!(Box::new(crate::rollup::testing::RolledUp::default()));
}

#[cfg(test)]
mod memory_with_indexed_rollup {
    crate::conformance_tests!(Box::new(crate::rollup::testing::RolledUp::eager()));
}
