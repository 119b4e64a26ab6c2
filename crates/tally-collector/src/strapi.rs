//! A drop-in receiver for Strapi's own telemetry client (`STRAPI_ANALYTICS_URL`).
//!
//! Strapi's server, CLI, `create-strapi-app` and admin panel post one event per request to
//! `POST /api/v2/track` (v4 and v5) or `POST /track` (v3 and early v4). This module turns
//! such a payload into a tally [`Context`] and [`Event`] of app [`APP`] and hands them, as a
//! batch of one, to the pipeline a native batch ends in ([`crate::ingest::check_and_store`]:
//! `check_batch`, rows, the group commit writer), so the same validation, caps, scrubbing
//! and durability apply.
//!
//! What is kept is decided here, field by field; everything else is never read:
//! - `groupProperties.projectId` (or the legacy `uuid`) is the project, stored keyed-hashed.
//!   A project id that is not a UUID is first mapped to one with the server secret
//!   ([`project_uuid`]), so the same id always lands on the same key.
//! - `installId` / `deviceId` is the machine (already a hash; hashed again with the secret).
//! - OS, Node, environment, Docker and CI fields fill the context; `plugins` the plugins;
//!   a fixed list of group properties become typed props (see `schemas/strapi.toml`).
//! - `userId` (a hash of an admin's e-mail), request URLs, error messages, template names
//!   and any other free text are dropped. `didNot…` events carry an error kind reduced
//!   from the error text by [`error_kind`]; the text itself is never stored.
//! - The install time is derived: a `willInstallProjectDependencies` starts a timer per
//!   project and machine ([`InstallTimes`]); the matching `didInstallProjectDependencies`
//!   (or `didNot…`) carries the elapsed time as `duration_ms`.
//!
//! Event names become snake_case (`didStartServer` → `did_start_server`). A name the schema
//! does not list is stored as event `unknown` with the name as a capped `name` prop, when
//! the schema declares `unknown` and the name looks like Strapi's (`will…` / `did…`);
//! otherwise it is counted in the metrics and dropped.
//!
//! Strapi never reads the response body and only checks for a 2xx status: a stored event
//! is answered 200, a dropped one 202, an unreadable body 400 and a huge one 413.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use tally_protocol::limits::{MAX_NAME_LEN, MAX_PLUGINS};
use tally_protocol::validate::is_plugin_name;
use tally_protocol::{AppSchema, Batch, Context, Env, Event, PropValue, RejectReason, Rejection};
use tally_store::ServerSecret;
use tower_http::cors::{Any, CorsLayer};
use uuid::Uuid;

use crate::error::ApiError;
use crate::{Shared, ingest};

/// The app name Strapi's events are stored under.
pub const APP: &str = "strapi";

/// Largest Strapi request body accepted. Strapi sends one small event per request (a few
/// hundred bytes; at most 1 KB of error text).
pub const MAX_STRAPI_BODY_BYTES: usize = 64 * 1024;

/// How long a started install waits for its end before it is forgotten.
pub const INSTALL_TIMEOUT_MS: i64 = 2 * 60 * 60 * 1000;

/// Most installs waiting for their end at once; beyond it the oldest is forgotten.
pub const MAX_PENDING_INSTALLS: usize = 10_000;

/// The event a Strapi event the schema does not list is stored as (when the schema has it).
pub const UNKNOWN_EVENT: &str = "unknown";

/// The routes of the receiver, with CORS for the admin panel: a browser posts cross-origin
/// with a custom header, so it sends a preflight `OPTIONS` first.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([header::CONTENT_TYPE, HeaderName::from_static("x-strapi-event")])
        .max_age(Duration::from_secs(24 * 60 * 60));
    Router::new()
        .route("/api/v2/track", post(track_v2).options(preflight))
        .route("/track", post(track_legacy).options(preflight))
        .layer(cors)
}

