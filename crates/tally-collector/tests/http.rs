//! In-process tests of every route and status code, against the in-memory store. Over 600
//! lines: one table of routes and statuses sharing its helpers (batches, tokens, client keys).

use std::io::Write;
use std::sync::{Arc, Mutex, mpsc};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::Utc;
use serde_json::{Value, json};
use tally_collector::{Collector, Settings};
use tally_protocol::SchemaSet;
use tally_store::{
    AppendStatus, ContextField, EventRow, EventStore, KnownValues, MemoryStore, ProjectKey, Query, ServerSecret,
    StoreError, Table,
};
use tower::ServiceExt;
use uuid::Uuid;

const TOKEN: &str = "test-admin-token";
const PROJECT: &str = "0b7e2c1a-8f5e-4c1d-9b1a-3f2e4d5c6b7a";

fn schemas() -> SchemaSet {
    tally_collector::builtin::load(None).expect("schemas")
}

fn collector_with(store: Arc<dyn EventStore>, settings: Settings) -> Collector {
    Collector::new(store, schemas(), ServerSecret::from_bytes([7; 32]), settings).expect("collector")
}

fn collector(store: Arc<MemoryStore>) -> Router {
    collector_with(store, Settings { admin_token: Some(TOKEN.into()), ..Settings::default() }).router()
}

fn context(project: &str) -> Value {
    json!({"app": "demo", "app_version": "2.1.0", "project": project, "machine": "9f86d081884c7d659a2feaa0c55ad015",
           "env": "production", "os": "linux", "os_version": "6", "arch": "x86_64", "runtime": "node", "runtime_version": "20.11.1"})
}

fn event(id: u128, name: &str) -> Value {
    // A minute ago: an insight asked in the same millisecond must still count it (ranges end
    // exclusively at "now").
    let at = Utc::now() - chrono::Duration::seconds(60);
    json!({"event_id": Uuid::from_u128(id), "event": name, "occurred_at": at, "plugins": ["graphql"]})
}

fn batch(events: Vec<Value>) -> Value {
    json!({"sent_at": Utc::now(), "context": context(PROJECT), "events": events})
}

fn post(body: Vec<u8>, encoding: Option<&str>) -> Request<Body> {
    let mut r = Request::post("/v1/batch").header(header::CONTENT_TYPE, "application/json");
    if let Some(e) = encoding {
        r = r.header(header::CONTENT_ENCODING, e);
    }
    r.body(Body::from(body)).expect("request")
}

fn json_post(v: &Value) -> Request<Body> {
    post(serde_json::to_vec(v).expect("json"), None)
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, Option<String>, Value) {
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let retry = resp.headers().get(header::RETRY_AFTER).map(|v| v.to_str().expect("ascii").to_string());
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, retry, body)
}

