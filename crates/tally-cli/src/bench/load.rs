//! The ingest benchmark's load generator: `connections` HTTP/1.1 keep-alive connections on
//! loopback, each posting the next prepared body until all are sent. A `429` or `503` is
//! retried after its `Retry-After` (so every event is eventually stored and counted); each
//! attempt's latency, from sending the request to the last byte of the answer, is kept.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// Prepared request bodies, sent in order, each once.
pub struct Bodies {
    pub bodies: Vec<Bytes>,
    pub gzip: bool,
    /// Events per body.
    pub events: usize,
}

/// What one load run measured.
#[derive(Debug, Default)]
pub struct Outcome {
    pub elapsed: Duration,
    /// Microseconds, one per answered attempt, sorted.
    pub latencies_us: Vec<u64>,
    /// Requests answered 200.
    pub ok: u64,
    /// Answers 429/503 that were retried.
    pub retried: u64,
    /// Events sent in requests answered 200.
    pub events: u64,
    /// Events the collector reported `accepted` (0 for the no-op endpoint).
    pub accepted: u64,
}

impl Outcome {
    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() as f64 * p).ceil() as usize).clamp(1, self.latencies_us.len()) - 1;
        self.latencies_us[i] as f64 / 1000.0
    }
}

#[derive(serde::Deserialize)]
struct Accepted {
    accepted: u64,
}

/// Posts every body to `addr` + `path` over `connections` connections.
pub fn run(addr: SocketAddr, path: &str, bodies: Arc<Bodies>, connections: usize) -> anyhow::Result<Outcome> {
    let runtime = tokio::runtime::Runtime::new().context("while starting the load generator")?;
    runtime.block_on(async move {
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let tasks: Vec<_> = (0..connections.max(1))
            .map(|_| tokio::spawn(connection(addr, path.to_string(), bodies.clone(), next.clone())))
            .collect();
        let mut total = Outcome::default();
        for task in tasks {
            let one = task.await.context("a load connection panicked")??;
            total.latencies_us.extend(one.latencies_us);
            total.ok += one.ok;
            total.retried += one.retried;
            total.events += one.events;
            total.accepted += one.accepted;
        }
        total.elapsed = started.elapsed();
        total.latencies_us.sort_unstable();
        Ok(total)
    })
}

async fn connection(
    addr: SocketAddr,
    path: String,
    bodies: Arc<Bodies>,
    next: Arc<AtomicUsize>,
) -> anyhow::Result<Outcome> {
    let stream = tokio::net::TcpStream::connect(addr).await.with_context(|| format!("while connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let host = addr.to_string();
    let mut out = Outcome { latencies_us: Vec::with_capacity(bodies.bodies.len() / 8), ..Outcome::default() };
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(body) = bodies.bodies.get(i) else { return Ok(out) };
        loop {
            sender.ready().await.context("the server closed the connection")?;
            let mut req = Request::post(path.as_str()).header("host", &host).header("content-type", "application/json");
            if bodies.gzip {
                req = req.header("content-encoding", "gzip");
            }
            let req = req.body(Full::new(body.clone()))?;
            let sent = Instant::now();
            let resp = sender.send_request(req).await.context("while sending a request")?;
            let status = resp.status().as_u16();
            let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            let answer = resp.into_body().collect().await.context("while reading an answer")?.to_bytes();
            out.latencies_us.push(sent.elapsed().as_micros() as u64);
            match status {
                200 => {
                    out.ok += 1;
                    out.events += bodies.events as u64;
                    if !answer.is_empty() {
                        let a: Accepted =
                            serde_json::from_slice(&answer).context("an answer that is not a batch response")?;
                        out.accepted += a.accepted;
                    }
                    break;
                }
                429 | 503 => {
                    out.retried += 1;
                    // Retry-After is in whole seconds; a benchmark retries sooner.
                    let wait = retry_after.unwrap_or(1).clamp(1, 5) * 100;
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
                _ => bail!("the server answered {status}: {}", String::from_utf8_lossy(&answer)),
            }
        }
    }
}
