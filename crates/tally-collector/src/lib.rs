//! The tally collector: an axum service that receives batches, stores them durably through
//! an [`EventStore`], and answers insight queries.
//!
//! Routes:
//! - `POST /v1/batch`: native ingest (identity, gzip or zstd body).
//! - `GET /v1/insights`: the insight catalog.
//! - `GET /v1/insights/{name}`: one insight; admin token, or `?public=true` for
//!   k-anonymous output.
//! - `GET /healthz`, `GET /metrics` (Prometheus text).
//! - `GET /v1/openapi.json`: the OpenAPI document of every route (`openapi.rs`).
//! - `POST /api/v2/track`, `POST /track`: Strapi's own telemetry client ([`strapi`]).
//! - `GET /`, the dashboard's pages, `GET /public/{app}` and `GET /v1/apps`: the web
//!   dashboard (`dashboard.rs`, assets embedded in the binary).
//!
//! [`serve`] runs a router within the connection and request [`Limits`]; the insight
//! handler applies the query limits.
//!
//! The collector never reads, logs or stores the client's address. It talks to storage only
//! through [`EventStore`]; which backend is used is the caller's choice.
//!
//! Two write paths: [`Collector::with_log`] (what `tally serve` runs) acknowledges a batch
//! once it is durable in the ingest log ([`tally_log`]; dedupe at acceptance in `dedupe`,
//! the record format in `record`) and an applier thread (`applier`) moves records into the
//! store; [`Collector::new`] writes straight into the store by group commit (`writer`),
//! which the in-memory tests use.

mod access;
mod applier;
pub mod builtin;
mod client;
mod clock;
mod collect;
mod context;
mod dashboard;
mod dedupe;
mod durable;
mod error;
// Public for the fuzz targets in `fuzz/` only, which run `decode` and `prepare` without HTTP.
#[doc(hidden)]
pub mod ingest;
mod limits;
mod metrics;
mod openapi;
mod record;
mod retention;
mod serve;
pub mod strapi;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query as QueryParams, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tally_insights::{Audience, InsightError, InsightRequest, Resolved};
use tally_protocol::SchemaSet;
use tally_store::{EventStore, ServerSecret, StoreError};
use tokio::sync::Semaphore;

pub use access::{TOKENS_FILE, TokenEntry, TokenError, TokenFile};
pub use applier::apply_pending;
pub use client::ClientKey;
pub use clock::Clock;
pub use error::ApiError;
pub use limits::Limits;
pub use metrics::Metrics;
pub use serve::{Tls, serve, serve_with};
pub use writer::{WriteError, Writer};

/// Settings of a collector.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Requests that may wait for the writer before new ones get 429.
    pub queue_capacity: usize,
    /// Most rows in one group commit.
    pub max_group_rows: usize,
    /// The admin token for private endpoints; with `tokens` also `None`, only public
    /// endpoints answer.
    pub admin_token: Option<String>,
    /// Named admin tokens (`tally token create`), re-read when the file changes.
    pub tokens: Option<TokenFile>,
    /// The k-anonymity threshold for public output (callers may raise it, never lower it).
    pub k: usize,
    /// Events older than this are rejected as `too_old`. The default is the protocol's
    /// limit; the demo raises it to backfill 90 days.
    pub max_event_age_ms: i64,
    /// Connection, request and query limits.
    pub limits: Limits,
    /// How often the retention schedule deletes events older than their app's
    /// `retention_days` (it also runs at start); `None` turns it off.
    pub retention_every: Option<Duration>,
    /// What "now" is for receipt times, event ages, the dedupe window and relative ranges
    /// (tests fix or move it).
    pub clock: Clock,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            queue_capacity: 256,
            max_group_rows: 50_000,
            admin_token: None,
            tokens: None,
            k: tally_insights::DEFAULT_K,
            max_event_age_ms: tally_protocol::limits::MAX_EVENT_AGE_MS,
            limits: Limits::default(),
            retention_every: Some(Duration::from_secs(3600)),
            clock: Clock::System,
        }
    }
}

