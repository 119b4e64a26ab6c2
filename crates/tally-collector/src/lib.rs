//! The tally collector: an axum service that receives batches, stores them durably through
//! an [`EventStore`], and answers insight queries.
//!
//! Routes:
//! - `POST /v1/batch`: native ingest (identity, gzip or zstd body).
//! - `GET /v1/insights`: the insight catalog.
//! - `GET /v1/insights/{name}`: one insight; admin token, or `?public=true` for
//!   k-anonymous output.
//! - `GET /healthz`, `GET /metrics` (Prometheus text).
//! - `POST /api/v2/track`, `POST /track`: Strapi's own telemetry client ([`strapi`]).
//! - `GET /`, the dashboard's pages, `GET /public/{app}` and `GET /v1/apps`: the web
//!   dashboard (`dashboard.rs`, assets embedded in the binary).
//!
//! The collector never reads, logs or stores the client's address. It talks to storage only
//! through [`EventStore`]; which backend is used is the caller's choice.

pub mod builtin;
mod collect;
mod context;
mod dashboard;
mod error;
mod ingest;
mod metrics;
pub mod strapi;
mod writer;

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query as QueryParams, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tally_insights::{InsightError, InsightRequest, Resolved};
use tally_protocol::SchemaSet;
use tally_store::{EventStore, ServerSecret, StoreError};

pub use error::ApiError;
pub use metrics::Metrics;
pub use writer::{WriteError, Writer};

/// Settings of a collector.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Requests that may wait for the writer before new ones get 429.
    pub queue_capacity: usize,
    /// Most rows in one group commit.
    pub max_group_rows: usize,
    /// The admin token for private insights; `None` allows public output only.
    pub admin_token: Option<String>,
    /// The k-anonymity threshold for public output (callers may raise it, never lower it).
    pub k: usize,
    /// Events older than this are rejected as `too_old`. The default is the protocol's
    /// limit; the demo raises it to backfill 90 days.
    pub max_event_age_ms: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            queue_capacity: 256,
            max_group_rows: 50_000,
            admin_token: None,
            k: tally_insights::DEFAULT_K,
            max_event_age_ms: tally_protocol::limits::MAX_EVENT_AGE_MS,
        }
    }
}

struct Shared {
    store: Arc<dyn EventStore>,
    schemas: SchemaSet,
    secret: ServerSecret,
    caps: ingest::Caps,
    writer: Writer,
    metrics: Arc<Metrics>,
    settings: Settings,
    strapi: strapi::InstallTimes,
}

/// A collector, ready to serve.
#[derive(Clone)]
pub struct Collector {
    shared: Arc<Shared>,
}

impl Collector {
    /// Builds a collector: seeds cardinality caps from the store (a blocking read) and
    /// starts the writer thread.
    pub fn new(
        store: Arc<dyn EventStore>,
        schemas: SchemaSet,
        secret: ServerSecret,
        settings: Settings,
    ) -> Result<Collector, StoreError> {
        let caps = ingest::Caps::load(store.as_ref(), &schemas)?;
        let metrics = Arc::new(Metrics::new());
        let m = metrics.clone();
        let writer =
            Writer::start(store.clone(), settings.queue_capacity, settings.max_group_rows, move |rows, depth| {
                m.group_rows.observe(rows as f64);
                m.queue_depth.set(depth as i64);
            });
        Ok(Collector {
            shared: Arc::new(Shared {
                store,
                schemas,
                secret,
                caps,
                writer,
                metrics,
                settings,
                strapi: strapi::InstallTimes::new(),
            }),
        })
    }

    /// Requests waiting for the writer.
    pub fn queue_depth(&self) -> usize {
        self.shared.writer.depth()
    }

    /// The metrics (for tests and embedding).
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The HTTP routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/batch", post(ingest::post_batch))
            .route("/v1/insights", get(list_insights))
            .route("/v1/insights/{name}", get(get_insight))
            .route("/healthz", get(healthz))
            .route("/metrics", get(metrics))
            .merge(strapi::routes())
            .merge(dashboard::routes())
            .with_state(self.shared.clone())
    }
}

async fn healthz(State(s): State<Arc<Shared>>) -> Response {
    let store = s.store.clone();
    match tokio::task::spawn_blocking(move || store.count_events()).await {
        Ok(Ok(events)) => {
            Json(serde_json::json!({"status": "ok", "events": events, "write_queue": s.writer.depth()})).into_response()
        }
        Ok(Err(e)) => ApiError::from(e).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    s.metrics.queue_depth.set(s.writer.depth() as i64);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], s.metrics.render()).into_response()
}

async fn list_insights() -> Response {
    let list: Vec<_> = tally_insights::CATALOG
        .iter()
        .map(|i| serde_json::json!({"name": i.name, "title": i.title, "question": i.question, "options": i.options}))
        .collect();
    Json(list).into_response()
}

fn authorized(s: &Shared, headers: &HeaderMap) -> bool {
    let Some(token) = &s.settings.admin_token else {
        return false;
    };
    let given =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn get_insight(
    State(s): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    request: Result<QueryParams<InsightRequest>, QueryRejection>,
) -> Response {
    let response = insight(&s, name, &headers, request).await.unwrap_or_else(IntoResponse::into_response);
    s.metrics.request("/v1/insights", response.status().as_u16());
    response
}

async fn insight(
    s: &Arc<Shared>,
    name: String,
    headers: &HeaderMap,
    request: Result<QueryParams<InsightRequest>, QueryRejection>,
) -> Result<Response, ApiError> {
    // A value that does not parse (`env=prod`) is answered like one that does not resolve.
    let QueryParams(request) = request.map_err(|e| ApiError::bad_request("invalid_params", e.body_text()))?;
    if !request.public && !authorized(s, headers) {
        return Err(ApiError::unauthorized());
    }
    let Resolved { params, audience } =
        request.resolve(chrono::Utc::now().timestamp_millis(), s.settings.k).map_err(insight_error)?;
    let store = s.store.clone();
    let answer = tokio::task::spawn_blocking(move || tally_insights::answer(store.as_ref(), &name, params, audience))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(insight_error)?;
    Ok(Json(answer).into_response())
}

fn insight_error(e: InsightError) -> ApiError {
    match e {
        InsightError::Unknown(_) => ApiError::not_found(e.to_string()),
        InsightError::InvalidParams(m) => ApiError::bad_request("invalid_params", m),
        InsightError::Store(e) => ApiError::unavailable(format!("storage is failing: {e}")),
    }
}
