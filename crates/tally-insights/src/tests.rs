//! Unit tests of the catalog, suppression and shaping.
use super::*;
use tally_store::conformance::{T0, row};
use tally_store::{Column, ColumnType, DAY_MS, MemoryStore};

fn params() -> Params {
    Params { limit: 10, ..Params::new("demo", T0, T0 + 10 * DAY_MS) }
}

#[test]
fn a_plugin_used_by_k_minus_one_projects_is_never_published() {
    let store = MemoryStore::new();
    let mut rows = vec![];
    for p in 0..5u8 {
        let mut r = row(u128::from(p) + 1, 1, 0, p, p);
        r.plugins = vec!["popular".into()];
        if p < 4 {
            r.plugins.push("rare".into());
        }
        rows.push(r);
    }
    store.append(&rows).expect("append");
    let private = answer(&store, "top-plugins", params(), Audience::Private).expect("answer");
    assert_eq!(private.table.rows.len(), 2);
    let public = answer(&store, "top-plugins", params(), Audience::Public { k: 5 }).expect("answer");
    assert_eq!(public.table.rows, vec![vec![Cell::Text("popular".into()), Cell::Int(5), Cell::Int(5), Cell::Int(5)]]);
    assert_eq!(public.suppression, Some(Suppression { k: 5, hidden_rows: 1 }));
    let json = serde_json::to_string(&public).expect("json");
    assert!(!json.contains("rare"), "{json}");
}

#[test]
fn a_huge_k_does_not_publish_every_row() {
    // Issue 11: `k as i64` made k = usize::MAX (or any k above i64::MAX) negative.
    let table = || Table {
        columns: vec![Column::new("plugin", ColumnType::Text), Column::new("projects", ColumnType::Int)],
        rows: vec![
            vec![Cell::Text("a".into()), Cell::Int(i64::MAX)],
            vec![Cell::Text("b".into()), Cell::Int(5)],
            vec![Cell::Text("c".into()), Cell::Int(-1)],
        ],
    };
    let huge = [usize::MAX, usize::MAX - 1, (i64::MAX as usize) + 1, u64::MAX as usize];
    for k in huge {
        let mut t = table();
        assert_eq!(suppress(&mut t, k), Suppression { k, hidden_rows: 3 }, "k = {k}");
        assert!(t.rows.is_empty(), "k = {k}");
    }
    let mut t = table();
    assert_eq!(suppress(&mut t, i64::MAX as usize), Suppression { k: i64::MAX as usize, hidden_rows: 2 });
    assert_eq!(t.rows[0][0], Cell::Text("a".into()));
    let mut t = table();
    assert_eq!(suppress(&mut t, 5), Suppression { k: 5, hidden_rows: 1 }, "a negative count is never published");
}

fn plugin_rows(sets: &[&[&str]]) -> MemoryStore {
    let store = MemoryStore::new();
    let rows: Vec<_> = sets
        .iter()
        .enumerate()
        .map(|(i, plugins)| {
            let mut r = row(i as u128 + 1, 1, 0, i as u8, i as u8);
            r.plugins = plugins.iter().map(|p| p.to_string()).collect();
            r
        })
        .collect();
    store.append(&rows).expect("append");
    store
}

#[test]
fn co_usage_pairs_below_k_are_never_published() {
    // a+b together in 5 projects, a+c in 4 (k - 1).
    let ab: &[&str] = &["a", "b"];
    let abc: &[&str] = &["a", "b", "c"];
    let ac: &[&str] = &["a", "c"];
    let store = plugin_rows(&[abc, abc, abc, ab, ab, ac]);
    let mut p = params();
    p.focus = Some("a".into());
    let private = answer(&store, "co-usage", p.clone(), Audience::Private).expect("answer");
    assert_eq!(private.table.rows.len(), 2);
    let lift = private.table.column("lift").expect("lift column");
    // a in 6 projects, b in 5, both 5, total 6: lift = 5*6/(6*5) = 1.
    assert_eq!(private.table.rows[0][lift], Cell::Float(1.0));
    let public = answer(&store, "co-usage", p, Audience::Public { k: 5 }).expect("answer");
    let json = serde_json::to_string(&public).expect("json");
    assert!(!json.contains("\"c\""), "{json}");
    assert_eq!(public.suppression, Some(Suppression { k: 5, hidden_rows: 1 }));
}

#[test]
fn co_usage_lists_each_pair_once() {
    // Issue 13: the matrix listed a,b and b,a.
    let abc: &[&str] = &["a", "b", "c"];
    let ab: &[&str] = &["a", "b"];
    let store = plugin_rows(&[abc, abc, ab, &["c"]]);
    let got = answer(&store, "co-usage", params(), Audience::Private).expect("answer");
    let pairs: Vec<(String, String, i64)> = got
        .table
        .rows
        .iter()
        .map(|r| match (&r[0], &r[1], &r[2]) {
            (Cell::Text(a), Cell::Text(b), Cell::Int(n)) => (a.clone(), b.clone(), *n),
            other => panic!("{other:?}"),
        })
        .collect();
    let want = [("a", "b", 3), ("a", "c", 2), ("b", "c", 2)].map(|(a, b, n)| (a.to_string(), b.to_string(), n));
    assert_eq!(pairs, want);
    let mut focused = params();
    focused.focus = Some("c".into());
    let companions = answer(&store, "co-usage", focused, Audience::Private).expect("answer");
    assert_eq!(companions.table.rows.len(), 2, "with focus, every companion of c is listed");
}

