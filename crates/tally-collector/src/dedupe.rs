//! Exact dedupe by `event_id` at acceptance, so that the acknowledgement can say
//! `duplicate` without asking the store.
//!
//! The index holds the id of every event stored or acknowledged whose `occurred_at` is
//! within the acceptance window (the protocol's maximum event age: an older event is
//! rejected as `too_old` before it gets here). An id is looked up in the whole window, not
//! only on its event's day: a resend can carry another `occurred_at` than the first send
//! (the collector moves event times by the sender's clock skew, measured anew for every
//! request), and it is still the same event. The ids are kept in one set per span of
//! [`SPAN_DAYS`] days of `occurred_at`, so that a span wholly past the window is dropped at
//! once; a lookup probes the five or six sets the window spans. It is seeded at start from the
//! store ([`EventStore::event_ids_since`]) and from the log records the store has not applied.
//!
//! A request *reserves* its new ids before its log append: a concurrent request holding
//! one of them waits until the reservation is settled (the append is durable, or failed
//! and the ids are free again), so two requests never both report one event accepted,
//! and an event is never reported duplicate of one that was not acknowledged. Memory:
//! a `HashSet<Uuid>` slot is 17 bytes and the table is at most 7/8 full after growing
//! by doubling, so 19–39 bytes per id by how full it is (measured by `memory_per_id`: 22,
//! 30 and 36 bytes at 0.1, 0.3 and 1 M ids), about 30 on average; a span is dropped only
//! once all of it is past the window, so the index holds up to [`SPAN_DAYS`] days more
//! than the window (39 days for the 31-day window, at most 1.26× its ids).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use tally_store::{AppendStatus, DAY_MS, EventRow};
use tokio::sync::watch;
use uuid::Uuid;

/// Days of `occurred_at` per set of ids: a lookup probes `window / SPAN_DAYS + 2` sets, and
/// the index keeps up to this many days past the window.
pub(crate) const SPAN_DAYS: i64 = 8;

/// The ids accepted within the window, by span of days of `occurred_at`.
pub(crate) struct Seen {
    inner: Mutex<Inner>,
    /// Bumped whenever a reservation is settled; waiters re-check then.
    settled: watch::Sender<u64>,
    window_ms: i64,
}

#[derive(Default)]
struct Inner {
    /// By span number ([`span`]).
    spans: BTreeMap<i64, HashSet<Uuid>>,
    /// Ids reserved by a request whose log append is not settled yet.
    pending: HashSet<Uuid>,
}

/// What [`Seen::reserve`] found.
pub(crate) enum Check {
    /// One status per row; the rows reported [`AppendStatus::Inserted`] are reserved.
    Ready(Vec<AppendStatus>, Reservation),
    /// Another request holds one of the ids: wait for it to settle and ask again.
    Busy(watch::Receiver<u64>),
}

/// Ids reserved by one request. [`Reservation::commit`] once the record is durable; a
/// reservation dropped uncommitted (failed append, cancelled request) frees its ids, so a
/// resend is accepted again (the store's idempotence keeps the count exact if the
/// record was written after all).
pub(crate) struct Reservation {
    seen: Arc<Seen>,
    ids: Vec<(Uuid, i64)>,
    committed: bool,
}

impl Seen {
    /// An empty index for events up to `window_ms` old.
    pub(crate) fn new(window_ms: i64) -> Seen {
        Seen { inner: Mutex::default(), settled: watch::channel(0).0, window_ms }
    }

    /// Adds an id known to be stored or acknowledged (seeding).
    pub(crate) fn insert(&self, id: Uuid, occurred_at_ms: i64) {
        self.lock().spans.entry(span(occurred_at_ms)).or_default().insert(id);
    }

    /// How many ids the index holds.
    pub(crate) fn len(&self) -> usize {
        self.lock().spans.values().map(HashSet::len).sum()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves the ids of `rows` not seen yet (nor earlier in `rows`), at `now_ms`.
    pub(crate) fn reserve(self: &Arc<Seen>, rows: &[EventRow], now_ms: i64) -> Check {
        let mut inner = self.lock();
        // The receiver is made under the lock, so a settle after this check wakes it.
        if rows.iter().any(|r| inner.pending.contains(&r.event_id)) {
            return Check::Busy(self.settled.subscribe());
        }
        // A span wholly before the window cannot hold an id that is still accepted.
        let oldest = span((now_ms - self.window_ms).div_euclid(DAY_MS) * DAY_MS - DAY_MS);
        while inner.spans.first_key_value().is_some_and(|(s, _)| *s < oldest) {
            inner.spans.pop_first();
        }
        let mut ids: Vec<(Uuid, i64)> = Vec::new();
        let statuses = rows
            .iter()
            .map(|r| {
                let seen = inner.spans.values().any(|s| s.contains(&r.event_id))
                    || ids.iter().any(|(id, _)| *id == r.event_id);
                if seen {
                    AppendStatus::Duplicate
                } else {
                    ids.push((r.event_id, span(r.occurred_at_ms)));
                    AppendStatus::Inserted
                }
            })
            .collect();
        for (id, s) in &ids {
            inner.spans.entry(*s).or_default().insert(*id);
            inner.pending.insert(*id);
        }
        Check::Ready(statuses, Reservation { seen: self.clone(), ids, committed: false })
    }
}

impl Reservation {
    /// The record holding these ids is durable: they stay seen.
    pub(crate) fn commit(mut self) {
        self.committed = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.ids.is_empty() {
            return;
        }
        let mut inner = self.seen.lock();
        for (id, s) in &self.ids {
            inner.pending.remove(id);
            if !self.committed
                && let Some(set) = inner.spans.get_mut(s)
            {
                set.remove(id);
            }
        }
        drop(inner);
        self.seen.settled.send_modify(|n| *n += 1);
    }
}

/// The span of days `ms` falls in.
fn span(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS * SPAN_DAYS)
}