struct Shared {
    store: Arc<dyn EventStore>,
    schemas: SchemaSet,
    secret: ServerSecret,
    caps: ingest::Caps,
    sink: Sink,
    metrics: Arc<Metrics>,
    settings: Settings,
    strapi: strapi::InstallTimes,
    /// Slots of `limits.max_public_queries`.
    public_queries: Arc<Semaphore>,
    /// The retention schedule, stopped by [`Collector::shutdown`].
    retention: std::sync::Mutex<Option<retention::Schedule>>,
    access: access::Access,
}

/// Where accepted rows go.
enum Sink {
    /// Straight into the store, by group commit.
    Store(Writer),
    /// Into the ingest log; the applier stores them.
    Log(durable::Durable),
}

/// How long a query waits for the applier to store what was acknowledged before it
/// (read-your-writes); past it, the query answers from what is stored.
const QUERY_WAIT: Duration = Duration::from_secs(1);

/// A store failing for longer than this makes `/healthz` answer 503.
const FAILING_UNHEALTHY: Duration = Duration::from_secs(10);

/// A collector, ready to serve.
#[derive(Clone)]
pub struct Collector {
    shared: Arc<Shared>,
}

impl Collector {
    /// Builds a collector that writes straight into the store by group commit: seeds
    /// cardinality caps from the store (a blocking read) and starts the writer thread.
    pub fn new(
        store: Arc<dyn EventStore>,
        schemas: SchemaSet,
        secret: ServerSecret,
        settings: Settings,
    ) -> Result<Collector, StoreError> {
        let metrics = Arc::new(Metrics::new());
        let m = metrics.clone();
        let writer =
            Writer::start(store.clone(), settings.queue_capacity, settings.max_group_rows, move |rows, depth| {
                m.group_rows.observe(rows as f64);
                m.queue_depth.set(depth as i64);
            });
        Self::build(store, Sink::Store(writer), schemas, secret, settings, metrics)
    }

    /// Builds a collector that acknowledges batches once they are durable in `log` and
    /// applies them to `store` on its applier thread (blocking reads first: the caps, the
    /// dedupe index from the store and from the records not yet applied). Fails when the
    /// store's applied position is past the log's end (the log was deleted or replaced).
    pub fn with_log(
        store: Arc<dyn EventStore>,
        log: Arc<tally_log::Log>,
        schemas: SchemaSet,
        secret: ServerSecret,
        settings: Settings,
    ) -> Result<Collector, StoreError> {
        let metrics = Arc::new(Metrics::new());
        let durable = durable::Durable::start(
            log,
            store.clone(),
            settings.max_event_age_ms,
            settings.max_group_rows,
            settings.clock.now_ms(),
            metrics.clone(),
        )?;
        Self::build(store, Sink::Log(durable), schemas, secret, settings, metrics)
    }

    fn build(
        store: Arc<dyn EventStore>,
        sink: Sink,
        schemas: SchemaSet,
        secret: ServerSecret,
        settings: Settings,
        metrics: Arc<Metrics>,
    ) -> Result<Collector, StoreError> {
        let caps = ingest::Caps::load(store.as_ref(), &schemas, settings.limits.client_cap_share_percent)?;
        let retention = match settings.retention_every {
            Some(every) => Some(
                retention::start(store.clone(), schemas.clone(), settings.clock.clone(), every, metrics.clone())
                    .map_err(|e| StoreError::Backend(format!("cannot start the retention schedule: {e}")))?,
            ),
            None => None,
        };
        Ok(Collector {
            shared: Arc::new(Shared {
                store,
                schemas,
                secret,
                caps,
                sink,
                metrics,
                strapi: strapi::InstallTimes::new(),
                public_queries: Arc::new(Semaphore::new(settings.limits.max_public_queries)),
                retention: std::sync::Mutex::new(retention),
                access: access::Access::new(settings.admin_token.clone(), settings.tokens.clone()),
                settings,
            }),
        })
    }

    /// Requests waiting for the writer (0 when writing through the log).
    pub fn queue_depth(&self) -> usize {
        match &self.shared.sink {
            Sink::Store(writer) => writer.depth(),
            Sink::Log(_) => 0,
        }
    }

