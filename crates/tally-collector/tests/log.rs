//! The write path through the ingest log ([`Collector::with_log`]), against the in-memory
//! store: acknowledgement by the log, dedupe at acceptance, the applier, restarts.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::Utc;
use serde_json::{Value, json};
use tally_collector::{Collector, Settings};
use tally_log::{Log, Options};
use tally_store::{
    AppendStatus, EventRow, EventStore, KnownValues, MemoryStore, ProjectKey, Query, ServerSecret, StoreError, Table,
};
use tower::ServiceExt;
use uuid::Uuid;

const TOKEN: &str = "test-admin-token";
const PROJECT: &str = "0b7e2c1a-8f5e-4c1d-9b1a-3f2e4d5c6b7a";

fn start(store: Arc<dyn EventStore>, dir: &std::path::Path, options: Options) -> Result<Collector, StoreError> {
    start_with(store, dir, options, Settings { admin_token: Some(TOKEN.into()), ..Settings::default() })
}

fn start_with(
    store: Arc<dyn EventStore>,
    dir: &std::path::Path,
    options: Options,
    settings: Settings,
) -> Result<Collector, StoreError> {
    let log = Arc::new(Log::open(dir, options).expect("log opens"));
    let schemas = tally_collector::builtin::load(None).expect("schemas");
    Collector::with_log(store, log, schemas, ServerSecret::from_bytes([7; 32]), settings)
}

/// A GET with the admin token (`/healthz` shows its detail with one, `/metrics` needs one).
fn admin_get(path: &str) -> Request<Body> {
    Request::get(path).header(header::AUTHORIZATION, format!("Bearer {TOKEN}")).body(Body::empty()).expect("req")
}

fn event(id: u128) -> Value {
    let at = Utc::now() - chrono::Duration::seconds(60);
    json!({"event_id": Uuid::from_u128(id), "event": "command.run", "occurred_at": at, "plugins": ["graphql"]})
}

fn batch(ids: impl IntoIterator<Item = u128>) -> Request<Body> {
    batch_sent_at(ids, Utc::now())
}

/// A batch as a client whose clock reads `sent_at` sends it.
fn batch_sent_at(ids: impl IntoIterator<Item = u128>, sent_at: chrono::DateTime<Utc>) -> Request<Body> {
    let context = json!({"app": "demo", "app_version": "2.1.0", "project": PROJECT,
        "machine": "9f86d081884c7d659a2feaa0c55ad015", "env": "production", "os": "linux", "os_version": "6",
        "arch": "x86_64", "runtime": "node", "runtime_version": "20.11.1"});
    let body =
        json!({"sent_at": sent_at, "context": context, "events": ids.into_iter().map(event).collect::<Vec<_>>()});
    Request::post("/v1/batch")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(&body).expect("json")))
        .expect("request")
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, Option<String>, Value) {
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let retry = resp.headers().get(header::RETRY_AFTER).map(|v| v.to_str().expect("ascii").to_string());
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, retry, body)
}

fn statuses(body: &Value) -> Vec<String> {
    body["results"].as_array().expect("results").iter().map(|r| r["status"].as_str().expect("status").into()).collect()
}

fn applied(c: &Collector) {
    assert!(c.wait_applied(Duration::from_secs(10)), "the applier caught up");
}

#[tokio::test]
async fn acknowledged_then_applied_then_duplicate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(MemoryStore::new());
    let c = start(store.clone(), dir.path(), Options::default()).expect("starts");
    let app = c.router();
    let (status, _, body) = send(&app, batch([1, 2, 1])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(statuses(&body), ["accepted", "accepted", "duplicate"]);
    let (_, _, body) = send(&app, batch([2, 3])).await;
    assert_eq!(statuses(&body), ["duplicate", "accepted"]);
    // /healthz waits (bounded) for the applier: it counts what was acknowledged.
    let (status, _, health) = send(&app, admin_get("/healthz")).await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health["events"], 3);
    assert_eq!(health["applier"], "running");
    assert_eq!(health["lag"]["events"], 0, "{health}");
    assert!(health["lag"]["seconds"].is_number(), "{health}");
    applied(&c);
    assert_eq!(store.count_events().expect("count"), 3);
    assert!(store.applied_position().expect("position").is_some_and(|p| p > 0));
    let (_, _, Value::String(text)) = send(&app, admin_get("/metrics")).await else {
        panic!("metrics is text");
    };
    for needle in ["tally_log_appends_total 2", "tally_log_fsyncs", "tally_applied_position"] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    c.shutdown();
}

