//! Index building: per value of every dimension (and every plugin × env pair, and every
//! error kind × value of a context dimension), the
//! distinct projects and machines and the event count of a day ([`DayIndex::build`]), of
//! a Monday-to-Sunday week (the union of its day indexes) and of a 28-day block (the union
//! of its week indexes); and when the rollup rebuilds them.

use std::collections::{BTreeMap, HashMap};

use super::day::{DayKey, Row};
use super::dict::{CONTEXT_DIMS, Dictionaries, NONE};
use super::sets::{Set, Universe};
use super::{Rollup, in_parts};
use crate::query::Dimension;

/// Distinct projects and machines and an event count, of one value over the days an
/// index covers.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct Slice {
    pub(super) projects: Set,
    pub(super) machines: Set,
    pub(super) events: i64,
    /// The size of `projects`.
    pub(super) project_count: i64,
    /// The size of `machines`.
    pub(super) machine_count: i64,
}

impl Slice {
    pub(super) fn new(projects: Set, machines: Set, events: i64) -> Slice {
        let (project_count, machine_count) = (projects.len(), machines.len());
        Slice { projects, machines, events, project_count, machine_count }
    }

    /// The union of slices.
    fn union_of(slices: &[&Slice], universe: Universe) -> Slice {
        Slice::new(
            Set::union_of(slices.iter().map(|s| &s.projects), universe.projects),
            Set::union_of(slices.iter().map(|s| &s.machines), universe.machines),
            slices.iter().map(|s| s.events).sum(),
        )
    }
}

#[derive(Default)]
struct SliceBuilder {
    projects: Vec<u32>,
    machines: Vec<u32>,
    events: i64,
}

impl SliceBuilder {
    #[inline]
    fn add(&mut self, row: &Row) {
        self.projects.push(row.key.pid);
        self.machines.push(row.key.mid);
        self.events += i64::from(row.events);
    }

    fn build(self) -> Slice {
        Slice::new(Set::from_ids(self.projects), Set::from_ids(self.machines), self.events)
    }
}

/// A plugin number and an env value number: "is feature X used in production?".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub(super) struct PluginEnv {
    pub(super) plugin: u32,
    pub(super) env: u32,
}

/// An error kind number and a value number of one context dimension: "which errors hit
/// macOS?", "which versions raise EACCES?".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub(super) struct ErrorValue {
    pub(super) error: u32,
    pub(super) value: u32,
}

/// Per value of every dimension, the distinct projects and machines of a day, a week or a
/// block: what queries without filters read instead of the rows.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct DayIndex {
    /// How many of the day's rows it covers (0 for week and block indexes: queries read
    /// the rows each of their days' indexes does not cover).
    pub(super) rows: usize,
    pub(super) all: Slice,
    /// Per dimension (in [`Dimension::ALL`] order), the slices by value number, ascending.
    pub(super) by: Vec<Vec<(u32, Slice)>>,
    /// Per (plugin, env value) pair, ascending.
    pub(super) plugin_env: Vec<(PluginEnv, Slice)>,
    /// Per context dimension (in [`CONTEXT_DIMS`] order), per (error kind, value) pair,
    /// ascending: the rows with an error kind, which are few, so that a breakdown of error
    /// kinds by a second dimension reads slices rather than every row.
    pub(super) error_by: Vec<Vec<(ErrorValue, Slice)>>,
}

/// A slot per [`Dimension::ALL`] entry.
pub(super) fn slot(d: Dimension) -> usize {
    Dimension::ALL.iter().position(|x| *x == d).expect("every dimension is in ALL")
}

/// Grows `v` to hold `i` and adds the row to the slice builder there.
#[inline]
fn add_at(v: &mut Vec<SliceBuilder>, i: u32, row: &Row) {
    if v.len() <= i as usize {
        v.resize_with(i as usize + 1, SliceBuilder::default);
    }
    v[i as usize].add(row);
}