    /// Blocks until the store holds every event acknowledged so far, at most `timeout`;
    /// `false` if it does not by then. Immediate without a log.
    pub fn wait_applied(&self, timeout: Duration) -> bool {
        self.shared.wait_applied(timeout)
    }

    /// Graceful shutdown, once the server stopped accepting: applies what the log holds,
    /// then stops the applier (a no-op without a log).
    pub fn shutdown(&self) {
        self.shared.retention.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Sink::Log(durable) = &self.shared.sink {
            durable.applier.stop();
        }
    }

    /// The limits it was built with ([`serve`] takes the connection and request limits).
    pub fn limits(&self) -> &Limits {
        &self.shared.settings.limits
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
            .route("/v1/openapi.json", get(openapi::document))
            .merge(strapi::routes())
            .merge(dashboard::routes())
            .with_state(self.shared.clone())
    }
}

impl Shared {
    fn wait_applied(&self, timeout: Duration) -> bool {
        match &self.sink {
            Sink::Store(_) => true,
            Sink::Log(durable) => durable.wait_applied(timeout),
        }
    }
}

/// `GET /healthz`: anyone gets the status (for load balancers and probes); the counts,
/// the applier's position and the lag need an admin token.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Whether the collector can store events",
    description = "Without a token `{\"status\":\"ok\"}` (for probes); with an admin token also the \
        events stored, the applier's state and position and the lag behind the ingest log.",
    security((), ("admin_token" = [])),
    responses(
        (status = 200, description = "healthy", body = Object, content_type = "application/json"),
        (status = 503, description = "the applier stopped or the store has failed for 10 s", body = Object, content_type = "application/json"),
    )
)]
async fn healthz(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let healthy = match &s.sink {
        Sink::Store(_) => true,
        Sink::Log(durable) => {
            durable.applier.alive() && durable.applier.failing_for().is_none_or(|f| f < FAILING_UNHEALTHY)
        }
    };
    let status = if healthy { axum::http::StatusCode::OK } else { axum::http::StatusCode::SERVICE_UNAVAILABLE };
    let detail = s.access.allows(&headers);
    if !detail && matches!(s.sink, Sink::Log(_)) {
        // A probe gets the status at once: no store read, no wait for the applier (whose
        // health says whether the store fails).
        return (status, Json(serde_json::json!({"status": if healthy { "ok" } else { "failing" }}))).into_response();
    }
    let shared = s.clone();
    let counted = tokio::task::spawn_blocking(move || {
        shared.wait_applied(QUERY_WAIT);
        shared.store.count_events()
    })
    .await;
    let events = match counted {
        Ok(Ok(events)) => events,
        Ok(Err(e)) => return ApiError::from(e).into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let (ok, body) = match &s.sink {
        Sink::Store(writer) => {
            (true, serde_json::json!({"status": "ok", "events": events, "write_queue": writer.depth()}))
        }
        Sink::Log(durable) => {
            let lag = durable.log.lag();
            let failing = durable.applier.failing_for();
            let alive = durable.applier.alive();
            let ok = alive && failing.is_none_or(|f| f < FAILING_UNHEALTHY);
            let body = serde_json::json!({
                "status": if ok { "ok" } else { "failing" },
                "events": events,
                "applier": if alive { "running" } else { "stopped" },
                "store_failing_seconds": failing.map(|f| f.as_secs_f64()),
                "applied_position": durable.applier.applied(),
                "lag": {
                    "events": durable.applier.pending_rows(),
                    "records": lag.records,
                    "bytes": lag.bytes,
                    "seconds": lag.oldest.map_or(0.0, |d| d.as_secs_f64()),
                },
            });
            (ok, body)
        }
    };
    let body = if detail { body } else { serde_json::json!({"status": body["status"]}) };
    let status = if ok { axum::http::StatusCode::OK } else { axum::http::StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// `GET /metrics`: needs an admin token (the counters tell how much each app sends).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 401, description = "no admin token, or a wrong one", body = tally_protocol::ErrorBody),
    )
)]
async fn metrics(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !s.access.allows(&headers) {
        return ApiError::unauthorized().into_response();
    }
    match &s.sink {
        Sink::Store(writer) => {
            s.metrics.queue_depth.set(writer.depth() as i64);
        }
        Sink::Log(durable) => {
            s.metrics.log_fsyncs.set(durable.log.fsyncs() as i64);
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], s.metrics.render()).into_response()
}

