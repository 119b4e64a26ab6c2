//! [`QueryKind::Breakdown`](crate::QueryKind::Breakdown): groups by an optional period
//! and up to two dimensions, read from index slices when the dimensions are ones an index
//! holds (none, one, plugin × env, or error kind and a context dimension), with each period's distinct projects for shares and,
//! with a limit, the top tuples over the whole range.

use std::collections::{HashMap, HashSet};

use super::{DayView, Eval, GroupTotals, Groups, Span, Totals, date_cell};
use crate::DAY_MS;
use crate::query::{Cell, Dimension, Period};
use crate::rollup::dict::{Dictionaries, Dim, Key, context_slot};
use crate::rollup::in_parts;
use crate::rollup::index::{DayIndex, Slice, slot};
use crate::rollup::sets::Bits;

/// Breakdowns whose groups' bitsets could take more than this many bytes are not answered
/// (the backend answers from its raw rows).
const MAX_GROUP_BYTES: usize = 1 << 30;

/// The breakdown's dimensions resolved, and how a tuple of their values is numbered:
/// `first + second * n1`.
struct Layout<'q> {
    dimensions: &'q [Dimension],
    dims: Vec<Dim>,
    /// How many values the first dimension has (at least 1).
    n1: usize,
    /// How many tuple numbers there are.
    tuples: usize,
}

impl Layout<'_> {
    /// Whether the indexes hold slices of these tuples.
    fn indexed(&self) -> bool {
        match self.dimensions {
            [] | [_] | [Dimension::Plugin, Dimension::Env] => true,
            [Dimension::ErrorKind, d] | [d, Dimension::ErrorKind] => context_slot(*d).is_some(),
            _ => false,
        }
    }

    /// The index's slices, by tuple number (only for [`Layout::indexed`] dimensions).
    fn slices<'s>(&self, ix: &'s DayIndex) -> Vec<(usize, &'s Slice)> {
        match self.dimensions {
            [] => vec![(0, &ix.all)],
            [d] => ix.by[slot(*d)].iter().map(|(v, s)| (*v as usize, s)).collect(),
            [Dimension::Plugin, Dimension::Env] => {
                ix.plugin_env.iter().map(|(k, s)| (k.plugin as usize + k.env as usize * self.n1, s)).collect()
            }
            [Dimension::ErrorKind, d] => ix.error_by[context_slot(*d).expect("a context dimension")]
                .iter()
                .map(|(k, s)| (k.error as usize + k.value as usize * self.n1, s))
                .collect(),
            [d, Dimension::ErrorKind] => ix.error_by[context_slot(*d).expect("a context dimension")]
                .iter()
                .map(|(k, s)| (k.value as usize + k.error as usize * self.n1, s))
                .collect(),
            _ => unreachable!("views of breakdowns the indexes do not hold carry no index"),
        }
    }

    /// Calls `f` with each tuple number of the row (a cross product: plugins unnest).
    #[inline]
    fn each_tuple(&self, dict: &Dictionaries, key: &Key, mut f: impl FnMut(usize)) {
        match self.dims.as_slice() {
            [] => f(0),
            [a] => a.each(dict, key, |v| f(v as usize)),
            [a, b] => a.each(dict, key, |v| b.each(dict, key, |w| f(v as usize + w as usize * self.n1))),
            _ => unreachable!("at most two dimensions"),
        }
    }

    /// The dimension values of a tuple number.
    fn labels(&self, t: usize) -> Vec<String> {
        self.dims.iter().zip([t % self.n1, t / self.n1]).map(|(d, v)| d.labels[v].clone()).collect()
    }
}

/// One group of one period (`None` without a period).
struct PeriodGroup {
    period: Option<i64>,
    group: GroupTotals,
}

/// What one part of the work finds: its groups per period, and over the whole range (only
/// with a limit).
struct Part {
    groups: Vec<PeriodGroup>,
    overall: Vec<GroupTotals>,
}

/// A row of the answer before it becomes cells.
struct BreakdownRow {
    period: Option<i64>,
    labels: Vec<String>,
    totals: Totals,
    period_projects: i64,
}

