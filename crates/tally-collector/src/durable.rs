//! The write path through the ingest log: dedupe at acceptance, one log record per
//! request, acknowledged once the log's group commit has synced it; the applier
//! ([`crate::applier`]) moves records into the store afterwards.

use std::sync::Arc;
use std::time::Duration;

use tally_log::{ErrorKind, Log};
use tally_store::{AppendStatus, EventRow, EventStore, StoreError};

use crate::applier::{self, Applier};
use crate::dedupe::{Check, Seen};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::record;

/// The log, the dedupe index and the applier of a collector that writes through the log.
pub(crate) struct Durable {
    pub(crate) log: Arc<Log>,
    seen: Arc<Seen>,
    pub(crate) applier: Applier,
}

impl Durable {
    /// Seeds the dedupe index from the store and the unapplied records, then starts the
    /// applier from the store's position.
    pub(crate) fn start(
        log: Arc<Log>,
        store: Arc<dyn EventStore>,
        window_ms: i64,
        max_rows: usize,
        metrics: Arc<Metrics>,
        now_ms: i64,
    ) -> Result<Durable, StoreError> {
        let from = applier::start_position(&log, store.as_ref())?;
        let seen = Arc::new(Seen::new(window_ms));
        let since = now_ms - window_ms - tally_store::DAY_MS;
        for (id, at) in store.event_ids_since(since)? {
            seen.insert(id, at);
        }
        let mut reader = log.read_from(from).map_err(|e| StoreError::Backend(format!("ingest log: {e}")))?;
        let mut unapplied = 0;
        while let Some(rec) = reader.next_record().map_err(|e| StoreError::Backend(format!("ingest log: {e}")))? {
            // An undecodable record is reported by the applier when it gets there.
            for row in record::decode(&rec.payload).unwrap_or_default() {
                seen.insert(row.event_id, row.occurred_at_ms);
                unapplied += 1;
            }
        }
        tracing::info!(ids = seen.len(), unapplied, "dedupe index seeded");
        let applier = Applier::start(log.clone(), store, from, max_rows, metrics)?;
        applier.add_pending(unapplied);
        Ok(Durable { log, seen, applier })
    }

    /// Writes the new rows of `rows` as one durable log record; one status per row.
    pub(crate) async fn write(
        &self,
        rows: Vec<EventRow>,
        now_ms: i64,
        metrics: &Metrics,
    ) -> Result<Vec<AppendStatus>, ApiError> {
        let (statuses, reservation) = loop {
            match self.seen.reserve(&rows, now_ms) {
                Check::Ready(statuses, reservation) => break (statuses, reservation),
                Check::Busy(mut settled) => {
                    // Settles within one log sync; an error means the index is gone.
                    let _ = settled.changed().await;
                }
            }
        };
        let new: Vec<EventRow> =
            rows.into_iter().zip(&statuses).filter(|(_, s)| **s == AppendStatus::Inserted).map(|(r, _)| r).collect();
        if new.is_empty() {
            return Ok(statuses);
        }
        // Counted before the append, so that the applier never uncounts rows not counted.
        let n = new.len() as i64;
        self.applier.add_pending(n);
        let ticket = self.log.append(&record::encode(&new)).inspect_err(|_| self.applier.add_pending(-n));
        let ticket = ticket.map_err(log_error)?;
        metrics.log_appends.inc();
        // If this request is cancelled here, the reservation is dropped: its ids are free
        // again, and a resend is stored once whether or not this record was written.
        ticket.await.inspect_err(|_| self.applier.add_pending(-n)).map_err(log_error)?;
        reservation.commit();
        Ok(statuses)
    }

    /// Blocks until the store has applied every record durable now, at most `timeout`.
    pub(crate) fn wait_applied(&self, timeout: Duration) -> bool {
        self.applier.wait_for(self.log.durable_end(), timeout)
    }
}

fn log_error(e: tally_log::LogError) -> ApiError {
    match e.kind() {
        ErrorKind::Full => ApiError::unavailable(format!("{e}")),
        ErrorKind::Invalid => ApiError::too_large(format!("{e}; send smaller batches")),
        _ => {
            tracing::error!(error = %e, "ingest log append failed");
            ApiError::unavailable(format!("events could not be written ({e}); retry later"))
        }
    }
}
