//! Per-event validation of a parsed batch.
//!
//! [`validate_batch`] checks the batch's context once, then every event on its own: one bad
//! event is rejected with a machine-readable [`RejectReason`] and the rest of the batch is
//! kept. Checks against the app's declared events and properties follow in
//! [`crate::schema::AppSchema::check`].

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::limits::*;
use crate::scrub;
use crate::wire::{Context, Event, PropValue, RawBatch};

/// Why an event (or a whole batch) was refused. The wire form is the snake_case name.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The event is not a JSON object of the expected shape.
    Malformed,
    /// `event_id` is the nil UUID.
    InvalidEventId,
    /// The event name is empty, too long, or has characters outside `[a-z0-9._-]`.
    InvalidName,
    /// The app's schema does not declare this event.
    UnknownEvent,
    /// `occurred_at` is older than the collector's age limit ([`MAX_EVENT_AGE_MS`] by default).
    TooOld,
    /// `occurred_at` lies in the future beyond [`MAX_FUTURE_MS`].
    InFuture,
    /// More than [`MAX_PLUGINS`] plugin names.
    TooManyPlugins,
    /// A plugin name is empty, too long or has characters outside `[a-z0-9@/._:-]`.
    InvalidPlugin,
    /// `duration_ms` is above [`MAX_DURATION_MS`].
    InvalidDuration,
    /// `error_kind` is not a bounded category (`[A-Za-z0-9._:-]`, at most
    /// [`MAX_NAME_LEN`] bytes).
    InvalidErrorKind,
    /// More than [`MAX_PROPS`] properties.
    TooManyProps,
    /// A property value has the wrong type for the schema, or is not finite.
    InvalidProperty,
    /// A string is longer than [`MAX_STRING_LEN`].
    StringTooLong,
    /// The batch's context is invalid (whole batch).
    InvalidContext,
    /// The app is not known to the collector (whole batch).
    UnknownApp,
    /// More than [`MAX_EVENTS_PER_BATCH`] events (whole batch).
    TooManyEvents,
}

impl RejectReason {
    /// The wire name, e.g. `unknown_event`.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Malformed => "malformed",
            RejectReason::InvalidEventId => "invalid_event_id",
            RejectReason::InvalidName => "invalid_name",
            RejectReason::UnknownEvent => "unknown_event",
            RejectReason::TooOld => "too_old",
            RejectReason::InFuture => "in_future",
            RejectReason::TooManyPlugins => "too_many_plugins",
            RejectReason::InvalidPlugin => "invalid_plugin",
            RejectReason::InvalidDuration => "invalid_duration",
            RejectReason::InvalidErrorKind => "invalid_error_kind",
            RejectReason::TooManyProps => "too_many_props",
            RejectReason::InvalidProperty => "invalid_property",
            RejectReason::StringTooLong => "string_too_long",
            RejectReason::InvalidContext => "invalid_context",
            RejectReason::UnknownApp => "unknown_app",
            RejectReason::TooManyEvents => "too_many_events",
        }
    }

    /// Every reason, for metrics and documentation.
    pub const ALL: [RejectReason; 16] = [
        RejectReason::Malformed,
        RejectReason::InvalidEventId,
        RejectReason::InvalidName,
        RejectReason::UnknownEvent,
        RejectReason::TooOld,
        RejectReason::InFuture,
        RejectReason::TooManyPlugins,
        RejectReason::InvalidPlugin,
        RejectReason::InvalidDuration,
        RejectReason::InvalidErrorKind,
        RejectReason::TooManyProps,
        RejectReason::InvalidProperty,
        RejectReason::StringTooLong,
        RejectReason::InvalidContext,
        RejectReason::UnknownApp,
        RejectReason::TooManyEvents,
    ];
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal: the reason and a sentence for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The machine-readable reason.
    pub reason: RejectReason,
    /// What was wrong, naming the field.
    pub detail: String,
}

impl Rejection {
    /// A rejection with a reason and detail.
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Rejection { reason, detail: detail.into() }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

/// The outcome for one event of a batch, as reported in the response.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventOutcome {
    /// Stored.
    Accepted,
    /// Already stored before (same `event_id`); not stored again.
    Duplicate,
    /// Refused; see the reason.
    Rejected,
}

/// One entry of [`crate::BatchResponse::results`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventResult {
    /// Position of the event in the batch.
    pub index: usize,
    /// The event's id, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = "uuid"))]
    pub event_id: Option<Uuid>,
    /// What happened to it.
    pub status: EventOutcome,
    /// Why it was rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RejectReason>,
    /// Details of the rejection, for a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// An event that passed the schema-independent checks, with its time corrected.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedEvent {
    /// The event as sent, with plugins deduplicated.
    pub event: Event,
    /// `occurred_at` after clock-skew correction, in ms since the Unix epoch.
    pub occurred_at_ms: i64,
}

/// The check of one event of a batch: its id when readable, and the event, `None` for a
/// repeat of an earlier event of the same batch, or the rejection.
pub type EventCheck<T> = (Option<Uuid>, Result<Option<T>, Rejection>);

