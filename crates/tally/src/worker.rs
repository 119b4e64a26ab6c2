//! The in-memory queue and the background sender thread.
//!
//! `record()` pushes onto a bounded queue under a mutex held for a few instructions; it
//! never waits for I/O. One plain `std::thread` takes events off the queue in batches and
//! either posts them (mode `on`) or writes them to the outbox (mode `local`, and the run
//! that showed the first-run notice). A failed post is written to the outbox at once and
//! retried later, with exponential backoff and the collector's `Retry-After`; an outbox
//! left by earlier runs is sent first, once this run has recorded an event: a run that
//! records nothing (say a tool that built its client before it knew the command was
//! `telemetry disable`) opens no socket. Events leave the queue only when they are safe:
//! acknowledged by the collector, or written to the outbox.
//!
//! At shutdown the host waits at most its exit budget for the thread to become idle; what
//! is still queued or in flight is then written to the outbox by the host itself, and the
//! thread is left to die with the process (it holds nothing that needs cleaning up).

use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tally_protocol::limits::MAX_EVENTS_PER_BATCH;
use tally_protocol::{Batch, Context, Event};
use uuid::Uuid;

use crate::outbox::{Outbox, SentRecord};
use crate::transport::{Delivery, Transport};

/// First retry delay; doubles per consecutive failure up to [`MAX_BACKOFF`].
const BASE_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// At most this many events in a drain's first post (see `Worker::drain`): one line of
/// the outbox.
const FIRST_DRAIN_POST: usize = crate::outbox::LINE_EVENTS;
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

#[derive(Default)]
pub(crate) struct State {
    pub(crate) queue: VecDeque<Event>,
    /// Taken by the thread and not yet safe.
    inflight: Option<Arc<Vec<Event>>>,
    /// `inflight` is being posted (not merely written to the outbox).
    posting: bool,
    /// Ids of the outbox being posted now.
    posting_old: Vec<Uuid>,
    /// The thread is sending or writing.
    busy: bool,
    /// The thread is sending what earlier runs left in the outbox (already safe on disk).
    draining: bool,
    flush: bool,
    shutdown: bool,
    /// The host has taken over what was left; the thread must not touch it.
    abandoned: bool,
    finished: bool,
}

pub(crate) struct Shared {
    app: String,
    pub(crate) state: Mutex<State>,
    wake: Condvar,
    done: Condvar,
    pub(crate) capacity: usize,
    pub(crate) batch_size: usize,
    pub(crate) dropped: AtomicU64,
    warned: AtomicBool,
    context: OnceLock<Context>,
    make_context: Box<dyn Fn() -> Context + Send + Sync>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn new(
        app: &str,
        capacity: usize,
        batch_size: usize,
        make_context: Box<dyn Fn() -> Context + Send + Sync>,
    ) -> Shared {
        Shared {
            app: app.to_string(),
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            done: Condvar::new(),
            capacity,
            batch_size,
            dropped: AtomicU64::new(0),
            warned: AtomicBool::new(false),
            context: OnceLock::new(),
            make_context,
        }
    }

    /// The batch context, computed once (the machine id may take a file read).
    pub(crate) fn context(&self) -> &Context {
        self.context.get_or_init(|| (self.make_context)())
    }

