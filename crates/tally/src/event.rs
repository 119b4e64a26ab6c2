//! Events as a tool author writes them, and their conversion to the wire format.
//!
//! [`Event`] is a plain builder with no I/O. [`crate::Telemetry::record`] turns it into a
//! wire event on the caller's thread: it scrubs every string, hashes values marked
//! sensitive with the per-machine salt, and brings everything inside the protocol's limits
//! (dropping what cannot be fixed), so what is queued is already what would be sent.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use tally_protocol::limits::{MAX_DURATION_MS, MAX_NAME_LEN, MAX_PLUGINS, MAX_PROPS, MAX_STRING_LEN};
use tally_protocol::validate::{is_name, is_plugin_name};
use tally_protocol::{PropValue, scrub};

use crate::identity::hash_sensitive;

/// One event to record, e.g. `Event::new("build.finished").duration(d).prop("files", 412)`.
///
/// Names (event, property keys) must be 1-64 characters of `[a-z0-9._-]` and should be
/// declared in the tool's schema; an event with an invalid name is dropped, a property
/// with an invalid key is dropped.
#[derive(Debug, Clone)]
#[must_use = "an event does nothing until it is recorded"]
pub struct Event {
    name: String,
    plugins: Vec<String>,
    duration_ms: Option<u64>,
    error_kind: Option<String>,
    props: Vec<(String, Value)>,
}

/// A property value: a string, integer, float or boolean.
#[derive(Debug, Clone, PartialEq)]
pub struct Value(Inner);

#[derive(Debug, Clone, PartialEq)]
enum Inner {
    Plain(PropValue),
    /// Hashed with the per-machine salt before queueing.
    Sensitive(String),
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value(Inner::Plain(PropValue::Int(i64::try_from(v).unwrap_or(i64::MAX))))
            }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32, u64, usize, isize);

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value(Inner::Plain(PropValue::Bool(v)))
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value(Inner::Plain(PropValue::Float(v)))
    }
}
impl From<f32> for Value {
    fn from(v: f32) -> Value {
        Value(Inner::Plain(PropValue::Float(f64::from(v))))
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value(Inner::Plain(PropValue::Str(v.to_string())))
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value(Inner::Plain(PropValue::Str(v)))
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value(Inner::Plain(PropValue::Str(v.clone())))
    }
}

impl Event {
    /// An event named `name` (declared in the tool's schema).
    pub fn new(name: impl Into<String>) -> Event {
        Event { name: name.into(), plugins: Vec::new(), duration_ms: None, error_kind: None, props: Vec::new() }
    }

    /// `command.run` with property `command`.
    pub fn command_run(command: &str) -> Event {
        Event::new("command.run").prop("command", command)
    }

    /// `project.created`, timed (e.g. the dependency install).
    pub fn project_created(duration: Duration) -> Event {
        Event::new("project.created").duration(duration)
    }

    /// `build.finished`, timed.
    pub fn build_finished(duration: Duration) -> Event {
        Event::new("build.finished").duration(duration)
    }

    /// `error` with a bounded category such as `EACCES` or `config.invalid`: 1-64
    /// characters of `[A-Za-z0-9._:+-]`. Anything else (a message, a path) is sent as
    /// `other`.
    pub fn error(kind: &str) -> Event {
        Event::new("error").error_kind(kind)
    }

    /// How long the event took.
    pub fn duration(mut self, d: Duration) -> Event {
        self.duration_ms = Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// A bounded error category, see [`Event::error`].
    pub fn error_kind(mut self, kind: &str) -> Event {
        self.error_kind = Some(kind.to_string());
        self
    }

    /// A plugin or feature in use.
    pub fn plugin(mut self, name: impl Into<String>) -> Event {
        self.plugins.push(name.into());
        self
    }

    /// Plugins or features in use.
    pub fn plugins<I, S>(mut self, names: I) -> Event
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.plugins.extend(names.into_iter().map(Into::into));
        self
    }

    /// A typed property. Strings are scrubbed of personal data and cut to 128 bytes.
    pub fn prop(mut self, key: impl Into<String>, value: impl Into<Value>) -> Event {
        self.props.push((key.into(), value.into()));
        self
    }

    /// A free-form value that may identify someone (a project name, a path, a template
    /// URL): sent only as a 16-hex-digit hash keyed with this machine's secret salt, so
    /// the collector can count distinct values per machine but never learn them.
    pub fn sensitive(mut self, key: impl Into<String>, value: impl AsRef<str>) -> Event {
        self.props.push((key.into(), Value(Inner::Sensitive(value.as_ref().to_string()))));
        self
    }

    /// The event's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// What turns an [`Event`] into a wire event: the salt and the plugin allowlist.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sanitizer {
    pub(crate) salt: Vec<u8>,
    pub(crate) known_plugins: Option<HashSet<String>>,
}

