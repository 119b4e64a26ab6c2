//! JSON types of `POST /v1/batch` and its responses.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

/// A batch as a client sends it: one shared context and the events it applies to.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// When the client sent the batch, by its own clock; used to correct clock skew.
    pub sent_at: DateTime<Utc>,
    /// Facts shared by every event of the batch.
    pub context: Context,
    /// The events, at most [`crate::limits::MAX_EVENTS_PER_BATCH`].
    pub events: Vec<Event>,
}

/// A batch as the collector first parses it: the context is typed, each event is kept as
/// raw JSON so that one malformed event is rejected alone and the others are kept.
#[derive(Debug, Deserialize)]
pub struct RawBatch<'a> {
    /// See [`Batch::sent_at`].
    pub sent_at: DateTime<Utc>,
    /// See [`Batch::context`].
    pub context: Context,
    /// The events, not yet parsed.
    #[serde(borrow)]
    pub events: RawEvents<'a>,
}

/// The events of a [`RawBatch`]: the first [`crate::limits::MAX_EVENTS_PER_BATCH`] kept as
/// raw JSON, the rest only counted. Parsing stops keeping values at the limit, so that a
/// small compressed body of millions of tiny events (`{"events":[0,0,…]}`) costs no memory
/// beyond the limit before it is refused (issue 11).
#[derive(Debug, Default)]
pub struct RawEvents<'a> {
    /// The first events, at most the limit.
    pub kept: Vec<&'a RawValue>,
    /// How many events the batch has, kept or not.
    pub total: usize,
}

impl<'de: 'a, 'a> Deserialize<'de> for RawEvents<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = RawEvents<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of events")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let limit = crate::limits::MAX_EVENTS_PER_BATCH;
                let mut events = RawEvents { kept: Vec::new(), total: 0 };
                while events.total < limit {
                    match seq.next_element::<&'de RawValue>()? {
                        Some(e) => events.kept.push(e),
                        None => return Ok(events),
                    }
                    events.total += 1;
                }
                // Past the limit: the rest is only counted, building nothing.
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    events.total += 1;
                }
                Ok(events)
            }
        }
        deserializer.deserialize_seq(Visitor(std::marker::PhantomData))
    }
}

/// Facts about the tool, project and machine, shared by all events of a batch.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// The tool's name as registered with the collector (its schema's `app`).
    pub app: String,
    /// The tool's version, e.g. `5.54.0`.
    pub app_version: String,
    /// The project's random UUID from its manifest. The collector stores only a keyed
    /// hash of it.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = "uuid"))]
    pub project: Uuid,
    /// The machine id: already a per-tool keyed hash on the client, hashed again by the
    /// collector.
    pub machine: String,
    /// The environment the tool runs in.
    pub env: Env,
    /// OS family: `linux`, `macos`, `windows`, `freebsd`, ...
    pub os: String,
    /// OS major version, e.g. `14` or `6.1`.
    #[serde(default)]
    pub os_version: String,
    /// CPU architecture, e.g. `x86_64`, `aarch64`.
    pub arch: String,
    /// The runtime the tool runs on, e.g. `node`, `rust`.
    pub runtime: String,
    /// The runtime's version, e.g. `20.11.1`.
    #[serde(default)]
    pub runtime_version: String,
    /// The CI vendor when running in CI (e.g. `github_actions`), else absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<String>,
    /// Whether the tool runs inside a container.
    #[serde(default)]
    pub container: bool,
}

/// The environment a tool runs in.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Env {
    /// Local development.
    Development,
    /// A staging or preview deployment.
    Staging,
    /// Production.
    Production,
    /// Test runs.
    Test,
}

impl Env {
    /// Every environment, in display order.
    pub const ALL: [Env; 4] = [Env::Development, Env::Staging, Env::Production, Env::Test];

