//! Translation of one Strapi payload into a tally context and event: where each field is
//! looked up in Strapi's changing shapes, which fields are kept, the project and machine,
//! event names, and the install time.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tally_protocol::limits::MAX_NAME_LEN;
use tally_protocol::{AppSchema, Context, Event, PropValue, RejectReason, Rejection};
use tally_store::ServerSecret;
use uuid::Uuid;

use super::installs::InstallTimes;
use super::normalise::{
    arch_of, ci_name, database, env_of, error_kind, field_type, is_token, is_token_byte, os_family, os_version,
    package_manager, plugins, project_type, status_class,
};
use super::{APP, UNKNOWN_EVENT};

/// The `source` of [`ServerSecret::project_uuid`] for Strapi's project ids.
const PROJECT_ID_SOURCE: &str = "strapi:project-id";

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
        _ => secret.project_uuid(PROJECT_ID_SOURCE, raw),
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