impl Sanitizer {
    /// The wire event, or `None` when the event's name is invalid.
    pub(crate) fn wire(&self, e: Event) -> Option<tally_protocol::Event> {
        if !is_name(&e.name) {
            return None;
        }
        let mut plugins = Vec::with_capacity(e.plugins.len().min(MAX_PLUGINS));
        for p in e.plugins {
            if plugins.len() == MAX_PLUGINS {
                break;
            }
            let known = self.known_plugins.as_ref().is_none_or(|k| k.contains(&p));
            let p = if known && is_plugin_name(&p) {
                p
            } else {
                // Unknown or unusual names may be private: keep only a salted hash.
                format!("h:{}", hash_sensitive(&self.salt, &p))
            };
            if !plugins.contains(&p) {
                plugins.push(p);
            }
        }
        let error_kind = e.error_kind.map(|k| {
            let token = !k.is_empty()
                && k.len() <= MAX_NAME_LEN
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:+-".contains(&b));
            if token && !scrub::is_sensitive(&k) { k } else { "other".to_string() }
        });
        let mut props = BTreeMap::new();
        for (key, Value(v)) in e.props {
            if props.len() == MAX_PROPS || !is_name(&key) {
                continue;
            }
            let v = match v {
                Inner::Plain(PropValue::Str(s)) => PropValue::Str(clean(s)),
                Inner::Plain(PropValue::Float(f)) if !f.is_finite() => continue,
                Inner::Plain(v) => v,
                Inner::Sensitive(s) => PropValue::Str(hash_sensitive(&self.salt, &s)),
            };
            props.insert(key, v);
        }
        let occurred_at = chrono::Utc::now();
        Some(tally_protocol::Event {
            event_id: uuid_v7(occurred_at.timestamp_millis()),
            event: e.name,
            occurred_at,
            plugins,
            duration_ms: e.duration_ms.map(|d| d.min(MAX_DURATION_MS)),
            error_kind,
            props,
        })
    }
}

/// A UUID v7 from the event's timestamp and 74 random bits of the thread's generator:
/// `Uuid::now_v7()` asks the OS for randomness on every call, which costs more than all the
/// rest of `record()`.
fn uuid_v7(millis: i64) -> uuid::Uuid {
    use rand::RngCore;
    let mut random = [0u8; 10];
    rand::rng().fill_bytes(&mut random);
    uuid::Builder::from_unix_timestamp_millis(u64::try_from(millis).unwrap_or(0), &random).into_uuid()
}

/// Scrubbed and cut to [`MAX_STRING_LEN`] bytes on a character boundary.
fn clean(s: String) -> String {
    let mut s = match scrub::scrub(&s) {
        std::borrow::Cow::Borrowed(_) => s,
        std::borrow::Cow::Owned(o) => o,
    };
    if s.len() > MAX_STRING_LEN {
        let mut end = MAX_STRING_LEN;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(e: Event) -> tally_protocol::Event {
        Sanitizer { salt: b"salt".to_vec(), known_plugins: None }.wire(e).expect("valid event")
    }

    #[test]
    fn builds_a_full_event() {
        let w = wire(
            Event::build_finished(Duration::from_millis(1200))
                .plugins(["graphql", "@strapi/plugin-i18n", "graphql"])
                .prop("files", 412)
                .prop("ratio", 0.5)
                .prop("typescript", true)
                .prop("database", "postgres"),
        );
        assert_eq!(w.event, "build.finished");
        assert_eq!(w.duration_ms, Some(1200));
        assert_eq!(w.plugins, ["graphql", "@strapi/plugin-i18n"]);
        assert_eq!(w.props["files"], PropValue::Int(412));
        assert_eq!(w.props["database"], PropValue::Str("postgres".into()));
        assert_eq!(w.event_id.get_version_num(), 7);
    }

    #[test]
    fn invalid_parts_are_fixed_or_dropped() {
        let s = Sanitizer::default();
        assert!(s.wire(Event::new("Bad Name")).is_none());
        let w = wire(
            Event::error("EACCES: permission denied, open '/home/alice/x'")
                .prop("Bad Key", 1)
                .prop("nan", f64::NAN)
                .prop("long", "x".repeat(500))
                .plugin("My Private Plugin")
                .duration(Duration::from_secs(30 * 24 * 3600)),
        );
        assert_eq!(w.error_kind.as_deref(), Some("other"));
        assert!(!w.props.contains_key("Bad Key") && !w.props.contains_key("nan"));
        assert!(matches!(&w.props["long"], PropValue::Str(s) if s.len() == MAX_STRING_LEN));
        assert!(w.plugins[0].starts_with("h:") && is_plugin_name(&w.plugins[0]));
        assert_eq!(w.duration_ms, Some(MAX_DURATION_MS));
        assert_eq!(wire(Event::error("ENOENT")).error_kind.as_deref(), Some("ENOENT"));
    }

    #[test]
    fn strings_are_scrubbed_and_sensitive_values_hashed() {
        let w = wire(
            Event::new("command.run").prop("arg", "/home/alice/secret-project").sensitive("name", "secret-project"),
        );
        let PropValue::Str(arg) = &w.props["arg"] else { panic!() };
        assert!(!arg.contains("alice"), "{arg}");
        let PropValue::Str(name) = &w.props["name"] else { panic!() };
        assert_eq!(name, &hash_sensitive(b"salt", "secret-project"));
    }

    #[test]
    fn unknown_plugins_are_hashed_with_an_allowlist() {
        let s =
            Sanitizer { salt: b"salt".to_vec(), known_plugins: Some(["graphql".to_string()].into_iter().collect()) };
        let w = s.wire(Event::new("x").plugins(["graphql", "acme-internal"])).unwrap();
        assert_eq!(w.plugins[0], "graphql");
        assert_eq!(w.plugins[1], format!("h:{}", hash_sensitive(b"salt", "acme-internal")));
    }
}