impl DayIndex {
    /// The index of a day's `rows`.
    fn build(dict: &Dictionaries, rows: &[Row]) -> DayIndex {
        let mut all = SliceBuilder::default();
        let mut by: Vec<Vec<SliceBuilder>> = Dimension::ALL.iter().map(|_| Vec::new()).collect();
        let mut plugin_env: HashMap<PluginEnv, SliceBuilder> = HashMap::new();
        let mut error_by: Vec<HashMap<ErrorValue, SliceBuilder>> =
            CONTEXT_DIMS.iter().map(|_| HashMap::new()).collect();
        let (event, error, plugin) = (slot(Dimension::Event), slot(Dimension::ErrorKind), slot(Dimension::Plugin));
        let ctx_slots: Vec<usize> = CONTEXT_DIMS.iter().map(|d| slot(*d)).collect();
        for row in rows {
            all.add(row);
            let values = &dict.ctx_values[row.key.ctx as usize];
            for (i, s) in ctx_slots.iter().enumerate() {
                add_at(&mut by[*s], values[i], row);
            }
            add_at(&mut by[event], row.key.name, row);
            if row.key.error != NONE {
                add_at(&mut by[error], row.key.error, row);
                for (pairs, value) in error_by.iter_mut().zip(values) {
                    pairs.entry(ErrorValue { error: row.key.error, value: *value }).or_default().add(row);
                }
            }
            for p in dict.sets.values[row.key.set as usize].iter() {
                add_at(&mut by[plugin], *p, row);
                plugin_env.entry(PluginEnv { plugin: *p, env: values[0] }).or_default().add(row);
            }
        }
        let by = by
            .into_iter()
            .map(|v| {
                v.into_iter().enumerate().filter(|(_, b)| b.events > 0).map(|(i, b)| (i as u32, b.build())).collect()
            })
            .collect();
        let mut plugin_env: Vec<(PluginEnv, Slice)> = plugin_env.into_iter().map(|(k, b)| (k, b.build())).collect();
        plugin_env.sort_by_key(|(k, _)| *k);
        let error_by = error_by
            .into_iter()
            .map(|pairs| {
                let mut pairs: Vec<(ErrorValue, Slice)> = pairs.into_iter().map(|(k, b)| (k, b.build())).collect();
                pairs.sort_by_key(|(k, _)| *k);
                pairs
            })
            .collect();
        DayIndex { rows: rows.len(), all: all.build(), by, plugin_env, error_by }
    }

    /// The index of the union of the days (or weeks) `parts` index.
    fn union_of(parts: &[&DayIndex], universe: Universe) -> DayIndex {
        let all: Vec<&Slice> = parts.iter().map(|d| &d.all).collect();
        let by = (0..Dimension::ALL.len())
            .map(|s| {
                let mut values: BTreeMap<u32, Vec<&Slice>> = BTreeMap::new();
                for d in parts {
                    for (v, slice) in &d.by[s] {
                        values.entry(*v).or_default().push(slice);
                    }
                }
                values.into_iter().map(|(v, slices)| (v, Slice::union_of(&slices, universe))).collect()
            })
            .collect();
        let plugin_env = union_pairs(parts.iter().map(|d| d.plugin_env.as_slice()), universe);
        let error_by = (0..CONTEXT_DIMS.len())
            .map(|i| union_pairs(parts.iter().map(|d| d.error_by[i].as_slice()), universe))
            .collect();
        DayIndex { rows: 0, all: Slice::union_of(&all, universe), by, plugin_env, error_by }
    }
}

/// The union of pair-keyed slices (by pair, ascending).
fn union_pairs<'s, K: Ord + Copy + 's>(
    parts: impl Iterator<Item = &'s [(K, Slice)]>,
    universe: Universe,
) -> Vec<(K, Slice)> {
    let mut pairs: BTreeMap<K, Vec<&Slice>> = BTreeMap::new();
    for part in parts {
        for (k, slice) in part {
            pairs.entry(*k).or_default().push(slice);
        }
    }
    pairs.into_iter().map(|(k, slices)| (k, Slice::union_of(&slices, universe))).collect()
}

