//! The serving loop: accepts connections and serves a router over HTTP/1.1 within the
//! connection and request [`Limits`]. `axum::serve` has no header or body read timeout and
//! no connection cap, so one client holding thousands of half-sent requests kept them all
//! (issue 11); this loop is what the `tally` binary runs. [`crate::Collector::router`]
//! stays usable without it for in-process tests.
//!
//! HTTP/1.1 only: the SDKs and Strapi speak it, and HTTP/2's protocol detection would wait
//! for a connection's first bytes without a timeout.
//!
//! The loop reads the peer's address only to make its [`ClientKey`] (a salted hash, see
//! `client.rs`), which requests carry as an extension; it never logs or keeps the address.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::timeout::DeadlineBody;

use crate::client::{ClientKey, RateLimiter};
use crate::{ApiError, Limits};

/// Serves `router` over plain HTTP on `listener` until `shutdown` completes: [`serve_with`]
/// without TLS.
pub async fn serve(listener: TcpListener, router: Router, limits: Limits, shutdown: impl Future<Output = ()>) {
    serve_with(listener, router, limits, None, shutdown).await
}

/// Serves `router` on `listener`, over TLS when `tls` is given, until `shutdown` completes,
/// then lets requests in flight finish for at most `limits.shutdown_grace`.
///
/// Enforced here: `header_read_timeout` (the connection is closed), `body_read_timeout`
/// (reading the body fails), `max_connections` (a connection beyond it is closed at once)
/// `max_requests_in_flight` (503 with `Retry-After`) and the per-client rate (429 with
/// `Retry-After`).
///
/// A TLS handshake must complete within `header_read_timeout` (it holds a connection slot
/// like slow headers would).
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<Tls>,
    shutdown: impl Future<Output = ()>,
) {
    let rates = Arc::new(RateLimiter::new(
        limits.rate_limit_per_second,
        limits.rate_limit_burst,
        limits.max_tracked_clients,
        limits.client_salt_rotation,
    ));
    let gate = Arc::new(RequestGate {
        in_flight: Semaphore::new(limits.max_requests_in_flight),
        body_read_timeout: limits.body_read_timeout,
        rates: rates.clone(),
    });
    let app = router.layer(axum::middleware::from_fn_with_state(gate, limit_request));
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => (stream, rates.key(peer.ip())),
                Err(e) => {
                    // Out of descriptors or a connection reset before it was accepted: wait
                    // a little rather than spin, and go on serving.
                    tracing::debug!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            // Closed without a response: answering would cost what the cap is there to save.
            drop(stream);
            tracing::debug!(limit = limits.max_connections, "connection closed: max_connections reached");
            continue;
        };
        let open = limits.max_connections - connections.available_permits();
        tracing::trace!(open, "connection accepted");
        // The key rides with every request of the connection (a wrapper, not a rebuilt router).
        let app = tower::Layer::layer(&axum::Extension(client), app.clone());
        let service = TowerToHyperService::new(app);
        match &tls {
            None => {
                let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    // A client that goes away mid-request is not the collector's error.
                    let _ = connection.await;
                    drop(permit);
                });
            }
            Some(tls) => {
                let (acceptor, http, watcher) = (tls.acceptor.clone(), http.clone(), graceful.watcher());
                let handshake_timeout = limits.header_read_timeout;
                tokio::spawn(async move {
                    // A failed or slow handshake closes the connection; nothing to answer.
                    if let Ok(Ok(stream)) = tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        let _ = watcher.watch(http.serve_connection(TokioIo::new(stream), service)).await;
                    }
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still running after {:?} of shutdown were abandoned", limits.shutdown_grace);
    }
}

/// A certificate chain and its private key, for [`serve_with`].
#[derive(Clone)]
pub struct Tls {
    acceptor: tokio_rustls::TlsAcceptor,
}

impl Tls {
    /// Reads a PEM certificate chain (the server's certificate first) and a PEM private key
    /// (PKCS#8, PKCS#1 or SEC1). HTTP/1.1 only, like the plain listener.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Tls, String> {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("cannot read the certificate chain {}: {e}", cert.display()))?;
        if certs.is_empty() {
            return Err(format!("{} holds no PEM certificate", cert.display()));
        }
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| format!("cannot read a PEM private key from {}: {e}", key.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| format!("the certificate and key do not make a TLS identity: {e}"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls { acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)) })
    }
}

/// What every request passes through: its client's rate, a slot of
/// `max_requests_in_flight`, and a deadline on its body.
struct RequestGate {
    in_flight: Semaphore,
    body_read_timeout: Duration,
    rates: Arc<RateLimiter>,
}

async fn limit_request(State(gate): State<Arc<RequestGate>>, request: Request, next: Next) -> Response {
    if let Some(client) = request.extensions().get::<ClientKey>()
        && let Err(wait) = gate.rates.check(*client)
    {
        return ApiError::rate_limited(wait).into_response();
    }
    let Ok(_slot) = gate.in_flight.try_acquire() else {
        return ApiError::busy("the collector is handling too many requests; retry after the delay in Retry-After")
            .into_response();
    };
    let timeout = gate.body_read_timeout;
    next.run(request.map(|body| Body::new(DeadlineBody::new(timeout, body)))).await
}