#[tokio::test]
async fn concurrent_requests_with_the_same_events_accept_each_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(MemoryStore::new());
    let c = start(store.clone(), dir.path(), Options::default()).expect("starts");
    let app = c.router();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { send(&app, batch(1..=20)).await })
        })
        .collect();
    let mut accepted = 0;
    for t in tasks {
        let (status, _, body) = t.await.expect("join");
        assert_eq!(status, StatusCode::OK, "{body}");
        accepted += body["accepted"].as_u64().expect("accepted");
    }
    assert_eq!(accepted, 20);
    applied(&c);
    assert_eq!(store.count_events().expect("count"), 20);
}

#[tokio::test]
async fn a_restart_seeds_dedupe_from_the_store_and_resumes_at_the_applied_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(MemoryStore::new());
    let c = start(store.clone(), dir.path(), Options::default()).expect("starts");
    let (_, _, body) = send(&c.router(), batch(1..=5)).await;
    assert_eq!(body["accepted"], 5);
    c.shutdown();
    drop(c);
    let position = store.applied_position().expect("position");
    let c = start(store.clone(), dir.path(), Options::default()).expect("restarts");
    let (_, _, body) = send(&c.router(), batch(3..=7)).await;
    assert_eq!(statuses(&body), ["duplicate", "duplicate", "duplicate", "accepted", "accepted"]);
    applied(&c);
    assert_eq!(store.count_events().expect("count"), 7);
    assert!(store.applied_position().expect("position") > position);
}

#[tokio::test]
async fn a_store_position_past_the_log_end_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(MemoryStore::new());
    store.apply(&[], 1 << 20).expect("apply");
    let err = start(store, dir.path(), Options::default()).err().expect("refuses");
    assert!(err.to_string().contains("deleted or replaced"), "{err}");
}

/// Refuses one event id for good (as DuckDB refuses a U+001F in a list value), and can
/// fail every apply for a while.
#[derive(Default)]
struct PickyStore {
    inner: MemoryStore,
    refused: Option<Uuid>,
    down: std::sync::atomic::AtomicBool,
    /// Makes `apply` panic, as a bug in the write path would.
    panics: std::sync::atomic::AtomicBool,
}

impl PickyStore {
    fn check(&self, rows: &[EventRow]) -> Result<(), StoreError> {
        if self.down.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(StoreError::Unavailable("down".into()));
        }
        assert!(!self.panics.load(std::sync::atomic::Ordering::Relaxed), "a bug in the store");
        if rows.iter().any(|r| Some(r.event_id) == self.refused) {
            return Err(StoreError::InvalidQuery("refused".into()));
        }
        Ok(())
    }
}

