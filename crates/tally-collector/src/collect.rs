//! "What we collect" for one app, generated from the schema this collector enforces:
//! `GET /v1/apps/{app}/schema` (public, no token), drawn by the dashboard at
//! `/collect/{app}`.
//!
//! The answer cannot drift from what is stored: events and properties come from the loaded
//! [`AppSchema`] (the same value ingest checks against), the fields every event carries are
//! listed here next to [`INSIGHT_FIELDS`], and the tests check that every insight of the
//! catalog and every panel of the dashboard (`assets/pages.js`) is mapped, and that the
//! example payload passes the collector's own checks.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tally_protocol::{AppSchema, Batch, Context, Env, Event, PropSpec, PropType, PropValue};

use crate::Shared;
use crate::error::ApiError;

/// A field every event of every app carries (the batch context and the event envelope).
struct Field {
    name: &'static str,
    ty: &'static str,
    values: &'static str,
    why: &'static str,
}

const FIELDS: &[Field] = &[
    Field {
        name: "app",
        ty: "string",
        values: "the app's name, as in its schema",
        why: "which tool the event belongs to",
    },
    Field {
        name: "app_version",
        ty: "string",
        values: "a version, e.g. 5.54.0 (1,000 distinct kept)",
        why: "which releases are in use, how fast projects upgrade, and which versions fail or set up slowly",
    },
    Field {
        name: "project",
        ty: "uuid",
        values: "the random id in the project's manifest; only a keyed hash of it is stored",
        why: "to count distinct projects rather than events, and to erase a project's events on request",
    },
    Field {
        name: "machine",
        ty: "string",
        values: "a per-tool keyed hash on the client, hashed again by the collector",
        why: "to count distinct machines (how many people or servers, not how many runs)",
    },
    Field {
        name: "env",
        ty: "string",
        values: "development, staging, production, test",
        why: "whether the tool is used in production or only tried out",
    },
    Field {
        name: "os",
        ty: "string",
        values: "an OS family: linux, macos, windows, … (100 distinct kept)",
        why: "which operating systems to support and test on",
    },
    Field {
        name: "os_version",
        ty: "string",
        values: "the OS major version, e.g. 14 (1,000 distinct kept)",
        why: "which OS versions to support",
    },
    Field {
        name: "arch",
        ty: "string",
        values: "a CPU architecture: x86_64, aarch64, … (100 distinct kept)",
        why: "which CPU architectures to build and test for",
    },
    Field {
        name: "runtime",
        ty: "string",
        values: "the runtime: node, rust, … (100 distinct kept)",
        why: "which runtimes the tool runs on",
    },
    Field {
        name: "runtime_version",
        ty: "string",
        values: "a version, e.g. 20.11.1 (1,000 distinct kept)",
        why: "which runtime versions can be dropped without leaving projects behind",
    },
    Field {
        name: "ci",
        ty: "string",
        values: "a CI vendor (github_actions, gitlab, …) or absent (100 distinct kept)",
        why: "how much use is CI rather than people",
    },
    Field {
        name: "container",
        ty: "bool",
        values: "true, false",
        why: "how many projects run the tool in a container",
    },
    Field {
        name: "event_id",
        ty: "uuid",
        values: "a random id per event",
        why: "so that an event sent twice is stored once",
    },
    Field { name: "event", ty: "string", values: "one of the events below", why: "what happened" },
    Field {
        name: "occurred_at",
        ty: "time",
        values: "when the event happened (corrected for the client's clock skew)",
        why: "to count per day and week",
    },
    Field {
        name: "plugins",
        ty: "list of strings",
        values: "plugin names in use (the schema caps how many distinct ones are kept)",
        why: "which plugins projects use, together and in which environments",
    },
    Field {
        name: "duration_ms",
        ty: "int",
        values: "milliseconds, on timed events only",
        why: "how long setup and builds take, and whether they get slower",
    },
    Field {
        name: "error_kind",
        ty: "string",
        values: "a bounded error category (never a message or a path)",
        why: "which errors affect the most projects",
    },
];

/// The fields each insight of the catalog reads (with its options), so the page can say
/// which dashboard panels use a field. Every catalog insight must be here (tested).
pub(crate) const INSIGHT_FIELDS: &[(&str, &[&str])] = &[
    ("events-per-day", &["event_id", "occurred_at", "project", "machine"]),
    ("active", &["occurred_at", "project", "machine"]),
    ("active-trend", &["occurred_at", "project", "machine"]),
    ("top-plugins", &["plugins", "project"]),
    ("plugin-adoption", &["plugins", "project", "occurred_at"]),
    ("co-usage", &["plugins", "project"]),
    ("env-split", &["env", "project"]),
    ("feature-env", &["plugins", "env", "project"]),
    ("setup-time", &["event", "duration_ms", "occurred_at", "app_version"]),
    ("error-kinds", &["error_kind", "project", "occurred_at", "os", "runtime_version", "app_version", "env", "ci"]),
    ("runtime-versions", &["runtime_version", "project"]),
    ("drop-support", &["runtime", "runtime_version", "project", "machine"]),
    ("os-split", &["os", "project"]),
    ("arch-split", &["arch", "project"]),
    ("ci-split", &["ci", "project"]),
    ("container-split", &["container", "project"]),
    ("app-versions", &["app_version", "project"]),
    ("app-version-adoption", &["app_version", "project", "occurred_at"]),
    ("retention", &["project", "occurred_at"]),
    ("event-counts", &["event", "project"]),
];

