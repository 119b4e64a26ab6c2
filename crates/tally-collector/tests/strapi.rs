//! The Strapi-compatible receiver: fixture payloads of every shape Strapi sends, the
//! privacy rules, install-time derivation, CORS, and Strapi's own published sender posting
//! to a collector on loopback.
//!
//! One file (about 800 lines) because it is one table of Strapi's payload shapes and what
//! each becomes; the fixtures and their expected rows are read side by side.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use chrono::{TimeZone, Utc};
use serde_json::Value;
use tally_collector::strapi::{self, InstallTimes, Translation};
use tally_collector::{Collector, Settings};
use tally_protocol::{Env, PropValue};
use tally_store::{AppendStatus, EventRow, EventStore, KnownValues, MemoryStore, ProjectKey, Query, ServerSecret};
use tally_store::{StoreError, Table};
use tower::ServiceExt;
use uuid::Uuid;

const SECRET: [u8; 32] = [9; 32];

/// A memory store that also keeps every row it stored, for inspection.
#[derive(Default)]
struct RecordingStore {
    inner: MemoryStore,
    rows: Mutex<Vec<EventRow>>,
}

impl RecordingStore {
    fn rows(&self) -> Vec<EventRow> {
        self.rows.lock().expect("lock").clone()
    }
}

impl EventStore for RecordingStore {
    fn append(&self, rows: &[EventRow]) -> Result<Vec<AppendStatus>, StoreError> {
        let statuses = self.inner.append(rows)?;
        let mut kept = self.rows.lock().expect("lock");
        for (row, status) in rows.iter().zip(&statuses) {
            if *status == AppendStatus::Inserted {
                kept.push(row.clone());
            }
        }
        Ok(statuses)
    }
    fn apply(&self, rows: &[EventRow], through: u64) -> Result<Vec<AppendStatus>, StoreError> {
        let statuses = self.append(rows)?;
        self.inner.apply(&[], through)?;
        Ok(statuses)
    }
    fn applied_position(&self) -> Result<Option<u64>, StoreError> {
        self.inner.applied_position()
    }
    fn event_ids_since(&self, since_ms: i64) -> Result<Vec<(Uuid, i64)>, StoreError> {
        self.inner.event_ids_since(since_ms)
    }
    fn query(&self, q: &Query) -> Result<Table, StoreError> {
        self.inner.query(q)
    }
    fn erase_project(&self, p: &ProjectKey) -> Result<u64, StoreError> {
        self.inner.erase_project(p)
    }
    fn apply_retention(&self, app: &str, before_ms: i64) -> Result<u64, StoreError> {
        self.inner.apply_retention(app, before_ms)
    }
    fn known_values(&self, app: &str) -> Result<KnownValues, StoreError> {
        self.inner.known_values(app)
    }
    fn count_events(&self) -> Result<u64, StoreError> {
        self.inner.count_events()
    }
}

fn collector(store: Arc<RecordingStore>) -> Collector {
    let schemas = tally_collector::builtin::load(None).expect("schemas");
    Collector::new(store, schemas, ServerSecret::from_bytes(SECRET), Settings::default()).expect("collector")
}

fn fixture_dir() -> PathBuf {
    Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/strapi")
}

fn fixture(name: &str) -> Vec<u8> {
    let path = fixture_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn post(path: &str, body: Vec<u8>) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-strapi-event", "fromHeader")
        .body(Body::from(body))
        .expect("request")
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// What one fixture must become.
struct Expected {
    fixture: &'static str,
    route: &'static str,
    event: &'static str,
    app_version: &'static str,
    env: Env,
    os: &'static str,
    os_version: &'static str,
    arch: &'static str,
    runtime_version: &'static str,
    ci: &'static str,
    container: bool,
    plugins: &'static [&'static str],
    props: &'static [(&'static str, Prop)],
    error_kind: Option<&'static str>,
}

