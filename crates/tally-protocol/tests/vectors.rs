//! The protocol's test vectors (`vectors/`), checked through the same function the
//! collector uses. A client in another language can run the same files.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use tally_protocol::{PropValue, RejectReason, SchemaSet, check_batch};

#[derive(Deserialize)]
struct Vector {
    #[allow(dead_code)]
    description: String,
    now: DateTime<Utc>,
    batch: serde_json::Value,
    expect: Vec<String>,
    #[serde(default)]
    batch_error: Option<String>,
    #[serde(default)]
    dropped_props: usize,
    #[serde(default)]
    stored_props: Option<Vec<serde_json::Map<String, serde_json::Value>>>,
}

fn dir() -> PathBuf {
    Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")).join("vectors")
}

fn schemas() -> SchemaSet {
    let path = dir().join("schema.toml");
    let text = std::fs::read_to_string(&path).expect("schema.toml");
    SchemaSet::from_texts([(path.as_path(), text.as_str())]).expect("vector schema loads")
}

fn vectors(kind: &str) -> Vec<(String, Vector)> {
    let mut out: Vec<_> = std::fs::read_dir(dir().join(kind))
        .expect("vector dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let stem = p.file_stem().expect("stem").to_string_lossy().into_owned();
            let v: Vector = serde_json::from_str(&std::fs::read_to_string(&p).expect("read")).expect("vector parses");
            (stem, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty(), "no vectors in {kind}");
    out
}

/// The outcomes `check_batch` gives, as `accepted`, `duplicate` or `rejected:<reason>`.
fn run(v: &Vector) -> Result<(Vec<String>, usize, Vec<Vec<(String, PropValue)>>), RejectReason> {
    let body = serde_json::to_vec(&v.batch).expect("serialize");
    let checked =
        check_batch(&body, &schemas(), v.now, tally_protocol::limits::MAX_EVENT_AGE_MS).map_err(|r| r.reason)?;
    let mut props = vec![];
    let outcomes = checked
        .events
        .iter()
        .map(|(_, r)| match r {
            Ok(Some(a)) => {
                props.push(a.event.props.clone().into_iter().collect());
                "accepted".to_string()
            }
            Ok(None) => "duplicate".to_string(),
            Err(rej) => format!("rejected:{}", rej.reason),
        })
        .collect();
    Ok((outcomes, checked.dropped_props, props))
}

#[test]
fn every_valid_vector_is_accepted_as_described() {
    for (name, v) in vectors("valid") {
        let (outcomes, dropped, props) = run(&v).unwrap_or_else(|r| panic!("{name}: batch refused: {r}"));
        assert_eq!(outcomes, v.expect, "{name}");
        assert_eq!(dropped, v.dropped_props, "{name}: dropped props");
        if let Some(expected) = &v.stored_props {
            let expected: Vec<Vec<(String, PropValue)>> = expected
                .iter()
                .map(|m| m.iter().map(|(k, x)| (k.clone(), serde_json::from_value(x.clone()).expect("prop"))).collect())
                .collect();
            assert_eq!(props, expected, "{name}: stored props");
        }
    }
}

#[test]
fn every_invalid_vector_is_rejected_with_the_reason_its_file_names() {
    for (name, v) in vectors("invalid") {
        let reason_named = RejectReason::ALL
            .iter()
            .filter(|r| name == r.as_str() || name.starts_with(&format!("{}_", r.as_str())))
            .max_by_key(|r| r.as_str().len())
            .unwrap_or_else(|| panic!("{name}: file name names no reason"));
        match (run(&v), &v.batch_error) {
            (Err(got), Some(want)) => {
                assert_eq!(got.as_str(), want, "{name}");
                assert_eq!(got, *reason_named, "{name}");
            }
            (Ok((outcomes, _, _)), None) => {
                assert_eq!(outcomes, v.expect, "{name}");
                let wanted = format!("rejected:{}", reason_named.as_str());
                assert!(outcomes.contains(&wanted), "{name}: no event rejected with {wanted}: {outcomes:?}");
            }
            (got, want) => panic!("{name}: got {:?}, batch_error expected {want:?}", got.map(|g| g.0)),
        }
    }
}