/// A GET, with `Authorization: Bearer <token>` when given.
fn get(uri: &str, token: Option<&str>) -> Request<Body> {
    let mut r = Request::get(uri);
    if let Some(t) = token {
        r = r.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    r.body(Body::empty()).expect("req")
}

fn statuses(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| match r["reason"].as_str() {
            Some(reason) => format!("{}:{reason}", r["status"].as_str().expect("status")),
            None => r["status"].as_str().expect("status").to_string(),
        })
        .collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

#[tokio::test]
async fn ok_then_duplicate() {
    let store = Arc::new(MemoryStore::new());
    let app = collector(store.clone());
    let b = batch(vec![event(1, "command.run"), event(2, "server.started")]);
    let (status, _, body) = send(&app, json_post(&b)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(statuses(&body), ["accepted", "accepted"]);
    let (status, _, body) = send(&app, json_post(&b)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(statuses(&body), ["duplicate", "duplicate"]);
    assert_eq!(store.count_events().expect("count"), 2);
}

#[tokio::test]
async fn mixed_batch_keeps_the_good_events() {
    let store = Arc::new(MemoryStore::new());
    let app = collector(store.clone());
    let mut bad_type = event(3, "project.created");
    bad_type["props"] = json!({"typescript": "yes"});
    let b =
        batch(vec![event(1, "command.run"), json!("garbage"), event(2, "no.such.event"), bad_type, event(4, "error")]);
    let (status, _, body) = send(&app, json_post(&b)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        statuses(&body),
        ["accepted", "rejected:malformed", "rejected:unknown_event", "rejected:invalid_property", "accepted"]
    );
    assert_eq!((body["accepted"].as_u64(), body["rejected"].as_u64()), (Some(2), Some(3)));
    assert_eq!(store.count_events().expect("count"), 2);
}

#[tokio::test]
async fn malformed_bodies_are_400() {
    let app = collector(Arc::new(MemoryStore::new()));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{not json".to_vec(), "malformed"),
        (b"[]".to_vec(), "malformed"),
        (serde_json::to_vec(&json!({"sent_at": Utc::now(), "events": []})).expect("json"), "malformed"),
        (
            serde_json::to_vec(&json!({"sent_at": Utc::now(), "context": context("00000000-0000-0000-0000-000000000000"), "events": []})).expect("json"),
            "invalid_context",
        ),
        (serde_json::to_vec(&batch((0..501).map(|i| event(i + 1, "command.run")).collect())).expect("json"), "too_many_events"),
        (gzip(b"{}")[..10].to_vec(), "malformed"),
    ];
    for (i, (body, code)) in cases.into_iter().enumerate() {
        let encoding = if i == 5 { Some("gzip") } else { None };
        let (status, _, resp) = send(&app, post(body, encoding)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "case {i}: {resp}");
        assert_eq!(resp["error"], code, "case {i}: {resp}");
        assert!(!resp["message"].as_str().expect("message").is_empty());
    }
}

#[tokio::test]
async fn oversized_bodies_and_bombs_are_413() {
    let app = collector(Arc::new(MemoryStore::new()));
    let big = vec![b' '; tally_protocol::limits::MAX_BODY_BYTES + 1];
    let (status, _, body) = send(&app, post(big, None)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    // 64 MiB of zeros: about 64 KiB of gzip, far past the decompressed limit.
    let bomb = gzip(&vec![0u8; 64 * 1024 * 1024]);
    assert!(bomb.len() < tally_protocol::limits::MAX_BODY_BYTES);
    let (status, _, body) = send(&app, post(bomb, Some("gzip"))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"], "body_too_large");
    let zbomb = zstd::encode_all(&vec![0u8; 64 * 1024 * 1024][..], 3).expect("zstd");
    let (status, _, _) = send(&app, post(zbomb, Some("zstd"))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

/// Issue 11: about 8 KB of gzip (`{"events":[0,0,…]}`) was parsed into millions of values
/// before the 500-event check; it is refused as `too_many_events` while parsing
/// (`tally_protocol::RawEvents` keeps at most 500).
#[tokio::test]
async fn a_gzip_bomb_of_tiny_events_is_refused_as_too_many_events() {
    let app = collector(Arc::new(MemoryStore::new()));
    let mut body = batch(vec![]);
    body["events"] = json!([]);
    let text = serde_json::to_string(&body).expect("json");
    let zeros = vec!["0"; 3_000_000].join(",");
    let text = text.replace(r#""events":[]"#, &format!(r#""events":[{zeros}]"#));
    let bomb = gzip(text.as_bytes());
    assert!(bomb.len() < 64 * 1024, "{} bytes of gzip", bomb.len());
    let (status, _, body) = send(&app, post(bomb, Some("gzip"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "too_many_events");
    assert_eq!(body["message"], "3000000 events in one batch; the limit is 500");
}

#[tokio::test]
async fn gzip_and_zstd_are_accepted_other_encodings_are_415() {
    let store = Arc::new(MemoryStore::new());
    let app = collector(store.clone());
    let raw = serde_json::to_vec(&batch(vec![event(1, "command.run")])).expect("json");
    let (status, _, body) = send(&app, post(gzip(&raw), Some("gzip"))).await;
    assert_eq!((status, statuses(&body)), (StatusCode::OK, vec!["accepted".to_string()]));
    let raw = serde_json::to_vec(&batch(vec![event(2, "command.run")])).expect("json");
    let (status, _, body) = send(&app, post(zstd::encode_all(&raw[..], 3).expect("zstd"), Some("zstd"))).await;
    assert_eq!((status, statuses(&body)), (StatusCode::OK, vec!["accepted".to_string()]));
    let (status, _, body) = send(&app, post(raw, Some("br"))).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(body["error"], "unsupported_encoding");
    assert_eq!(store.count_events().expect("count"), 2);
}

#[tokio::test]
async fn unknown_app_and_all_rejected_are_422() {
    let app = collector(Arc::new(MemoryStore::new()));
    let mut b = batch(vec![event(1, "command.run")]);
    b["context"]["app"] = json!("nobody");
    let (status, _, body) = send(&app, json_post(&b)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"], "unknown_app");
    let (status, _, body) = send(&app, json_post(&batch(vec![event(1, "x.y"), event(2, "z")]))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(statuses(&body), ["rejected:unknown_event", "rejected:unknown_event"]);
}

/// A store whose appends wait until the test lets them go.
struct GatedStore {
    inner: MemoryStore,
    entered: Mutex<mpsc::Sender<()>>,
    release: Mutex<mpsc::Receiver<()>>,
}

impl EventStore for GatedStore {
    fn append(&self, rows: &[EventRow]) -> Result<Vec<AppendStatus>, StoreError> {
        self.entered.lock().expect("lock").send(()).ok();
        self.release.lock().expect("lock").recv().ok();
        self.inner.append(rows)
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

#[tokio::test]
async fn a_full_write_queue_is_429_with_retry_after() {
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let store = Arc::new(GatedStore {
        inner: MemoryStore::new(),
        entered: Mutex::new(entered_tx),
        release: Mutex::new(release_rx),
    });
    let collector = collector_with(store.clone(), Settings { queue_capacity: 1, ..Settings::default() });
    let app = collector.router();
    // The first request is taken by the writer, which then waits in append.
    let a = app.clone();
    let first = tokio::spawn(async move { send(&a, json_post(&batch(vec![event(1, "command.run")]))).await });
    tokio::task::spawn_blocking(move || entered_rx.recv().expect("writer entered append")).await.expect("join");
    // The second fills the queue.
    let a = app.clone();
    let second = tokio::spawn(async move { send(&a, json_post(&batch(vec![event(2, "command.run")]))).await });
    while collector.queue_depth() < 1 {
        tokio::task::yield_now().await;
    }
    // The third finds it full.
    let (status, retry, body) = send(&app, json_post(&batch(vec![event(3, "command.run")]))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(body["error"], "queue_full");
    release_tx.send(()).expect("release");
    release_tx.send(()).expect("release");
    assert_eq!(first.await.expect("join").0, StatusCode::OK);
    assert_eq!(second.await.expect("join").0, StatusCode::OK);
    assert_eq!(store.count_events().expect("count"), 2);
}

/// A store that cannot write.
struct BrokenStore;

impl EventStore for BrokenStore {
    fn append(&self, _: &[EventRow]) -> Result<Vec<AppendStatus>, StoreError> {
        Err(StoreError::Unavailable("disk on fire".into()))
    }
    fn apply(&self, _: &[EventRow], _: u64) -> Result<Vec<AppendStatus>, StoreError> {
        Err(StoreError::Unavailable("disk on fire".into()))
    }
    fn applied_position(&self) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }
    fn event_ids_since(&self, _: i64) -> Result<Vec<(Uuid, i64)>, StoreError> {
        Ok(vec![])
    }
    fn query(&self, _: &Query) -> Result<Table, StoreError> {
        Err(StoreError::Unavailable("disk on fire".into()))
    }
    fn erase_project(&self, _: &ProjectKey) -> Result<u64, StoreError> {
        Err(StoreError::Unavailable("disk on fire".into()))
    }
    fn apply_retention(&self, _: &str, _: i64) -> Result<u64, StoreError> {
        Err(StoreError::Unavailable("disk on fire".into()))
    }
    fn known_values(&self, _: &str) -> Result<KnownValues, StoreError> {
        Ok(KnownValues::default())
    }
    fn count_events(&self) -> Result<u64, StoreError> {
        Err(StoreError::Unavailable("disk on fire".into()))
    }
}

#[tokio::test]
async fn a_failing_store_is_503_with_retry_after() {
    let app = collector_with(Arc::new(BrokenStore), Settings::default()).router();
    let (status, retry, body) = send(&app, json_post(&batch(vec![event(1, "command.run")]))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(retry.is_some());
    let (status, _, _) = send(&app, Request::get("/healthz").body(Body::empty()).expect("req")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn nothing_personal_is_stored() {
    let store = Arc::new(MemoryStore::new());
    let app = collector(store.clone());
    let mut e = event(1, "error");
    e["props"] = json!({"command": "deploy --token ghp_0123456789abcdefghijABCDEFGHIJ012345"});
    let mut e2 = event(2, "command.run");
    e2["props"] = json!({"command": "alice@example.com", "undeclared": "/home/alice/secret"});
    let (status, _, body) = send(&app, json_post(&batch(vec![e, e2]))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["dropped_props"], 1);
    let rows = format!("{:?}", dump(&store));
    for leak in [PROJECT, "9f86d081884c7d659a2feaa0c55ad015", "alice", "ghp_", "/home"] {
        assert!(!rows.contains(leak), "{leak} reached storage: {rows}");
    }
    assert!(rows.contains("[redacted]"));
}

fn dump(store: &MemoryStore) -> Vec<String> {
    // Every distinct value the store can give back for the demo app.
    let known = store.known_values("demo").expect("known");
    let mut out: Vec<String> = known.plugins.into_iter().collect();
    for (k, v) in known.props {
        out.push(k);
        out.extend(v);
    }
    for v in known.context.into_values() {
        out.extend(v);
    }
    out
}

/// Personal data a misconfigured client could put in a context field.
const HOSTILE: &[&str] = &[
    "alice@example.com",
    "192.168.1.23",
    "fe80::1ff:fe23:4567:890a",
    "AKIAIOSFODNN7EXAMPLE",
    "akiaiosfodnn7example",
    "ghp_0123456789abcdefghijABCDEFGHIJ012345",
    "xoxb-123456789012-abcdefghijkl",
    "sk_live_0123456789abcdefABCDEF",
    "/home/alice/project",
    "alice-macbook.local",
];

/// Issue 11: context fields were stored verbatim, so an IP address, a token or a hostname
/// sent as `app_version` or `os` reached storage. Each value in each field, one at a time:
/// a batch the protocol accepts is stored with the value replaced, never lost.
#[tokio::test]
async fn personal_data_in_context_fields_is_not_stored() {
    let store = Arc::new(MemoryStore::new());
    let app = collector(store.clone());
    let mut id = 0;
    let mut stored = 0;
    for field in ContextField::ALL.map(ContextField::name) {
        for value in HOSTILE {
            id += 1;
            let mut b = batch(vec![event(id, "command.run")]);
            b["context"][field] = json!(value);
            let (status, _, body) = send(&app, json_post(&b)).await;
            let protocol_accepts = value.bytes().all(|c| c.is_ascii_alphanumeric() || b"._:+-".contains(&c))
                && (field != "ci"
                    || value.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(&c)));
            if protocol_accepts {
                assert_eq!(
                    (status, statuses(&body)),
                    (StatusCode::OK, vec!["accepted".to_string()]),
                    "{field} = {value}"
                );
                stored += 1;
            } else {
                assert_eq!(
                    (status, &body["error"]),
                    (StatusCode::BAD_REQUEST, &json!("invalid_context")),
                    "{field} = {value}"
                );
            }
        }
    }
    assert_eq!(store.count_events().expect("count"), stored);
    let known = store.known_values("demo").expect("known");
    for field in ContextField::ALL {
        let values = &known.context[&field];
        assert!(values.contains("[redacted]"), "{}: {values:?}", field.name());
    }
    let rows = format!("{:?}", dump(&store));
    for leak in HOSTILE.iter().copied().chain(["alice", "AKIA", "ghp_", "xoxb", "sk_live", "192.168", "fe80"]) {
        assert!(!rows.contains(leak), "{leak} reached storage: {rows}");
    }
}

#[tokio::test]
async fn context_fields_are_capped_across_restarts() {
    let store = Arc::new(MemoryStore::new());
    let app = collector(store.clone());
    // `os` keeps 100 distinct values per app.
    for i in 0..105u128 {
        let mut b = batch(vec![event(i + 1, "command.run")]);
        b["context"]["os"] = json!(format!("os{i}"));
        let (status, _, body) = send(&app, json_post(&b)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let os = |store: &MemoryStore| store.known_values("demo").expect("known").context[&ContextField::Os].clone();
    let known = os(&store);
    assert_eq!(known.len(), 101, "100 values and `other`");
    assert!(known.contains("other") && known.contains("os99") && !known.contains("os100"));
    assert_eq!(store.count_events().expect("count"), 105, "capped events are kept");
    // A new collector seeds its caps from the store.
    let app = collector(store.clone());
    let mut b = batch(vec![event(200, "command.run")]);
    b["context"]["os"] = json!("os200");
    send(&app, json_post(&b)).await;
    assert!(!os(&store).contains("os200"));
    assert_eq!(store.count_events().expect("count"), 106);
}

#[tokio::test]
async fn cardinality_caps_store_other() {
    let store = Arc::new(MemoryStore::new());
    let app = collector(store.clone());
    // `command` allows 40 distinct values.
    let events = (0..45u128)
        .map(|i| {
            let mut e = event(i + 1, "command.run");
            e["props"] = json!({"command": format!("cmd{i}")});
            e
        })
        .collect();
    let (status, _, _) = send(&app, json_post(&batch(events))).await;
    assert_eq!(status, StatusCode::OK);
    let known = store.known_values("demo").expect("known");
    let commands = &known.props["command"];
    assert_eq!(commands.len(), 41, "40 values and `other`");
    assert!(commands.contains("other") && commands.contains("cmd39") && !commands.contains("cmd40"));
}

/// Issue 11: caps were first come, first served and fillable forever by one client. Now one
/// client (a `ClientKey`, made by the serving loop from a salted hash of its address) fills
/// at most 10 % of a cap per salt period; other clients' values still get in.
#[tokio::test]
async fn one_client_cannot_fill_a_cardinality_cap() {
    let store = Arc::new(MemoryStore::new());
    let app = collector(store.clone());
    let from = |client: u64, body: &Value| {
        let mut r = json_post(body);
        r.extensions_mut().insert(tally_collector::ClientKey { hash: client, period: 0 });
        r
    };
    let commands = |from_id: u128, prefix: &str, n: u128| {
        let events = (0..n)
            .map(|i| {
                let mut e = event(from_id + i, "command.run");
                e["props"] = json!({"command": format!("{prefix}{i}")});
                e
            })
            .collect();
        batch(events)
    };
    // `command` allows 40 distinct values: one client gets 4 of them.
    let (status, _, body) = send(&app, from(1, &commands(1, "junk", 45))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, _, _) = send(&app, from(2, &commands(100, "real", 3))).await;
    let known = store.known_values("demo").expect("known");
    let seen = &known.props["command"];
    assert_eq!(seen.iter().filter(|v| v.starts_with("junk")).count(), 4, "{seen:?}");
    assert!(seen.contains("other"));
    assert!(["real0", "real1", "real2"].iter().all(|v| seen.contains(*v)), "another client still gets in: {seen:?}");
    // Context fields too: `os` keeps 100 names, one client gets 10.
    for i in 0..20u128 {
        let mut b = batch(vec![event(1000 + i, "command.run")]);
        b["context"]["os"] = json!(format!("os{i}"));
        send(&app, from(1, &b)).await;
    }
    let os = store.known_values("demo").expect("known").context[&ContextField::Os].clone();
    // Its first batch brought `linux`, the ninth of its ten.
    assert_eq!(os.iter().filter(|v| *v != "other").count(), 10, "{os:?}");
    // The next salt period starts a new share.
    let mut b = batch(vec![event(2000, "command.run")]);
    b["context"]["os"] = json!("os-next");
    let mut r = json_post(&b);
    r.extensions_mut().insert(tally_collector::ClientKey { hash: 1, period: 1 });
    send(&app, r).await;
    assert!(store.known_values("demo").expect("known").context[&ContextField::Os].contains("os-next"));
}

#[tokio::test]
async fn healthz_and_metrics() {
    let app = collector(Arc::new(MemoryStore::new()));
    send(&app, json_post(&batch(vec![event(1, "command.run"), event(2, "nope")]))).await;
    let (status, _, body) = send(&app, get("/healthz", Some(TOKEN))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["events"], 1);
    let (status, _, Value::String(text)) = send(&app, get("/metrics", Some(TOKEN))).await else {
        panic!("metrics is text");
    };
    assert_eq!(status, StatusCode::OK);
    for needle in [
        "tally_events_total{outcome=\"accepted\",reason=\"\"} 1",
        "tally_events_total{outcome=\"rejected\",reason=\"unknown_event\"} 1",
        "tally_batch_duration_seconds_count 1",
        "tally_write_queue_depth",
        "tally_requests_total{route=\"/v1/batch\",status=\"200\"} 1",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

#[tokio::test]
async fn every_private_endpoint_needs_a_token_and_named_tokens_work_beside_the_admin_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = tally_collector::TokenFile::in_dir(dir.path());
    let named = tokens.create("grafana").expect("create");
    let settings = Settings { admin_token: Some(TOKEN.into()), tokens: Some(tokens.clone()), ..Settings::default() };
    let app = collector_with(Arc::new(MemoryStore::new()), settings).router();
    let private = ["/metrics", "/v1/insights/active?app=demo"];
    for path in private {
        for token in [None, Some("wrong"), Some("")] {
            let (status, _, body) = send(&app, get(path, token)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} {token:?}: {body}");
            assert_eq!(body["error"], "unauthorized");
        }
        for token in [TOKEN, named.as_str()] {
            let (status, _, body) = send(&app, get(path, Some(token))).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
        }
    }
    // /healthz answers anyone (probes), but only its status.
    let (status, _, body) = send(&app, get("/healthz", None)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (_, _, body) = send(&app, get("/healthz", Some(&named))).await;
    assert_eq!(body["events"], 0, "{body}");
    // Public endpoints need none.
    for path in ["/v1/insights", "/v1/apps", "/v1/apps/demo/schema", "/", "/public/demo"] {
        let (status, _, _) = send(&app, get(path, None)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    // Ingest needs none and is write-only: its answer says what became of the events sent.
    let (status, _, body) = send(&app, json_post(&batch(vec![event(1, "command.run")]))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body.as_object().expect("object").keys().collect::<Vec<_>>(),
        ["accepted", "dropped_props", "duplicate", "rejected", "results"]
    );
    // Revoked: refused from the next request on.
    tokens.revoke("grafana").expect("revoke");
    let (status, _, _) = send(&app, get("/metrics", Some(&named))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn insights_need_the_token_unless_public() {
    let store = Arc::new(MemoryStore::new());
    let app = collector(store.clone());
    let (status, _, body) = send(&app, json_post(&batch(vec![event(1, "command.run")]))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) = send(&app, get("/v1/insights/active?app=demo", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = send(&app, get("/v1/insights/active?app=demo", Some("wrong"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, body) = send(&app, get("/v1/insights/active?app=demo", Some(TOKEN))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["table"]["rows"][0], json!([1, 1, 1]));
    // One project is below k: the public answer hides it and says so.
    let (status, _, body) = send(&app, get("/v1/insights/active?app=demo&public=true&k=1", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["table"]["rows"], json!([]));
    assert_eq!(body["suppression"], json!({"k": 5, "hidden_rows": 3}));
    let (status, _, _) = send(&app, get("/v1/insights/nope?app=demo", Some(TOKEN))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, body) = send(&app, get("/v1/insights/active?app=demo&since=soon", Some(TOKEN))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _, body) = send(&app, get("/v1/insights", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.as_array().expect("list").iter().any(|i| i["name"] == "top-plugins"));
}

#[tokio::test]
async fn a_huge_public_k_does_not_publish_every_row() {
    // Issue 11: `public=true&k=18446744073709551615` published every row (k became negative).
    let store = Arc::new(MemoryStore::new());
    let app = collector_with(store, Settings { admin_token: Some(TOKEN.into()), k: 2, ..Settings::default() }).router();
    // graphql is used by two projects, seo by one.
    let mut first = event(1, "command.run");
    first["plugins"] = json!(["graphql", "seo"]);
    let other = "5d1c9a7e-2b3f-4e8a-9c6d-1f2e3a4b5c6d";
    for b in [
        batch(vec![first]),
        json!({"sent_at": Utc::now(), "context": context(other), "events": [event(2, "command.run")]}),
    ] {
        let (status, _, body) = send(&app, json_post(&b)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let public = |k: &str| {
        let app = app.clone();
        let uri = format!("/v1/insights/top-plugins?app=demo&since=1d&public=true{k}");
        async move {
            let (status, _, body) = send(&app, Request::get(uri).body(Body::empty()).expect("req")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            (body["table"]["rows"].clone(), body["suppression"].clone())
        }
    };
    let server_k = (json!([["graphql", 2, 1, 2]]), json!({"k": 2, "hidden_rows": 1}));
    assert_eq!(public("").await, server_k);
    for k in ["&k=18446744073709551615", "&k=18446744073709551614", "&k=9223372036854775808"] {
        let (rows, suppression) = public(k).await;
        assert_eq!(rows, json!([]), "{k}");
        assert_eq!(suppression["hidden_rows"], 2, "{k}");
    }
    // A k below the server's is the server's.
    for k in ["&k=0", "&k=1", "&k=2"] {
        assert_eq!(public(k).await, server_k, "{k}");
    }
    assert_eq!(public("&k=3").await, (json!([]), json!({"k": 3, "hidden_rows": 2})));
}

#[tokio::test]
async fn insight_requests_resolve_like_the_cli() {
    let store = Arc::new(MemoryStore::new());
    let app = collector(store);
    let (status, _, body) = send(&app, json_post(&batch(vec![event(1, "command.run")]))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let get = |query: &str| {
        let uri = format!("/v1/insights/{query}");
        Request::get(uri).header(header::AUTHORIZATION, format!("Bearer {TOKEN}")).body(Body::empty()).expect("req")
    };
    // Values that do not parse and values that do not resolve get the same JSON error.
    for (query, message) in [
        ("active?app=demo&env=prod", "\"prod\" is not one of development, staging, production, test"),
        ("active?app=demo&group_by=colour", "\"colour\" is not one of env, os"),
        ("active?app=demo&period=month", "\"month\" is not one of day, week"),
        ("active?app=demo&k=-1", "k: invalid digit"),
        ("active?since=1d", "missing field `app`"),
        ("active?app=demo&from=yesterday", "\"yesterday\" is not a time"),
        ("runtime-versions?app=demo&baseline=20:0.4,18", "baseline: entry 2: expected version:share"),
    ] {
        let (status, _, body) = send(&app, get(query)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"], "invalid_params", "{query}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| m.contains(message)), "{query}: {body}");
    }
    // The baseline inline, or as the text of a CSV file (what `tally insights --baseline FILE` sends).
    for baseline in ["20:40,18:60", "version%2Cshare%0A20%2C40%0A18%2C60%0A"] {
        let (status, _, body) = send(&app, get(&format!("runtime-versions?app=demo&baseline={baseline}"))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["params"]["baseline"], json!({"18": 0.6, "20": 0.4}), "{baseline}");
    }
    let today = Utc::now().date_naive();
    let (from, to) = (today - chrono::Days::new(1), today + chrono::Days::new(1));
    let (status, _, body) = send(&app, get(&format!("events-per-day?app=demo&from={from}&to={to}"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let day_ms = |d: chrono::NaiveDate| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp_millis();
    assert_eq!(
        (body["params"]["from_ms"].clone(), body["params"]["to_ms"].clone()),
        (json!(day_ms(from)), json!(day_ms(to)))
    );
    assert_eq!(body["table"]["rows"].as_array().map(Vec::len), Some(1), "{body}");
}