#[derive(Debug, Clone, Copy)]
enum Prop {
    B(bool),
    I(i64),
    S(&'static str),
}

impl Prop {
    fn value(self) -> PropValue {
        match self {
            Prop::B(b) => PropValue::Bool(b),
            Prop::I(i) => PropValue::Int(i),
            Prop::S(s) => PropValue::Str(s.to_string()),
        }
    }
}

const PROJECT_PROPS: &[(&str, Prop)] = &[
    ("example", Prop::B(false)),
    ("git_init", Prop::B(true)),
    ("install_dependencies", Prop::B(true)),
    ("package_manager", Prop::S("pnpm")),
    ("strapi_cloud", Prop::B(false)),
    ("typescript", Prop::B(true)),
    ("typescript_admin", Prop::B(true)),
];

const CREATE_PROPS: &[(&str, Prop)] = &[("package_manager", Prop::S("pnpm")), ("typescript", Prop::B(true))];

fn create_app(fixture: &'static str, event: &'static str, error_kind: Option<&'static str>) -> Expected {
    Expected {
        fixture,
        route: "/api/v2/track",
        event,
        app_version: "5.55.0",
        env: Env::Development,
        os: "linux",
        os_version: "6.8",
        arch: "x86_64",
        runtime_version: "20.20.2",
        ci: "",
        container: false,
        plugins: &[],
        props: CREATE_PROPS,
        error_kind,
    }
}

fn cases() -> Vec<Expected> {
    use Prop::*;
    vec![
        Expected {
            fixture: "v2_server_did_start_server.json",
            route: "/api/v2/track",
            event: "did_start_server",
            app_version: "5.54.0",
            env: Env::Production,
            os: "unknown",
            os_version: "",
            arch: "unknown",
            runtime_version: "",
            ci: "",
            container: true,
            plugins: &["content-manager", "i18n", "users-permissions", "upload"],
            props: &[
                ("components", I(3)),
                ("conditional_fields", I(2)),
                ("content_types", I(14)),
                ("custom_controllers", I(1)),
                ("database", S("sqlite")),
                ("dynamic_zones", I(0)),
                ("project_type", S("community")),
                ("strapi_cloud", B(false)),
                ("typescript", B(true)),
                ("typescript_admin", B(false)),
            ],
            error_kind: None,
        },
        Expected {
            fixture: "v2_server_ping.json",
            route: "/api/v2/track",
            event: "ping",
            app_version: "5.54.0",
            env: Env::Staging,
            os: "macos",
            os_version: "14",
            arch: "aarch64",
            runtime_version: "22.11.0",
            ci: "unknown",
            container: false,
            plugins: &[],
            props: &[
                ("project_type", S("enterprise")),
                ("strapi_cloud", B(true)),
                ("typescript", B(true)),
                ("typescript_admin", B(true)),
            ],
            error_kind: None,
        },
        Expected {
            fixture: "v2_server_did_receive_request.json",
            route: "/api/v2/track",
            event: "did_receive_request",
            app_version: "5.54.0",
            env: Env::Production,
            os: "linux",
            os_version: "5.15",
            arch: "x86_64",
            runtime_version: "20.11.1",
            ci: "",
            container: false,
            plugins: &[],
            props: &[("status_class", S("4xx")), ("success", B(false))],
            error_kind: None,
        },
        Expected {
            fixture: "cli_did_opt_out_telemetry.json",
            route: "/api/v2/track",
            event: "did_opt_out_telemetry",
            app_version: "unknown",
            env: Env::Development,
            os: "unknown",
            os_version: "",
            arch: "unknown",
            runtime_version: "",
            ci: "",
            container: false,
            plugins: &[],
            props: &[],
            error_kind: None,
        },
        Expected {
            props: PROJECT_PROPS,
            ..create_app("create_app_will_create_project.json", "will_create_project", None)
        },
        Expected {
            props: PROJECT_PROPS,
            ..create_app("create_app_did_create_project.json", "did_create_project", None)
        },
        create_app("create_app_will_install_project_dependencies.json", "will_install_project_dependencies", None),
        create_app("create_app_did_install_project_dependencies.json", "did_install_project_dependencies", None),
        create_app(
            "create_app_did_not_install_project_dependencies.json",
            "did_not_install_project_dependencies",
            Some("EACCES"),
        ),
        Expected {
            fixture: "admin_did_initialize_administration.json",
            route: "/api/v2/track",
            event: "did_initialize_administration",
            app_version: "unknown",
            env: Env::Development,
            os: "unknown",
            os_version: "",
            arch: "unknown",
            runtime_version: "",
            ci: "",
            container: false,
            plugins: &[],
            props: &[
                ("components", I(4)),
                ("content_types", I(9)),
                ("dynamic_zones", I(1)),
                ("project_type", S("enterprise")),
                ("strapi_cloud", B(false)),
                ("typescript", B(true)),
                ("typescript_admin", B(false)),
            ],
            error_kind: None,
        },
        Expected {
            fixture: "admin_did_select_content_type_field_type.json",
            route: "/api/v2/track",
            event: "did_select_content_type_field_type",
            app_version: "unknown",
            env: Env::Development,
            os: "unknown",
            os_version: "",
            arch: "unknown",
            runtime_version: "",
            ci: "",
            container: false,
            plugins: &[],
            props: &[("field_type", S("richtext"))],
            error_kind: None,
        },
        Expected {
            fixture: "admin_unknown_event.json",
            route: "/api/v2/track",
            event: "unknown",
            app_version: "unknown",
            env: Env::Development,
            os: "unknown",
            os_version: "",
            arch: "unknown",
            runtime_version: "",
            ci: "",
            container: false,
            plugins: &[],
            props: &[("name", S("did_frobnicate_widget"))],
            error_kind: None,
        },
        Expected {
            fixture: "legacy_v4_track.json",
            route: "/track",
            event: "did_start_server",
            app_version: "4.3.2",
            env: Env::Development,
            os: "windows",
            os_version: "11",
            arch: "x86_64",
            runtime_version: "18.19.0",
            ci: "",
            container: false,
            plugins: &["content-type-builder", "email", "upload", "documentation"],
            props: &[
                ("components", I(7)),
                ("content_types", I(22)),
                ("database", S("postgres")),
                ("dynamic_zones", I(2)),
                ("project_type", S("community")),
                ("typescript", B(false)),
                ("typescript_admin", B(false)),
            ],
            error_kind: None,
        },
        Expected {
            fixture: "legacy_v3_track_strings.json",
            route: "/track",
            event: "did_start_server",
            app_version: "3.6.8",
            env: Env::Test,
            os: "linux",
            os_version: "4.19",
            arch: "unknown",
            runtime_version: "14.17.0",
            ci: "unknown",
            container: true,
            plugins: &[],
            props: &[("components", I(0)), ("content_types", I(5)), ("database", S("mongo")), ("dynamic_zones", I(0))],
            error_kind: None,
        },
    ]
}

fn check_row(row: &EventRow, want: &Expected) {
    let ctx = want.fixture;
    assert_eq!(row.app, "strapi", "{ctx}");
    assert_eq!(row.event, want.event, "{ctx}");
    assert_eq!(row.app_version, want.app_version, "{ctx}");
    assert_eq!(row.env, want.env, "{ctx}");
    assert_eq!((row.os.as_str(), row.os_version.as_str()), (want.os, want.os_version), "{ctx}");
    assert_eq!(row.arch, want.arch, "{ctx}");
    assert_eq!((row.runtime.as_str(), row.runtime_version.as_str()), ("node", want.runtime_version), "{ctx}");
    assert_eq!(row.ci, want.ci, "{ctx}");
    assert_eq!(row.container, want.container, "{ctx}");
    assert_eq!(row.plugins, want.plugins, "{ctx}");
    let props: BTreeMap<String, PropValue> = want.props.iter().map(|(k, v)| (k.to_string(), v.value())).collect();
    assert_eq!(row.props, props, "{ctx}");
    assert_eq!(row.error_kind.as_deref(), want.error_kind, "{ctx}");
}

fn payload(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).expect("fixture is JSON")
}