impl EventStore for PickyStore {
    fn append(&self, rows: &[EventRow]) -> Result<Vec<AppendStatus>, StoreError> {
        self.check(rows)?;
        self.inner.append(rows)
    }
    fn apply(&self, rows: &[EventRow], through: u64) -> Result<Vec<AppendStatus>, StoreError> {
        self.check(rows)?;
        self.inner.apply(rows, through)
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

/// Issue 11: a panic in the writer thread left `/healthz` saying ok while every write
/// failed. With the ingest log the applier is that thread: once it has died, `/healthz`
/// answers 503 `failing` (to a probe without a token too), and says the applier stopped.
#[tokio::test]
async fn a_panic_in_the_writer_thread_makes_healthz_fail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(PickyStore::default());
    let c = start(store.clone(), dir.path(), Options::default()).expect("starts");
    let app = c.router();
    let (status, _, _) = send(&app, Request::get("/healthz").body(Body::empty()).expect("req")).await;
    assert_eq!(status, StatusCode::OK);
    store.panics.store(true, std::sync::atomic::Ordering::Relaxed);
    let (status, _, body) = send(&app, batch([1])).await;
    assert_eq!(status, StatusCode::OK, "acknowledged once in the log: {body}");
    let mut health = (StatusCode::OK, Value::Null);
    for _ in 0..50 {
        let (status, _, body) = send(&app, admin_get("/healthz")).await;
        health = (status, body);
        if health.0 != StatusCode::OK {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(health.0, StatusCode::SERVICE_UNAVAILABLE, "{}", health.1);
    assert_eq!((&health.1["status"], &health.1["applier"]), (&json!("failing"), &json!("stopped")), "{}", health.1);
    let (status, _, body) = send(&app, Request::get("/healthz").body(Body::empty()).expect("req")).await;
    assert_eq!((status, body), (StatusCode::SERVICE_UNAVAILABLE, json!({"status": "failing"})));
}

#[tokio::test]
async fn an_event_the_store_refuses_does_not_fail_its_neighbours() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(PickyStore { refused: Some(Uuid::from_u128(3)), ..PickyStore::default() });
    let c = start(store.clone(), dir.path(), Options::default()).expect("starts");
    let app = c.router();
    let (status, _, body) = send(&app, batch(1..=5)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) = send(&app, batch(6..=7)).await;
    assert_eq!(status, StatusCode::OK);
    applied(&c);
    assert_eq!(store.count_events().expect("count"), 6);
    let (_, _, Value::String(text)) = send(&app, admin_get("/metrics")).await else {
        panic!("metrics is text");
    };
    assert!(text.contains("tally_apply_dropped_total 1"), "{text}");
}

#[tokio::test]
async fn a_full_log_is_503_with_retry_after_and_accepts_again_once_applied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(PickyStore::default());
    store.down.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut options = Options::default();
    options.max_unapplied_bytes = 4096;
    let c = start(store.clone(), dir.path(), options).expect("starts");
    let app = c.router();
    let mut full = None;
    for i in 0..100u128 {
        let (status, retry, body) = send(&app, batch([i * 10 + 1, i * 10 + 2])).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(retry.is_some(), "{body}");
            full = Some(i);
            break;
        }
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let full = full.expect("the log filled up");
    // Nothing of the refused request was acknowledged: a resend is accepted once the
    // store is back.
    store.down.store(false, std::sync::atomic::Ordering::Relaxed);
    applied(&c);
    let (status, _, body) = send(&app, batch([full * 10 + 1, full * 10 + 2])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], 2);
    applied(&c);
    assert_eq!(store.count_events().expect("count"), 2 * (full as u64 + 1));
}

#[tokio::test]
async fn a_resend_minutes_later_after_a_restart_and_20_days_later_is_one_duplicate_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(MemoryStore::new());
    let offset_ms = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let clock = tally_collector::Clock::Offset(offset_ms.clone());
    let settings = Settings { clock: clock.clone(), ..Settings::default() };
    let c = start_with(store.clone(), dir.path(), Options::default(), settings.clone()).expect("starts");
    let (_, _, body) = send(&c.router(), batch_sent_at([1, 2], clock.now())).await;
    assert_eq!(statuses(&body), ["accepted", "accepted"]);
    offset_ms.store(5 * 60_000, std::sync::atomic::Ordering::Relaxed);
    let (_, _, body) = send(&c.router(), batch_sent_at([1, 2, 3], clock.now())).await;
    assert_eq!(statuses(&body), ["duplicate", "duplicate", "accepted"], "minutes later");
    c.shutdown();
    drop(c);
    // A restart seeds the dedupe index from the store (and what the log still holds).
    let c = start_with(store.clone(), dir.path(), Options::default(), settings).expect("restarts");
    let (_, _, body) = send(&c.router(), batch_sent_at([1, 3], clock.now())).await;
    assert_eq!(statuses(&body), ["duplicate", "duplicate"], "after a restart");
    // An SDK outbox resends up to 14 days later; 20 days is inside the 31-day window.
    offset_ms.store(20 * tally_store::DAY_MS, std::sync::atomic::Ordering::Relaxed);
    let (status, _, body) = send(&c.router(), batch_sent_at([1, 2, 3], clock.now())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(statuses(&body), ["duplicate", "duplicate", "duplicate"], "20 days later");
    applied(&c);
    assert_eq!(store.count_events().expect("count"), 3);
}

