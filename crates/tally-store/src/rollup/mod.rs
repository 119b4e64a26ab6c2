//! Rollups: the events of each UTC day folded into one row per distinct (project, machine,
//! context, event name, error kind, plugin set) with an event count, plus the durations of
//! timed events, all dictionary-encoded into dense integers. On top of the rows, day, week
//! and 28-day block indexes hold, per value of every dimension, the distinct projects and
//! machines as sets. Queries over whole days are answered from them with exact distinct
//! counts (bitsets over dense project and machine numbers), without reading raw events.
//!
//! A backend keeps a [`Rollup`] next to its raw rows: it [`Rollup::add`]s every row it
//! inserts (maintained at ingest), removes what it deletes, and rebuilds it from its raw rows
//! when it opens. [`Rollup::answer`] gives `None` for what it cannot answer exactly (a
//! range that does not start and end at midnight UTC, a breakdown by more than two
//! dimensions or with too many groups), and the backend answers from raw rows instead.
//! Folding keeps every attribute a query can filter or group by, so the answers are those
//! of the raw rows, to the event; the conformance suite runs on both paths.
//!
//! The parts: `dict` numbers values, `day` keeps each day's folded rows, `index`
//! builds the day, week and block indexes, `sets` is the set algebra they use, and
//! `eval` answers each query kind.

mod day;
mod dict;
mod eval;
mod index;
mod persist;
mod sets;
#[cfg(test)]
pub(crate) mod testing;

use std::collections::BTreeMap;

pub use dict::Context;
pub use persist::{DayRef, Loaded, Paused, RollupFiles, Saved};

use crate::query::{Query, QueryKind, Table};
use crate::row::EventRow;
use crate::{DAY_MS, Key16};
use day::{Day, DayKey};
use dict::{Dictionaries, Key};
use index::DayIndex;

/// One folded group, as a backend reads it back from its raw rows (when it opens, and
/// for what it keeps of a day retention cut).
#[derive(Debug, Clone, Copy)]
pub struct Group<'a> {
    /// The UTC day number (`occurred_at_ms.div_euclid(DAY_MS)`).
    pub day: i64,
    /// The project key.
    pub project: Key16,
    /// The machine key.
    pub machine: Key16,
    /// The context.
    pub context: &'a Context,
    /// The event name.
    pub event: &'a str,
    /// The error kind.
    pub error_kind: Option<&'a str>,
    /// The plugins.
    pub plugins: &'a [String],
    /// How many events.
    pub events: u32,
    /// The durations of those that have one.
    pub durations: &'a [u64],
}

/// Folded, dictionary-encoded events (see the module documentation).
#[derive(Debug)]
pub struct Rollup {
    dict: Dictionaries,
    days: BTreeMap<DayKey, Day>,
    /// By the week's Monday: the union of the week's day indexes, dropped when one of them
    /// changes and rebuilt after.
    weeks: BTreeMap<DayKey, DayIndex>,
    /// By the Monday starting a 28-day block: the union of the block's week indexes.
    blocks: BTreeMap<DayKey, DayIndex>,
    /// A day is re-indexed once this many of its rows (and an eighth of them) are not
    /// covered by its index.
    reindex_after: usize,
}

impl Default for Rollup {
    fn default() -> Self {
        Rollup::new()
    }
}

impl Rollup {
    /// An empty rollup.
    pub fn new() -> Rollup {
        Rollup {
            dict: Dictionaries::default(),
            days: BTreeMap::new(),
            weeks: BTreeMap::new(),
            blocks: BTreeMap::new(),
            reindex_after: 1024,
        }
    }

    /// Sets how many rows a day gathers beyond its index before it is re-indexed (default
    /// 1024; an eighth of the day's rows too in any case). 0 leaves only the eighth, so that
    /// small days are re-indexed on nearly every append, which tests use to cover the
    /// indexes.
    pub fn set_reindex_after(&mut self, rows: usize) {
        self.reindex_after = rows;
    }

    /// How many folded rows it holds.
    pub fn len(&self) -> usize {
        self.days.values().map(|d| d.rows.len()).sum()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.days.is_empty()
    }

    fn push(&mut self, day: i64, key: Key, events: u32, durations: impl Iterator<Item = u64>) {
        let at = DayKey { app: self.dict.app_of(&key), day };
        if self.days.entry(at).or_default().push(key, events, durations) {
            self.weeks.remove(&at.week());
            self.blocks.remove(&at.block());
        }
    }

