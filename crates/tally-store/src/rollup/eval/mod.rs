//! Evaluation: one query over a rollup, one method per [`QueryKind`] (the simple kinds
//! here, the others in their own files). A query without filters reads block, week and day
//! indexes and the rows they do not cover; a query with filters scans the folded rows of
//! its days.

mod breakdown;
mod co_usage;
mod counts;
mod drop_support;
mod durations;
mod series;

use chrono::DateTime;

use super::Rollup;
use super::day::{Day, DayKey, Row};
use super::dict::{Dim, Key};
use super::in_parts;
use super::index::{DayIndex, slot};
use super::sets::Universe;
use crate::DAY_MS;
use crate::query::{Cell, Dimension, Filters, Query, QueryKind, Table};
use counts::{Counts, GroupTotals, Groups, Totals};

/// The largest span a query may read as one index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Span {
    Day,
    Week,
    Block,
}

/// What a day, or a whole week or block, offers a query: its index (only for queries
/// without filters, which are what the indexes hold) and the rows the index does not
/// cover.
struct DayView<'a> {
    /// The day, or the Monday starting the week or the block.
    day: i64,
    index: Option<&'a DayIndex>,
    rows: Vec<&'a [Row]>,
}

/// One query's evaluation.
pub(super) struct Eval<'a> {
    r: &'a Rollup,
    q: &'a Query,
    app: Option<u32>,
    /// Contexts that match the app and the context filters.
    ctx_ok: Vec<bool>,
    /// Plugin sets that hold the filtered plugin (all, without the filter).
    set_ok: Vec<bool>,
    /// No filters: the indexes apply.
    indexed: bool,
    universe: Universe,
    /// The first day of the range.
    from: i64,
    /// The day after the range.
    to: i64,
}