impl Rollup {
    /// Rebuilds the index of each day whose uncovered rows are many (`all`: every day
    /// with any), then the week and block indexes that lack one.
    pub(super) fn reindex(&mut self, all: bool) {
        let keys: Vec<DayKey> = self
            .days
            .iter()
            .filter(|(_, d)| {
                let tail = d.tail().len();
                tail > 0 && (all || tail >= self.reindex_after.max(d.rows.len() / 8))
            })
            .map(|(k, _)| *k)
            .collect();
        if keys.is_empty() {
            return;
        }
        // Built on several threads when there are several days to build.
        let indexes: Vec<(DayKey, DayIndex)> = in_parts(|part, parts| {
            keys.iter()
                .enumerate()
                .filter(|(i, _)| i % parts == part)
                .map(|(_, k)| (*k, DayIndex::build(&self.dict, &self.days[k].rows)))
                .collect::<Vec<_>>()
        })
        .into_iter()
        .flatten()
        .collect();
        for (k, index) in indexes {
            let day = self.days.get_mut(&k).expect("day present");
            day.index = Some(index);
            day.changes += 1;
            self.weeks.remove(&k.week());
            self.blocks.remove(&k.block());
        }
        self.rebuild_weeks();
    }

    /// Builds the index of every week that has none and whose days all have one, then the
    /// blocks'.
    pub(super) fn rebuild_weeks(&mut self) {
        let mut wanted: Vec<DayKey> = self.days.keys().map(|k| k.week()).collect();
        wanted.dedup();
        wanted.retain(|k| !self.weeks.contains_key(k));
        if wanted.is_empty() {
            return self.rebuild_blocks();
        }
        let universe = self.dict.universe();
        let built: Vec<(DayKey, DayIndex)> = in_parts(|part, parts| {
            let mut out = Vec::new();
            for (i, &week) in wanted.iter().enumerate() {
                if i % parts != part {
                    continue;
                }
                let days: Option<Vec<&DayIndex>> = self
                    .days
                    .range(DayKey::range(week.app, week.day, week.day + 7))
                    .map(|(_, d)| d.index.as_ref())
                    .collect();
                if let Some(days) = days {
                    out.push((week, DayIndex::union_of(&days, universe)));
                }
            }
            out
        })
        .into_iter()
        .flatten()
        .collect();
        self.weeks.extend(built);
        self.rebuild_blocks();
    }

    /// Builds the index of every 28-day block that has none and whose weeks with days all
    /// have one.
    fn rebuild_blocks(&mut self) {
        let mut wanted: Vec<DayKey> = self.days.keys().map(|k| k.block()).collect();
        wanted.dedup();
        wanted.retain(|k| !self.blocks.contains_key(k));
        if wanted.is_empty() {
            return;
        }
        let universe = self.dict.universe();
        let built: Vec<(DayKey, DayIndex)> = in_parts(|part, parts| {
            let mut out = Vec::new();
            'blocks: for (i, &block) in wanted.iter().enumerate() {
                if i % parts != part {
                    continue;
                }
                let mut weeks = Vec::new();
                for m in (0..4).map(|w| block.day + 7 * w) {
                    if self.days.range(DayKey::range(block.app, m, m + 7)).next().is_none() {
                        continue;
                    }
                    match self.weeks.get(&DayKey { app: block.app, day: m }) {
                        Some(w) => weeks.push(w),
                        None => continue 'blocks,
                    }
                }
                out.push((block, DayIndex::union_of(&weeks, universe)));
            }
            out
        })
        .into_iter()
        .flatten()
        .collect();
        self.blocks.extend(built);
    }
}