/// A small tmpfs mounted for a test, unmounted when dropped. Mounting needs root (as the
/// project's CI runs); elsewhere the test says it did not run.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("NOT RUN: mounting a tmpfs needs root");
            return None;
        }
        Some(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.dir.path()).status();
    }
}

#[tokio::test]
async fn a_full_disk_answers_503_and_loses_nothing_acknowledged() {
    let Some(disk) = Tmpfs::mount("512k") else { return };
    let store = Arc::new(PickyStore::default());
    // The store is down, so nothing is released and the log must fill the disk.
    store.down.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut options = Options::default();
    options.segment_bytes = 64 << 10;
    let c = start(store.clone(), disk.dir.path(), options).expect("starts");
    let app = c.router();
    let mut acknowledged = std::collections::BTreeSet::new();
    let mut refused = None;
    for i in 0..10_000u128 {
        let ids: Vec<u128> = (i * 20 + 1..=i * 20 + 20).collect();
        let (status, retry, body) = send(&app, batch(ids.clone())).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(retry.is_some(), "{body}");
            assert!(!body.to_string().contains(disk.dir.path().to_str().expect("utf-8")), "no path told: {body}");
            refused = Some(ids);
            break;
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        acknowledged.extend(ids.into_iter().map(Uuid::from_u128));
    }
    let refused = refused.expect("the disk filled up");
    assert!(acknowledged.len() >= 100, "some batches fit before the disk was full");
    // The store comes back: everything acknowledged is stored once, and the released
    // segments make room for new writes.
    store.down.store(false, std::sync::atomic::Ordering::Relaxed);
    applied(&c);
    let stored: std::collections::BTreeSet<Uuid> =
        store.event_ids_since(0).expect("ids").into_iter().map(|(id, _)| id).collect();
    assert_eq!(stored, acknowledged);
    let (status, _, body) = send(&app, batch(refused)).await;
    assert_eq!(status, StatusCode::OK, "accepted again once space is free: {body}");
    assert_eq!(body["accepted"], 20, "{body}");
    applied(&c);
    assert_eq!(store.count_events().expect("count"), acknowledged.len() as u64 + 20);
    c.shutdown();
}

#[tokio::test]
async fn the_retention_schedule_deletes_whole_days_past_the_apps_retention() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(MemoryStore::new());
    let old = |id: u128, days: i64| {
        let mut r = tally_store::conformance::row(id, 0, 0, 1, 1);
        r.occurred_at_ms = Utc::now().timestamp_millis() - days * tally_store::DAY_MS;
        r
    };
    // The demo schema keeps 396 days (the default).
    store.append(&[old(1, 400), old(2, 397), old(3, 300)]).expect("append");
    let c = start(store.clone(), dir.path(), Options::default()).expect("starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.count_events().expect("count") > 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(store.count_events().expect("count"), 1, "the run at start deleted what is past 396 days");
    let (_, _, Value::String(text)) = send(&c.router(), admin_get("/metrics")).await else {
        panic!("metrics is text");
    };
    assert!(text.contains("tally_retention_deleted_total 2"), "{text}");
    c.shutdown();
}
