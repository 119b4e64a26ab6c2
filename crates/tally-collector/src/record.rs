//! The ingest-log record of one request: its accepted rows, encoded.
//!
//! A record is a version byte, then the rows in postcard (a compact, non-self-describing
//! serde format: varints, length-prefixed strings). The version byte lets a later
//! collector read records an earlier one left unapplied, or refuse them clearly.

use tally_store::EventRow;

/// The version of the record layout written by this collector.
const VERSION: u8 = 1;

/// Encodes `rows` as one log record.
pub(crate) fn encode(rows: &[EventRow]) -> Vec<u8> {
    let mut out = vec![VERSION];
    postcard::to_io(rows, &mut out).expect("rows encode into a vector");
    out
}

/// Decodes a record written by [`encode`].
pub(crate) fn decode(record: &[u8]) -> Result<Vec<EventRow>, String> {
    match record.split_first() {
        Some((&VERSION, rows)) => postcard::from_bytes(rows).map_err(|e| format!("undecodable record: {e}")),
        Some((v, _)) => Err(format!("record version {v} is not known to this collector (it writes {VERSION})")),
        None => Err("empty record".into()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tally_protocol::PropValue;

    use super::*;

    #[test]
    fn rows_round_trip() {
        let mut a = tally_store::conformance::row(1, 0, 0, 1, 2);
        a.plugins = vec!["@scope/a".into(), "b".into()];
        a.duration_ms = Some(1234);
        a.error_kind = Some("EACCES".into());
        a.ci = "github_actions".into();
        a.props = BTreeMap::from([
            ("s".to_string(), PropValue::Str("x y".into())),
            ("i".to_string(), PropValue::Int(-3)),
            ("f".to_string(), PropValue::Float(0.5)),
            ("b".to_string(), PropValue::Bool(true)),
        ]);
        let b = tally_store::conformance::row(2, 3, 4, 5, 6);
        let rows = vec![a, b];
        let bytes = encode(&rows);
        assert_eq!(bytes[0], VERSION);
        assert_eq!(decode(&bytes).expect("decodes"), rows);
        assert!(decode(&[]).is_err());
        let mut newer = bytes.clone();
        newer[0] = VERSION + 1;
        assert!(decode(&newer).expect_err("newer version").contains("not known"));
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
