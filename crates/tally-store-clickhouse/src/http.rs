//! One ClickHouse server over its HTTP interface: statements, queries answered as
//! `JSONCompact`, and inserts as `JSONEachRow` lines.
//!
//! Plain HTTP with ureq (blocking, like the `EventStore` trait, and already the SDK's client)
//! rather than the `clickhouse` crate: that crate is async, and against Debian's 18.16 it
//! needs its schema validation off and cannot use server-side parameters, so it would
//! bring tokio into a blocking backend for no gain. Values are quoted by [`quote`], the one
//! place SQL text is built from strings.

use std::time::Duration;

use serde_json::Value;
use tally_store::StoreError;

/// Error codes after which the same statement may succeed later (ClickHouse's
/// `ErrorCodes`): timeouts, too many parts or queries, network, memory, shutdown.
const RETRYABLE_CODES: &[u32] = &[159, 202, 209, 210, 241, 242, 252, 279, 319, 425];

/// Settings every request carries: 64-bit integers as JSON numbers, and queries long
/// enough for an id check of a large batch.
const SETTINGS: &[(&str, &str)] = &[("output_format_json_quote_64bit_integers", "0"), ("max_query_size", "16777216")];

/// A ClickHouse server's HTTP endpoint and the database tally uses on it.
#[derive(Clone)]
pub(crate) struct Node {
    agent: ureq::Agent,
    /// `http://host:port/`.
    base: String,
    /// `host:port`, for messages.
    pub(crate) address: String,
    pub(crate) database: String,
    user: Option<(String, String)>,
}

impl Node {
    pub(crate) fn new(address: &str, database: &str, user: Option<(String, String)>) -> Node {
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(Duration::from_secs(600)))
            .http_status_as_error(false)
            .build();
        Node {
            agent: ureq::Agent::new_with_config(config),
            base: format!("http://{address}/"),
            address: address.to_string(),
            database: database.to_string(),
            user,
        }
    }

    /// Runs a statement that returns nothing (DDL, `ALTER`), in the server's default
    /// database (so that `CREATE DATABASE` works before the database exists).
    pub(crate) fn execute(&self, sql: &str) -> Result<(), StoreError> {
        self.post(sql.as_bytes(), None, &[]).map(drop)
    }

    /// Runs a query in tally's database; the rows of its `JSONCompact` answer.
    pub(crate) fn rows(&self, sql: &str) -> Result<Vec<Vec<Value>>, StoreError> {
        let text = self.post(format!("{sql} FORMAT JSONCompact").as_bytes(), Some(&self.database), &[])?;
        let mut answer: Value = serde_json::from_str(&text).map_err(|e| {
            StoreError::Backend(format!("clickhouse at {} answered no JSON ({e}): {text:.200}", self.address))
        })?;
        match answer.get_mut("data").map(Value::take) {
            Some(Value::Array(rows)) => rows
                .into_iter()
                .map(|r| match r {
                    Value::Array(cells) => Ok(cells),
                    other => Err(StoreError::Backend(format!("clickhouse row is not an array: {other}"))),
                })
                .collect(),
            _ => Err(StoreError::Backend(format!("clickhouse answer without data: {text:.200}"))),
        }
    }

    /// Inserts `JSONEachRow` lines into `table` of tally's database, with extra settings.
    pub(crate) fn insert(&self, table: &str, lines: &[u8], settings: &[(&str, &str)]) -> Result<(), StoreError> {
        let mut body = format!("INSERT INTO {table} FORMAT JSONEachRow\n").into_bytes();
        body.extend_from_slice(lines);
        self.post(&body, Some(&self.database), settings).map(drop)
    }

    fn post(&self, body: &[u8], database: Option<&str>, settings: &[(&str, &str)]) -> Result<String, StoreError> {
        let mut request = self.agent.post(&self.base).query_pairs(SETTINGS.iter().chain(settings).copied());
        if let Some(db) = database {
            request = request.query("database", db);
        }
        if let Some((user, password)) = &self.user {
            request = request.header("X-ClickHouse-User", user).header("X-ClickHouse-Key", password);
        }
        let mut response = request
            .send(body)
            .map_err(|e| StoreError::Unavailable(format!("clickhouse at {} unreachable: {e}", self.address)))?;
        let status = response.status();
        let text = response.body_mut().with_config().limit(u64::MAX).read_to_string().map_err(|e| {
            StoreError::Unavailable(format!("reading the answer of clickhouse at {}: {e}", self.address))
        })?;
        if status.is_success() {
            return Ok(text);
        }
        let message = format!("clickhouse at {}: {}", self.address, text.trim());
        if status.as_u16() == 503 || error_code(&text).is_some_and(|c| RETRYABLE_CODES.contains(&c)) {
            Err(StoreError::Unavailable(message))
        } else {
            Err(StoreError::Backend(message))
        }
    }
}

/// The `Code: N` of a ClickHouse exception text.
fn error_code(text: &str) -> Option<u32> {
    let rest = text.split("Code: ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// A ClickHouse string literal.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_codes_are_read_from_exception_texts() {
        let text = "Code: 252, e.displayText() = DB::Exception: Too many parts (300)";
        assert_eq!(super::error_code(text), Some(252));
        assert_eq!(super::error_code("no code here"), None);
    }

    #[test]
    fn quoted_strings_escape_quotes_and_backslashes() {
        assert_eq!(super::quote(r"it's a \ path"), r"'it\'s a \\ path'");
    }
}