fn project_key(fixture_name: &str) -> ProjectKey {
    let p = payload(fixture_name);
    let raw = p["groupProperties"]["projectId"].as_str().or(p["uuid"].as_str()).expect("project id");
    ServerSecret::from_bytes(SECRET).project_key(&Uuid::parse_str(raw).expect("uuid"))
}

#[tokio::test]
async fn every_fixture_lands_as_its_row() {
    let cases = cases();
    let mut files: Vec<String> = std::fs::read_dir(fixture_dir())
        .expect("fixtures")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    for file in &files {
        assert!(
            cases.iter().any(|c| c.fixture == file) || file == "plugin_free_text_event.json",
            "fixture {file} has no expected row in cases()"
        );
    }
    for want in &cases {
        let store = Arc::new(RecordingStore::default());
        let app = collector(store.clone()).router();
        let (status, body) = send(&app, post(want.route, fixture(want.fixture))).await;
        assert_eq!(status, StatusCode::OK, "{}: {body}", want.fixture);
        assert_eq!(body["status"], "accepted", "{}", want.fixture);
        let rows = store.rows();
        assert_eq!(rows.len(), 1, "{}", want.fixture);
        check_row(&rows[0], want);
        assert_eq!(rows[0].project, project_key(want.fixture), "{}: project is the keyed hash", want.fixture);
    }
}

