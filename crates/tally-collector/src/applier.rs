//! The applier: moves ingest-log records into the store.
//!
//! One std thread reads the log from the position the store last committed
//! ([`EventStore::applied_position`]), decodes records ([`crate::record`]), groups them into
//! large appends (up to a row budget, or whatever is durable when it wakes), and calls
//! [`EventStore::apply`] with the rows and the position after the group: rows and position
//! commit in one transaction, so a crash anywhere neither applies a record twice nor skips
//! one. It then releases the log up to that position. When caught up it sleeps in
//! [`tally_log::Reader::wait`] and wakes on the next durable record; after a small group it
//! first lets records gather for [`LINGER`] (100 ms; at once when a query waits for it), so
//! that the store sees at most about ten transactions a second and an acknowledged event is
//! queryable within about a tenth of a second plus the apply time when the store keeps up.
//!
//! # Failures
//!
//! - A retryable store error ([`StoreError::is_retryable`]) retries the same group with
//!   backoff (up to 5 s) for as long as it lasts; `/healthz` reports the store failing.
//! - Any other error on a group retries it row by row (each row in its own transaction,
//!   the position left where it was), so one row the store refuses cannot fail its
//!   neighbours. A row still refused after [`ROW_ATTEMPTS`] tries is dropped, logged as an
//!   error and counted (`tally_apply_dropped_total`): an event the store can never take must
//!   not wedge the applier forever. The row-by-row pass uses [`EventStore::append`], which
//!   skips stored event ids, and moves the position after the group.
//!
//! # Replay after a restart
//!
//! [`EventStore::apply`] takes rows as new (the collector deduplicated them at acceptance),
//! so a store may append them without looking. What a previous process wrote to the log
//! and the store has not recorded as applied may still be stored in part (a crash during a
//! row-by-row pass), so every group read from before the log's end at start is stored with
//! `append` (checked by `event_id`) and then `apply(&[], through)`: [`store_group`].
//! - A record that does not decode (a newer collector's format) is dropped the same way.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tally_log::{Log, Reader};
use tally_store::{EventRow, EventStore, StoreError};

use crate::metrics::Metrics;
use crate::record;

/// Tries of one refused row before it is dropped.
const ROW_ATTEMPTS: u32 = 3;

/// After a group smaller than a quarter of the row budget, the applier lets records
/// gather this long before the next store transaction (unless a query is waiting for it,
/// or it is stopping): a transaction per durable record cost more CPU than the requests
/// themselves with one event per request. It bounds how stale insights are (with the
/// apply time itself) at about a tenth of a second.
pub(crate) const LINGER: Duration = Duration::from_millis(100);

