//! The retention schedule: a thread that, at start and then every
//! [`Settings::retention_every`](crate::Settings::retention_every), deletes each app's
//! events older than its schema's `retention_days`, cut at midnight UTC so that the store
//! drops whole days (the rollup's days and indexes go as they are; nothing is rebuilt).
//! It stops when the collector shuts down.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use tally_protocol::SchemaSet;
use tally_store::{DAY_MS, EventStore};

use crate::Clock;
use crate::metrics::Metrics;

/// Stops the schedule when dropped.
pub(crate) struct Schedule {
    _stop: Sender<()>,
}

/// The cut for an app keeping `days` days at `now_ms`: the midnight UTC at or before
/// `now_ms - days`.
pub(crate) fn cut_ms(now_ms: i64, days: u32) -> i64 {
    (now_ms - i64::from(days) * DAY_MS).div_euclid(DAY_MS) * DAY_MS
}

/// One run: every app's cut applied; returns the events deleted.
pub(crate) fn run_once(store: &dyn EventStore, schemas: &SchemaSet, now_ms: i64, metrics: &Metrics) -> u64 {
    let mut deleted = 0;
    for schema in schemas.iter() {
        let cut = cut_ms(now_ms, schema.retention_days);
        match store.apply_retention(&schema.app, cut) {
            Ok(n) => {
                if n > 0 {
                    tracing::info!(app = %schema.app, deleted = n, days = schema.retention_days, "retention");
                }
                metrics.retention_deleted.inc_by(n);
                deleted += n;
            }
            Err(e) => tracing::error!(app = %schema.app, error = %e, "retention failed; retried at the next run"),
        }
    }
    deleted
}

/// Starts the schedule on its own thread.
pub(crate) fn start(
    store: Arc<dyn EventStore>,
    schemas: SchemaSet,
    clock: Clock,
    every: Duration,
    metrics: Arc<Metrics>,
) -> std::io::Result<Schedule> {
    let (stop, stopped): (Sender<()>, Receiver<()>) = std::sync::mpsc::channel();
    std::thread::Builder::new().name("tally-retention".into()).spawn(move || {
        loop {
            run_once(store.as_ref(), &schemas, clock.now().timestamp_millis(), &metrics);
            match stopped.recv_timeout(every) {
                Err(RecvTimeoutError::Timeout) => continue,
                _ => return,
            }
        }
    })?;
    Ok(Schedule { _stop: stop })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cut_is_the_midnight_before_the_retention_period() {
        let now = 20_000 * DAY_MS + 5 * 3_600_000;
        assert_eq!(cut_ms(now, 396), (20_000 - 396) * DAY_MS);
        assert_eq!(cut_ms(20_000 * DAY_MS, 31), (20_000 - 31) * DAY_MS);
    }
}