#[tokio::test]
async fn both_routes_take_both_shapes() {
    let store = Arc::new(RecordingStore::default());
    let app = collector(store.clone()).router();
    for (route, file) in [("/track", "v2_server_did_start_server.json"), ("/api/v2/track", "legacy_v4_track.json")] {
        let (status, body) = send(&app, post(route, fixture(file))).await;
        assert_eq!(status, StatusCode::OK, "{route} {file}: {body}");
    }
    assert_eq!(store.rows().iter().map(|r| r.app_version.as_str()).collect::<Vec<_>>(), ["5.54.0", "4.3.2"]);
}

#[tokio::test]
async fn free_text_event_names_are_counted_and_dropped() {
    let store = Arc::new(RecordingStore::default());
    let c = collector(store.clone());
    let app = c.router();
    let (status, body) = send(&app, post("/api/v2/track", fixture("plugin_free_text_event.json"))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["reason"], "unknown_event");
    assert!(store.rows().is_empty());
    let metrics = c.metrics().render();
    assert!(
        metrics.lines().any(|l| l.starts_with("tally_events_total{outcome=\"rejected\",reason=\"unknown_event\"} 1")),
        "{metrics}"
    );
}

#[tokio::test]
async fn unknown_names_are_not_stored_when_the_schema_has_no_unknown_event() {
    let store = Arc::new(RecordingStore::default());
    let strict = std::fs::read_to_string(
        Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
            .join("schemas/strapi.toml"),
    )
    .expect("schema")
    .replace("[events.unknown]", "[events.unknown_disabled]");
    let schemas =
        tally_protocol::SchemaSet::from_texts([(Path::new("strict.toml"), strict.as_str())]).expect("schema parses");
    let app = Collector::new(store.clone(), schemas, ServerSecret::from_bytes(SECRET), Settings::default())
        .expect("collector")
        .router();
    let (status, _) = send(&app, post("/api/v2/track", fixture("admin_unknown_event.json"))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(store.rows().is_empty());
}

#[tokio::test]
async fn nothing_personal_is_stored() {
    let store = Arc::new(RecordingStore::default());
    let app = collector(store.clone()).router();
    for want in cases() {
        let (status, _) = send(&app, post(want.route, fixture(want.fixture))).await;
        assert_eq!(status, StatusCode::OK, "{}", want.fixture);
    }
    let dump = format!("{:?}", store.rows()).to_lowercase();
    let forbidden = [
        // userId: sha256 of an admin's e-mail
        "b4c1d8e2f7a3960c5e1b8d4f2a7c3e9b6d1f8a4c2e7b3d9f5a1c6e8b2d4f7a9c",
        // machine ids and project ids as sent
        "e8ed5bc27a1f4c0d9b3e6f2a8c4d1e7b5a9f3c6e2d8b4a1f7c3e9d5b2a6f5459",
        "c7a9d2b0e4f1a3c5b7d9e1f3a5c7b9d1e3f5a7c9b1d3e5f7a9c1b3d5e7f9a1c3",
        "7b581c0d-89b7-479e-b379-a76ab90b8754",
        "3f0d5b8e-2a41-4c7e-9d7b-1e5a6c2f9b10",
        // the request URL and its query
        "/api/articles",
        "filters",
        "s3cr3t",
        // stderr text, paths, e-mails, tokens, template URLs
        "alice",
        "example.com",
        "permission denied",
        "npm error",
        "/home/",
        "npm_abcdefghij",
        "github.com",
        "token",
        // admin event properties that are not declared
        "registeredwidgets",
        "hello",
        "sub_123",
        "price_456",
    ];
    for f in forbidden {
        assert!(!dump.contains(f), "stored rows contain {f:?}:\n{dump}");
    }
}

/// Issue 11 on the Strapi path: every group property that fills a context field, sent
/// with personal data, is stored without it (the same pipeline as native batches).
#[tokio::test]
async fn personal_data_in_context_fields_is_not_stored() {
    let hostile = [
        "alice@example.com",
        "192.168.1.23",
        "fe80::1ff:fe23:4567:890a",
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_0123456789abcdefghijABCDEFGHIJ012345",
        "xoxb-123456789012-abcdefghijkl",
        "sk_live_0123456789abcdefABCDEF",
        "/home/alice/project",
        "alice-macbook.local",
    ];
    let store = Arc::new(RecordingStore::default());
    let app = collector(store.clone()).router();
    let mut sent = 0;
    for key in ["version", "osPlatform", "osArch", "nodeVersion", "ciName"] {
        for value in hostile {
            let mut p = payload("v2_server_did_start_server.json");
            p["groupProperties"][key] = Value::String(value.to_string());
            p["groupProperties"]["isCI"] = Value::Bool(true);
            let (status, body) = send(&app, post("/api/v2/track", serde_json::to_vec(&p).expect("json"))).await;
            assert_eq!((status, &body["status"]), (StatusCode::OK, &Value::from("accepted")), "{key} = {value}");
            sent += 1;
        }
    }
    let rows = store.rows();
    assert_eq!(rows.len(), sent, "no event is lost");
    let dump = format!("{rows:?}").to_lowercase();
    for leak in
        hostile.iter().map(|h| h.to_lowercase()).chain(["alice", "akia", "ghp_", "xoxb", "sk_live"].map(String::from))
    {
        assert!(!dump.contains(&leak), "stored rows contain {leak:?}:\n{dump}");
    }
}

#[tokio::test]
async fn install_time_is_measured_between_will_and_did() {
    let store = Arc::new(RecordingStore::default());
    let app = collector(store.clone()).router();
    for (file, pause) in [
        ("create_app_will_create_project.json", 0),
        ("create_app_will_install_project_dependencies.json", 120),
        ("create_app_did_install_project_dependencies.json", 0),
        ("create_app_did_create_project.json", 0),
    ] {
        let (status, _) = send(&app, post("/api/v2/track", fixture(file))).await;
        assert_eq!(status, StatusCode::OK, "{file}");
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    let rows = store.rows();
    let durations: Vec<(&str, Option<u64>)> = rows.iter().map(|r| (r.event.as_str(), r.duration_ms)).collect();
    assert_eq!(durations.len(), 4);
    let (event, installed) = durations[2];
    assert_eq!(event, "did_install_project_dependencies");
    let ms = installed.expect("the install has a duration");
    assert!((120..10_000).contains(&ms), "{ms} ms");
    assert!(durations.iter().filter(|(e, _)| *e != "did_install_project_dependencies").all(|(_, d)| d.is_none()));
}

/// Runs a fixture sequence through the translation at given times: (fixture, seconds).
fn durations_of(sequences: &[&[(&str, i64, &str)]]) -> Vec<u64> {
    let schemas = tally_collector::builtin::load(None).expect("schemas");
    let schema = schemas.get("strapi").expect("strapi schema");
    let secret = ServerSecret::from_bytes(SECRET);
    let installs = InstallTimes::new();
    let mut out = vec![];
    for seq in sequences {
        for (file, at_s, device) in *seq {
            let mut p = payload(file);
            p["deviceId"] = Value::String(device.to_string());
            let now = Utc.timestamp_opt(1_760_000_000 + at_s, 0).single().expect("time");
            match strapi::translate(&p, None, now, schema, &installs, &secret).expect("translates") {
                Translation::Keep { event, .. } => out.extend(event.duration_ms),
                Translation::Drop { reason } => panic!("{file} dropped: {reason}"),
            }
        }
    }
    out
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank - 1]
}

#[test]
fn install_time_percentiles_over_fixture_sequences() {
    const WILL: &str = "create_app_will_install_project_dependencies.json";
    const DID: &str = "create_app_did_install_project_dependencies.json";
    const FAILED: &str = "create_app_did_not_install_project_dependencies.json";
    const CREATED: &str = "create_app_did_create_project.json";
    // Five machines installing the same project, interleaved in time; one failed install
    // (its time is kept too, with its error kind); one end without a start (no duration).
    let mut durations = durations_of(&[
        &[(WILL, 0, "m1"), (WILL, 5, "m2"), (DID, 30, "m1"), (WILL, 40, "m3"), (DID, 50, "m2")],
        &[(DID, 100, "m3"), (CREATED, 101, "m3"), (WILL, 200, "m4"), (FAILED, 290, "m4")],
        &[(DID, 300, "m5"), (WILL, 400, "m5"), (WILL, 410, "m5"), (DID, 530, "m5")],
    ]);
    assert_eq!(durations, [30_000, 45_000, 60_000, 90_000, 120_000]);
    durations.sort_unstable();
    assert_eq!(percentile(&durations, 50.0), 60_000);
    assert_eq!(percentile(&durations, 90.0), 120_000);
}

#[tokio::test]
async fn cors_preflight_is_answered() {
    let app = collector(Arc::new(RecordingStore::default())).router();
    for path in ["/api/v2/track", "/track"] {
        let req = Request::builder()
            .method(Method::OPTIONS)
            .uri(path)
            .header(header::ORIGIN, "http://localhost:1337")
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type,x-strapi-event")
            .body(Body::empty())
            .expect("request");
        let resp = app.clone().oneshot(req).await.expect("infallible");
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        let h = |name: header::HeaderName| {
            resp.headers().get(name).map(|v| v.to_str().expect("ascii").to_ascii_lowercase()).unwrap_or_default()
        };
        assert_eq!(h(header::ACCESS_CONTROL_ALLOW_ORIGIN), "*", "{path}");
        assert!(h(header::ACCESS_CONTROL_ALLOW_METHODS).contains("post"), "{path}");
        let allowed = h(header::ACCESS_CONTROL_ALLOW_HEADERS);
        assert!(allowed.contains("content-type") && allowed.contains("x-strapi-event"), "{path}: {allowed}");
    }
    // The actual cross-origin POST carries the allow-origin header too.
    let store = Arc::new(RecordingStore::default());
    let app = collector(store).router();
    let mut req = post("/api/v2/track", fixture("admin_did_initialize_administration.json"));
    req.headers_mut().insert(header::ORIGIN, "http://localhost:1337".parse().expect("header"));
    let resp = app.oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).map(|v| v.as_bytes()), Some(&b"*"[..]));
}

