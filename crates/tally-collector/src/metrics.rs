//! Prometheus metrics, served as text at `GET /metrics`.
//!
//! Labels are bounded: outcomes and reasons come from fixed lists, apps from the loaded
//! schemas. No client address or id is ever a label.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of the events counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// `accepted`, `duplicate` or `rejected`.
    pub outcome: &'static str,
    /// The rejection reason, or empty.
    pub reason: &'static str,
}

/// Labels of the requests counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route, e.g. `/v1/batch`.
    pub route: &'static str,
    /// The status code.
    pub status: u16,
}

/// All collector metrics.
pub struct Metrics {
    registry: Registry,
    /// Events by outcome and reason.
    pub events: Family<EventLabels, Counter>,
    /// Requests by route and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Properties dropped as undeclared.
    pub dropped_props: Counter,
    /// Values replaced by `other` (cardinality caps) or `[redacted]` (scrubber).
    pub replaced_values: Family<Vec<(String, String)>, Counter>,
    /// Seconds from a batch's arrival to its answer.
    pub batch_seconds: Histogram,
    /// Jobs waiting for the writer.
    pub queue_depth: Gauge,
    /// Rows per group commit.
    pub group_rows: Histogram,
    /// Records appended to the ingest log.
    pub log_appends: Counter,
    /// The ingest log's fsyncs so far (set when rendered).
    pub log_fsyncs: Gauge,
    /// The log position the store has applied.
    pub applied_position: Gauge,
    /// Rows per applied group.
    pub apply_rows: Histogram,
    /// Events or records the applier dropped because the store refuses them for good.
    pub apply_dropped: Counter,
    /// Events deleted by the retention schedule.
    pub retention_deleted: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("tally");
        let events = Family::<EventLabels, Counter>::default();
        registry.register("events", "Events received, by outcome and rejection reason", events.clone());
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("requests", "HTTP requests, by route and status", requests.clone());
        let dropped_props = Counter::default();
        registry.register(
            "dropped_props",
            "Properties dropped because the app's schema does not declare them",
            dropped_props.clone(),
        );
        let replaced_values = Family::<Vec<(String, String)>, Counter>::default();
        registry.register(
            "replaced_values",
            "String values replaced by `other` (cap) or `[redacted]` (personal data)",
            replaced_values.clone(),
        );
        let batch_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "batch_duration_seconds",
            "Time from receiving a batch to answering it",
            batch_seconds.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register("write_queue_depth", "Requests waiting for the writer", queue_depth.clone());
        let group_rows = Histogram::new(exponential_buckets(1.0, 4.0, 10));
        registry.register("group_commit_rows", "Rows written per group commit", group_rows.clone());
        let log_appends = Counter::default();
        registry.register("log_appends", "Records appended to the ingest log", log_appends.clone());
        let log_fsyncs = Gauge::default();
        registry.register("log_fsyncs", "fsync calls made by the ingest log", log_fsyncs.clone());
        let applied_position = Gauge::default();
        registry.register("applied_position", "Ingest-log position the store has applied", applied_position.clone());
        let apply_rows = Histogram::new(exponential_buckets(1.0, 4.0, 10));
        registry.register("apply_rows", "Rows per group the applier stored", apply_rows.clone());
        let apply_dropped = Counter::default();
        registry.register(
            "apply_dropped",
            "Events or log records dropped by the applier because the store refuses them",
            apply_dropped.clone(),
        );
        let retention_deleted = Counter::default();
        registry.register(
            "retention_deleted",
            "Events deleted by the retention schedule (older than their app's retention_days)",
            retention_deleted.clone(),
        );
        Metrics {
            registry,
            events,
            requests,
            dropped_props,
            replaced_values,
            batch_seconds,
            queue_depth,
            group_rows,
            log_appends,
            log_fsyncs,
            applied_position,
            apply_rows,
            apply_dropped,
            retention_deleted,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    /// Counts one event outcome.
    pub fn event(&self, outcome: &'static str, reason: &'static str) {
        self.events_n(outcome, reason, 1);
    }

    /// Counts `n` events of one outcome (a batch's, at once).
    pub fn events_n(&self, outcome: &'static str, reason: &'static str, n: u64) {
        if n > 0 {
            self.events.get_or_create(&EventLabels { outcome, reason }).inc_by(n);
        }
    }

    /// Counts one request.
    pub fn request(&self, route: &'static str, status: u16) {
        self.requests.get_or_create(&RequestLabels { route, status }).inc();
    }

    /// Counts a replaced value (`why` is `cap` or `redacted`).
    pub fn replaced(&self, why: &str) {
        self.replaced_values.get_or_create(&vec![("why".to_string(), why.to_string())]).inc();
    }
}
