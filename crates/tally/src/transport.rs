//! Delivery of one batch: gzip JSON over HTTP(S) with ureq, or (tests) an in-memory sink.

use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use tally_protocol::{Batch, BatchResponse};

/// What happened to a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// The collector answered for every event (stored, duplicate or refused for good).
    Delivered { accepted: usize, duplicate: usize, rejected: usize, dropped_props: usize },
    /// Try again later; the collector may have said when.
    Retry(Option<Duration>),
    /// The collector refused the batch for good (a 4xx other than 408 and 429): retrying
    /// the same bytes cannot succeed, so the events are dropped.
    Refused,
}

/// Timeouts of the HTTP transport.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) connect: Duration,
    pub(crate) total: Duration,
}

pub(crate) enum Transport {
    /// The agent is made on first use, on the sender thread, not in the host's `build()`.
    Http { agent: OnceLock<ureq::Agent>, url: String, user_agent: String, timeouts: Timeouts },
    #[cfg(feature = "testing")]
    Memory(crate::testing::MemorySink),
}

impl Transport {
    /// An HTTP transport for `endpoint` (a base URL, or the full `/v1/batch` URL). The
    /// proxy comes from `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` (and `NO_PROXY`).
    pub(crate) fn http(endpoint: &str, user_agent: &str, timeouts: Timeouts) -> Transport {
        Transport::Http {
            agent: OnceLock::new(),
            url: batch_url(endpoint),
            user_agent: user_agent.to_string(),
            timeouts,
        }
    }

    pub(crate) fn send(&self, batch: &Batch) -> Delivery {
        match self {
            Transport::Http { agent, url, user_agent, timeouts } => {
                let agent = agent.get_or_init(|| {
                    let config = ureq::Agent::config_builder()
                        .timeout_connect(Some(timeouts.connect))
                        .timeout_global(Some(timeouts.total))
                        .http_status_as_error(false)
                        .max_redirects(0)
                        .user_agent(user_agent.as_str())
                        .build();
                    ureq::Agent::new_with_config(config)
                });
                send_http(agent, url, batch)
            }
            #[cfg(feature = "testing")]
            Transport::Memory(sink) => sink.deliver(batch),
        }
    }
}

/// `https://t.example.com` -> `https://t.example.com/v1/batch`; a URL that already ends
/// in the batch path is kept.
pub(crate) fn batch_url(endpoint: &str) -> String {
    let e = endpoint.trim().trim_end_matches('/');
    if e.ends_with(tally_protocol::BATCH_PATH) { e.to_string() } else { format!("{e}{}", tally_protocol::BATCH_PATH) }
}

fn send_http(agent: &ureq::Agent, url: &str, batch: &Batch) -> Delivery {
    let Ok(json) = serde_json::to_vec(batch) else {
        return Delivery::Refused;
    };
    let mut gz = GzEncoder::new(Vec::with_capacity(json.len() / 4), Compression::fast());
    if gz.write_all(&json).is_err() {
        return Delivery::Refused;
    }
    let Ok(body) = gz.finish() else {
        return Delivery::Refused;
    };
    let response =
        agent.post(url).header("Content-Type", "application/json").header("Content-Encoding", "gzip").send(&body[..]);
    let mut response = match response {
        Ok(r) => r,
        // Refused, reset, timed out, DNS, TLS: all worth another try later.
        Err(_) => return Delivery::Retry(None),
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    match status {
        200..=299 | 422 => {
            let parsed = response
                .body_mut()
                .with_config()
                .limit(1024 * 1024)
                .read_to_string()
                .ok()
                .and_then(|t| serde_json::from_str::<BatchResponse>(&t).ok());
            Delivery::Delivered {
                accepted: parsed.as_ref().map_or(batch.events.len(), |r| r.accepted),
                duplicate: parsed.as_ref().map_or(0, |r| r.duplicate),
                rejected: parsed.as_ref().map_or(0, |r| r.rejected),
                dropped_props: parsed.as_ref().map_or(0, |r| r.dropped_props),
            }
        }
        408 | 429 | 500..=599 => Delivery::Retry(retry_after),
        _ => Delivery::Refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(batch_url("http://127.0.0.1:9/"), "http://127.0.0.1:9/v1/batch");
        assert_eq!(batch_url("https://t.example.com/v1/batch"), "https://t.example.com/v1/batch");
    }
}