#[cfg(test)]
mod tests {
    use tally_store::conformance::{T0, row};

    use super::*;

    fn ready(check: Check) -> (Vec<AppendStatus>, Reservation) {
        match check {
            Check::Ready(s, r) => (s, r),
            Check::Busy(_) => panic!("busy"),
        }
    }

    #[test]
    fn ids_are_duplicates_once_committed_and_free_again_when_not() {
        let seen = Arc::new(Seen::new(31 * DAY_MS));
        let now = T0 + DAY_MS;
        let (s, r) = ready(seen.reserve(&[row(1, 0, 0, 1, 1), row(2, 0, 1, 1, 1), row(1, 0, 0, 1, 1)], now));
        assert_eq!(s, [AppendStatus::Inserted, AppendStatus::Inserted, AppendStatus::Duplicate]);
        // A concurrent request with one of the ids waits.
        assert!(matches!(seen.reserve(&[row(2, 0, 1, 1, 1)], now), Check::Busy(_)));
        r.commit();
        let (s, _r) = ready(seen.reserve(&[row(2, 0, 1, 1, 1), row(3, 0, 1, 1, 1)], now));
        assert_eq!(s, [AppendStatus::Duplicate, AppendStatus::Inserted]);
        // A failed append (dropped reservation) frees its ids.
        let (_, failed) = ready(seen.reserve(&[row(4, 0, 1, 1, 1)], now));
        drop(failed);
        let (s, _r) = ready(seen.reserve(&[row(4, 0, 1, 1, 1)], now));
        assert_eq!(s, [AppendStatus::Inserted]);
    }

    #[test]
    fn spans_past_the_window_are_dropped() {
        let seen = Arc::new(Seen::new(31 * DAY_MS));
        seen.insert(row(1, 0, 0, 1, 1).event_id, T0);
        seen.insert(row(2, 20, 0, 1, 1).event_id, T0 + 20 * DAY_MS);
        // 31 + SPAN_DAYS + 1 days later the first span is wholly past the window.
        let _ = ready(seen.reserve(&[], T0 + (32 + SPAN_DAYS) * DAY_MS));
        assert_eq!(seen.len(), 1);
        // Within the window an id stays, whatever its span.
        let seen = Arc::new(Seen::new(31 * DAY_MS));
        seen.insert(row(1, 0, 0, 1, 1).event_id, T0);
        let (s, _r) = ready(seen.reserve(&[row(1, 0, 0, 1, 1)], T0 + 31 * DAY_MS));
        assert_eq!(s, [AppendStatus::Duplicate]);
    }

    /// A resend whose `occurred_at` moved (the sender's clock skew is measured again for each
    /// request) to another day, or another span, is still the same event.
    #[test]
    fn a_resend_with_another_occurred_at_is_a_duplicate() {
        let seen = Arc::new(Seen::new(31 * DAY_MS));
        let now = T0 + 30 * DAY_MS;
        let (s, r) = ready(seen.reserve(&[row(1, 0, 0, 1, 1)], now));
        assert_eq!(s, [AppendStatus::Inserted]);
        r.commit();
        for days in [1, SPAN_DAYS, 20, 29] {
            let mut moved = row(1, 0, 0, 1, 1);
            moved.occurred_at_ms += days * DAY_MS;
            let (s, _r) = ready(seen.reserve(&[moved], now));
            assert_eq!(s, [AppendStatus::Duplicate], "moved by {days} days");
        }
    }

    /// Measures the memory per id stated in the module doc and docs/ingest-log.md.
    #[test]
    fn memory_per_id() {
        for n in [100_000usize, 300_000, 1_000_000] {
            let mut set = HashSet::new();
            for i in 0..n {
                set.insert(Uuid::from_u128(i as u128));
            }
            let bytes = set.capacity() as f64 * 8.0 / 7.0 * 17.0;
            let per_id = bytes / n as f64;
            println!("{n} ids: about {per_id:.1} bytes per id");
            assert!((19.0..=40.0).contains(&per_id), "{per_id}");
        }
    }
}
