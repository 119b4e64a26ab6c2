//! Group commit: many requests, one store transaction.
//!
//! Handlers hand their rows to a bounded queue and wait. One writer thread takes every job
//! waiting in the queue (up to a row budget), appends all their rows with one
//! [`EventStore::append`] call, and answers each job with its own statuses. A full queue is
//! answered at once with 429, so the collector sheds load instead of growing memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tally_store::{AppendStatus, EventRow, EventStore, StoreError};
use tokio::sync::{mpsc, oneshot};

struct Job {
    rows: Vec<EventRow>,
    reply: oneshot::Sender<Result<Vec<AppendStatus>, StoreError>>,
}

/// Why a write was not done.
#[derive(Debug)]
pub enum WriteError {
    /// The queue is full: retry later.
    QueueFull,
    /// The writer has stopped.
    Closed,
    /// The store failed; nothing of the job was stored.
    Store(StoreError),
}

/// The handle handlers write through.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
    depth: Arc<AtomicUsize>,
}

impl Writer {
    /// Starts the writer thread over `store`. `capacity` jobs may wait; one group holds at
    /// most `max_group_rows` rows (a single larger job is still written whole).
    pub fn start(
        store: Arc<dyn EventStore>,
        capacity: usize,
        max_group_rows: usize,
        on_group: impl Fn(usize, usize) + Send + 'static,
    ) -> Writer {
        let (tx, mut rx) = mpsc::channel::<Job>(capacity.max(1));
        let depth = Arc::new(AtomicUsize::new(0));
        let thread_depth = depth.clone();
        std::thread::Builder::new()
            .name("tally-writer".into())
            .spawn(move || {
                while let Some(first) = rx.blocking_recv() {
                    let mut jobs = vec![first];
                    let mut rows_in_group = jobs[0].rows.len();
                    while rows_in_group < max_group_rows {
                        match rx.try_recv() {
                            Ok(job) => {
                                rows_in_group += job.rows.len();
                                jobs.push(job);
                            }
                            Err(_) => break,
                        }
                    }
                    thread_depth.fetch_sub(jobs.len(), Ordering::Relaxed);
                    write_group(store.as_ref(), jobs);
                    on_group(rows_in_group, thread_depth.load(Ordering::Relaxed));
                }
            })
            .expect("spawn the writer thread");
        Writer { tx, depth }
    }

    /// Jobs waiting to be written.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// Writes `rows` durably; returns one status per row once they are committed.
    pub async fn write(&self, rows: Vec<EventRow>) -> Result<Vec<AppendStatus>, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.depth.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.tx.try_send(Job { rows, reply }) {
            self.depth.fetch_sub(1, Ordering::Relaxed);
            return Err(match e {
                mpsc::error::TrySendError::Full(_) => WriteError::QueueFull,
                mpsc::error::TrySendError::Closed(_) => WriteError::Closed,
            });
        }
        match answer.await {
            Ok(Ok(statuses)) => Ok(statuses),
            Ok(Err(e)) => Err(WriteError::Store(e)),
            Err(_) => Err(WriteError::Closed),
        }
    }
}

fn write_group(store: &dyn EventStore, jobs: Vec<Job>) {
    let mut all = Vec::with_capacity(jobs.iter().map(|j| j.rows.len()).sum());
    let mut spans = Vec::with_capacity(jobs.len());
    let mut replies = Vec::with_capacity(jobs.len());
    for job in jobs {
        spans.push(job.rows.len());
        all.extend(job.rows);
        replies.push(job.reply);
    }
    match store.append(&all) {
        Ok(statuses) => {
            let mut rest = statuses.as_slice();
            for (n, reply) in spans.into_iter().zip(replies) {
                let (mine, tail) = rest.split_at(n.min(rest.len()));
                rest = tail;
                // The handler may have gone (client disconnected): its rows are stored anyway.
                let _ = reply.send(Ok(mine.to_vec()));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, rows = all.len(), "append failed");
            let text = e.to_string();
            let retryable = e.is_retryable();
            for reply in replies {
                let err =
                    if retryable { StoreError::Unavailable(text.clone()) } else { StoreError::Backend(text.clone()) };
                let _ = reply.send(Err(err));
            }
        }
    }
}