impl<'a> Eval<'a> {
    pub(super) fn new(r: &'a Rollup, q: &'a Query) -> Eval<'a> {
        let f = &q.filters;
        let dict = &r.dict;
        let ctx_ok = dict
            .contexts
            .values
            .iter()
            .map(|c| {
                c.app == q.app
                    && f.env.is_none_or(|e| c.env == e)
                    && f.os.as_ref().is_none_or(|o| &c.os == o)
                    && f.app_version.as_ref().is_none_or(|v| &c.app_version == v)
            })
            .collect();
        let set_ok = match &f.plugin {
            None => vec![true; dict.sets.len()],
            Some(p) => match dict.plugins.get(p) {
                None => vec![false; dict.sets.len()],
                Some(id) => dict.sets.values.iter().map(|s| s.contains(&id)).collect(),
            },
        };
        Eval {
            r,
            q,
            app: dict.apps.get(&q.app),
            ctx_ok,
            set_ok,
            indexed: *f == Filters::default(),
            universe: dict.universe(),
            from: q.from_ms.div_euclid(DAY_MS),
            to: q.to_ms.div_euclid(DAY_MS),
        }
    }

    /// The query's table, or `None` when the rollup cannot answer it.
    pub(super) fn run(self) -> Option<Table> {
        let mut table = Table::new(Table::columns_for(&self.q.kind));
        table.rows = match &self.q.kind {
            QueryKind::EventsPerDay => self.events_per_day(),
            QueryKind::Active { windows } => self.active(windows),
            QueryKind::TopPlugins { limit } => self.top_plugins(*limit),
            QueryKind::Split { dimension } => self.split(*dimension),
            QueryKind::ActiveSeries { window_days } => self.active_series(*window_days),
            QueryKind::Breakdown { period, dimensions, limit } => self.breakdown(*period, dimensions, *limit)?,
            QueryKind::CoUsage { plugin, limit } => self.co_usage(plugin.as_deref(), *limit),
            QueryKind::Durations { event, period, dimension } => self.durations(event, *period, *dimension),
            QueryKind::Retention { weeks } => self.retention(*weeks),
            QueryKind::DropSupport { dimension } => self.drop_support(*dimension),
        };
        Some(table)
    }

    fn events_per_day(&self) -> Vec<Vec<Cell>> {
        let mut out = Vec::new();
        let mut c = Counts::new(self.universe);
        for v in self.days(self.from, self.to, true, Span::Day) {
            if let Some(ix) = v.index {
                c.union(&ix.all);
            }
            for row in self.rows(&v) {
                c.add(row);
            }
            if c.events() > 0 {
                let t = c.totals();
                out.push(vec![
                    date_cell(v.day * DAY_MS),
                    Cell::Int(t.events),
                    Cell::Int(t.projects),
                    Cell::Int(t.machines),
                ]);
            }
            c.clear();
        }
        out
    }

    fn active(&self, windows: &[u32]) -> Vec<Vec<Cell>> {
        let mut c = Counts::new(self.universe);
        let mut out = Vec::new();
        for &w in windows {
            self.union(self.to - i64::from(w), self.to, &mut c);
            let t = c.totals();
            out.push(vec![Cell::Int(i64::from(w)), Cell::Int(t.projects), Cell::Int(t.machines)]);
            c.clear();
        }
        out
    }

    fn top_plugins(&self, limit: usize) -> Vec<Vec<Cell>> {
        let mut rows = self.split(Dimension::Plugin);
        rows.truncate(limit);
        rows
    }

    fn split(&self, dimension: Dimension) -> Vec<Vec<Cell>> {
        let dim = Dim::new(&self.r.dict, dimension);
        let groups = self.group_by(self.from, self.to, &dim);
        ranked(groups.into_iter().map(|g| (dim.labels[g.key].clone(), g.totals)))
    }

    #[inline]
    fn ok(&self, key: &Key) -> bool {
        self.ctx_ok[key.ctx as usize] && self.set_ok[key.set as usize]
    }

    /// The app's days in `[from, to)`, in order.
    fn app_days(&self, from: i64, to: i64) -> impl Iterator<Item = (&'a DayKey, &'a Day)> + use<'a> {
        let r = self.r;
        let range = self.app.filter(|_| from < to).map(|app| DayKey::range(app, from, to));
        range.into_iter().flat_map(move |range| r.days.range(range))
    }

    /// The app's days in `[from, to)` as views, in order. Without `use_index`, or for a
    /// query with filters, each view is one day with all its rows. Otherwise each day comes
    /// with its index and the rows it does not cover, and whole weeks (with `span` at least
    /// [`Span::Week`]) and whole 28-day blocks (with [`Span::Block`]) inside the range come
    /// as one view with the week's or the block's index.
    fn days(&self, from: i64, to: i64, use_index: bool, span: Span) -> Vec<DayView<'a>> {
        let indexed = use_index && self.indexed;
        let mut out: Vec<DayView<'a>> = Vec::new();
        for (&at, d) in self.app_days(from, to) {
            let b = at.block();
            if indexed
                && span == Span::Block
                && b.day >= from
                && b.day + 28 <= to
                && let Some(blk) = self.r.blocks.get(&b)
            {
                push_covered(&mut out, b.day, blk, d.tail());
                continue;
            }
            let m = at.week();
            if indexed
                && span >= Span::Week
                && m.day >= from
                && m.day + 7 <= to
                && let Some(week) = self.r.weeks.get(&m)
            {
                push_covered(&mut out, m.day, week, d.tail());
                continue;
            }
            out.push(match (&d.index, indexed) {
                (Some(ix), true) => DayView { day: at.day, index: Some(ix), rows: vec![d.tail()] },
                _ => DayView { day: at.day, index: None, rows: vec![&d.rows] },
            });
        }
        out
    }

    /// The view's rows that match the query's filters.
    #[inline]
    fn rows<'v>(&'v self, v: &'v DayView<'a>) -> impl Iterator<Item = &'a Row> + 'v {
        v.rows.iter().flat_map(|rows| rows.iter()).filter(move |row| self.ok(&row.key))
    }

    /// Adds every matching event of days `[from, to)` to `c`.
    fn union(&self, from: i64, to: i64, c: &mut Counts<'a>) {
        for v in self.days(from, to, true, Span::Block) {
            if let Some(ix) = v.index {
                c.union(&ix.all);
            }
            for row in self.rows(&v) {
                c.add(row);
            }
        }
    }

    /// The groups (keyed by value number) of every matching event of days `[from, to)` by
    /// its values of `dim`, computed in parts on several threads.
    fn group_by(&self, from: i64, to: i64, dim: &Dim) -> Vec<GroupTotals> {
        let s = slot(dim.dimension);
        let views = self.days(from, to, true, Span::Block);
        in_parts(|part, parts| {
            let mine = |v: u32| v as usize % parts == part;
            let mut groups = Groups::new(self.universe, dim.labels.len());
            for v in &views {
                if let Some(ix) = v.index {
                    for (value, slice) in ix.by[s].iter().filter(|(value, _)| mine(*value)) {
                        groups.get(*value as usize).union(slice);
                    }
                }
                for row in self.rows(v) {
                    dim.each(&self.r.dict, &row.key, |value| {
                        if mine(value) {
                            groups.get(value as usize).add(row)
                        }
                    });
                }
            }
            groups.drain()
        })
        .into_iter()
        .flatten()
        .collect()
    }
}

/// Adds a day's uncovered rows to the view of the week or block index covering it, which
/// is the last view when the previous day was covered by it too.
fn push_covered<'a>(out: &mut Vec<DayView<'a>>, day: i64, index: &'a DayIndex, tail: &'a [Row]) {
    match out.last_mut() {
        Some(v) if v.day == day && v.index.is_some_and(|i| std::ptr::eq(i, index)) => v.rows.push(tail),
        _ => out.push(DayView { day, index: Some(index), rows: vec![tail] }),
    }
}

fn date_cell(ms: i64) -> Cell {
    Cell::Date(DateTime::from_timestamp_millis(ms).expect("time in range").date_naive())
}

/// Rows ordered by projects descending, events descending, then label.
fn ranked(groups: impl Iterator<Item = (String, Totals)>) -> Vec<Vec<Cell>> {
    let mut rows: Vec<(String, Totals)> = groups.collect();
    rows.sort_by(|(la, a), (lb, b)| b.projects.cmp(&a.projects).then(b.events.cmp(&a.events)).then(la.cmp(lb)));
    rows.into_iter()
        .map(|(label, totals)| {
            let mut row = vec![Cell::Text(label)];
            row.extend(totals.cells());
            row
        })
        .collect()
}
