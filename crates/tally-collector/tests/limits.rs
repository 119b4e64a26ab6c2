//! The limits of a collector facing the internet (issue 11): query bounds, public query
//! slots and time budget, no storage detail in responses (in process), and the serving
//! loop's timeouts and caps (on a real socket).

use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tally_collector::{Collector, Limits, Settings};
use tally_store::{
    AppendStatus, EventRow, EventStore, KnownValues, MemoryStore, ProjectKey, Query, ServerSecret, StoreError, Table,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

const TOKEN: &str = "test-admin-token";

fn collector(store: Arc<dyn EventStore>, limits: Limits) -> Collector {
    let schemas = tally_collector::builtin::load(None).expect("schemas");
    let settings = Settings { admin_token: Some(TOKEN.into()), limits, ..Settings::default() };
    Collector::new(store, schemas, ServerSecret::from_bytes([7; 32]), settings).expect("collector")
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, Option<String>, Value) {
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let retry = resp.headers().get(header::RETRY_AFTER).map(|v| v.to_str().expect("ascii").to_string());
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, retry, body)
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).header(header::AUTHORIZATION, format!("Bearer {TOKEN}")).body(Body::empty()).expect("req")
}

#[tokio::test]
async fn a_public_range_longer_than_the_apps_retention_is_a_400() {
    // The demo schema keeps events 396 days: with today, 397 whole days hold all of them.
    let app = collector(Arc::new(MemoryStore::new()), Limits::default()).router();
    let retention = tally_collector::builtin::load(None).expect("schemas").get("demo").expect("demo").retention_days;
    let (status, _, body) =
        send(&app, get(&format!("/v1/insights/active?app=demo&public=true&since={}d", retention + 1))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) =
        send(&app, get(&format!("/v1/insights/active?app=demo&public=true&since={}d", retention + 2))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains(&format!("at most {} days", retention + 1))), "{body}");
    // Private requests keep their own bound.
    let (status, _, body) = send(&app, get(&format!("/v1/insights/active?app=demo&since={}d", retention + 2))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn remote_panic_on_a_huge_since_is_a_400() {
    // Issue 11: this answered 500 "task panicked: time in range".
    let app = collector(Arc::new(MemoryStore::new()), Limits::default()).router();
    for (uri, message) in [
        ("/v1/insights/active-trend?app=nope&public=true&since=100000000000d", "between 1970-01-01 and 9999-12-31"),
        ("/v1/insights/active-trend?app=nope&since=100000000000d", "between 1970-01-01 and 9999-12-31"),
        ("/v1/insights/active-trend?app=nope&public=true&since=500d", "ask for at most 400 days"),
        ("/v1/insights/active-trend?app=demo&public=true&window_days=4000000000", "window_days is at most 90"),
        ("/v1/insights/retention?app=demo&public=true&weeks=1000", "weeks is at most 52"),
        ("/v1/insights/top-plugins?app=demo&public=true&limit=100000", "limit is at most 100"),
        ("/v1/insights/top-plugins?app=demo&public=true&since=12h", "whole UTC days"),
        ("/v1/insights/top-plugins?app=demo&limit=99999999999999999999", "limit"),
    ] {
        let (status, _, body) = send(&app, get(uri)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["error"], "invalid_params", "{uri}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| m.contains(message)), "{uri}: {body}");
    }
}

/// A memory store whose queries wait until the test releases them.
struct SlowQueries {
    inner: MemoryStore,
    entered: Mutex<mpsc::Sender<()>>,
    release: Mutex<mpsc::Receiver<()>>,
}

impl EventStore for SlowQueries {
    fn append(&self, rows: &[EventRow]) -> Result<Vec<AppendStatus>, StoreError> {
        self.inner.append(rows)
    }
    fn query(&self, query: &Query) -> Result<Table, StoreError> {
        self.entered.lock().expect("lock").send(()).expect("test listens");
        self.release.lock().expect("lock").recv().expect("test releases");
        self.inner.query(query)
    }
    fn erase_project(&self, project: &ProjectKey) -> Result<u64, StoreError> {
        self.inner.erase_project(project)
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
    fn apply(&self, rows: &[EventRow], through: u64) -> Result<Vec<AppendStatus>, StoreError> {
        self.inner.apply(rows, through)
    }
    fn applied_position(&self) -> Result<Option<u64>, StoreError> {
        self.inner.applied_position()
    }
    fn event_ids_since(&self, since_ms: i64) -> Result<Vec<(uuid::Uuid, i64)>, StoreError> {
        self.inner.event_ids_since(since_ms)
    }
}

fn slow_queries() -> (Arc<SlowQueries>, mpsc::Receiver<()>, mpsc::Sender<()>) {
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let store =
        SlowQueries { inner: MemoryStore::new(), entered: Mutex::new(entered_tx), release: Mutex::new(release_rx) };
    (Arc::new(store), entered_rx, release_tx)
}

#[tokio::test]
async fn public_queries_beyond_the_cap_are_503_with_retry_after() {
    let (store, entered, release) = slow_queries();
    let app = collector(store, Limits { max_public_queries: 1, ..Limits::default() }).router();
    let public = "/v1/insights/active?app=demo&public=true";
    let a = app.clone();
    let first = tokio::spawn(async move { send(&a, get(public)).await });
    let entered = tokio::task::spawn_blocking(move || entered.recv().map(|()| entered)).await.expect("join");
    let entered = entered.expect("the first query runs");
    let (status, retry, body) = send(&app, get(public)).await;
    assert_eq!(
        (status, retry.as_deref(), body["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("1"), Some("busy"))
    );
    release.send(()).expect("release");
    assert_eq!(first.await.expect("join").0, StatusCode::OK);
    // The slot is free again.
    let a = app.clone();
    let again = tokio::spawn(async move { send(&a, get(public)).await });
    tokio::task::spawn_blocking(move || entered.recv()).await.expect("join").expect("the query runs");
    release.send(()).expect("release");
    assert_eq!(again.await.expect("join").0, StatusCode::OK);
}

#[tokio::test]
async fn a_query_over_its_time_budget_is_503() {
    let (store, _entered, release) = slow_queries();
    let limits = Limits { query_time_budget: Duration::from_millis(200), ..Limits::default() };
    let app = collector(store, limits).router();
    let (status, retry, body) = send(&app, get("/v1/insights/active?app=demo")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!((retry.as_deref(), body["error"].as_str()), (Some("1"), Some("busy")));
    assert!(body["message"].as_str().is_some_and(|m| m.contains("longer than 0.2 s")), "{body}");
    // The blocking work is not cancelled: let it end.
    release.send(()).expect("release");
}

const DATA_FILE: &str = "/var/lib/tally-data/tally.duckdb";

/// A store failing with its file's path in every error, as DuckDB's errors do.
struct FailingWithPath;

impl FailingWithPath {
    fn error() -> StoreError {
        StoreError::Backend(format!("IO Error: Could not write file \"{DATA_FILE}\": No space left on device"))
    }
}

impl EventStore for FailingWithPath {
    fn append(&self, _: &[EventRow]) -> Result<Vec<AppendStatus>, StoreError> {
        Err(Self::error())
    }
    fn query(&self, _: &Query) -> Result<Table, StoreError> {
        Err(Self::error())
    }
    fn erase_project(&self, _: &ProjectKey) -> Result<u64, StoreError> {
        Err(Self::error())
    }
    fn apply_retention(&self, _: &str, _: i64) -> Result<u64, StoreError> {
        Err(Self::error())
    }
    fn known_values(&self, _: &str) -> Result<KnownValues, StoreError> {
        Ok(KnownValues::default())
    }
    fn count_events(&self) -> Result<u64, StoreError> {
        Err(Self::error())
    }
    fn apply(&self, _: &[EventRow], _: u64) -> Result<Vec<AppendStatus>, StoreError> {
        Err(Self::error())
    }
    fn applied_position(&self) -> Result<Option<u64>, StoreError> {
        Err(Self::error())
    }
    fn event_ids_since(&self, _: i64) -> Result<Vec<(uuid::Uuid, i64)>, StoreError> {
        Err(Self::error())
    }
}

#[tokio::test]
async fn storage_error_text_with_file_paths_is_not_sent_to_clients() {
    let app = collector(Arc::new(FailingWithPath), Limits::default()).router();
    let at = chrono::Utc::now() - chrono::Duration::seconds(60);
    let batch = json!({"sent_at": chrono::Utc::now(), "context": {"app": "demo", "app_version": "2.1.0",
        "project": "0b7e2c1a-8f5e-4c1d-9b1a-3f2e4d5c6b7a", "machine": "9f86d081884c7d659a2feaa0c55ad015",
        "env": "production", "os": "linux", "os_version": "6", "arch": "x86_64", "runtime": "node",
        "runtime_version": "20.11.1"},
        "events": [{"event_id": uuid::Uuid::from_u128(1), "event": "command.run", "occurred_at": at}]});
    let post = Request::post("/v1/batch")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(&batch).expect("json")))
        .expect("req");
    let requests = [
        post,
        Request::get("/healthz").body(Body::empty()).expect("req"),
        get("/v1/insights/active?app=demo"),
        Request::get("/v1/insights/active?app=demo&public=true").body(Body::empty()).expect("req"),
    ];
    for request in requests {
        let uri = request.uri().to_string();
        let (status, retry, body) = send(&app, request).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{uri}: {body}");
        assert!(retry.is_some(), "{uri}");
        let text = body.to_string();
        for secret in ["/var/lib", "tally.duckdb", "No space left"] {
            assert!(!text.contains(secret), "{uri} sent {secret:?}: {text}");
        }
    }
}

/// Serves a collector on a real socket with `limits`; returns its address.
async fn serve(limits: Limits) -> std::net::SocketAddr {
    let collector = collector(Arc::new(MemoryStore::new()), limits.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(tally_collector::serve(listener, collector.router(), limits, std::future::pending()));
    addr
}

/// Headers of a 100 KB batch and its first byte, then nothing.
async fn slow_loris(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let head = "POST /v1/batch HTTP/1.1\r\nHost: collector\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{";
    s.write_all(head.as_bytes()).await.expect("write");
    s
}

/// Reads until the collector closes the connection (or resets it); `None` if it is still
/// open after `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return start.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

async fn healthz(addr: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: collector\r\nConnection: close\r\n\r\n").await.expect("write");
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut response))
        .await
        .expect("an answer in time")
        .expect("read");
    response
}

#[tokio::test]
async fn slow_loris_connections_are_closed_after_the_body_timeout() {
    // Issue 11: 3,000 such connections were all still held after 32 s.
    let limits = Limits { body_read_timeout: Duration::from_millis(500), ..Limits::default() };
    let addr = serve(limits).await;
    let mut held = Vec::new();
    for _ in 0..50 {
        held.push(slow_loris(addr).await);
    }
    for s in &mut held {
        assert!(closed_within(s, Duration::from_secs(5)).await.is_some(), "a slow body kept its connection");
    }
    assert!(healthz(addr).await.starts_with("HTTP/1.1 200"));
}

/// Issue 11 (hardening): a body that missed the body read timeout was answered 413, which
/// tells a client its batch is too large; it is a timeout.
#[tokio::test]
async fn a_body_read_timeout_is_answered_408_not_413() {
    let limits = Limits { body_read_timeout: Duration::from_millis(300), ..Limits::default() };
    let addr = serve(limits).await;
    for path in ["/v1/batch", "/api/v2/track"] {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: collector\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{{"
        );
        s.write_all(head.as_bytes()).await.expect("write");
        let mut response = String::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut response))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(response.starts_with("HTTP/1.1 408"), "{path}: {response}");
        assert!(response.contains("body_timeout"), "{path}: {response}");
    }
}

/// A GET of /healthz from `local` (an address of 127.0.0.0/8): the status line and the
/// `Retry-After` header, if any.
async fn healthz_from(addr: std::net::SocketAddr, local: [u8; 4]) -> (String, Option<String>) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind((std::net::Ipv4Addr::from(local), 0).into()).expect("bind a loopback address");
    let mut s = socket.connect(addr).await.expect("connect");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: collector\r\nConnection: close\r\n\r\n").await.expect("write");
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut response))
        .await
        .expect("in time")
        .expect("read");
    let status = response.lines().next().unwrap_or_default().to_string();
    let retry = response
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("retry-after: ").map(|v| v.trim().to_string()));
    (status, retry)
}