/// Answered only when a request is not a CORS preflight (the layer answers those).
async fn preflight() -> StatusCode {
    StatusCode::NO_CONTENT
}

async fn track_v2(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    track(&s, "/api/v2/track", &headers, body).await
}

async fn track_legacy(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    track(&s, "/track", &headers, body).await
}

async fn track(s: &Shared, route: &'static str, headers: &HeaderMap, body: Body) -> Response {
    let response = match receive(s, headers, body).await {
        Ok((status, body)) => (status, Json(body)).into_response(),
        Err(e) => e.into_response(),
    };
    s.metrics.request(route, response.status().as_u16());
    response
}

async fn receive(s: &Shared, headers: &HeaderMap, body: Body) -> Result<(StatusCode, Value), ApiError> {
    let too_large =
        || ApiError::too_large(format!("a Strapi event is at most {MAX_STRAPI_BODY_BYTES} bytes; this body is larger"));
    let raw = axum::body::to_bytes(body, MAX_STRAPI_BODY_BYTES).await.map_err(|_| too_large())?;
    let raw = ingest::decode(headers, raw)?;
    if raw.len() > MAX_STRAPI_BODY_BYTES {
        return Err(too_large());
    }
    let payload: Value = serde_json::from_slice(&raw)
        .map_err(|e| ApiError::bad_request("malformed", format!("the body is not JSON: {e}")))?;
    let Some(schema) = s.schemas.get(APP) else {
        return Err(ApiError::from_rejection(Rejection::new(
            RejectReason::UnknownApp,
            "this collector has no schema for app \"strapi\"; do not replace the built-in one without it",
        )));
    };
    let header_event = headers.get("x-strapi-event").and_then(|v| v.to_str().ok());
    let now = Utc::now();
    let translated =
        translate(&payload, header_event, now, schema, &s.strapi, &s.secret).map_err(|r| ingest::rejected(s, r))?;
    let (context, event) = match translated {
        Translation::Keep { context, event } => (*context, *event),
        Translation::Drop { reason } => {
            s.metrics.event("rejected", reason.as_str());
            return Ok((StatusCode::ACCEPTED, json!({"status": "dropped", "reason": reason.as_str()})));
        }
    };
    // The same pipeline a native batch takes, on a batch of one.
    let batch = Batch { sent_at: now, context, events: vec![event] };
    let bytes = serde_json::to_vec(&batch).map_err(|e| ApiError::internal(format!("encoding the event: {e}")))?;
    let response = ingest::check_and_store(s, &bytes, now).await?;
    let Some(result) = response.results.into_iter().next() else {
        return Err(ApiError::internal("a batch of one event had no result"));
    };
    // Only a rejected event has a reason; Strapi is answered with its error, not a result.
    if let Some(reason) = result.reason {
        return Err(ApiError::from_rejection(Rejection::new(reason, result.detail.unwrap_or_default())));
    }
    Ok((StatusCode::OK, json!({"status": result.status})))
}

/// What becomes of one Strapi payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Translation {
    /// Store this event (after the usual checks).
    Keep {
        /// The context, as a native client would send it.
        context: Box<Context>,
        /// The event.
        event: Box<Event>,
    },
    /// Count it and drop it.
    Drop {
        /// Why (a metrics label).
        reason: RejectReason,
    },
}