/// What no app's events ever hold, whatever its schema says.
const NEVER: &[&str] = &[
    "names, e-mail addresses, IP addresses or any account: the collector does not read the sender's address",
    "file paths, URLs, hostnames, tokens and secrets: every string is scrubbed on the client and again by the collector ([redacted])",
    "error messages and stack traces: only a bounded error category",
    "the project's id itself: only a keyed hash",
    "the contents of projects: no code, no configuration values, no data",
    "any property the schema does not list: it is dropped and counted",
];

fn insights_reading(field: &str) -> Vec<&'static str> {
    INSIGHT_FIELDS.iter().filter(|(_, fields)| fields.contains(&field)).map(|(name, _)| *name).collect()
}

/// Which insights show an event by its name: the event counts, and setup time for its event.
fn insights_of_event(event: &str) -> Vec<&'static str> {
    let mut insights = vec!["event-counts"];
    if event == tally_insights::SETUP_EVENT {
        insights.push("setup-time");
    }
    insights
}

fn prop_json(name: &str, spec: &PropSpec, schema: &AppSchema) -> Value {
    let events: Vec<_> = schema.events.iter().filter(|(_, e)| e.props.contains(name)).map(|(n, _)| n).collect();
    json!({
        "name": name,
        "type": spec.ty.name(),
        "allowed": spec.allowed,
        "max_distinct": (spec.ty == PropType::String).then_some(spec.max_distinct),
        "description": spec.description,
        "why": spec.why,
        "events": events,
        // No insight of the catalog reads app properties yet: they are kept for questions
        // asked of the store directly.
        "insights": Vec::<&str>::new(),
    })
}

fn example_value(spec: &PropSpec) -> PropValue {
    match spec.ty {
        PropType::String => PropValue::Str(
            spec.allowed.as_ref().and_then(|a| a.iter().next().cloned()).unwrap_or_else(|| "example".into()),
        ),
        PropType::Int => PropValue::Int(12),
        PropType::Float => PropValue::Float(1.5),
        PropType::Bool => PropValue::Bool(true),
    }
}

/// A batch as the SDK would send it: the event with the most properties, each with a value
/// its schema accepts.
pub(crate) fn example(schema: &AppSchema) -> Batch {
    let (name, spec) = schema.events.iter().max_by_key(|(_, e)| e.props.len()).expect("a schema has an event");
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-30T09:15:00Z").expect("fixed time").to_utc();
    Batch {
        sent_at: at,
        context: Context {
            app: schema.app.clone(),
            app_version: "1.4.0".into(),
            project: uuid::Uuid::from_u128(0x5f0c_3a8e_2b1d_4c6f_9a7e_1d2c_3b4a_5968),
            machine: "4c1e9b0d7a2f6e3c8b5a1d0e9f7c2b4a".into(),
            env: Env::Development,
            os: "linux".into(),
            os_version: "6.1".into(),
            arch: "x86_64".into(),
            runtime: "node".into(),
            runtime_version: "20.11.1".into(),
            ci: None,
            container: false,
        },
        events: vec![Event {
            event_id: uuid::Uuid::from_u128(0x0193_7a4e_8c00_7d2b_9f1a_3e5c_7b9d_1f20),
            event: name.clone(),
            occurred_at: at,
            plugins: vec!["sass".into()],
            duration_ms: None,
            error_kind: None,
            props: spec.props.iter().map(|p| (p.clone(), example_value(&schema.props[p]))).collect(),
        }],
    }
}

