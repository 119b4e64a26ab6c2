//! [`QueryKind::Durations`](crate::QueryKind::Durations): percentiles of the durations
//! kept per day and event name, which no index holds.

use std::collections::BTreeMap;

use super::{Eval, date_cell};
use crate::DAY_MS;
use crate::query::{Cell, Dimension, Period};
use crate::rollup::dict::Dim;
use crate::rollup::sets::Bits;

/// A durations group: its period's start (ms) and its dimension value, each when asked
/// for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct DurationKey {
    period: Option<i64>,
    label: Option<String>,
}

/// The durations of a group and the projects they come from.
struct Timings {
    durations: Vec<u64>,
    projects: Bits,
}

impl Eval<'_> {
    pub(super) fn durations(
        &self,
        event: &str,
        period: Option<Period>,
        dimension: Option<Dimension>,
    ) -> Vec<Vec<Cell>> {
        let dict = &self.r.dict;
        let Some(name) = dict.names.get(&event.to_string()) else { return Vec::new() };
        let dim = dimension.map(|d| Dim::new(dict, d));
        let mut groups: BTreeMap<DurationKey, Timings> = BTreeMap::new();
        for (at, d) in self.app_days(self.from, self.to) {
            let b = period.map(|p| p.start_of(at.day * DAY_MS));
            for t in d.timed.get(&name).into_iter().flatten().filter(|t| self.ok(&t.key)) {
                let mut add = |label: Option<String>| {
                    let g = groups.entry(DurationKey { period: b, label }).or_insert_with(|| Timings {
                        durations: Vec::new(),
                        projects: Bits::new(self.universe.projects),
                    });
                    g.durations.push(t.duration);
                    g.projects.insert(t.key.pid);
                };
                match &dim {
                    None => add(None),
                    Some(dim) => dim.each(dict, &t.key, |v| add(Some(dim.labels[v as usize].clone()))),
                }
            }
        }
        let mut out = Vec::new();
        for (key, mut g) in groups {
            g.durations.sort_unstable();
            let mut row = Vec::new();
            if let Some(b) = key.period {
                row.push(date_cell(b));
            }
            if let Some(label) = key.label {
                row.push(Cell::Text(label));
            }
            row.push(Cell::Int(g.durations.len() as i64));
            row.push(Cell::Int(g.projects.count()));
            for pct in [50, 90, 99] {
                row.push(Cell::Int(crate::memory::nearest_rank(&g.durations, pct)));
            }
            out.push(row);
        }
        out
    }
}