/// Translates one Strapi payload received at `now` into a tally context and event of
/// `schema` (the `strapi` schema). `header_event` is the `X-Strapi-Event` header, used when
/// the body names no event. Fails when the payload is not an object or names no project.
pub fn translate(
    payload: &Value,
    header_event: Option<&str>,
    now: DateTime<Utc>,
    schema: &AppSchema,
    installs: &InstallTimes,
    secret: &ServerSecret,
) -> Result<Translation, Rejection> {
    let malformed = |why: &str| Rejection::new(RejectReason::Malformed, why.to_string());
    let Some(body) = payload.as_object() else {
        return Err(malformed("a Strapi event must be a JSON object"));
    };
    let fields = Fields::of(body);
    let Some(strapi_name) = body.get("event").and_then(Value::as_str).or(header_event).map(str::trim) else {
        return Err(malformed("the body has no `event`"));
    };
    let Some(raw_project) = fields.project() else {
        return Err(Rejection::new(
            RejectReason::InvalidContext,
            "the body has no groupProperties.projectId (Strapi sends none when telemetry is off)",
        ));
    };
    let project = project_uuid(raw_project, secret);

    let snake = snake_case(strapi_name);
    let (event_name, unknown_name) = if snake.as_deref().is_some_and(|n| schema.events.contains_key(n)) {
        (snake.clone().unwrap_or_default(), None)
    } else if schema.events.contains_key(UNKNOWN_EVENT) && looks_like_strapi_event(strapi_name) {
        (UNKNOWN_EVENT.to_string(), snake)
    } else {
        return Ok(Translation::Drop { reason: RejectReason::UnknownEvent });
    };

    let machine = fields
        .top("installId")
        .or_else(|| fields.top("deviceId"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|m| !m.is_empty() && m.len() <= 128 && m.bytes().all(is_token_byte))
        .unwrap_or("unknown")
        .to_string();

    let os_family = os_family(fields.text("osPlatform"), fields.text("os"));
    let context = Context {
        app: APP.to_string(),
        app_version: fields
            .text("version")
            .or_else(|| fields.text("strapiVersion"))
            .map(|v| v.trim_start_matches('v'))
            .filter(|v| is_token(v))
            .unwrap_or("unknown")
            .to_string(),
        project,
        machine: machine.clone(),
        env: env_of(fields.text("environment")),
        os_version: fields.text("osRelease").map(|r| os_version(&os_family, r)).unwrap_or_default(),
        os: os_family,
        arch: arch_of(fields.text("osArch")),
        runtime: "node".to_string(),
        runtime_version: fields
            .text("nodeVersion")
            .map(|v| v.trim_start_matches('v'))
            .filter(|v| is_token(v))
            .unwrap_or_default()
            .to_string(),
        ci: fields.flag("isCI").unwrap_or(false).then(|| ci_name(fields.text("ciName"))),
        container: fields.flag("docker").unwrap_or(false),
    };

    let mut event = Event {
        event_id: Uuid::now_v7(),
        event: event_name,
        occurred_at: now,
        plugins: plugins(fields.get("plugins")),
        duration_ms: None,
        error_kind: None,
        props: BTreeMap::new(),
    };
    let declared = &schema.events[&event.event].props;
    let mut put = |key: &str, value: Option<PropValue>| {
        if let Some(v) = value.filter(|_| declared.contains(key)) {
            event.props.insert(key.to_string(), v);
        }
    };
    let bool_prop = |key: &str| fields.flag(key).map(PropValue::Bool);
    let int_prop = |key: &str| fields.count(key).map(PropValue::Int);
    let str_prop = |v: Option<&'static str>| v.map(|s| PropValue::Str(s.to_string()));
    put("name", unknown_name.map(PropValue::Str));
    put("database", str_prop(fields.text("database").map(database)));
    put("project_type", str_prop(fields.text("projectType").map(project_type)));
    put("typescript", bool_prop("useTypescript").or_else(|| bool_prop("useTypescriptOnServer")));
    put("typescript_admin", bool_prop("useTypescriptOnAdmin"));
    put("strapi_cloud", bool_prop("isHostedOnStrapiCloud"));
    put("content_types", int_prop("numberOfAllContentTypes"));
    put("components", int_prop("numberOfComponents"));
    put("dynamic_zones", int_prop("numberOfDynamicZones"));
    put("conditional_fields", int_prop("numberOfConditionalFields"));
    put("custom_controllers", int_prop("numberOfCustomControllers"));
    put("package_manager", str_prop(package_manager(fields.text("packageManager"), fields.flag("useYarn"))));
    put("install_dependencies", bool_prop("installDependencies"));
    put("git_init", bool_prop("gitInit"));
    put("example", bool_prop("useExample"));
    let status =
        fields.event_count("statusCode").or_else(|| fields.event_count("status")).filter(|s| (100..600).contains(s));
    put("status_class", str_prop(status.map(status_class)));
    put(
        "success",
        fields.event_flag("success").or_else(|| status.map(|s| (200..300).contains(&s))).map(PropValue::Bool),
    );
    put("field_type", str_prop(fields.event_text("type").map(field_type)));

    match strapi_name {
        "willInstallProjectDependencies" => installs.started(project, &machine, now.timestamp_millis()),
        "didInstallProjectDependencies" | "didNotInstallProjectDependencies" => {
            event.duration_ms = installs.finished(project, &machine, now.timestamp_millis());
        }
        _ => {}
    }
    if strapi_name.starts_with("didNot") {
        event.error_kind = Some(error_kind(fields.error_text().unwrap_or_default()).to_string());
    }
    Ok(Translation::Keep { context: Box::new(context), event: Box::new(event) })
}

/// Where a field is looked up: Strapi has moved fields between its shapes over the years.
struct Fields<'a> {
    body: &'a Map<String, Value>,
    /// `groupProperties`, `userProperties` and the legacy `properties`, in that order.
    bags: Vec<&'a Map<String, Value>>,
    /// `eventProperties` (or the admin's typo'd `eventPropeties`), then legacy `properties`.
    event: Vec<&'a Map<String, Value>>,
}