/// The whole answer for one app.
pub(crate) fn describe(schema: &AppSchema, max_event_age_days: i64) -> Value {
    let prefix: String =
        schema.app.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    let app = &schema.app;
    json!({
        "app": app,
        "description": schema.description,
        "version": schema.version,
        "changes": schema.changes.iter().map(|c| json!({"version": c.version, "what": c.what})).collect::<Vec<_>>(),
        "fields": FIELDS.iter().map(|f| json!({
            "name": f.name, "type": f.ty, "values": f.values, "why": f.why, "insights": insights_reading(f.name),
        })).collect::<Vec<_>>(),
        "events": schema.events.iter().map(|(name, e)| json!({
            "name": name, "description": e.description, "why": e.why, "props": e.props, "insights": insights_of_event(name),
        })).collect::<Vec<_>>(),
        "props": schema.props.iter().map(|(name, p)| prop_json(name, p, schema)).collect::<Vec<_>>(),
        "example": example(schema),
        "never_collected": NEVER,
        "retention": format!(
            "Events are kept for {} days after they happened: every hour the collector deletes the whole days older than that. \
             The collector's operator can erase a project sooner: `tally erase --project ID` deletes every event of a project. \
             Events older than {max_event_age_days} days when they arrive are refused.",
            schema.retention_days
        ),
        "opt_out": {
            "consent_order": [
                "an organisation policy file (TALLY_POLICY, else /etc/tally/policy.toml) with telemetry = \"off\" or \"local\"",
                format!("the environment variables DO_NOT_TRACK or {prefix}_TELEMETRY_DISABLED"),
                "the project's manifest: no id, or telemetryDisabled, switches it off for everyone who works on the project",
                format!("the user's choice: `{app} telemetry disable` (saved in ~/.config/tally/{app}/config.toml)"),
                "the tool's default",
            ],
            "env": ["DO_NOT_TRACK=1", format!("{prefix}_TELEMETRY_DISABLED=1"), format!("{prefix}_TELEMETRY_DEBUG=1 (prints every payload and sends nothing)")],
            "manifest": [
                format!("package.json: \"{app}\": {{ \"telemetryDisabled\": true }}, or remove \"uuid\""),
                format!("Cargo.toml: [package.metadata.{app}] telemetry-disabled = true"),
                format!(".{app}/telemetry.toml: telemetry_disabled = true"),
            ],
        },
    })
}

/// `GET /v1/apps/{app}/schema`.
#[utoipa::path(
    get,
    path = "/v1/apps/{app}/schema",
    tag = "apps",
    summary = "What an app collects and why",
    description = "Every event, property and field of the app's schema with its type, allowed values, \
        why it is collected and the insights that read it; an example payload; what is never \
        collected; how long it is kept; how to opt out. No token.",
    params(("app" = String, Path, description = "the app's name (GET /v1/apps lists them)")),
    responses(
        (status = 200, description = "the app's schema, described", body = Object, content_type = "application/json"),
        (status = 404, description = "no schema for this app", body = tally_protocol::ErrorBody),
    )
)]
pub(crate) async fn schema(State(s): State<Arc<Shared>>, Path(app): Path<String>) -> Response {
    let Some(schema) = s.schemas.get(&app) else {
        return ApiError::not_found(format!("no schema for app {app:?}; GET /v1/apps lists them")).into_response();
    };
    Json(describe(schema, s.settings.max_event_age_ms / 86_400_000)).into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_insight_of_the_catalog_is_mapped_to_known_fields() {
        let mapped: BTreeSet<_> = INSIGHT_FIELDS.iter().map(|(n, _)| *n).collect();
        let catalog: BTreeSet<_> = tally_insights::CATALOG.iter().map(|i| i.name).collect();
        assert_eq!(mapped, catalog);
        for (insight, fields) in INSIGHT_FIELDS {
            for f in *fields {
                assert!(FIELDS.iter().any(|x| x.name == *f), "{insight} reads {f}, which FIELDS does not list");
            }
        }
    }

    #[test]
    fn every_panel_of_the_dashboard_asks_a_mapped_insight() {
        let pages = include_str!("../assets/pages.js");
        let named: Vec<&str> = pages
            .split("insight: '")
            .skip(1)
            .chain(pages.split("split('").skip(1).filter_map(|rest| rest.split("', '").nth(1)))
            .map(|rest| rest.split('\'').next().expect("quoted"))
            .collect();
        assert!(named.len() > 20, "pages.js names {} panels", named.len());
        for insight in named {
            assert!(
                INSIGHT_FIELDS.iter().any(|(n, _)| *n == insight),
                "a panel asks {insight}, which INSIGHT_FIELDS lacks"
            );
        }
    }

    #[test]
    fn every_builtin_example_payload_passes_the_collectors_checks() {
        let schemas = crate::builtin::load(None).expect("schemas");
        for schema in schemas.iter() {
            let batch = example(schema);
            let body = serde_json::to_vec(&batch).expect("json");
            let checked =
                tally_protocol::check_batch(&body, &schemas, batch.sent_at, tally_protocol::limits::MAX_EVENT_AGE_MS)
                    .unwrap_or_else(|e| panic!("{}: {e:?}", schema.app));
            assert_eq!(checked.dropped_props, 0, "{}", schema.app);
            for (_, result) in &checked.events {
                assert!(matches!(result, Ok(Some(_))), "{}: {result:?}", schema.app);
            }
        }
    }
}