/// The result of [`validate_batch`]: one entry per event, in order.
#[derive(Debug)]
pub struct ValidatedBatch {
    /// The batch's context, validated.
    pub context: Context,
    /// Per event: the checked event, a duplicate of an earlier event of the same batch
    /// (`Ok(None)`), or a rejection.
    pub events: Vec<EventCheck<CheckedEvent>>,
}

/// Validates a parsed batch at collector time `now`; events older than `max_age_ms`
/// (normally [`MAX_EVENT_AGE_MS`]) are rejected as `too_old`.
///
/// Fails as a whole (a `400`) only when the context is invalid or the batch has too many
/// events; otherwise every event gets its own result.
pub fn validate_batch(raw: RawBatch<'_>, now: DateTime<Utc>, max_age_ms: i64) -> Result<ValidatedBatch, Rejection> {
    if raw.events.total > MAX_EVENTS_PER_BATCH {
        return Err(Rejection::new(
            RejectReason::TooManyEvents,
            format!("{} events in one batch; the limit is {MAX_EVENTS_PER_BATCH}", raw.events.total),
        ));
    }
    validate_context(&raw.context)?;
    let skew_ms = (now - raw.sent_at).num_milliseconds();
    let shift_ms = if skew_ms.abs() > MAX_CLOCK_SKEW_MS { skew_ms } else { 0 };
    let now_ms = now.timestamp_millis();
    let mut seen = HashSet::with_capacity(raw.events.kept.len());
    let events = raw
        .events
        .kept
        .iter()
        .map(|raw_event| {
            let event: Event = match serde_json::from_str(raw_event.get()) {
                Ok(e) => e,
                Err(e) => {
                    let id = event_id_of(raw_event.get());
                    return (id, Err(Rejection::new(RejectReason::Malformed, e.to_string())));
                }
            };
            let id = Some(event.event_id);
            if !seen.insert(event.event_id) {
                return (id, Ok(None));
            }
            (id, validate_event(event, shift_ms, now_ms, max_age_ms).map(Some))
        })
        .collect();
    Ok(ValidatedBatch { context: raw.context, events })
}

/// Best effort: the `event_id` of an event that failed to parse, for the response.
fn event_id_of(raw: &str) -> Option<Uuid> {
    #[derive(Deserialize)]
    struct IdOnly {
        event_id: Uuid,
    }
    serde_json::from_str::<IdOnly>(raw).ok().map(|i| i.event_id)
}

/// Checks the context shared by a batch.
pub fn validate_context(c: &Context) -> Result<(), Rejection> {
    let bad =
        |field: &str, why: &str| Err(Rejection::new(RejectReason::InvalidContext, format!("context.{field} {why}")));
    if !is_name(&c.app) {
        return bad("app", "must be 1-64 characters of [a-z0-9._-]");
    }
    if c.project.is_nil() {
        return bad("project", "must not be the nil UUID");
    }
    if c.machine.is_empty() || c.machine.len() > MAX_STRING_LEN || !c.machine.bytes().all(is_token_byte) {
        return bad("machine", "must be 1-128 characters of [A-Za-z0-9._:+-]");
    }
    for (field, value, required) in [
        ("app_version", &c.app_version, true),
        ("os", &c.os, true),
        ("os_version", &c.os_version, false),
        ("arch", &c.arch, true),
        ("runtime", &c.runtime, true),
        ("runtime_version", &c.runtime_version, false),
    ] {
        if required && value.is_empty() {
            return bad(field, "is required");
        }
        if value.len() > MAX_NAME_LEN || !value.bytes().all(is_token_byte) {
            return bad(field, "must be at most 64 characters of [A-Za-z0-9._:+-]");
        }
    }
    if let Some(ci) = &c.ci
        && !is_name(ci)
    {
        return bad("ci", "must be 1-64 characters of [a-z0-9._-]");
    }
    Ok(())
}