impl<'a> Fields<'a> {
    fn of(body: &'a Map<String, Value>) -> Fields<'a> {
        let bag = |key: &str| body.get(key).and_then(Value::as_object);
        let legacy = bag("properties");
        Fields {
            body,
            bags: [bag("groupProperties"), bag("userProperties"), legacy].into_iter().flatten().collect(),
            event: [bag("eventProperties"), bag("eventPropeties"), legacy].into_iter().flatten().collect(),
        }
    }

    fn top(&self, key: &str) -> Option<&'a Value> {
        self.body.get(key).filter(|v| !v.is_null())
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.bags.iter().find_map(|b| b.get(key)).filter(|v| !v.is_null())
    }

    fn text(&self, key: &str) -> Option<&'a str> {
        self.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
    }

    fn flag(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(as_bool)
    }

    fn count(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(as_count)
    }

    fn event_value(&self, key: &str) -> Option<&'a Value> {
        self.event.iter().find_map(|b| b.get(key)).filter(|v| !v.is_null())
    }

    fn event_text(&self, key: &str) -> Option<&'a str> {
        self.event_value(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
    }

    fn event_flag(&self, key: &str) -> Option<bool> {
        self.event_value(key).and_then(as_bool)
    }

    fn event_count(&self, key: &str) -> Option<i64> {
        self.event_value(key).and_then(as_count)
    }

    /// The project id: `groupProperties.projectId`, the legacy top-level `uuid`, or a
    /// `projectId` anywhere else Strapi has put it.
    fn project(&self) -> Option<&'a str> {
        self.text("projectId")
            .or_else(|| self.top("uuid").and_then(Value::as_str))
            .or_else(|| self.top("projectId").and_then(Value::as_str))
            .map(str::trim)
            .filter(|p| !p.is_empty())
    }

    /// The error text of a `didNot…` event: a string, or an error object's message.
    fn error_text(&self) -> Option<&'a str> {
        let error = self.event_value("error")?;
        error.as_str().or_else(|| error.get("message").and_then(Value::as_str))
    }
}

/// Booleans as Strapi sends them: `true`, `"true"`, `"1"`, `1` (and the opposites).
fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Non-negative counts, as numbers or (v3) strings.
fn as_count(v: &Value) -> Option<i64> {
    let n = match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }?;
    (0..=1_000_000_000).contains(&n).then_some(n)
}

