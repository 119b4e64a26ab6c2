//! `export_rows` reads back every stored row exactly as it was appended.

use std::collections::BTreeMap;

use tally_protocol::{Env, PropValue};
use tally_store::EventStore;
use tally_store::conformance::row;

#[test]
fn exported_rows_equal_the_appended_rows_oldest_first() {
    let store = tally_store_duckdb::DuckDbStore::open_in_memory().expect("open");
    let mut full = row(1, 3, 5, 3, 4);
    full.plugins = vec!["@scope/a".into(), "b".into()];
    full.duration_ms = Some(1234);
    full.error_kind = Some("EACCES".into());
    full.ci = "github_actions".into();
    full.container = true;
    full.env = Env::Production;
    full.props = BTreeMap::from([
        ("s".to_string(), PropValue::Str("x, \"y\"".into())),
        ("i".to_string(), PropValue::Int(-3)),
        ("f".to_string(), PropValue::Float(0.5)),
        ("b".to_string(), PropValue::Bool(true)),
    ]);
    let bare = row(2, 0, 1, 1, 1);
    let mut one_plugin = row(3, 1, 0, 2, 2);
    one_plugin.plugins = vec!["c".into()];
    store.append(&[full.clone(), bare.clone(), one_plugin.clone()]).expect("append");
    let mut batches = Vec::new();
    let n = store
        .export_rows(2, |rows| {
            batches.push(rows);
            Ok(())
        })
        .expect("export");
    assert_eq!(n, 3);
    assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1]);
    assert_eq!(batches.concat(), vec![bare, one_plugin, full]);
}