#[tokio::test]
async fn bad_input_is_answered_never_crashes() {
    let store = Arc::new(RecordingStore::default());
    let app = collector(store.clone()).router();
    let huge = format!(r#"{{"event":"ping","pad":"{}"}}"#, "x".repeat(strapi::MAX_STRAPI_BODY_BYTES));
    let cases: Vec<(Vec<u8>, StatusCode, &str)> = vec![
        (b"not json".to_vec(), StatusCode::BAD_REQUEST, "malformed"),
        (b"".to_vec(), StatusCode::BAD_REQUEST, "malformed"),
        (b"[1,2,3]".to_vec(), StatusCode::BAD_REQUEST, "malformed"),
        (b"null".to_vec(), StatusCode::BAD_REQUEST, "malformed"),
        (br#"{"event":"ping"}"#.to_vec(), StatusCode::BAD_REQUEST, "invalid_context"),
        (br#"{"event":42,"groupProperties":{"projectId":"x"}}"#.to_vec(), StatusCode::ACCEPTED, ""),
        (huge.into_bytes(), StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
        (
            br#"{"event":"ping","groupProperties":{"projectId":"not-a-uuid","plugins":"nope","version":{"x":1},"numberOfComponents":-4,"docker":[]},"userProperties":null,"installId":"has spaces in it"}"#.to_vec(),
            StatusCode::OK,
            "",
        ),
    ];
    for (body, want, code) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        let (status, answer) = send(&app, post("/api/v2/track", body)).await;
        assert_eq!(status, want, "{shown}: {answer}");
        if !code.is_empty() {
            assert_eq!(answer["error"], code, "{shown}");
            assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()), "{shown}");
        }
    }
    // `event: 42` falls back to the X-Strapi-Event header, `fromHeader`, which is not
    // Strapi-shaped: dropped. The odd ping is stored, with every odd field left out.
    let rows = store.rows();
    assert!(rows.iter().all(|r| r.event == "ping"), "{rows:?}");
    let ping = rows.last().expect("the odd ping is stored");
    assert!(ping.plugins.is_empty() && ping.app_version == "unknown" && !ping.container);
    assert!(!ping.props.contains_key("components"));
}

/// The strongest test: Strapi's own published code (create-strapi-app's CLI, and
/// @strapi/core's telemetry sender and request middleware) posts to a collector on loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strapi_own_sender_posts_to_the_collector() {
    let Some(node_modules) = std::env::var_os("TALLY_STRAPI_NODE_MODULES") else {
        panic!(
            "TALLY_STRAPI_NODE_MODULES is not set: run `bash crates/tally-collector/tests/strapi-node/setup.sh` \
             and set TALLY_STRAPI_NODE_MODULES to the directory it prints on its last line \
             (`cargo xtask test` does both)"
        );
    };
    let node_modules = PathBuf::from(node_modules);
    assert!(
        node_modules.join("create-strapi-app/package.json").is_file(),
        "{} has no create-strapi-app: rerun crates/tally-collector/tests/strapi-node/setup.sh",
        node_modules.display()
    );
    let store = Arc::new(RecordingStore::default());
    let app = collector(store.clone()).router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });

    let script = Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
        .join("tests/strapi-node/send.js");
    let work = std::env::temp_dir().join(format!("tally-strapi-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&work).expect("work dir");
    let output = tokio::process::Command::new("node")
        .arg(&script)
        .env("STRAPI_ANALYTICS_URL", format!("http://{addr}"))
        .env("TALLY_STRAPI_NODE_MODULES", &node_modules)
        .env("TALLY_STRAPI_WORK_DIR", &work)
        .env_remove("STRAPI_TELEMETRY_DISABLED")
        .env_remove("NODE_ENV")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), output)
        .await
        .expect("the node sender finishes within 2 minutes")
        .expect("node runs (is Node.js installed?)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    std::fs::remove_dir_all(&work).ok();
    assert!(output.status.success(), "send.js failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    server.abort();

    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("send.js's last line is its JSON report ({e})\n{stdout}\n{stderr}"));
    let rows = store.rows();
    let events: Vec<&str> = rows.iter().map(|r| r.event.as_str()).collect();
    let context = format!("events: {events:?}\nreport: {report}\nstderr:\n{stderr}");

    // create-strapi-app, run twice through its real CLI: one install succeeds, one fails.
    for e in [
        "will_create_project",
        "did_choose_custom_database",
        "did_copy_project_files",
        "did_write_package_json",
        "did_copy_configuration_files",
        "did_create_project",
    ] {
        assert!(events.contains(&e), "{e} missing\n{context}");
    }
    assert_eq!(events.iter().filter(|e| **e == "will_install_project_dependencies").count(), 2, "{context}");
    let installed = rows.iter().find(|r| r.event == "did_install_project_dependencies").expect(&context);
    let install_ms = installed.duration_ms.expect("the install was timed");
    assert!((300..60_000).contains(&install_ms), "install took {install_ms} ms (the fake npm sleeps 0.4 s)");
    assert_eq!(installed.app_version, report["createStrapiAppVersion"].as_str().expect("version"), "{context}");
    assert_eq!(installed.runtime, "node");
    assert_eq!(installed.runtime_version, report["nodeVersion"].as_str().expect("node"), "{context}");
    assert_eq!(installed.os, "linux");
    assert_eq!(installed.env, Env::Development);
    assert_eq!(installed.props.get("package_manager"), Some(&PropValue::Str("npm".into())));
    assert_eq!(installed.props.get("typescript"), Some(&PropValue::Bool(true)));
    let failed = rows.iter().find(|r| r.event == "did_not_install_project_dependencies").expect(&context);
    assert!(failed.error_kind.is_some() && failed.duration_ms.is_some(), "{failed:?}");
    assert_eq!(failed.props.get("typescript"), Some(&PropValue::Bool(false)));
    let projects: std::collections::BTreeSet<_> =
        rows.iter().filter(|r| r.event.contains("install")).map(|r| r.project).collect();
    assert_eq!(projects.len(), 2, "two created projects\n{context}");

    // @strapi/core's sender: server start, ping, a request through the real middleware,
    // an opt-out and an unknown plugin event.
    let started = rows.iter().find(|r| r.event == "did_start_server").expect(&context);
    assert_eq!(started.app_version, report["serverVersion"].as_str().expect("server version"));
    assert_eq!(started.env, Env::Production);
    assert!(started.container, "DOCKER=true reached the sender");
    assert_eq!(started.plugins, ["content-manager", "i18n", "users-permissions", "upload"]);
    assert_eq!(started.props.get("database"), Some(&PropValue::Str("postgres".into())));
    assert_eq!(started.props.get("content_types"), Some(&PropValue::Int(12)));
    assert_eq!(started.props.get("project_type"), Some(&PropValue::Str("community".into())));
    let server_project = ServerSecret::from_bytes(SECRET)
        .project_key(&Uuid::parse_str(report["serverProjectId"].as_str().expect("project")).expect("uuid"));
    assert_eq!(started.project, server_project);
    let request = rows.iter().find(|r| r.event == "did_receive_request").expect(&context);
    assert_eq!(request.props.get("status_class"), Some(&PropValue::Str("4xx".into())));
    assert_eq!(request.props.get("success"), Some(&PropValue::Bool(false)));
    assert_eq!(request.os, "linux", "an admin was in the request context, so OS facts were sent");
    assert!(events.contains(&"ping"), "{context}");
    let unknown = rows.iter().find(|r| r.event == "unknown").expect(&context);
    assert_eq!(unknown.props.get("name"), Some(&PropValue::Str("did_use_my_plugin".into())));

    let dump = format!("{rows:?}").to_lowercase();
    for secret in ["admin@example.com", "alice", "/api/articles", "s3cr3t", "tally-strapi-"] {
        assert!(!dump.contains(secret), "stored rows contain {secret:?}");
    }
    for hash in report["mustNotBeStored"].as_array().expect("list") {
        let h = hash.as_str().expect("string").to_lowercase();
        assert!(!dump.contains(&h), "stored rows contain {h}");
    }
}
