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
//!
//! The collector never reads, logs or stores the client's address. It talks to storage only
//! through [`EventStore`]; which backend is used is the caller's choice.

pub mod builtin;
mod dashboard;
mod error;
mod ingest;
mod metrics;
pub mod strapi;
mod writer;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, Query as QueryParams, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tally_insights::{Audience, InsightError, Params};
use tally_protocol::{EventOutcome, SchemaSet, check_batch};
use tally_store::{EventStore, Filters, ServerSecret, StoreError};

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
            .route("/v1/batch", post(post_batch))
            .route("/v1/insights", get(list_insights))
            .route("/v1/insights/{name}", get(get_insight))
            .route("/healthz", get(healthz))
            .route("/metrics", get(metrics))
            .merge(strapi::routes())
            .merge(dashboard::routes())
            .with_state(self.shared.clone())
    }
}

async fn post_batch(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let response = match ingest_batch(&s, &headers, body).await {
        Ok((status, body)) => (status, Json(body)).into_response(),
        Err(e) => e.into_response(),
    };
    s.metrics.batch_seconds.observe(started.elapsed().as_secs_f64());
    s.metrics.request("/v1/batch", response.status().as_u16());
    response
}

async fn ingest_batch(
    s: &Shared,
    headers: &HeaderMap,
    body: Body,
) -> Result<(StatusCode, tally_protocol::BatchResponse), ApiError> {
    let raw = ingest::read_body(body).await?;
    let body = ingest::decode(headers, raw)?;
    let now = chrono::Utc::now();
    let checked = check_batch(&body, &s.schemas, now, s.settings.max_event_age_ms).map_err(|r| {
        s.metrics.event("rejected", r.reason.as_str());
        ApiError::from_rejection(r)
    })?;
    let schema = s.schemas.get(&checked.context.app).expect("check_batch found the schema");
    s.metrics.dropped_props.inc_by(checked.dropped_props as u64);
    let now_ms = now.timestamp_millis();
    let mut rows = Vec::new();
    let mut outcomes = Vec::with_capacity(checked.events.len());
    for (id, result) in checked.events {
        outcomes.push((
            id,
            result.map(|maybe| {
                maybe.map(|accepted| {
                    rows.push(ingest::to_row(
                        &checked.context,
                        accepted,
                        now_ms,
                        &s.secret,
                        schema,
                        &s.caps,
                        &s.metrics,
                    ));
                })
            }),
        ));
    }
    let statuses = if rows.is_empty() {
        vec![]
    } else {
        s.metrics.queue_depth.set(s.writer.depth() as i64 + 1);
        s.writer.write(rows).await.map_err(|e| match e {
            WriteError::QueueFull => ApiError::queue_full(),
            WriteError::Closed => ApiError::unavailable("the collector is shutting down; retry later"),
            WriteError::Store(e) => ApiError::unavailable(format!("events could not be stored ({e}); retry later")),
        })?
    };
    let response = ingest::respond(&outcomes, &statuses, checked.dropped_props, &s.metrics);
    let all_rejected =
        !response.results.is_empty() && response.results.iter().all(|r| r.status == EventOutcome::Rejected);
    Ok((if all_rejected { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK }, response))
}

async fn healthz(State(s): State<Arc<Shared>>) -> Response {
    let store = s.store.clone();
    match tokio::task::spawn_blocking(move || store.count_events()).await {
        Ok(Ok(events)) => {
            Json(serde_json::json!({"status": "ok", "events": events, "write_queue": s.writer.depth()})).into_response()
        }
        Ok(Err(e)) => ApiError::unavailable(format!("storage is failing: {e}")).into_response(),
        Err(e) => ApiError::internal(e.to_string()).into_response(),
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

/// Query string of `GET /v1/insights/{name}`.
#[derive(Debug, Deserialize)]
struct InsightQuery {
    app: String,
    since: Option<String>,
    from: Option<String>,
    to: Option<String>,
    env: Option<String>,
    os: Option<String>,
    app_version: Option<String>,
    plugin: Option<String>,
    limit: Option<usize>,
    #[serde(default)]
    public: bool,
    k: Option<usize>,
    period: Option<tally_store::Period>,
    group_by: Option<String>,
    window_days: Option<u32>,
    event: Option<String>,
    focus: Option<String>,
    weeks: Option<u32>,
    /// `version:share,version:share`.
    baseline: Option<String>,
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

fn params_from(q: &InsightQuery, now_ms: i64) -> Result<Params, InsightError> {
    let since = q.since.as_deref().map(tally_insights::parse_since).transpose()?.unwrap_or(30 * tally_store::DAY_MS);
    let (from_ms, to_ms) = match (&q.from, &q.to) {
        (Some(f), Some(t)) => (tally_insights::parse_time(f)?, tally_insights::parse_time(t)?),
        (Some(f), None) => (tally_insights::parse_time(f)?, tally_insights::range_until_now(now_ms, since).1),
        (None, Some(t)) => {
            let to = tally_insights::parse_time(t)?;
            (to - since, to)
        }
        // `since` alone: whole days ending with today.
        (None, None) => tally_insights::range_until_now(now_ms, since),
    };
    let env = q
        .env
        .as_deref()
        .map(|e| {
            tally_protocol::Env::parse(e).ok_or_else(|| {
                InsightError::InvalidParams(format!("env {e:?} is not one of development, staging, production, test"))
            })
        })
        .transpose()?;
    let group_by = q
        .group_by
        .as_deref()
        .map(|g| {
            tally_store::Dimension::parse(g).ok_or_else(|| {
                let names: Vec<_> = tally_store::Dimension::ALL.iter().map(|d| d.name()).collect();
                InsightError::InvalidParams(format!("group_by {g:?} is not one of {}", names.join(", ")))
            })
        })
        .transpose()?;
    let baseline = q
        .baseline
        .as_deref()
        .map(|b| tally_insights::parse_baseline(&b.replace(',', "\n").replace(':', ",")))
        .transpose()?;
    Ok(Params {
        filters: Filters { env, os: q.os.clone(), app_version: q.app_version.clone(), plugin: q.plugin.clone() },
        limit: q.limit.unwrap_or(tally_insights::DEFAULT_LIMIT),
        period: q.period,
        group_by,
        window_days: q.window_days,
        event: q.event.clone(),
        focus: q.focus.clone(),
        weeks: q.weeks,
        baseline,
        ..Params::new(q.app.clone(), from_ms, to_ms)
    })
}

async fn get_insight(
    State(s): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<InsightQuery>,
) -> Response {
    let response = insight(&s, name, &headers, q).await.unwrap_or_else(IntoResponse::into_response);
    s.metrics.request("/v1/insights", response.status().as_u16());
    response
}

async fn insight(s: &Arc<Shared>, name: String, headers: &HeaderMap, q: InsightQuery) -> Result<Response, ApiError> {
    let audience = if q.public {
        Audience::Public { k: q.k.unwrap_or(s.settings.k).max(s.settings.k) }
    } else if authorized(s, headers) {
        Audience::Private
    } else {
        return Err(ApiError::unauthorized());
    };
    let params = params_from(&q, chrono::Utc::now().timestamp_millis()).map_err(insight_error)?;
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
