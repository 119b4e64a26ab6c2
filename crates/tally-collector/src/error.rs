//! Every HTTP error the collector answers, mapped to a response in one place.
//!
//! 4xx means "do not retry this body"; 429 and 503 carry `Retry-After` and mean "retry
//! later".
//!
//! What failed inside (a store's error text, which names files of the data dir; a panic's
//! message) is logged at warn level and never sent: anyone may reach the collector.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tally_protocol::wire::ErrorBody;
use tally_protocol::{RejectReason, Rejection};
use tally_store::StoreError;

use crate::writer::WriteError;

/// An error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The status code.
    pub status: StatusCode,
    /// A stable machine-readable code.
    pub code: &'static str,
    /// For a person: what happened and what to do.
    pub message: String,
    /// Seconds to wait before retrying (429/503).
    pub retry_after: Option<u32>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), retry_after: None }
    }

    /// 413: the body is larger than the limit.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", message)
    }

    /// 408: the body did not arrive within the body read timeout.
    pub fn body_timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, "body_timeout", message)
    }

    /// 415: an encoding the collector does not speak.
    pub fn unsupported_encoding(encoding: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            format!("content-encoding {encoding:?} is not supported; send identity, gzip or zstd"),
        )
    }

    /// 400: the body could not be read.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 429: the write queue is full; retry after a second.
    pub fn queue_full() -> Self {
        ApiError {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "queue_full",
                "the write queue is full; retry after the delay in Retry-After",
            )
        }
    }

    /// 429: this client sent more requests than its rate allows.
    pub fn rate_limited(retry_after: u32) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests from this client; retry after the delay in Retry-After",
            )
        }
    }

    /// 503: storage is failing or the collector is shutting down.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError { retry_after: Some(5), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message) }
    }

    /// 503: a limit on work in progress is reached (requests in flight, public queries, a
    /// query's time budget); retry after a second.
    pub fn busy(message: impl Into<String>) -> Self {
        ApiError { retry_after: Some(1), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message) }
    }

    /// 503 for a failing store: the detail is logged, the client gets a generic message.
    pub fn storage_failed(e: &StoreError) -> Self {
        tracing::warn!(error = %e, "storage failed");
        ApiError::unavailable("storage is failing; retry later")
    }

    /// 401: the admin token is missing or wrong.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this endpoint needs an admin token (DATA_DIR/admin-token, or one made by `tally token create`): send \
             `Authorization: Bearer <token>`; insights also answer public output with ?public=true",
        )
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500: a bug or an unexpected failure; the message is safe to show.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// A whole-batch rejection: 422 for an unknown app, else 400.
    pub fn from_rejection(r: Rejection) -> Self {
        let status = match r.reason {
            RejectReason::UnknownApp => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, r.reason.as_str(), r.detail)
    }
}

/// A write the writer did not do: 429 for a full queue, else 503.
impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::QueueFull => ApiError::queue_full(),
            WriteError::Closed => ApiError::unavailable("the collector is shutting down; retry later"),
            WriteError::Store(e) => {
                tracing::warn!(error = %e, "storing events failed");
                ApiError::unavailable("events could not be stored; retry later")
            }
        }
    }
}

/// A store read that failed: 503.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::storage_failed(&e)
    }
}

/// A blocking task that panicked or was cancelled: 500, the panic's message logged only.
impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        tracing::warn!(error = %e, "a blocking task failed");
        ApiError::internal("an internal error occurred; it is logged by the collector")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, Json(ErrorBody { error: self.code.to_string(), message: self.message })).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
