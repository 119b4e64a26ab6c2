//! The row model: one narrow, typed row per event, the columns every backend stores
//! (ARCHITECTURE.md, tally-store).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tally_protocol::{Context, Env, Event, PropValue};
use uuid::Uuid;

use crate::keys::{MachineKey, ProjectKey};

/// One stored event. Holds no client IP, no project UUID and no raw machine id.
///
/// Serializable for the collector's ingest-log records (a compact binary format such as
/// postcard: `PropValue`'s JSON form is untagged, so props are written tagged here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRow {
    /// The client's event UUID; the dedupe key.
    pub event_id: Uuid,
    /// When the collector received it, ms since the Unix epoch.
    pub received_at_ms: i64,
    /// When it happened (after clock-skew correction), ms since the Unix epoch.
    pub occurred_at_ms: i64,
    /// The tool.
    pub app: String,
    /// The tool's version.
    pub app_version: String,
    /// The event name.
    pub event: String,
    /// Keyed hash of the project UUID.
    pub project: ProjectKey,
    /// Keyed hash of the machine id.
    pub machine: MachineKey,
    /// The environment.
    pub env: Env,
    /// OS family.
    pub os: String,
    /// OS major version.
    pub os_version: String,
    /// CPU architecture.
    pub arch: String,
    /// Runtime name.
    pub runtime: String,
    /// Runtime version.
    pub runtime_version: String,
    /// CI vendor; empty when not in CI.
    pub ci: String,
    /// Whether it ran in a container.
    pub container: bool,
    /// Plugin or feature names, deduplicated, in the order sent.
    pub plugins: Vec<String>,
    /// Duration of a timed event, in ms.
    pub duration_ms: Option<u64>,
    /// Bounded error category.
    pub error_kind: Option<String>,
    /// Typed properties the app's schema allows.
    #[serde(with = "tagged_props")]
    pub props: BTreeMap<String, PropValue>,
}

/// Props as a map of tagged values, which self-describing-free formats can read back.
mod tagged_props {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use tally_protocol::PropValue;

    #[derive(Serialize, Deserialize)]
    enum Tagged<S> {
        Bool(bool),
        Int(i64),
        Float(f64),
        Str(S),
    }

    pub(super) fn serialize<S: Serializer>(props: &BTreeMap<String, PropValue>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(props.iter().map(|(k, v)| {
            let tagged = match v {
                PropValue::Bool(b) => Tagged::Bool(*b),
                PropValue::Int(i) => Tagged::Int(*i),
                PropValue::Float(f) => Tagged::Float(*f),
                PropValue::Str(t) => Tagged::Str(t.as_str()),
            };
            (k, tagged)
        }))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, PropValue>, D::Error> {
        let tagged = BTreeMap::<String, Tagged<String>>::deserialize(d)?;
        Ok(tagged
            .into_iter()
            .map(|(k, v)| {
                let value = match v {
                    Tagged::Bool(b) => PropValue::Bool(b),
                    Tagged::Int(i) => PropValue::Int(i),
                    Tagged::Float(f) => PropValue::Float(f),
                    Tagged::Str(t) => PropValue::Str(t),
                };
                (k, value)
            })
            .collect())
    }
}

impl EventRow {
    /// The row of `event`, sent with `context`. The project and machine come as their keyed
    /// hashes ([`crate::ServerSecret`]), computed once per batch by the caller;
    /// `occurred_at_ms` is the time the collector settled on (after clock-skew correction),
    /// not necessarily the event's own `occurred_at`. No CI is stored as the empty string.
    pub fn new(
        context: &Context,
        event: Event,
        occurred_at_ms: i64,
        received_at_ms: i64,
        project: ProjectKey,
        machine: MachineKey,
    ) -> EventRow {
        EventRow {
            event_id: event.event_id,
            received_at_ms,
            occurred_at_ms,
            app: context.app.clone(),
            app_version: context.app_version.clone(),
            event: event.event,
            project,
            machine,
            env: context.env,
            os: context.os.clone(),
            os_version: context.os_version.clone(),
            arch: context.arch.clone(),
            runtime: context.runtime.clone(),
            runtime_version: context.runtime_version.clone(),
            ci: context.ci.clone().unwrap_or_default(),
            container: context.container,
            plugins: event.plugins,
            duration_ms: event.duration_ms,
            error_kind: event.error_kind,
            props: event.props,
        }
    }
}

/// What [`crate::EventStore::append`] did with one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendStatus {
    /// Newly stored.
    Inserted,
    /// Its `event_id` was already stored; nothing changed.
    Duplicate,
}

/// Distinct values already stored for an app (for cardinality caps).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownValues {
    /// Distinct plugin names.
    pub plugins: BTreeSet<String>,
    /// Distinct string values per property name.
    pub props: BTreeMap<String, BTreeSet<String>>,
    /// Distinct non-empty values per string context field; a field without one is absent.
    pub context: BTreeMap<ContextField, BTreeSet<String>>,
}

/// The string fields of a batch's context that every row stores (the collector caps and
/// checks each of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ContextField {
    /// `app_version`.
    AppVersion,
    /// `os`.
    Os,
    /// `os_version`.
    OsVersion,
    /// `arch`.
    Arch,
    /// `runtime`.
    Runtime,
    /// `runtime_version`.
    RuntimeVersion,
    /// `ci` (empty when not in CI).
    Ci,
}

impl ContextField {
    /// Every string context field.
    pub const ALL: [ContextField; 7] = [
        ContextField::AppVersion,
        ContextField::Os,
        ContextField::OsVersion,
        ContextField::Arch,
        ContextField::Runtime,
        ContextField::RuntimeVersion,
        ContextField::Ci,
    ];

    /// The column name (the field's name in the wire context too).
    pub fn name(self) -> &'static str {
        match self {
            ContextField::AppVersion => "app_version",
            ContextField::Os => "os",
            ContextField::OsVersion => "os_version",
            ContextField::Arch => "arch",
            ContextField::Runtime => "runtime",
            ContextField::RuntimeVersion => "runtime_version",
            ContextField::Ci => "ci",
        }
    }

    /// The field's value in `row`.
    pub fn of(self, row: &EventRow) -> &str {
        match self {
            ContextField::AppVersion => &row.app_version,
            ContextField::Os => &row.os,
            ContextField::OsVersion => &row.os_version,
            ContextField::Arch => &row.arch,
            ContextField::Runtime => &row.runtime,
            ContextField::RuntimeVersion => &row.runtime_version,
            ContextField::Ci => &row.ci,
        }
    }
}
