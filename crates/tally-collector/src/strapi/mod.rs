//! A drop-in receiver for Strapi's own telemetry client (`STRAPI_ANALYTICS_URL`).
//!
//! Strapi's server, CLI, `create-strapi-app` and admin panel post one event per request to
//! `POST /api/v2/track` (v4 and v5) or `POST /track` (v3 and early v4). This module turns
//! such a payload into a tally [`Context`](tally_protocol::Context) and
//! [`Event`](tally_protocol::Event) of app [`APP`] and hands them, as a
//! batch of one, to the pipeline a native batch ends in ([`crate::ingest::check_and_store`]:
//! `check_batch`, rows, the group commit writer), so the same validation, caps, scrubbing
//! and durability apply.
//!
//! What is kept is decided in [`translate()`], field by field; everything else is never read:
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
//!
//! This module holds the routes and the handler; `translate` turns a payload into a context
//! and an event, `normalise` holds the tables that map Strapi's free-form values to bounded
//! ones, and `installs` times installs.

mod installs;
mod normalise;
mod translate;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde_json::{Value, json};
use tally_protocol::{Batch, RejectReason, Rejection};
use tower_http::cors::{Any, CorsLayer};

pub use installs::{INSTALL_TIMEOUT_MS, InstallTimes, MAX_PENDING_INSTALLS};
pub use normalise::{env_of, error_kind, os_version};
pub use translate::{Translation, project_uuid, snake_case, translate};

use crate::error::ApiError;
use crate::{ClientKey, Shared, ingest};

/// The app name Strapi's events are stored under.
pub const APP: &str = "strapi";

/// Largest Strapi request body accepted. Strapi sends one small event per request (a few
/// hundred bytes; at most 1 KB of error text).
pub const MAX_STRAPI_BODY_BYTES: usize = 64 * 1024;

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
#[utoipa::path(
    options,
    path = "/api/v2/track",
    tag = "strapi",
    summary = "CORS preflight of Strapi's admin panel",
    responses(
        (status = 200, description = "the CORS layer answers every OPTIONS request with the CORS headers"),
        (status = 204, description = "no content"),
    ),
)]
async fn preflight() -> StatusCode {
    StatusCode::NO_CONTENT
}

#[utoipa::path(
    post,
    path = "/api/v2/track",
    tag = "strapi",
    summary = "Strapi v4 and v5 telemetry (STRAPI_ANALYTICS_URL)",
    request_body(content = Object, description = "one event of Strapi's telemetry client", content_type = "application/json"),
    params(
        ("Content-Encoding" = Option<String>, Header, description = "identity, gzip or zstd"),
        ("X-Strapi-Event" = Option<String>, Header, description = "the event's name, when the body has none"),
    ),
    responses(
        (status = 200, description = "stored", body = Object, content_type = "application/json"),
        (status = 202, description = "dropped: an event tally does not keep (counted in the metrics)", body = Object, content_type = "application/json"),
        (status = 400, description = "not JSON, or an event that cannot be translated or is rejected", body = tally_protocol::ErrorBody),
        (status = 408, description = "the body was not sent within the body read timeout", body = tally_protocol::ErrorBody),
        (status = 413, description = "larger than 64 KiB", body = tally_protocol::ErrorBody),
        (status = 415, description = "an unknown Content-Encoding", body = tally_protocol::ErrorBody),
        (status = 422, description = "the collector has no schema for app strapi", body = tally_protocol::ErrorBody),
        (status = 429, description = "this client sends faster than its rate", body = tally_protocol::ErrorBody),
        (status = 503, description = "busy, or the ingest log is full or failing", body = tally_protocol::ErrorBody),
    )
)]
async fn track_v2(
    State(s): State<Arc<Shared>>,
    client: Option<Extension<ClientKey>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    track(&s, "/api/v2/track", &headers, body, client.map(|Extension(c)| c)).await
}

#[utoipa::path(
    post,
    path = "/track",
    tag = "strapi",
    summary = "Strapi v3 and early v4 telemetry",
    request_body(content = Object, description = "one event of Strapi's telemetry client", content_type = "application/json"),
    params(
        ("Content-Encoding" = Option<String>, Header, description = "identity, gzip or zstd"),
        ("X-Strapi-Event" = Option<String>, Header, description = "the event's name, when the body has none"),
    ),
    responses(
        (status = 200, description = "stored", body = Object, content_type = "application/json"),
        (status = 202, description = "dropped: an event tally does not keep (counted in the metrics)", body = Object, content_type = "application/json"),
        (status = 400, description = "not JSON, or an event that cannot be translated or is rejected", body = tally_protocol::ErrorBody),
        (status = 408, description = "the body was not sent within the body read timeout", body = tally_protocol::ErrorBody),
        (status = 413, description = "larger than 64 KiB", body = tally_protocol::ErrorBody),
        (status = 415, description = "an unknown Content-Encoding", body = tally_protocol::ErrorBody),
        (status = 422, description = "the collector has no schema for app strapi", body = tally_protocol::ErrorBody),
        (status = 429, description = "this client sends faster than its rate", body = tally_protocol::ErrorBody),
        (status = 503, description = "busy, or the ingest log is full or failing", body = tally_protocol::ErrorBody),
    )
)]
async fn track_legacy(
    State(s): State<Arc<Shared>>,
    client: Option<Extension<ClientKey>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    track(&s, "/track", &headers, body, client.map(|Extension(c)| c)).await
}

async fn track(
    s: &Shared,
    route: &'static str,
    headers: &HeaderMap,
    body: Body,
    client: Option<ClientKey>,
) -> Response {
    let response = match receive(s, headers, body, client).await {
        Ok((status, body)) => (status, Json(body)).into_response(),
        Err(e) => e.into_response(),
    };
    s.metrics.request(route, response.status().as_u16());
    response
}

async fn receive(
    s: &Shared,
    headers: &HeaderMap,
    body: Body,
    client: Option<ClientKey>,
) -> Result<(StatusCode, Value), ApiError> {
    let too_large =
        || ApiError::too_large(format!("a Strapi event is at most {MAX_STRAPI_BODY_BYTES} bytes; this body is larger"));
    let raw = axum::body::to_bytes(body, MAX_STRAPI_BODY_BYTES)
        .await
        .map_err(|e| if ingest::timed_out(&e) { ingest::body_timeout() } else { too_large() })?;
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
    let now = s.settings.clock.now();
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
    let response = ingest::check_and_store(s, &bytes, now, client).await?;
    let Some(result) = response.results.into_iter().next() else {
        return Err(ApiError::internal("a batch of one event had no result"));
    };
    // Only a rejected event has a reason; Strapi is answered with its error, not a result.
    if let Some(reason) = result.reason {
        return Err(ApiError::from_rejection(Rejection::new(reason, result.detail.unwrap_or_default())));
    }
    Ok((StatusCode::OK, json!({"status": result.status})))
}
