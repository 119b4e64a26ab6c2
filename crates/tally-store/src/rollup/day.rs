//! Day storage: one app's folded rows of one UTC day, the durations of its timed events,
//! and the index covering a prefix of its rows; and which week and 28-day block a day
//! belongs to.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;

use super::dict::Key;
use super::index::DayIndex;
use super::persist::raw::{Fixed, u32_at};
use crate::DAY_MS;
use crate::query::Period;

/// Where a day, a week or a block is kept: its app's number and its first day's number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct DayKey {
    pub(super) app: u32,
    /// The UTC day number (`occurred_at_ms.div_euclid(DAY_MS)`).
    pub(super) day: i64,
}

impl DayKey {
    /// The key of the week holding this day.
    pub(super) fn week(self) -> DayKey {
        DayKey { app: self.app, day: monday(self.day) }
    }

    /// The key of the 28-day block holding this day.
    pub(super) fn block(self) -> DayKey {
        DayKey { app: self.app, day: block(self.day) }
    }

    /// The keys of the app's days `[from, to)`.
    pub(super) fn range(app: u32, from: i64, to: i64) -> std::ops::Range<DayKey> {
        DayKey { app, day: from }..DayKey { app, day: to }
    }
}

/// A folded row: events with the same key on the same day.
#[derive(Debug, Clone, Copy)]
pub(super) struct Row {
    pub(super) key: Key,
    pub(super) events: u32,
}

/// The duration of one timed event.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timed {
    pub(super) key: Key,
    pub(super) duration: u64,
}

/// Rows are folded again once this many arrived beyond twice the folded ones.
const FOLD_AFTER: usize = 4096;

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct Day {
    /// Folded rows, then the rows added since the last fold.
    #[serde(with = "super::persist::raw::vec")]
    pub(super) rows: Vec<Row>,
    /// Durations by event name number.
    #[serde(with = "super::persist::raw::map")]
    pub(super) timed: HashMap<u32, Vec<Timed>>,
    /// Length of `rows` after the last fold.
    pub(super) folded: usize,
    /// The index of `rows[..index.rows]`, rebuilt by the rollup when the rows it does not
    /// cover are many; dropped when the rows are folded or deleted.
    pub(super) index: Option<DayIndex>,
    /// Counts every change (rows added, folded or removed, index rebuilt), so that saving
    /// writes only the days changed since it last wrote them (`persist`).
    #[serde(skip)]
    pub(super) changes: u64,
    /// The value of `changes` the day's file holds (0 for a day read from its file).
    #[serde(skip)]
    pub(super) saved: AtomicU64,
}

impl Day {
    /// Adds rows of `key` (and their durations); returns whether the day was folded, which
    /// drops its index.
    pub(super) fn push(&mut self, key: Key, events: u32, durations: impl Iterator<Item = u64>) -> bool {
        self.rows.push(Row { key, events });
        self.changes += 1;
        let mut durations = durations.peekable();
        if durations.peek().is_some() {
            self.timed.entry(key.name).or_default().extend(durations.map(|duration| Timed { key, duration }));
        }
        if self.rows.len() >= 2 * self.folded + FOLD_AFTER {
            self.fold();
            return true;
        }
        false
    }

    /// Merges rows with the same key (rows arrive per append, so a key can repeat) and
    /// drops the index, whose row count no longer applies.
    pub(super) fn fold(&mut self) {
        self.rows.sort_unstable_by_key(|r| r.key);
        let mut out: Vec<Row> = Vec::with_capacity(self.rows.len());
        for r in self.rows.drain(..) {
            match out.last_mut() {
                Some(last) if last.key == r.key => last.events += r.events,
                _ => out.push(r),
            }
        }
        out.shrink_to_fit();
        self.rows = out;
        self.folded = self.rows.len();
        self.index = None;
        self.changes += 1;
    }

    /// Its event count: what its file records, checked against the raw rows when the
    /// file is read back.
    pub(super) fn events(&self) -> u64 {
        self.rows.iter().map(|r| u64::from(r.events)).sum()
    }

    /// Whether it changed since its file was written.
    pub(super) fn unsaved(&self) -> bool {
        self.saved.load(std::sync::atomic::Ordering::Acquire) != self.changes
    }

    /// The rows the index does not cover (all without an index).
    pub(super) fn tail(&self) -> &[Row] {
        &self.rows[self.index.as_ref().map_or(0, |i| i.rows)..]
    }
}

impl Key {
    fn put(&self, out: &mut Vec<u8>) {
        for n in [self.pid, self.mid, self.ctx, self.name, self.error, self.set] {
            out.extend_from_slice(&n.to_le_bytes());
        }
    }

    fn take(b: &[u8]) -> Key {
        Key {
            pid: u32_at(b, 0),
            mid: u32_at(b, 1),
            ctx: u32_at(b, 2),
            name: u32_at(b, 3),
            error: u32_at(b, 4),
            set: u32_at(b, 5),
        }
    }
}

impl Fixed for Row {
    const SIZE: usize = 28;
    fn put(&self, out: &mut Vec<u8>) {
        self.key.put(out);
        out.extend_from_slice(&self.events.to_le_bytes());
    }
    fn take(b: &[u8]) -> Row {
        Row { key: Key::take(b), events: u32_at(b, 6) }
    }
}

impl Fixed for Timed {
    const SIZE: usize = 32;
    fn put(&self, out: &mut Vec<u8>) {
        self.key.put(out);
        out.extend_from_slice(&self.duration.to_le_bytes());
    }
    fn take(b: &[u8]) -> Timed {
        Timed { key: Key::take(b), duration: u64::take(&b[24..]) }
    }
}

/// The day number of the Monday starting the week of `day`.
pub(super) fn monday(day: i64) -> i64 {
    Period::Week.start_of(day * DAY_MS) / DAY_MS
}

/// The day number of the Monday starting the 28-day block of `day` (blocks count from
/// Monday 1970-01-05, day 4).
pub(super) fn block(day: i64) -> i64 {
    let m = monday(day);
    m - (m - 4).rem_euclid(28)
}
