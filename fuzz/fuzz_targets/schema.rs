//! The app schema parser: any text either parses or fails with a located error, and a
//! parsed schema checks events without panicking.

#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tally_protocol::{AppSchema, Event, PropValue};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let schema = match AppSchema::parse(text, Path::new("fuzz.toml")) {
        Ok(schema) => schema,
        Err(e) => {
            assert!(e.line >= 1 && e.line <= text.lines().count().max(1) + 1, "line {} out of range: {e}", e.line);
            return;
        }
    };
    // Every declared event, carrying every declared property with a value of each type.
    let values = [PropValue::Str("x".into()), PropValue::Int(1), PropValue::Float(0.5), PropValue::Bool(true)];
    for (name, spec) in &schema.events {
        for value in &values {
            let props: BTreeMap<String, PropValue> = spec
                .props
                .iter()
                .chain(["undeclared".to_string()].iter())
                .map(|p| (p.clone(), value.clone()))
                .collect();
            let event = Event {
                event_id: Default::default(),
                event: name.clone(),
                occurred_at: chrono::DateTime::UNIX_EPOCH,
                plugins: Vec::new(),
                duration_ms: None,
                error_kind: None,
                props,
            };
            let _ = schema.check(&event);
        }
    }
});