/// The project UUID: Strapi's `projectId` when it is a UUID (it is one when
/// create-strapi-app wrote it), else a UUID derived from the string with the server
/// secret, so that one id always maps to one stored key and the raw id is never stored.
pub fn project_uuid(raw: &str, secret: &ServerSecret) -> Uuid {
    match Uuid::parse_str(raw) {
        Ok(u) if !u.is_nil() => u,
        _ => {
            let derived = secret.machine_key("strapi:project-id", raw).as_uuid();
            if derived.is_nil() { Uuid::from_u128(1) } else { derived }
        }
    }
}

/// `didWritePackageJSON` → `did_write_package_json`; `None` when the result is not a
/// valid event name.
pub fn snake_case(name: &str) -> Option<String> {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase() || prev.is_ascii_digit() || (prev.is_ascii_uppercase() && next_lower) {
                out.push('_');
            }
        }
        match c {
            'A'..='Z' => out.push(c.to_ascii_lowercase()),
            'a'..='z' | '0'..='9' | '_' | '.' | '-' => out.push(c),
            _ => return None,
        }
    }
    tally_protocol::validate::is_name(&out).then_some(out)
}

/// Whether an event name the schema does not list may be counted by name: Strapi's own
/// `will…` / `did…` camelCase shape, nothing that could be free text.
fn looks_like_strapi_event(name: &str) -> bool {
    let rest = name.strip_prefix("will").or_else(|| name.strip_prefix("did"));
    rest.is_some_and(|r| {
        r.len() >= 2
            && name.len() <= MAX_NAME_LEN - 8
            && r.starts_with(|c: char| c.is_ascii_uppercase())
            && r.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// Strapi's environment (`NODE_ENV`, free-form) as one of tally's four.
pub fn env_of(environment: Option<&str>) -> Env {
    let Some(e) = environment.map(str::to_ascii_lowercase) else {
        return Env::Development;
    };
    let has = |words: &[&str]| words.iter().any(|w| e.contains(w));
    if has(&["stag", "preview", "preprod", "pre-prod", "uat", "qa"]) {
        Env::Staging
    } else if has(&["prod", "live"]) {
        Env::Production
    } else if has(&["test", "ci"]) {
        Env::Test
    } else {
        Env::Development
    }
}

/// Node's `os.platform()` (or `os.type()`) as tally's OS family.
fn os_family(platform: Option<&str>, os_type: Option<&str>) -> String {
    let from_platform = platform.map(|p| match p.to_ascii_lowercase().as_str() {
        "darwin" => "macos".to_string(),
        "win32" => "windows".to_string(),
        "sunos" => "solaris".to_string(),
        other => other.to_string(),
    });
    let from_type = || {
        os_type.map(|t| match t.to_ascii_lowercase().as_str() {
            "darwin" => "macos".to_string(),
            "windows_nt" => "windows".to_string(),
            other => other.to_string(),
        })
    };
    from_platform
        .or_else(from_type)
        .filter(|o| tally_protocol::validate::is_name(o) && o.len() <= 32)
        .unwrap_or_else(|| "unknown".to_string())
}

/// `os.release()` reduced to the OS's major version: `6.8` for Linux 6.8.0-45, `14` for
/// Darwin 23.4.0, `11` for Windows 10.0.22631.
pub fn os_version(os: &str, release: &str) -> String {
    let nums: Vec<u64> = release.split(|c: char| !c.is_ascii_digit()).take(3).map_while(|p| p.parse().ok()).collect();
    match (os, nums.as_slice()) {
        ("macos", [darwin, ..]) if *darwin >= 25 => (darwin + 1).to_string(),
        ("macos", [darwin, ..]) if *darwin >= 20 => (darwin - 9).to_string(),
        ("macos", [darwin, ..]) if *darwin >= 5 => format!("10.{}", darwin - 4),
        ("windows", [10, 0, build]) => if *build >= 22000 { "11" } else { "10" }.to_string(),
        (_, [major, minor, ..]) => format!("{major}.{minor}"),
        (_, [major]) => major.to_string(),
        _ => String::new(),
    }
}

/// Node's `os.arch()` in the names tally uses.
fn arch_of(arch: Option<&str>) -> String {
    match arch.map(str::to_ascii_lowercase).as_deref() {
        Some("x64") => "x86_64".into(),
        Some("arm64") => "aarch64".into(),
        Some("ia32") => "x86".into(),
        Some(a) if tally_protocol::validate::is_name(a) && a.len() <= 16 => a.into(),
        _ => "unknown".into(),
    }
}

/// The CI vendor: Strapi only says whether it runs in CI, so the vendor is `unknown`
/// unless a `ciName` is sent.
fn ci_name(name: Option<&str>) -> String {
    name.map(|n| n.to_ascii_lowercase().replace(' ', "_"))
        .filter(|n| tally_protocol::validate::is_name(n) && n.len() <= 32)
        .unwrap_or_else(|| "unknown".into())
}

/// Plugin names as sent, lower-cased; names that are not plain plugin names are dropped.
fn plugins(value: Option<&Value>) -> Vec<String> {
    let Some(list) = value.and_then(Value::as_array) else {
        return vec![];
    };
    list.iter()
        .filter_map(Value::as_str)
        .map(|p| p.trim().to_ascii_lowercase())
        .filter(|p| is_plugin_name(p))
        .take(MAX_PLUGINS)
        .collect()
}

fn database(client: &str) -> &'static str {
    match client.to_ascii_lowercase().as_str() {
        "sqlite" | "sqlite3" | "better-sqlite3" => "sqlite",
        "postgres" | "postgresql" | "pg" => "postgres",
        "mysql" | "mysql2" => "mysql",
        "mariadb" => "mariadb",
        "mongo" | "mongodb" | "mongoose" => "mongo",
        _ => "other",
    }
}

fn project_type(t: &str) -> &'static str {
    match t.to_ascii_lowercase().as_str() {
        "community" => "community",
        "enterprise" => "enterprise",
        _ => "other",
    }
}

fn package_manager(name: Option<&str>, use_yarn: Option<bool>) -> Option<&'static str> {
    match (name.map(str::to_ascii_lowercase).as_deref(), use_yarn) {
        (Some("npm"), _) => Some("npm"),
        (Some("yarn"), _) => Some("yarn"),
        (Some("pnpm"), _) => Some("pnpm"),
        (Some("bun"), _) => Some("bun"),
        (Some(_), _) => Some("other"),
        (None, Some(true)) => Some("yarn"),
        (None, Some(false)) => Some("npm"),
        (None, None) => None,
    }
}