impl<'a> Eval<'a> {
    pub(super) fn breakdown(
        &self,
        period: Option<Period>,
        dimensions: &[Dimension],
        limit: Option<usize>,
    ) -> Option<Vec<Vec<Cell>>> {
        if dimensions.len() > 2 {
            return None;
        }
        let dims: Vec<Dim> = dimensions.iter().map(|d| Dim::new(&self.r.dict, *d)).collect();
        let n1 = dims.first().map_or(1, |d| d.labels.len().max(1));
        let tuples: usize = dims.iter().map(|d| d.labels.len().max(1)).product();
        let layout = Layout { dimensions, dims, n1, tuples };
        let bytes_per_group = self.universe.projects.div_ceil(8) + self.universe.machines.div_ceil(8);
        if tuples.saturating_mul(bytes_per_group).saturating_mul(if limit.is_some() { 2 } else { 1 }) > MAX_GROUP_BYTES
        {
            return None;
        }
        let bucket = |day: i64| period.map(|p| p.start_of(day * DAY_MS));
        let span = match period {
            None => Span::Block,
            Some(Period::Week) => Span::Week,
            Some(Period::Day) => Span::Day,
        };
        let views = self.days(self.from, self.to, layout.indexed(), span);
        // Each period's projects come from the indexes even when the groups do not (two
        // dimensions the indexes do not pair): one scan of every row fewer.
        let period_projects = if layout.indexed() {
            self.period_projects(&views, bucket)
        } else {
            self.period_projects(&self.days(self.from, self.to, true, span), bucket)
        };
        let mut groups = Vec::new();
        let mut overall = Vec::new();
        for part in self.breakdown_parts(&views, bucket, &layout, limit.is_some()) {
            groups.extend(part.groups);
            overall.extend(part.overall);
        }
        let keep: Option<HashSet<usize>> = limit.map(|n| {
            let mut ranked: Vec<(Vec<String>, GroupTotals)> =
                overall.into_iter().map(|g| (layout.labels(g.key), g)).collect();
            ranked.sort_by(|(la, a), (lb, b)| {
                b.totals.projects.cmp(&a.totals.projects).then(b.totals.events.cmp(&a.totals.events)).then(la.cmp(lb))
            });
            ranked.into_iter().take(n).map(|(_, g)| g.key).collect()
        });
        let mut rows: Vec<BreakdownRow> = groups
            .into_iter()
            .filter(|g| keep.as_ref().is_none_or(|k| k.contains(&g.group.key)))
            .map(|g| BreakdownRow {
                period: g.period,
                labels: layout.labels(g.group.key),
                totals: g.group.totals,
                period_projects: period_projects.get(&g.period).copied().unwrap_or(0),
            })
            .collect();
        rows.sort_by(|a, b| {
            a.period
                .cmp(&b.period)
                .then(b.totals.projects.cmp(&a.totals.projects))
                .then(b.totals.events.cmp(&a.totals.events))
                .then(a.labels.cmp(&b.labels))
        });
        Some(
            rows.into_iter()
                .map(|r| {
                    let mut row = Vec::new();
                    if let Some(p) = r.period {
                        row.push(date_cell(p));
                    }
                    row.extend(r.labels.into_iter().map(Cell::Text));
                    row.extend(r.totals.cells());
                    row.push(Cell::Int(r.period_projects));
                    row
                })
                .collect(),
        )
    }

    /// Distinct projects per period (views arrive in period order), for shares.
    fn period_projects(&self, views: &[DayView<'a>], bucket: impl Fn(i64) -> Option<i64>) -> HashMap<Option<i64>, i64> {
        let mut totals = HashMap::new();
        let mut pp = Bits::new(self.universe.projects);
        let mut current = None;
        for v in views {
            let b = bucket(v.day);
            if current != Some(b) {
                if let Some(c) = current {
                    totals.insert(c, pp.count());
                }
                pp.clear();
                current = Some(b);
            }
            if let Some(ix) = v.index {
                pp.union(&ix.all.projects);
            }
            self.rows(v).for_each(|row| pp.insert(row.key.pid));
        }
        if let Some(c) = current {
            totals.insert(c, pp.count());
        }
        totals
    }

    /// The groups per period (and over the whole range with `overall`), computed in parts
    /// on several threads, split by tuple number.
    fn breakdown_parts(
        &self,
        views: &[DayView<'a>],
        bucket: impl Fn(i64) -> Option<i64> + Sync,
        layout: &Layout<'_>,
        overall: bool,
    ) -> Vec<Part> {
        in_parts(|part, parts| {
            let mine = |t: usize| t % parts == part;
            let mut groups = Groups::new(self.universe, layout.tuples);
            let mut whole = Groups::new(self.universe, layout.tuples);
            let mut out = Vec::new();
            let mut current: Option<Option<i64>> = None;
            for v in views {
                let b = bucket(v.day);
                if current != Some(b) {
                    if let Some(c) = current {
                        out.extend(groups.drain().into_iter().map(|group| PeriodGroup { period: c, group }));
                    }
                    current = Some(b);
                }
                if let Some(ix) = v.index {
                    for (t, slice) in layout.slices(ix) {
                        if mine(t) {
                            groups.get(t).union(slice);
                            if overall {
                                whole.get(t).union(slice);
                            }
                        }
                    }
                }
                for row in self.rows(v) {
                    layout.each_tuple(&self.r.dict, &row.key, |t| {
                        if mine(t) {
                            groups.get(t).add(row);
                            if overall {
                                whole.get(t).add(row);
                            }
                        }
                    });
                }
            }
            if let Some(c) = current {
                out.extend(groups.drain().into_iter().map(|group| PeriodGroup { period: c, group }));
            }
            Part { groups: out, overall: whole.drain() }
        })
    }
}
