//! Reading every stored row back as [`EventRow`]s, in `occurred_at` order, for `tally
//! migrate` (moving a store to another backend).

use duckdb::types::ValueRef;
use tally_protocol::{Env, PropValue};
use tally_store::{EventRow, Key16, StoreError};

use crate::{DuckDbStore, backend};

/// The staging table's list separator (`append.rs`), refused in stored strings: lists
/// and maps leave DuckDB joined by it.
const SEP: char = '\u{1f}';

const EXPORT: &str = "
SELECT event_id::VARCHAR, epoch_ms(received_at), epoch_ms(occurred_at), app, app_version, event,
       project::VARCHAR, machine::VARCHAR, env, os, os_version, arch, runtime, runtime_version, ci,
       container, array_to_string(plugins, chr(31)), len(plugins), duration_ms, error_kind,
       array_to_string(map_keys(props), chr(31)), array_to_string(map_values(props), chr(31)), cardinality(props)
FROM events ORDER BY occurred_at, event_id
";

impl DuckDbStore {
    /// Calls `each` with every stored row, `batch` rows at a time, oldest first; returns
    /// how many rows were read. Stops at the first error `each` returns.
    pub fn export_rows(
        &self,
        batch: usize,
        mut each: impl FnMut(Vec<EventRow>) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare(EXPORT).map_err(backend)?;
        let mut rows = stmt.query([]).map_err(backend)?;
        let mut pending = Vec::with_capacity(batch);
        let mut n = 0u64;
        while let Some(r) = rows.next().map_err(backend)? {
            pending.push(row(r)?);
            if pending.len() >= batch {
                n += pending.len() as u64;
                each(std::mem::take(&mut pending))?;
            }
        }
        if !pending.is_empty() {
            n += pending.len() as u64;
            each(pending)?;
        }
        Ok(n)
    }
}

fn row(r: &duckdb::Row<'_>) -> Result<EventRow, StoreError> {
    let text = |i: usize| -> Result<String, StoreError> { r.get::<_, String>(i).map_err(backend) };
    let int = |i: usize| -> Result<i64, StoreError> { r.get::<_, i64>(i).map_err(backend) };
    let key = |i: usize| -> Result<Key16, StoreError> {
        uuid::Uuid::parse_str(&text(i)?).map(|u| Key16(*u.as_bytes())).map_err(|e| StoreError::Backend(e.to_string()))
    };
    let list = |joined: String, len: i64| -> Vec<String> {
        if len == 0 { Vec::new() } else { joined.split(SEP).map(str::to_string).collect() }
    };
    let env = text(8)?;
    let props_len = int(22)?;
    let keys = list(text(20)?, props_len);
    let values = list(text(21)?, props_len);
    let props = keys
        .into_iter()
        .zip(values)
        .map(|(k, v)| {
            serde_json::from_str::<PropValue>(&v)
                .map(|v| (k, v))
                .map_err(|e| StoreError::Backend(format!("a stored property value {v:?} is not JSON: {e}")))
        })
        .collect::<Result<_, _>>()?;
    Ok(EventRow {
        event_id: uuid::Uuid::parse_str(&text(0)?).map_err(|e| StoreError::Backend(e.to_string()))?,
        received_at_ms: int(1)?,
        occurred_at_ms: int(2)?,
        app: text(3)?,
        app_version: text(4)?,
        event: text(5)?,
        project: key(6)?,
        machine: key(7)?,
        env: Env::parse(&env).ok_or_else(|| StoreError::Backend(format!("unknown env {env:?} in the events table")))?,
        os: text(9)?,
        os_version: text(10)?,
        arch: text(11)?,
        runtime: text(12)?,
        runtime_version: text(13)?,
        ci: text(14)?,
        container: r.get::<_, bool>(15).map_err(backend)?,
        plugins: list(text(16)?, int(17)?),
        duration_ms: match r.get_ref(18).map_err(backend)? {
            ValueRef::Null => None,
            _ => Some(u64::try_from(int(18)?).map_err(|e| StoreError::Backend(e.to_string()))?),
        },
        error_kind: r.get::<_, Option<String>>(19).map_err(backend)?,
        props,
    })
}