    /// Adds stored rows (each exactly once: only rows the backend inserted), then brings
    /// the day indexes up to date where many rows are not covered yet.
    pub fn add<'r>(&mut self, rows: impl IntoIterator<Item = &'r EventRow>) {
        for r in rows {
            let key = self.dict.key_of_row(r);
            self.push(r.occurred_at_ms.div_euclid(DAY_MS), key, 1, r.duration_ms.into_iter());
        }
        self.reindex(false);
    }

    /// Adds a group read back from raw rows (call [`Rollup::finish_load`] after the last).
    pub fn add_group(&mut self, g: &Group<'_>) {
        let key = self.dict.key_of_group(g);
        self.push(g.day, key, g.events, g.durations.iter().copied());
    }

    /// Folds and indexes every day with rows added since its last fold (after a bulk
    /// load), and builds the week and block indexes missing.
    pub fn finish_load(&mut self) {
        let mut days: Vec<(&DayKey, &mut Day)> =
            self.days.iter_mut().filter(|(_, d)| d.rows.len() != d.folded).collect();
        for (k, _) in &days {
            self.weeks.remove(&k.week());
            self.blocks.remove(&k.block());
        }
        let chunk = days.len().div_ceil(parallelism()).max(1);
        std::thread::scope(|scope| {
            for part in days.chunks_mut(chunk) {
                scope.spawn(move || part.iter_mut().for_each(|(_, d)| d.fold()));
            }
        });
        self.reindex(true);
        // Days read back from files have their indexes, weeks and blocks not yet.
        self.rebuild_weeks();
    }

    /// Removes every row of a project (its number stays in the dictionaries).
    pub fn remove_project(&mut self, project: &Key16) {
        let Some(pid) = self.dict.projects.get(project) else { return };
        for d in self.days.values_mut() {
            let before = d.rows.len();
            d.rows.retain(|r| r.key.pid != pid);
            d.timed.values_mut().for_each(|t| t.retain(|t| t.key.pid != pid));
            d.folded = d.folded.min(d.rows.len());
            if d.rows.len() != before {
                d.index = None;
                d.changes += 1;
            }
        }
        self.days.retain(|_, d| !d.rows.is_empty());
        self.weeks.clear();
        self.blocks.clear();
        self.reindex(true);
    }

    /// Removes `app`'s days before `day` and the whole of `day`, with the week and block
    /// indexes that cover any of them (a backend cutting inside `day` adds back what it
    /// keeps of it; then [`Rollup::finish_load`] rebuilds the week and block indexes dropped
    /// here).
    pub fn remove_days_through(&mut self, app: &str, day: i64) {
        let Some(app) = self.dict.apps.get(&app.to_string()) else { return };
        let keep = |k: &DayKey| k.app != app || k.day > day;
        self.days.retain(|k, _| keep(k));
        self.weeks.retain(|k, _| keep(k));
        self.blocks.retain(|k, _| keep(k));
    }

    /// Answers `q` if it covers whole UTC days (for [`QueryKind::Active`], which ignores
    /// `from_ms`, if it ends at midnight UTC); `None` otherwise, and for breakdowns by more
    /// than two dimensions or whose groups' sets could take more than 1 GiB.
    pub fn answer(&self, q: &Query) -> Option<Table> {
        let aligned = |ms: i64| ms.rem_euclid(DAY_MS) == 0;
        let needs_from = !matches!(q.kind, QueryKind::Active { .. });
        if !aligned(q.to_ms) || (needs_from && !aligned(q.from_ms)) {
            return None;
        }
        eval::Eval::new(self, q).run()
    }
}

/// How many threads rollup work uses: the cores, at most 4.
fn parallelism() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4)
}

/// Runs `f(part, parts)` for each part on its own thread (the first on this one) and
/// returns the results in part order. Group work is split by group key (`key % parts ==
/// part`), so the parts never share a group.
fn in_parts<T: Send>(f: impl Fn(usize, usize) -> T + Sync) -> Vec<T> {
    let parts = parallelism();
    if parts == 1 {
        return vec![f(0, 1)];
    }
    std::thread::scope(|scope| {
        let f = &f;
        let others: Vec<_> = (1..parts).map(|part| scope.spawn(move || f(part, parts))).collect();
        let mut out = vec![f(0, parts)];
        out.extend(others.into_iter().map(|h| h.join().expect("a rollup worker panicked")));
        out
    })
}