#[tokio::test]
async fn one_client_over_its_rate_gets_429_with_retry_after_and_others_are_served() {
    let limits = Limits { rate_limit_per_second: 1, rate_limit_burst: 3, ..Limits::default() };
    let addr = serve(limits).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(healthz_from(addr, [127, 0, 0, 1]).await);
    }
    let ok = statuses.iter().filter(|(s, _)| s.starts_with("HTTP/1.1 200")).count();
    let limited: Vec<_> = statuses.iter().filter(|(s, _)| s.starts_with("HTTP/1.1 429")).collect();
    assert_eq!((ok, limited.len()), (3, 2), "{statuses:?}");
    assert!(limited.iter().all(|(_, retry)| retry.as_deref() == Some("1")), "{statuses:?}");
    // Another address is another client, with its own burst.
    let (status, _) = healthz_from(addr, [127, 0, 0, 2]).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    // Past the wait, the first client is served again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _) = healthz_from(addr, [127, 0, 0, 1]).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
}

#[tokio::test]
async fn slow_headers_are_closed_after_the_header_timeout() {
    let limits = Limits { header_read_timeout: Duration::from_millis(500), ..Limits::default() };
    let addr = serve(limits).await;
    let start = Instant::now();
    let mut partial = TcpStream::connect(addr).await.expect("connect");
    partial.write_all(b"GET /healthz HTTP/1.1\r\nHost: coll").await.expect("write");
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    for s in [&mut partial, &mut idle] {
        closed_within(s, Duration::from_secs(5)).await.expect("closed");
        let after = start.elapsed();
        assert!(after >= Duration::from_millis(400), "closed after {after:?}, before the timeout");
    }
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_while_later_requests_succeed() {
    let limits = Limits {
        max_connections: 3,
        header_read_timeout: Duration::from_secs(1),
        body_read_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let addr = serve(limits).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(slow_loris(addr).await);
    }
    // The fourth is accepted by the kernel and closed by the collector at once.
    let mut beyond = TcpStream::connect(addr).await.expect("connect");
    let after = closed_within(&mut beyond, Duration::from_millis(900)).await.expect("closed before any timeout");
    assert!(after < Duration::from_millis(900));
    for s in &mut held {
        closed_within(s, Duration::from_secs(5)).await.expect("closed after the body timeout");
    }
    assert!(healthz(addr).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn requests_beyond_the_in_flight_cap_are_503_with_retry_after() {
    let limits = Limits { max_requests_in_flight: 1, body_read_timeout: Duration::from_secs(1), ..Limits::default() };
    let addr = serve(limits).await;
    // A request reading its body holds the only slot.
    let mut slow = slow_loris(addr).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let busy = healthz(addr).await;
    assert!(busy.starts_with("HTTP/1.1 503"), "{busy}");
    assert!(busy.to_ascii_lowercase().contains("retry-after: 1"), "{busy}");
    closed_within(&mut slow, Duration::from_secs(5)).await.expect("closed after the body timeout");
    assert!(healthz(addr).await.starts_with("HTTP/1.1 200"));
}