/// One entry of `GET /v1/insights`.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct CatalogEntry {
    /// The name in `/v1/insights/{name}`.
    name: &'static str,
    /// A short title.
    title: &'static str,
    /// The question it answers.
    question: &'static str,
    /// The optional parameters it reads besides app, range, filters and limit.
    options: &'static str,
}

#[utoipa::path(
    get,
    path = "/v1/insights",
    tag = "insights",
    summary = "The insight catalog",
    responses((status = 200, description = "every insight", body = Vec<CatalogEntry>)),
)]
async fn list_insights() -> Response {
    let list: Vec<_> = tally_insights::CATALOG
        .iter()
        .map(|i| CatalogEntry { name: i.name, title: i.title, question: i.question, options: i.options })
        .collect();
    Json(list).into_response()
}

#[utoipa::path(
    get,
    path = "/v1/insights/{name}",
    tag = "insights",
    summary = "Answer one insight",
    description = "Private answers need an admin token; `public=true` answers without one, with every \
        row behind fewer than k distinct projects hidden (k never below the collector's). Requests \
        are bounded (docs/limits.md): beyond a bound, 400 `invalid_params`.",
    params(("name" = String, Path, description = "an insight of the catalog (GET /v1/insights)"), InsightRequest),
    security((), ("admin_token" = [])),
    responses(
        (status = 200, description = "the answer", body = tally_insights::Answer),
        (status = 400, description = "a parameter that does not parse, or a request beyond a bound", body = tally_protocol::ErrorBody),
        (status = 401, description = "a private request without an admin token", body = tally_protocol::ErrorBody),
        (status = 404, description = "no insight of this name", body = tally_protocol::ErrorBody),
        (status = 503, description = "too many public queries, over the time budget, or the store is failing; retry after Retry-After", body = tally_protocol::ErrorBody),
    )
)]
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
    if !request.public && !s.access.allows(headers) {
        return Err(ApiError::unauthorized());
    }
    let limits = &s.settings.limits;
    // A public range reaches no further back than the app's retention keeps events (its
    // days and today): anything longer costs work and answers nothing more.
    let mut bounds = limits.query_bounds;
    if let Some(schema) = s.schemas.get(&request.app) {
        bounds.public.max_range_days = bounds.public.max_range_days.min(schema.retention_days.saturating_add(1));
    }
    let Resolved { params, audience } =
        request.resolve(s.settings.clock.now_ms(), s.settings.k, &bounds).map_err(insight_error)?;
    // A public query holds its slot until its blocking work ends, even past the budget:
    // the slots count the queries actually running.
    let slot = match audience {
        Audience::Public { .. } => Some(s.public_queries.clone().try_acquire_owned().map_err(|_| {
            ApiError::busy("too many public queries are running; retry after the delay in Retry-After")
        })?),
        Audience::Private => None,
    };
    let shared = s.clone();
    let work = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        // Read-your-writes, bounded: what was acknowledged before the query is applied first.
        shared.wait_applied(QUERY_WAIT);
        tally_insights::answer(shared.store.as_ref(), &name, params, audience)
    });
    let answer = tokio::time::timeout(limits.query_time_budget, work)
        .await
        .map_err(|_| {
            ApiError::busy(format!(
                "the query took longer than {} s; ask for a shorter range, fewer groups or a smaller limit",
                limits.query_time_budget.as_secs_f64()
            ))
        })??
        .map_err(insight_error)?;
    Ok(Json(answer).into_response())
}

fn insight_error(e: InsightError) -> ApiError {
    match e {
        InsightError::Unknown(_) => ApiError::not_found(e.to_string()),
        InsightError::InvalidParams(m) => ApiError::bad_request("invalid_params", m),
        InsightError::Store(e) => ApiError::storage_failed(&e),
    }
}