fn status_class(status: i64) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

fn field_type(t: &str) -> &'static str {
    const TYPES: &[&str] = &[
        "text",
        "richtext",
        "blocks",
        "email",
        "password",
        "number",
        "enumeration",
        "date",
        "media",
        "boolean",
        "json",
        "relation",
        "uid",
        "component",
        "dynamiczone",
        "customField",
    ];
    TYPES.iter().find(|k| **k == t).copied().unwrap_or("other")
}

/// Reduces an error text (a message, or up to 1 KB of a package manager's stderr) to a
/// bounded kind. The first matching rule wins; the text itself is never kept.
pub fn error_kind(text: &str) -> &'static str {
    const CODES: &[&str] = &[
        "ENOENT",
        "EACCES",
        "EPERM",
        "ENOSPC",
        "EEXIST",
        "EBUSY",
        "EMFILE",
        "ENOTEMPTY",
        "EINTEGRITY",
        "ERESOLVE",
        "ETARGET",
        "E404",
        "E401",
        "E403",
        "EBADENGINE",
    ];
    let lower = text.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
    if has(&["etimedout", "esockettimedout", "timed out", "timeout"]) {
        return "timeout";
    }
    if has(&[
        "econnrefused",
        "econnreset",
        "enotfound",
        "eai_again",
        "enetunreach",
        "ehostunreach",
        "getaddrinfo",
        "socket hang up",
        "network",
        "proxy",
        "self signed certificate",
        "unable_to_get_issuer_cert",
    ]) {
        return "network";
    }
    if let Some(code) = CODES.iter().find(|c| contains_word(text, c)) {
        return code;
    }
    if has(&["out of memory", "heap out of memory", "enomem"]) {
        return "out_of_memory";
    }
    if has(&["node-gyp", "gyp err", "prebuild-install", "compilation error"]) {
        return "native_build";
    }
    if has(&["unsupported engine", "engine \"node\" is incompatible", "the engine"]) {
        return "EBADENGINE";
    }
    if has(&["sigkill", "sigterm", "killed"]) {
        return "killed";
    }
    if text.trim().is_empty() { "unknown" } else { "other" }
}