#[test]
fn runtime_versions_sort_as_versions_and_compare_with_a_baseline() {
    let store = MemoryStore::new();
    let versions = ["20.11.1", "9.0.0", "18.20.4", "20.18.0", "22.1.0"];
    let rows: Vec<_> = versions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mut r = row(i as u128 + 1, 1, 0, i as u8, i as u8);
            r.runtime_version = v.to_string();
            r
        })
        .collect();
    store.append(&rows).expect("append");
    let mut p = params();
    p.baseline = Some(parse_baseline("version,share\n22,40\n20,35\n18,20\n16,5\n").expect("baseline"));
    let a = answer(&store, "runtime-versions", p, Audience::Private).expect("answer");
    let col = |n: &str| a.table.column(n).expect(n);
    let majors: Vec<String> = a.table.rows.iter().map(|r| r[col("runtime_major")].to_string()).collect();
    assert_eq!(majors, ["22", "20", "18", "16", "9"]);
    let row20 = &a.table.rows[1];
    assert_eq!(row20[col("projects")], Cell::Int(2));
    assert_eq!(row20[col("share")], Cell::Float(0.4));
    assert_eq!(row20[col("baseline_share")], Cell::Float(0.35));
    assert_eq!(row20[col("difference")], Cell::Float(0.05));
    assert_eq!(a.table.rows[3][col("projects")], Cell::Int(0), "16 is in the baseline only");
    assert!(parse_baseline("{\"20\": -1}").is_err());
    assert!(parse_baseline("20,abc\n18,x").is_err());
}

#[test]
fn version_order_is_numeric() {
    let mut v = vec!["2.10.0", "other", "2.9.1", "2.9.0-beta", "10.0.0", "2.9.0", "[redacted]", "2.9.00", "9"];
    v.sort_by(|a, b| compare_versions(a, b));
    assert_eq!(v, ["2.9.0", "2.9.00", "2.9.0-beta", "2.9.1", "2.10.0", "9", "10.0.0", "[redacted]", "other"]);
}

#[test]
fn drop_support_shares_and_k_anonymity() {
    // Every project also ran Node 18 on a second machine; newest majors: 18 for
    // projects 1..=5, 20 for 6..=10, 22 for 11..=15, 24 for 16.
    let store = MemoryStore::new();
    let rows: Vec<_> = (1..=16u8)
        .flat_map(|p| {
            let newest = ["18.20.4", "20.11.1", "22.1.0", "24.0.0"][usize::from(p - 1) / 5];
            [("18.20.4", 0), (newest, 1)].map(|(v, m)| {
                let mut r = row(u128::from(p) * 10 + m, 1, 0, p, p * 2 + m as u8);
                r.runtime_version = v.into();
                r
            })
        })
        .collect();
    store.append(&rows).expect("append");
    let a = answer(&store, "drop-support", params(), Audience::Private).expect("answer");
    let cols: Vec<&str> = a.table.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        cols,
        [
            "runtime",
            "runtime_major",
            "projects_newest",
            "projects_left",
            "projects_kept",
            "runtime_projects",
            "share_left"
        ]
    );
    let text: Vec<Vec<String>> = a.table.rows.iter().map(|r| r.iter().map(Cell::to_string).collect()).collect();
    assert_eq!(
        text,
        [
            ["node", "18", "5", "5", "11", "16", "0.3125"],
            ["node", "20", "5", "10", "6", "16", "0.625"],
            ["node", "22", "5", "15", "1", "16", "0.9375"],
            ["node", "24", "1", "16", "0", "16", "1"],
        ]
    );
    // Public: 22 would tell that one project is on 24 (kept 1), 24 that one project's
    // newest is 24; the rows shown only differ by groups of at least k projects.
    let public = answer(&store, "drop-support", params(), Audience::Public { k: 5 }).expect("answer");
    assert_eq!(public.suppression, Some(Suppression { k: 5, hidden_rows: 2 }));
    let shown: Vec<String> = public.table.rows.iter().map(|r| r[1].to_string()).collect();
    assert_eq!(shown, ["18", "20"]);
    let mut by_os = params();
    by_os.group_by = Some(Dimension::Os);
    assert!(matches!(answer(&store, "drop-support", by_os, Audience::Private), Err(InsightError::InvalidParams(_))));
}

#[test]
fn adoption_shares_use_the_period_denominator() {
    let store = plugin_rows(&[&["a"], &["a", "b"], &[], &["b"]]);
    let mut p = params();
    p.period = Some(Period::Week);
    let a = answer(&store, "plugin-adoption", p, Audience::Private).expect("answer");
    let share = a.table.column("share").expect("share");
    // 4 active projects in the week; a and b are each used by 2.
    assert_eq!(a.table.rows.iter().map(|r| r[share].clone()).collect::<Vec<_>>(), vec![Cell::Float(0.5); 2]);
}

#[test]
fn every_insight_answers_on_an_empty_store() {
    let store = MemoryStore::new();
    for i in CATALOG {
        let a = answer(&store, i.name, params(), Audience::Public { k: DEFAULT_K }).expect(i.name);
        assert_eq!(a.insight, i.name);
    }
    assert!(matches!(answer(&store, "nope", params(), Audience::Private), Err(InsightError::Unknown(_))));
    let mut empty = params();
    empty.to_ms = empty.from_ms;
    assert!(matches!(answer(&store, "active", empty, Audience::Private), Err(InsightError::InvalidParams(_))));
}