fn validate_event(mut e: Event, shift_ms: i64, now_ms: i64, max_age_ms: i64) -> Result<CheckedEvent, Rejection> {
    use RejectReason::*;
    if e.event_id.is_nil() {
        return Err(Rejection::new(InvalidEventId, "event_id must not be the nil UUID"));
    }
    if !is_name(&e.event) {
        return Err(Rejection::new(InvalidName, "event must be 1-64 characters of [a-z0-9._-]"));
    }
    let occurred_at_ms = e.occurred_at.timestamp_millis().saturating_add(shift_ms);
    if occurred_at_ms > now_ms + MAX_FUTURE_MS {
        return Err(Rejection::new(InFuture, "occurred_at lies in the future"));
    }
    if occurred_at_ms < now_ms - max_age_ms {
        return Err(Rejection::new(TooOld, format!("occurred_at is more than {} days old", max_age_ms / 86_400_000)));
    }
    if e.plugins.len() > MAX_PLUGINS {
        return Err(Rejection::new(TooManyPlugins, format!("more than {MAX_PLUGINS} plugins")));
    }
    if let Some(p) = e.plugins.iter().find(|p| !is_plugin_name(p)) {
        return Err(Rejection::new(
            InvalidPlugin,
            format!("plugin name {:?} must be 1-64 characters of [a-z0-9@/._:-]", truncate(p)),
        ));
    }
    let mut seen = HashSet::new();
    e.plugins.retain(|p| seen.insert(p.clone()));
    if e.duration_ms.is_some_and(|d| d > MAX_DURATION_MS) {
        return Err(Rejection::new(InvalidDuration, "duration_ms is longer than a week"));
    }
    if let Some(kind) = &e.error_kind
        && (kind.is_empty() || kind.len() > MAX_NAME_LEN || !kind.bytes().all(is_token_byte))
    {
        return Err(Rejection::new(
            InvalidErrorKind,
            "error_kind must be a category of 1-64 characters of [A-Za-z0-9._:+-], never a message",
        ));
    }
    if e.props.len() > MAX_PROPS {
        return Err(Rejection::new(TooManyProps, format!("more than {MAX_PROPS} props")));
    }
    check_props(&e.props)?;
    Ok(CheckedEvent { event: e, occurred_at_ms })
}

fn check_props(props: &BTreeMap<String, PropValue>) -> Result<(), Rejection> {
    for (key, value) in props {
        if !is_name(key) {
            return Err(Rejection::new(
                RejectReason::InvalidName,
                format!("property name {:?} must be 1-64 characters of [a-z0-9._-]", truncate(key)),
            ));
        }
        match value {
            PropValue::Str(s) if s.len() > MAX_STRING_LEN => {
                return Err(Rejection::new(
                    RejectReason::StringTooLong,
                    format!("property {key} is longer than {MAX_STRING_LEN} bytes"),
                ));
            }
            PropValue::Float(f) if !f.is_finite() => {
                return Err(Rejection::new(RejectReason::InvalidProperty, format!("property {key} is not finite")));
            }
            _ => {}
        }
    }
    Ok(())
}

fn truncate(s: &str) -> &str {
    let mut end = s.len().min(32);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Names of apps, events, properties and CI vendors: 1-64 bytes of `[a-z0-9._-]`.
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// Plugin names may be npm-scoped (`@scope/name`) and namespaced (`a:b`).
pub fn is_plugin_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"@/._:-".contains(&b))
        && !scrub::is_sensitive(s)
}

/// Bytes allowed in versions, ids and categories: no spaces, no `@`, no `/`, so no e-mail
/// address, path or URL fits.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._:+-".contains(&b)
}

/// An event that passed every check and is ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AcceptedEvent {
    /// The event; `props` holds only the declared properties, converted to their types.
    pub event: Event,
    /// `occurred_at` after clock-skew correction, in ms since the Unix epoch.
    pub occurred_at_ms: i64,
}

/// A batch checked against the protocol and the app's schema.
#[derive(Debug)]
pub struct CheckedBatch {
    /// The batch's context, validated.
    pub context: Context,
    /// Per event, in order: its id when readable, and the accepted event, `None` for a
    /// repeat of an earlier event of the batch, or the rejection.
    pub events: Vec<EventCheck<AcceptedEvent>>,
    /// Properties dropped because their event does not declare them.
    pub dropped_props: usize,
}

/// Parses and checks a (decompressed) request body: JSON shape, protocol rules, and the
/// app's schema from `schemas`, at collector time `now` with the age limit `max_age_ms`
/// (normally [`MAX_EVENT_AGE_MS`]). A whole-batch failure carries reason `malformed`,
/// `invalid_context`, `too_many_events` or `unknown_app`.
pub fn check_batch(
    body: &[u8],
    schemas: &crate::SchemaSet,
    now: DateTime<Utc>,
    max_age_ms: i64,
) -> Result<CheckedBatch, Rejection> {
    let raw: RawBatch<'_> = serde_json::from_slice(body)
        .map_err(|e| Rejection::new(RejectReason::Malformed, format!("body is not a valid batch: {e}")))?;
    let validated = validate_batch(raw, now, max_age_ms)?;
    let Some(schema) = schemas.get(&validated.context.app) else {
        return Err(Rejection::new(
            RejectReason::UnknownApp,
            format!("no schema for app {:?}; load one with --schemas", validated.context.app),
        ));
    };
    let mut dropped_props = 0;
    let events = validated
        .events
        .into_iter()
        .map(|(id, checked)| {
            let result = checked.and_then(|maybe| {
                maybe
                    .map(|c| {
                        let s = schema.check(&c.event)?;
                        dropped_props += s.dropped_props;
                        let mut event = c.event;
                        event.props = s.props;
                        Ok(AcceptedEvent { event, occurred_at_ms: c.occurred_at_ms })
                    })
                    .transpose()
            });
            (id, result)
        })
        .collect();
    Ok(CheckedBatch { context: validated.context, events, dropped_props })
}