/// Whether `word` appears in `text` delimited by non-alphanumerics (so `E404` is not found
/// inside `E4041`).
fn contains_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric()) && !after.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._:+-".contains(&b)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME_LEN && s.bytes().all(is_token_byte)
}

/// Installs that started and have not ended yet, per project and machine, with the time
/// they started. Bounded: entries older than [`INSTALL_TIMEOUT_MS`] are forgotten, and at
/// [`MAX_PENDING_INSTALLS`] the oldest goes.
#[derive(Debug, Default)]
pub struct InstallTimes {
    pending: Mutex<HashMap<(Uuid, String), i64>>,
}

impl InstallTimes {
    /// No pending installs.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Uuid, String), i64>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes that `project` started installing on `machine` at `at_ms`. A second start
    /// replaces the first (the first install was abandoned).
    pub fn started(&self, project: Uuid, machine: &str, at_ms: i64) {
        let mut pending = self.lock();
        let key = (project, machine.to_string());
        if pending.len() >= MAX_PENDING_INSTALLS && !pending.contains_key(&key) {
            pending.retain(|_, started| at_ms - *started <= INSTALL_TIMEOUT_MS);
            if pending.len() >= MAX_PENDING_INSTALLS
                && let Some(oldest) = pending.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone())
            {
                pending.remove(&oldest);
            }
        }
        pending.insert(key, at_ms);
    }

    /// The install of `project` on `machine` ended at `at_ms`: its duration, when its start
    /// was seen less than [`INSTALL_TIMEOUT_MS`] ago.
    pub fn finished(&self, project: Uuid, machine: &str, at_ms: i64) -> Option<u64> {
        let started = self.lock().remove(&(project, machine.to_string()))?;
        let elapsed = at_ms - started;
        (0..=INSTALL_TIMEOUT_MS).contains(&elapsed).then_some(elapsed as u64)
    }

    /// How many installs are waiting for their end.
    pub fn pending(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_snake_case() {
        let cases = [
            ("didStartServer", Some("did_start_server")),
            ("didWritePackageJSON", Some("did_write_package_json")),
            ("didNotInstallProjectDependencies", Some("did_not_install_project_dependencies")),
            ("ping", Some("ping")),
            ("didOptOutTelemetry", Some("did_opt_out_telemetry")),
            ("did launch", None),
            ("", None),
            ("didGoTo/https://example.com", None),
        ];
        for (name, want) in cases {
            assert_eq!(snake_case(name).as_deref(), want, "{name}");
        }
    }

    #[test]
    fn only_strapi_shaped_names_are_counted() {
        for (name, ok) in [
            ("didFrobnicate", true),
            ("willDoX", true),
            ("did", false),
            ("didnot", false),
            ("somethingElse", false),
            ("didSend alice@example.com", false),
            ("didAVeryLongEventNameThatGoesOnAndOnAndOnAndOnAndOnAndOnForeverAndEver", false),
        ] {
            assert_eq!(looks_like_strapi_event(name), ok, "{name}");
        }
    }

    #[test]
    fn environments_map_to_four() {
        let cases = [
            (None, Env::Development),
            (Some("development"), Env::Development),
            (Some("dev"), Env::Development),
            (Some("production"), Env::Production),
            (Some("prod"), Env::Production),
            (Some("staging"), Env::Staging),
            (Some("preprod"), Env::Staging),
            (Some("preview"), Env::Staging),
            (Some("test"), Env::Test),
            (Some("whatever"), Env::Development),
        ];
        for (e, want) in cases {
            assert_eq!(env_of(e), want, "{e:?}");
        }
    }

    #[test]
    fn os_versions_are_major() {
        let cases = [
            ("linux", "6.8.0-45-generic", "6.8"),
            ("linux", "6.18.44-fc-v657", "6.18"),
            ("macos", "23.4.0", "14"),
            ("macos", "25.0.0", "26"),
            ("macos", "19.6.0", "10.15"),
            ("windows", "10.0.22631", "11"),
            ("windows", "10.0.19045", "10"),
            ("linux", "garbage", ""),
        ];
        for (os, release, want) in cases {
            assert_eq!(os_version(os, release), want, "{os} {release}");
        }
    }

    #[test]
    fn error_texts_become_kinds() {
        let cases = [
            ("", "unknown"),
            ("npm error code EACCES\nnpm error syscall mkdir\nnpm error path /home/alice/app", "EACCES"),
            ("Error: ENOENT: no such file or directory, open '/Users/bob/x/package.json'", "ENOENT"),
            ("npm ERR! code ETIMEDOUT\nnpm ERR! network request to https://registry.npmjs.org failed", "timeout"),
            ("getaddrinfo ENOTFOUND registry.npmjs.org", "network"),
            ("npm error code ERESOLVE\nnpm error ERESOLVE unable to resolve dependency tree", "ERESOLVE"),
            ("npm ERR! code E404 Not Found - GET https://registry.npmjs.org/@strapi%2fnope", "E404"),
            ("gyp ERR! build error\nnode-gyp rebuild failed", "native_build"),
            ("FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory", "out_of_memory"),
            ("something odd happened to alice@example.com", "other"),
        ];
        for (text, want) in cases {
            assert_eq!(error_kind(text), want, "{text}");
        }
    }

    #[test]
    fn installs_are_timed_and_bounded() {
        let t = InstallTimes::new();
        let p = Uuid::from_u128(7);
        assert_eq!(t.finished(p, "m", 10), None, "no start seen");
        t.started(p, "m", 1_000);
        assert_eq!(t.finished(p, "other-machine", 2_000), None);
        assert_eq!(t.finished(p, "m", 43_000), Some(42_000));
        assert_eq!(t.finished(p, "m", 44_000), None, "an end is used once");
        t.started(p, "m", 0);
        assert_eq!(t.finished(p, "m", INSTALL_TIMEOUT_MS + 1), None, "too late");
        for i in 0..(MAX_PENDING_INSTALLS as u128 + 10) {
            t.started(Uuid::from_u128(i + 100), "m", i as i64);
        }
        assert_eq!(t.pending(), MAX_PENDING_INSTALLS);
        assert_eq!(t.finished(Uuid::from_u128(100), "m", 20_000), None, "the oldest was evicted");
    }

    #[test]
    fn non_uuid_project_ids_map_to_one_key() {
        let secret = ServerSecret::from_bytes([1; 32]);
        let u = "7b581c0d-89b7-479e-b379-a76ab90b8754";
        assert_eq!(project_uuid(u, &secret).to_string(), u);
        let a = project_uuid("my-project", &secret);
        assert_eq!(a, project_uuid("my-project", &secret));
        assert_ne!(a, project_uuid("my-project-2", &secret));
        assert_ne!(a, project_uuid("my-project", &ServerSecret::from_bytes([2; 32])));
    }
}