    /// The wire name of the environment.
    pub fn as_str(self) -> &'static str {
        match self {
            Env::Development => "development",
            Env::Staging => "staging",
            Env::Production => "production",
            Env::Test => "test",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Env> {
        Env::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

impl std::str::FromStr for Env {
    type Err = String;

    /// Parses a wire name; the error names every environment.
    fn from_str(s: &str) -> Result<Env, String> {
        Env::parse(s).ok_or_else(|| format!("{s:?} is not one of development, staging, production, test"))
    }
}

impl fmt::Display for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// A client-generated UUID (v7 recommended); the collector's dedupe key.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = "uuid"))]
    pub event_id: Uuid,
    /// The event's name, declared in the app's schema, e.g. `project.created`.
    pub event: String,
    /// When the event happened, by the client's clock.
    pub occurred_at: DateTime<Utc>,
    /// Plugin or feature names in use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<String>,
    /// Duration of a timed event (install, build), in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// A bounded error category (never a message or a path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    /// Typed extra properties the app's schema allows.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub props: BTreeMap<String, PropValue>,
}

/// A typed property value. In JSON a bare bool, number or string; a whole number that
/// does not fit an `i64` is a `Float`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum PropValue {
    /// `true` / `false`.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A number with a fraction.
    Float(f64),
    /// A string.
    Str(String),
}

/// By hand, not `#[serde(untagged)]`: that buffers each value and builds an error
/// message for every variant that does not match, most of the cost of parsing a batch or
/// a full outbox. Same values accepted, same variants chosen.
impl<'de> Deserialize<'de> for PropValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<PropValue, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = PropValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a bool, a number or a string")
            }
            fn visit_bool<E>(self, v: bool) -> Result<PropValue, E> {
                Ok(PropValue::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<PropValue, E> {
                Ok(PropValue::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<PropValue, E> {
                Ok(i64::try_from(v).map_or(PropValue::Float(v as f64), PropValue::Int))
            }
            fn visit_f64<E>(self, v: f64) -> Result<PropValue, E> {
                Ok(PropValue::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<PropValue, E> {
                Ok(PropValue::Str(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<PropValue, E> {
                Ok(PropValue::Str(v))
            }
        }
        d.deserialize_any(Visit)
    }
}

impl PropValue {
    /// The schema type name of this value.
    pub fn type_name(&self) -> &'static str {
        match self {
            PropValue::Bool(_) => "bool",
            PropValue::Int(_) => "int",
            PropValue::Float(_) => "float",
            PropValue::Str(_) => "string",
        }
    }
}

/// What the collector answers to a batch it parsed (status 200 or 422).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResponse {
    /// Events stored by this request.
    pub accepted: usize,
    /// Events already stored by an earlier request (or earlier in this one).
    pub duplicate: usize,
    /// Events refused; see their results for the reason.
    pub rejected: usize,
    /// Properties dropped because the app's schema does not declare them.
    #[serde(default)]
    pub dropped_props: usize,
    /// One result per event, in the order sent.
    pub results: Vec<crate::EventResult>,
}

/// The body of every error response (`400`, `413`, `415`, `422`, `429`, `503`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable machine-readable code, e.g. `body_too_large`.
    pub error: String,
    /// What went wrong and what to do, for a person.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str, expected: Option<PropValue>) {
        assert_eq!(serde_json::from_str::<PropValue>(json).ok(), expected, "{json}");
    }

    /// Issue 11: about 8 KB of gzip (`{"events":[0,0,…]}`) decompress to 8 MiB, which were
    /// parsed into millions of values before the 500-event check.
    #[test]
    fn a_gzip_bomb_of_tiny_events_is_refused_before_its_values_are_built() {
        let n = 4_000_000;
        let mut body = String::from(r#"{"events":["#);
        body.push_str(&"0,".repeat(n - 1));
        body.push_str(r#"0],"sent_at":"2026-01-01T00:00:00Z","context":{"app":"demo","app_version":"1","project":"0b7e2c1a-8f5e-4c1d-9b1a-3f2e4d5c6b7a","machine":"m","env":"production","os":"linux","os_version":"6","arch":"x86_64","runtime":"node","runtime_version":"20"}}"#);
        assert!(body.len() <= crate::limits::MAX_DECOMPRESSED_BYTES, "within the decompression limit");
        let raw: RawBatch<'_> = serde_json::from_str(&body).expect("parses");
        assert_eq!(raw.events.kept.len(), crate::limits::MAX_EVENTS_PER_BATCH, "no value kept past the limit");
        assert!(raw.events.kept.capacity() < 2 * crate::limits::MAX_EVENTS_PER_BATCH);
        assert_eq!(raw.events.total, n);
        let refused = crate::validate::validate_batch(raw, chrono::Utc::now(), crate::limits::MAX_EVENT_AGE_MS)
            .expect_err("refused");
        assert_eq!(refused.reason, crate::RejectReason::TooManyEvents);
        assert_eq!(refused.detail, "4000000 events in one batch; the limit is 500");
    }

    #[test]
    fn events_up_to_the_limit_are_all_kept() {
        for n in [0, 1, 500, 501] {
            let events = vec!["{}"; n].join(",");
            let body = format!(r#"[{events}]"#);
            let parsed: RawEvents<'_> = serde_json::from_str(&body).expect("parses");
            assert_eq!((parsed.kept.len(), parsed.total), (n.min(500), n));
        }
        let broken = format!("[{}", "0,".repeat(600));
        assert!(serde_json::from_str::<RawEvents<'_>>(&broken).is_err(), "a broken array past the limit still fails");
        assert!(serde_json::from_str::<RawEvents<'_>>(r#"{"a":1}"#).is_err());
    }

    #[test]
    fn prop_values_parse_as_the_untagged_enum_did() {
        check("true", Some(PropValue::Bool(true)));
        check("412", Some(PropValue::Int(412)));
        check("-3", Some(PropValue::Int(-3)));
        check("9223372036854775807", Some(PropValue::Int(i64::MAX)));
        check("18446744073709551615", Some(PropValue::Float(u64::MAX as f64)));
        check("0.82", Some(PropValue::Float(0.82)));
        check("1e3", Some(PropValue::Float(1000.0)));
        check("\"blog\"", Some(PropValue::Str("blog".into())));
        check("\"a\\\"b\"", Some(PropValue::Str("a\"b".into())));
        for bad in ["null", "[1]", "{\"a\":1}"] {
            check(bad, None);
        }
    }
}