    /// Queues an event; drops it when the queue is full. Never waits for I/O.
    pub(crate) fn push(&self, event: Event) {
        let mut st = lock(&self.state);
        if st.shutdown {
            return;
        }
        if st.queue.len() >= self.capacity {
            drop(st);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        st.queue.push_back(event);
        let len = st.queue.len();
        drop(st);
        if len == 1 || len == self.batch_size {
            self.wake.notify_one();
        }
    }

    /// Prints the queue-full warning once per process.
    pub(crate) fn warn_dropped(&self) {
        let n = self.dropped.load(Ordering::Relaxed);
        if n > 0 && !self.warned.swap(true, Ordering::Relaxed) {
            eprintln!("warning: {} telemetry queue is full; {n} or more events were dropped", self.app);
        }
    }

    /// Asks the thread to send now and waits up to `timeout` until it is idle.
    pub(crate) fn flush(&self, timeout: Duration) -> bool {
        let mut st = lock(&self.state);
        st.flush = true;
        self.wake.notify_all();
        self.wait_idle(st, timeout, false).1
    }

    /// Waits until the thread is idle or `timeout` passed. With `own_only`, gives up at
    /// once while the thread is busy with the outbox of earlier runs and this run's events
    /// wait behind it: those old events are safe on disk, and a blocked endpoint would
    /// otherwise cost every run its whole budget.
    fn wait_idle<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        timeout: Duration,
        own_only: bool,
    ) -> (MutexGuard<'a, State>, bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let idle = st.queue.is_empty() && st.inflight.is_none() && !st.busy;
            if idle || st.finished {
                return (st, idle);
            }
            if own_only && st.draining && !st.queue.is_empty() {
                return (st, false);
            }
            let now = Instant::now();
            if now >= deadline {
                return (st, false);
            }
            st = self.done.wait_timeout(st, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// Stops the thread: waits at most `budget`, then takes what is not safe yet.
    pub(crate) fn shutdown(&self, budget: Duration) -> Left {
        let mut st = lock(&self.state);
        st.shutdown = true;
        self.wake.notify_all();
        st = self.wait_idle(st, budget, true).0;
        st.abandoned = true;
        let mut left = Left::default();
        if let Some(batch) = st.inflight.take() {
            if st.posting { left.posted = batch.to_vec() } else { left.queued = batch.to_vec() }
        }
        left.queued.extend(st.queue.drain(..));
        left.posted_old = std::mem::take(&mut st.posting_old);
        left
    }

    /// Takes everything queued (debug mode, which has no thread).
    pub(crate) fn take_all(&self) -> Vec<Event> {
        lock(&self.state).queue.drain(..).collect()
    }
}

/// What the host takes over at exit.
#[derive(Default)]
pub(crate) struct Left {
    /// Never posted.
    pub(crate) queued: Vec<Event>,
    /// Posted, no answer seen.
    pub(crate) posted: Vec<Event>,
    /// Ids of the outbox that were being posted.
    pub(crate) posted_old: Vec<Uuid>,
}

enum Action {
    /// Post (or store) these events; the flag says whether the host is shutting down.
    Send(Arc<Vec<Event>>, bool),
    /// Try the outbox again after a failure.
    RetryOutbox,
    Exit,
}

/// How the thread delivers.
pub(crate) struct Worker {
    pub(crate) shared: Arc<Shared>,
    /// `None`: keep events in the outbox only (mode local, or the notice run).
    pub(crate) transport: Option<Transport>,
    pub(crate) outbox: Option<Outbox>,
    pub(crate) flush_interval: Duration,
    pub(crate) drain_outbox: bool,
    /// When a posted, unanswered batch in the outbox may be posted again.
    pub(crate) resend_after: Duration,
    /// The exit budget covers a round trip ([`POST_AT_EXIT_MIN_BUDGET`]): what is queued at
    /// shutdown is posted; otherwise the host writes it to the outbox and the next run
    /// sends it early, while it does its work, where the answer has time to arrive.
    pub(crate) post_at_exit: bool,
}

/// The smallest exit budget under which shutdown still posts: a post started in a 2 ms
/// budget is mostly left unanswered, so it would be posted again by a later run.
pub(crate) const POST_AT_EXIT_MIN_BUDGET: Duration = Duration::from_millis(100);

impl Worker {
    pub(crate) fn spawn(self, app: &str) -> bool {
        std::thread::Builder::new().name(format!("{app}-telemetry")).spawn(move || self.run()).is_ok()
    }

    fn run(self) {
        let shared = &*self.shared;
        let mut failures: u32 = 0;
        let mut retry_at: Option<Instant> = None;
        if self.drain_outbox && !self.wait_for_first_event() {
            return;
        }
        if self.drain_outbox
            && let Err(after) = self.drain()
        {
            failures = 1;
            retry_at = Some(Instant::now() + backoff(failures, after));
        }
        self.finish_step();
        loop {
            match self.next_action(retry_at) {
                Action::Exit => return,
                Action::RetryOutbox => {
                    retry_at = self.retry_outbox(&mut failures);
                    self.finish_step();
                }
                Action::Send(batch, shutting_down) => {
                    if retry_at.is_some_and(|at| Instant::now() >= at) && !shutting_down {
                        retry_at = self.retry_outbox(&mut failures);
                    }
                    let context = shared.context().clone();
                    let outcome = match &self.transport {
                        Some(t) if retry_at.is_none() => {
                            lock(&shared.state).posting = true;
                            t.send(&Batch {
                                sent_at: chrono::Utc::now(),
                                context: context.clone(),
                                events: batch.to_vec(),
                            })
                        }
                        // Local mode, or waiting out a failure: keep them on disk.
                        _ => Delivery::Retry(None),
                    };
                    match outcome {
                        Delivery::Delivered { accepted, duplicate, rejected, dropped_props } => {
                            failures = 0;
                            self.log_sent(context, batch.to_vec(), [accepted, duplicate, rejected, dropped_props]);
                        }
                        Delivery::Refused => {}
                        Delivery::Retry(after) => {
                            let saved = self.outbox.as_ref().is_some_and(|o| o.append(&context, &batch).is_ok());
                            if self.transport.is_some() && retry_at.is_none() {
                                failures += 1;
                                retry_at = Some(Instant::now() + backoff(failures, after));
                            }
                            if !saved && self.transport.is_some() {
                                // Nowhere safe to put them: back to the queue, for the
                                // next try or for the host's shutdown.
                                let mut st = lock(&shared.state);
                                if !st.abandoned {
                                    for e in batch.iter().rev().cloned() {
                                        st.queue.push_front(e);
                                    }
                                }
                            }
                        }
                    }
                    self.finish_step();
                }
            }
        }
    }

    /// Waits until this run has recorded an event, then marks the thread busy with the
    /// outbox; `false` when the host shut down (or took over) first.
    fn wait_for_first_event(&self) -> bool {
        let shared = &*self.shared;
        let mut st = lock(&shared.state);
        loop {
            if st.abandoned {
                return false;
            }
            if !st.queue.is_empty() {
                st.busy = true;
                st.draining = true;
                drop(st);
                // A host already waiting at exit learns that its events wait behind the outbox.
                shared.done.notify_all();
                return true;
            }
            if st.shutdown {
                st.finished = true;
                drop(st);
                shared.done.notify_all();
                return false;
            }
            st = shared.wake.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Marks the current step done, unless the host took over.
    fn finish_step(&self) {
        let mut st = lock(&self.shared.state);
        if !st.abandoned {
            st.inflight = None;
            st.posting = false;
            st.busy = false;
            st.draining = false;
        }
        drop(st);
        self.shared.done.notify_all();
    }

    /// Waits for the next thing to do.
    fn next_action(&self, retry_at: Option<Instant>) -> Action {
        let shared = &*self.shared;
        let mut st = lock(&shared.state);
        let mut first_queued: Option<Instant> = None;
        loop {
            shared.warn_dropped();
            if st.abandoned {
                return Action::Exit;
            }
            if st.shutdown && !st.flush && !self.post_at_exit {
                // The host appends the queue to the outbox (see `post_at_exit`).
                st.finished = true;
                shared.done.notify_all();
                return Action::Exit;
            }
            let now = Instant::now();
            if st.queue.is_empty() {
                first_queued = None;
                if st.shutdown {
                    st.finished = true;
                    shared.done.notify_all();
                    return Action::Exit;
                }
                st.flush = false;
                shared.done.notify_all();
                st = match retry_at {
                    Some(at) if now >= at => {
                        st.busy = true;
                        st.draining = true;
                        return Action::RetryOutbox;
                    }
                    Some(at) => shared.wake.wait_timeout(st, at - now).unwrap_or_else(PoisonError::into_inner).0,
                    None => shared.wake.wait(st).unwrap_or_else(PoisonError::into_inner),
                };
                continue;
            }
            let due = *first_queued.get_or_insert(now) + self.flush_interval;
            // Without an outbox a failed batch waits in the queue until its retry time.
            let waiting = retry_at.filter(|at| now < *at && self.outbox.is_none() && !st.shutdown).map(|at| at - now);
            let ready = st.shutdown || st.flush || st.queue.len() >= shared.batch_size || now >= due;
            if ready && waiting.is_none() {
                let n = st.queue.len().min(MAX_EVENTS_PER_BATCH);
                let batch: Arc<Vec<Event>> = Arc::new(st.queue.drain(..n).collect());
                // Shared, not copied: the lock is held only for the queue moves.
                st.inflight = Some(batch.clone());
                st.busy = true;
                return Action::Send(batch, st.shutdown);
            }
            let wait = waiting.unwrap_or(due.saturating_duration_since(now));
            st = shared.wake.wait_timeout(st, wait).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// One more try at the outbox after a failure; the next retry time if it failed.
    fn retry_outbox(&self, failures: &mut u32) -> Option<Instant> {
        match self.drain() {
            Ok(()) => {
                *failures = 0;
                None
            }
            Err(after) => {
                *failures += 1;
                Some(Instant::now() + backoff(*failures, after))
            }
        }
    }

    /// Sends what earlier runs (or earlier failures) left in the outbox. Only one process
    /// at a time does this (`send.lock`); the others leave it alone. `Err` carries the
    /// collector's `Retry-After` when a send failed.
    fn drain(&self) -> Result<(), Option<Duration>> {
        let (Some(outbox), Some(transport)) = (&self.outbox, &self.transport) else {
            return Ok(());
        };
        if !outbox.has_waiting() {
            return Ok(());
        }
        let Ok(lock_file) =
            File::options().create(true).truncate(false).write(true).open(outbox.dir().join("send.lock"))
        else {
            return Ok(());
        };
        if lock_file.try_lock().is_err() {
            return Ok(());
        }
        // Compaction is rare: it leaves room for many runs' appends.
        let _ = outbox.compact();
        // One batch per context, not one per run that wrote to the outbox; what an earlier
        // run posted without seeing the answer waits until `resend_after`. Each batch is
        // read from the outbox as it is sent, and the first one is small: when the endpoint
        // is unreachable it fails, and the run has parsed a line or two of the outbox, not
        // the whole of it (a sender thread still busy when the host exits delays the
        // process's exit on a loaded machine).
        let mut max = FIRST_DRAIN_POST;
        loop {
            let piece = match outbox.next_batch(self.resend_after, max) {
                Ok(Some(piece)) => piece,
                _ => return Ok(()),
            };
            let ids: HashSet<_> = piece.events.iter().map(|e| e.event_id).collect();
            {
                let mut st = lock(&self.shared.state);
                if st.abandoned {
                    return Ok(());
                }
                st.posting_old = ids.iter().copied().collect();
            }
            let outcome = transport.send(&Batch {
                sent_at: chrono::Utc::now(),
                context: piece.context.clone(),
                events: piece.events.clone(),
            });
            if lock(&self.shared.state).abandoned {
                return Ok(());
            }
            let removed = match outcome {
                Delivery::Delivered { accepted, duplicate, rejected, dropped_props } => {
                    max = MAX_EVENTS_PER_BATCH;
                    let removed = outbox.remove(&ids);
                    self.log_sent(piece.context, piece.events, [accepted, duplicate, rejected, dropped_props]);
                    removed
                }
                Delivery::Refused => outbox.remove(&ids),
                Delivery::Retry(after) => {
                    lock(&self.shared.state).posting_old.clear();
                    return Err(after);
                }
            };
            // Cleared only once removed: a host that exits before the removal is done marks
            // the batch posted, so the next run does not send it again at once.
            lock(&self.shared.state).posting_old.clear();
            if removed.is_err() {
                // The same batch would come back: stop, a later drain tries again.
                return Ok(());
            }
        }
    }

    /// Logs a delivered batch with the collector's counts: accepted, duplicate, rejected,
    /// dropped properties.
    fn log_sent(&self, context: Context, events: Vec<Event>, counts: [usize; 4]) {
        let [accepted, duplicate, rejected, dropped_props] = counts;
        if let Some(o) = &self.outbox {
            let record = SentRecord {
                sent_at: chrono::Utc::now(),
                context,
                events,
                accepted,
                duplicate,
                rejected,
                dropped_props,
            };
            let _ = o.log_sent(&record);
        }
    }
}

/// Exponential backoff from [`BASE_BACKOFF`], or the collector's `Retry-After` when longer.
fn backoff(failures: u32, retry_after: Option<Duration>) -> Duration {
    let exp = BASE_BACKOFF.saturating_mul(1 << failures.saturating_sub(1).min(16));
    exp.min(MAX_BACKOFF).max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_honours_retry_after() {
        assert_eq!(backoff(1, None), BASE_BACKOFF);
        assert_eq!(backoff(2, None), BASE_BACKOFF * 2);
        assert_eq!(backoff(40, None), MAX_BACKOFF);
        assert_eq!(backoff(1, Some(Duration::from_secs(30))), Duration::from_secs(30));
        assert_eq!(backoff(1, Some(Duration::from_secs(1 << 20))), MAX_RETRY_AFTER);
    }
}