/// What the collector sees of the applier.
pub(crate) struct Applier {
    state: Arc<State>,
    handle: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct State {
    /// The position the store committed last.
    applied: Mutex<u64>,
    advanced: Condvar,
    stop: AtomicBool,
    /// False once the thread has ended (stopped or panicked).
    alive: AtomicBool,
    /// Milliseconds since the Unix epoch when the store began failing; 0 when it is not.
    failing_since_ms: AtomicU64,
    /// Rows acknowledged (or found unapplied at start) and not yet applied; may dip below
    /// zero briefly, as a handler counts its rows just before appending them.
    pending_rows: AtomicI64,
    /// A reader is waiting for the applier: skip the linger.
    wanted: AtomicBool,
}

impl Applier {
    /// Starts the applier over `log` from `from` (the store's applied position).
    pub(crate) fn start(
        log: Arc<Log>,
        store: Arc<dyn EventStore>,
        from: u64,
        max_rows: usize,
        metrics: Arc<Metrics>,
    ) -> Result<Applier, StoreError> {
        let reader =
            log.read_from(from).map_err(|e| StoreError::Backend(format!("cannot read the ingest log: {e}")))?;
        let state = Arc::new(State { applied: Mutex::new(from), alive: AtomicBool::new(true), ..State::default() });
        metrics.applied_position.set(from as i64);
        let thread_state = state.clone();
        let handle = std::thread::Builder::new()
            .name("tally-applier".into())
            .spawn(move || {
                let replay_end = log.next_position();
                let run = Run { log, store, state: thread_state.clone(), metrics, max_rows, replay_end };
                let _alive = AliveGuard(thread_state);
                run.run(reader);
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the applier thread: {e}")))?;
        Ok(Applier { state, handle: Mutex::new(Some(handle)) })
    }

    /// The position the store committed last.
    pub(crate) fn applied(&self) -> u64 {
        *self.state.applied.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Blocks until the store has applied everything before `position` (`true`), or
    /// `timeout` passes or the applier has ended (`false`).
    pub(crate) fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut applied = self.state.applied.lock().unwrap_or_else(|e| e.into_inner());
        if *applied < position {
            self.state.wanted.store(true, Ordering::Release);
        }
        while *applied < position {
            let now = Instant::now();
            if now >= deadline || !self.alive() {
                return false;
            }
            applied = self.state.advanced.wait_timeout(applied, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
        true
    }

    /// Counts `rows` as written to the log and not yet applied (negative: uncounts them).
    pub(crate) fn add_pending(&self, rows: i64) {
        self.state.pending_rows.fetch_add(rows, Ordering::Relaxed);
    }

    /// Events acknowledged and not yet applied.
    pub(crate) fn pending_rows(&self) -> u64 {
        self.state.pending_rows.load(Ordering::Relaxed).max(0) as u64
    }

    /// Whether the thread is running.
    pub(crate) fn alive(&self) -> bool {
        self.state.alive.load(Ordering::Acquire)
    }

    /// How long the store has been failing, if it is.
    pub(crate) fn failing_for(&self) -> Option<Duration> {
        let since = self.state.failing_since_ms.load(Ordering::Relaxed);
        (since > 0).then(|| Duration::from_millis((now_ms() as u64).saturating_sub(since)))
    }

    /// Applies what is durable in the log, then stops the thread (graceful shutdown: call
    /// once nothing appends any more). A store that keeps failing is given up on; its
    /// records stay in the log for the next start.
    pub(crate) fn stop(&self) {
        self.state.stop.store(true, Ordering::Release);
        if let Some(handle) = self.handle.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = handle.join();
        }
    }
}

/// Marks the applier ended however its thread ends, and wakes waiters.
struct AliveGuard(Arc<State>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.alive.store(false, Ordering::Release);
        if std::thread::panicking() {
            tracing::error!("the applier thread panicked; acknowledged events stay in the log until a restart");
        }
        self.0.advanced.notify_all();
    }
}

struct Run {
    log: Arc<Log>,
    store: Arc<dyn EventStore>,
    state: Arc<State>,
    metrics: Arc<Metrics>,
    max_rows: usize,
    /// The log's end when the applier started: groups from before it are replays.
    replay_end: u64,
}

/// Stores one group and the position after it: `checked` (a replay of records a previous
/// process may have stored in part) appends with the `event_id` check, then moves the
/// position; otherwise rows and position commit together.
pub(crate) fn store_group(
    store: &dyn EventStore,
    rows: &[EventRow],
    through: u64,
    checked: bool,
) -> Result<(), StoreError> {
    if checked && !rows.is_empty() {
        store.append(rows)?;
        store.apply(&[], through)?;
    } else {
        store.apply(rows, through)?;
    }
    Ok(())
}

impl Run {
    fn run(&self, mut reader: Reader) {
        let mut linger_until: Option<Instant> = None;
        loop {
            if let Some(until) = linger_until.take() {
                self.linger(until);
            }
            let (rows, through) = match read_group(&mut reader, self.max_rows, &self.metrics) {
                Ok(group) => group,
                Err(e) => {
                    tracing::error!(error = %e, "reading the ingest log failed; retrying");
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            };
            // Caught up: also covers a gap at the end of the log (a truncated torn tail),
            // so that "applied" reaches the durable end.
            let through = through.unwrap_or_else(|| reader.position());
            if through > self.applied() {
                self.state.wanted.store(false, Ordering::Release);
                if !self.apply(&rows, through) {
                    return;
                }
                if rows.len() < self.max_rows / 4 {
                    linger_until = Some(Instant::now() + LINGER);
                }
                continue;
            }
            if self.state.stop.load(Ordering::Acquire) {
                return;
            }
            reader.wait(Duration::from_millis(200));
        }
    }

    fn applied(&self) -> u64 {
        *self.state.applied.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps until `until`, or sooner when a reader waits or the applier stops.
    fn linger(&self, until: Instant) {
        while Instant::now() < until
            && !self.state.wanted.load(Ordering::Acquire)
            && !self.state.stop.load(Ordering::Acquire)
        {
            std::thread::sleep(Duration::from_millis(5).min(until.saturating_duration_since(Instant::now())));
        }
    }

    /// Applies one group through `through`; `false` when stopping with the store failing.
    fn apply(&self, rows: &[EventRow], through: u64) -> bool {
        let mut backoff = Duration::from_millis(50);
        let checked = self.applied() < self.replay_end;
        loop {
            match store_group(&*self.store, rows, through, checked) {
                Ok(_) => break,
                Err(e) if e.is_retryable() => {
                    self.failing(&e, rows.len());
                    if self.state.stop.load(Ordering::Acquire) {
                        return false;
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    self.failing(&e, rows.len());
                    if !self.row_by_row(rows, through) {
                        return false;
                    }
                    break;
                }
            }
        }
        self.state.failing_since_ms.store(0, Ordering::Relaxed);
        self.metrics.apply_rows.observe(rows.len() as f64);
        self.state.pending_rows.fetch_sub(rows.len() as i64, Ordering::Relaxed);
        if let Err(e) = self.log.release(through) {
            tracing::error!(error = %e, "releasing the ingest log failed");
        }
        *self.state.applied.lock().unwrap_or_else(|e| e.into_inner()) = through;
        self.metrics.applied_position.set(through as i64);
        self.state.advanced.notify_all();
        true
    }

    /// Stores each row alone, dropping those refused [`ROW_ATTEMPTS`] times, then
    /// records `through`.
    fn row_by_row(&self, rows: &[EventRow], through: u64) -> bool {
        for row in rows {
            let mut attempt = 0;
            while let Err(e) = self.store.append(std::slice::from_ref(row)) {
                attempt += 1;
                if self.state.stop.load(Ordering::Acquire) {
                    return false;
                }
                if !e.is_retryable() && attempt >= ROW_ATTEMPTS {
                    tracing::error!(error = %e, event_id = %row.event_id, "the store refuses this event; dropped");
                    self.metrics.apply_dropped.inc();
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let mut backoff = Duration::from_millis(50);
        while let Err(e) = self.store.apply(&[], through) {
            self.failing(&e, 0);
            if self.state.stop.load(Ordering::Acquire) {
                return false;
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        true
    }

    fn failing(&self, e: &StoreError, rows: usize) {
        tracing::error!(error = %e, rows, "applying to the store failed");
        let _ = self.state.failing_since_ms.compare_exchange(0, now_ms() as u64, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// Reads records until `max_rows` rows or the durable end; the rows and the position
/// after the last record read (`None` when there was none).
fn read_group(
    reader: &mut Reader,
    max_rows: usize,
    metrics: &Metrics,
) -> Result<(Vec<EventRow>, Option<u64>), tally_log::LogError> {
    let mut rows = Vec::new();
    let mut through = None;
    while rows.len() < max_rows {
        let Some(rec) = reader.next_record()? else { break };
        match record::decode(&rec.payload) {
            Ok(decoded) => rows.extend(decoded),
            Err(e) => {
                tracing::error!(error = %e, position = rec.position, "an ingest-log record was dropped");
                metrics.apply_dropped.inc();
            }
        }
        through = Some(rec.next_position());
    }
    Ok((rows, through))
}

/// Applies every durable record from the store's position on, synchronously (the CLI,
/// collector stopped): what `tally erase` does first, so that an erased project cannot
/// come back from the log. Returns how many rows were applied.
pub fn apply_pending(log: &Log, store: &dyn EventStore, max_rows: usize) -> Result<u64, StoreError> {
    let from = start_position(log, store)?;
    let mut reader = log.read_from(from).map_err(log_error)?;
    let metrics = Metrics::new();
    let (mut total, mut applied) = (0, from);
    loop {
        let (rows, through) = read_group(&mut reader, max_rows, &metrics).map_err(log_error)?;
        // Caught up: a gap at the end (a truncated torn tail) is recorded as applied too.
        let through = through.unwrap_or_else(|| reader.position());
        if through <= applied {
            return Ok(total);
        }
        // Everything here was written by a process that is gone: a replay.
        store_group(store, &rows, through, true)?;
        log.release(through).map_err(log_error)?;
        total += rows.len() as u64;
        applied = through;
    }
}

/// Where the applier resumes: the store's position, checked against the log.
pub(crate) fn start_position(log: &Log, store: &dyn EventStore) -> Result<u64, StoreError> {
    match store.applied_position()? {
        None => Ok(log.start()),
        Some(p) if p > log.next_position() => Err(StoreError::Backend(format!(
            "the store has applied the ingest log up to position {p}, but the log in {} ends at {}: \
             the log was deleted or replaced. Restore it, or move the data directory's database \
             aside to start over; refusing to start rather than lose or repeat events",
            log.dir().display(),
            log.next_position()
        ))),
        Some(p) => Ok(p),
    }
}

fn log_error(e: tally_log::LogError) -> StoreError {
    StoreError::Unavailable(format!("ingest log: {e}"))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
