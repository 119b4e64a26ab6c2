//! An in-memory [`EventStore`]: fast unit tests and the reference the other backends are
//! checked against. Not durable.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use chrono::DateTime;
use tally_protocol::PropValue;
use uuid::Uuid;

use crate::query::{Cell, Dimension, Filters, Period, Query, QueryKind, Table, drop_support_rows, version_prefix};
use crate::row::{AppendStatus, ContextField, EventRow, KnownValues};
use crate::{DAY_MS, EventStore, Key16, ProjectKey, StoreError};

/// Rows in a vector behind a mutex.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    rows: Vec<EventRow>,
    ids: HashSet<Uuid>,
    applied: Option<u64>,
}

impl State {
    /// Removes matching rows and their ids (so they may be stored again, as in every
    /// backend that deletes rows); returns how many.
    fn remove(&mut self, doomed: impl Fn(&EventRow) -> bool) -> u64 {
        let before = self.rows.len();
        let ids = &mut self.ids;
        self.rows.retain(|r| {
            let remove = doomed(r);
            if remove {
                ids.remove(&r.event_id);
            }
            !remove
        });
        (before - self.rows.len()) as u64
    }

    /// Stores the rows whose ids are new; one status per row.
    fn insert(&mut self, rows: &[EventRow]) -> Vec<AppendStatus> {
        rows.iter()
            .map(|row| {
                if self.ids.insert(row.event_id) {
                    self.rows.push(row.clone());
                    AppendStatus::Inserted
                } else {
                    AppendStatus::Duplicate
                }
            })
            .collect()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the vector half-written in a way
        // that matters for tests; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn matches(row: &EventRow, f: &Filters) -> bool {
    f.env.is_none_or(|e| row.env == e)
        && f.os.as_ref().is_none_or(|o| &row.os == o)
        && f.app_version.as_ref().is_none_or(|v| &row.app_version == v)
        && f.plugin.as_ref().is_none_or(|p| row.plugins.contains(p))
}

/// The values a row has for a dimension: none (no error kind, no plugins), one, or one
/// per plugin.
fn dimension_values(row: &EventRow, d: Dimension) -> Vec<String> {
    match d {
        Dimension::Plugin => row.plugins.clone(),
        _ => dimension_value(row, d).into_iter().collect(),
    }
}

fn dimension_value(row: &EventRow, d: Dimension) -> Option<String> {
    Some(match d {
        Dimension::Env => row.env.as_str().to_string(),
        Dimension::Os => row.os.clone(),
        Dimension::Arch => row.arch.clone(),
        Dimension::Runtime => row.runtime.clone(),
        Dimension::RuntimeVersion => row.runtime_version.clone(),
        Dimension::AppVersion => row.app_version.clone(),
        Dimension::Ci => row.ci.clone(),
        Dimension::Container => row.container.to_string(),
        Dimension::Event => row.event.clone(),
        Dimension::ErrorKind => return row.error_kind.clone(),
        Dimension::RuntimeMajor => version_prefix(&row.runtime_version, 1),
        Dimension::RuntimeMinor => version_prefix(&row.runtime_version, 2),
        // Several values: callers use `dimension_values`.
        Dimension::Plugin => return None,
    })
}

/// (period start, dimension value) of a durations group.
type DurationKey = (Option<i64>, Option<String>);

fn date_cell(ms: i64) -> Cell {
    Cell::Date(DateTime::from_timestamp_millis(ms).expect("time in range").date_naive())
}

/// Every combination of the row's values for `dims` (a cross product: plugins unnest).
fn tuples(row: &EventRow, dims: &[Dimension]) -> Vec<Vec<String>> {
    let mut out = vec![vec![]];
    for d in dims {
        let values = dimension_values(row, *d);
        out = out
            .into_iter()
            .flat_map(|prefix: Vec<String>| {
                values.iter().map(move |v| {
                    let mut t = prefix.clone();
                    t.push(v.clone());
                    t
                })
            })
            .collect();
    }
    out
}

/// The value at position ceil(pct·n/100) (1-based) of sorted values, in integer
/// arithmetic so that every backend gets the same rank.
pub(crate) fn nearest_rank(sorted: &[u64], pct: usize) -> i64 {
    let n = sorted.len();
    let rank = (pct * n).div_ceil(100).clamp(1, n);
    sorted[rank - 1] as i64
}

#[derive(Default)]
struct Counts {
    projects: HashSet<Key16>,
    machines: HashSet<Key16>,
    events: i64,
}

impl Counts {
    fn add(&mut self, row: &EventRow) {
        self.projects.insert(row.project);
        self.machines.insert(row.machine);
        self.events += 1;
    }
    fn cells(&self) -> [Cell; 3] {
        [Cell::Int(self.projects.len() as i64), Cell::Int(self.machines.len() as i64), Cell::Int(self.events)]
    }
}

/// Evaluates a query over rows: the reference semantics of every [`QueryKind`], one
/// function per kind (mirroring the rollup's evaluation).
pub(crate) fn evaluate<'a>(rows: impl Iterator<Item = &'a EventRow>, q: &Query) -> Table {
    let selected: Vec<&EventRow> = rows.filter(|r| r.app == q.app && matches(r, &q.filters)).collect();
    let in_range: Vec<&EventRow> =
        selected.iter().copied().filter(|r| r.occurred_at_ms >= q.from_ms && r.occurred_at_ms < q.to_ms).collect();
    let mut table = Table::new(Table::columns_for(&q.kind));
    table.rows = match &q.kind {
        QueryKind::EventsPerDay => events_per_day(&in_range),
        QueryKind::Active { windows } => active(&selected, q.to_ms, windows),
        QueryKind::TopPlugins { limit } => top_plugins(&in_range, *limit),
        QueryKind::Split { dimension } => split(&in_range, *dimension),
        QueryKind::ActiveSeries { window_days } => active_series(&selected, q, *window_days),
        QueryKind::Breakdown { period, dimensions, limit } => breakdown(&in_range, *period, dimensions, *limit),
        QueryKind::CoUsage { plugin, limit } => co_usage(&in_range, plugin.as_deref(), *limit),
        QueryKind::Durations { event, period, dimension } => durations(&in_range, event, *period, *dimension),
        QueryKind::Retention { weeks } => retention(&selected, q, *weeks),
        QueryKind::DropSupport { dimension } => drop_support(&in_range, *dimension),
    };
    table
}

fn events_per_day(rows: &[&EventRow]) -> Vec<Vec<Cell>> {
    let mut days: BTreeMap<i64, Counts> = BTreeMap::new();
    for r in rows {
        days.entry(r.occurred_at_ms.div_euclid(DAY_MS)).or_default().add(r);
    }
    days.into_iter()
        .map(|(day, c)| {
            let [p, m, e] = c.cells();
            vec![date_cell(day * DAY_MS), e, p, m]
        })
        .collect()
}

/// Windows end at `to_ms`; the range's start does not matter.
fn active(selected: &[&EventRow], to_ms: i64, windows: &[u32]) -> Vec<Vec<Cell>> {
    windows
        .iter()
        .map(|&w| {
            let start = to_ms - i64::from(w) * DAY_MS;
            let mut c = Counts::default();
            for r in selected.iter().filter(|r| r.occurred_at_ms >= start && r.occurred_at_ms < to_ms) {
                c.add(r);
            }
            let [p, m, _] = c.cells();
            vec![Cell::Int(i64::from(w)), p, m]
        })
        .collect()
}

fn top_plugins(rows: &[&EventRow], limit: usize) -> Vec<Vec<Cell>> {
    let mut by: HashMap<&str, Counts> = HashMap::new();
    for r in rows {
        for p in &r.plugins {
            by.entry(p).or_default().add(r);
        }
    }
    let mut out = grouped(by.into_iter().map(|(k, v)| (k.to_string(), v)));
    out.truncate(limit);
    out
}

fn split(rows: &[&EventRow], dimension: Dimension) -> Vec<Vec<Cell>> {
    let mut by: HashMap<String, Counts> = HashMap::new();
    for r in rows {
        // Plugins unnest: an event counts once for each of its plugins.
        for v in dimension_values(r, dimension) {
            by.entry(v).or_default().add(r);
        }
    }
    grouped(by.into_iter())
}

/// Windows end with each day of the range and may start before it.
fn active_series(selected: &[&EventRow], q: &Query, window_days: u32) -> Vec<Vec<Cell>> {
    let window = i64::from(window_days) * DAY_MS;
    let mut day = Period::Day.start_of(q.from_ms);
    let mut out = Vec::new();
    while day < q.to_ms {
        let end = day + DAY_MS;
        let mut c = Counts::default();
        for r in selected.iter().filter(|r| r.occurred_at_ms >= end - window && r.occurred_at_ms < end) {
            c.add(r);
        }
        let [p, m, _] = c.cells();
        out.push(vec![date_cell(day), p, m]);
        day = end;
    }
    out
}

fn breakdown(
    rows: &[&EventRow],
    period: Option<Period>,
    dimensions: &[Dimension],
    limit: Option<usize>,
) -> Vec<Vec<Cell>> {
    let bucket = |r: &EventRow| period.map(|p| p.start_of(r.occurred_at_ms));
    let mut groups: HashMap<(Option<i64>, Vec<String>), Counts> = HashMap::new();
    let mut period_projects: HashMap<Option<i64>, HashSet<Key16>> = HashMap::new();
    let mut overall: HashMap<Vec<String>, Counts> = HashMap::new();
    for r in rows {
        period_projects.entry(bucket(r)).or_default().insert(r.project);
        for t in tuples(r, dimensions) {
            overall.entry(t.clone()).or_default().add(r);
            groups.entry((bucket(r), t)).or_default().add(r);
        }
    }
    let keep: Option<HashSet<Vec<String>>> = limit.map(|n| {
        let mut ranked: Vec<_> = overall.into_iter().collect();
        ranked.sort_by(|(ka, a), (kb, b)| {
            b.projects.len().cmp(&a.projects.len()).then(b.events.cmp(&a.events)).then(ka.cmp(kb))
        });
        ranked.into_iter().take(n).map(|(k, _)| k).collect()
    });
    let mut kept: Vec<_> =
        groups.into_iter().filter(|((_, t), _)| keep.as_ref().is_none_or(|k| k.contains(t))).collect();
    kept.sort_by(|((pa, ta), a), ((pb, tb), b)| {
        pa.cmp(pb).then(b.projects.len().cmp(&a.projects.len())).then(b.events.cmp(&a.events)).then(ta.cmp(tb))
    });
    kept.into_iter()
        .map(|((p, t), c)| {
            let mut row = Vec::new();
            if let Some(p) = p {
                row.push(date_cell(p));
            }
            row.extend(t.into_iter().map(Cell::Text));
            row.extend(c.cells());
            row.push(Cell::Int(period_projects.get(&p).map_or(0, |s| s.len() as i64)));
            row
        })
        .collect()
}

fn co_usage(rows: &[&EventRow], plugin: Option<&str>, limit: usize) -> Vec<Vec<Cell>> {
    let mut uses: HashMap<Key16, HashSet<&str>> = HashMap::new();
    for r in rows {
        uses.entry(r.project).or_default().extend(r.plugins.iter().map(String::as_str));
    }
    let total = uses.len() as i64;
    let mut per_plugin: HashMap<&str, i64> = HashMap::new();
    let mut pairs: HashMap<(&str, &str), i64> = HashMap::new();
    for set in uses.values() {
        for a in set {
            *per_plugin.entry(a).or_default() += 1;
            for b in set {
                if a != b {
                    *pairs.entry((a, b)).or_default() += 1;
                }
            }
        }
    }
    let wanted: HashSet<&str> = match plugin {
        Some(p) => [p].into(),
        None => {
            let mut ranked: Vec<(&str, i64)> = per_plugin.iter().map(|(k, v)| (*k, *v)).collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            ranked.into_iter().take(limit).map(|(k, _)| k).collect()
        }
    };
    let mut kept: Vec<((&str, &str), i64)> = pairs
        .into_iter()
        .filter(|((a, b), _)| wanted.contains(a) && (plugin.is_some() || wanted.contains(b)))
        .collect();
    kept.sort_by(|((a1, b1), n1), ((a2, b2), n2)| n2.cmp(n1).then(a1.cmp(a2)).then(b1.cmp(b2)));
    if plugin.is_some() {
        kept.truncate(limit);
    }
    kept.into_iter()
        .map(|((a, b), both)| {
            vec![
                Cell::Text(a.to_string()),
                Cell::Text(b.to_string()),
                Cell::Int(both),
                Cell::Int(per_plugin[a]),
                Cell::Int(per_plugin[b]),
                Cell::Int(total),
            ]
        })
        .collect()
}

fn durations(rows: &[&EventRow], event: &str, period: Option<Period>, dimension: Option<Dimension>) -> Vec<Vec<Cell>> {
    let mut groups: BTreeMap<DurationKey, (Vec<u64>, HashSet<Key16>)> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.event == event) {
        let Some(d) = r.duration_ms else { continue };
        // Plugins unnest, as in every other grouping.
        let keys: Vec<Option<String>> = match dimension {
            Some(dim) => dimension_values(r, dim).into_iter().map(Some).collect(),
            None => vec![None],
        };
        for key_dim in keys {
            let g = groups.entry((period.map(|p| p.start_of(r.occurred_at_ms)), key_dim)).or_default();
            g.0.push(d);
            g.1.insert(r.project);
        }
    }
    groups
        .into_iter()
        .map(|((p, dim), (mut durations, projects))| {
            durations.sort_unstable();
            let mut row = Vec::new();
            if let Some(p) = p {
                row.push(date_cell(p));
            }
            if let Some(dim) = dim {
                row.push(Cell::Text(dim));
            }
            row.push(Cell::Int(durations.len() as i64));
            row.push(Cell::Int(projects.len() as i64));
            for pct in [50, 90, 99] {
                row.push(Cell::Int(nearest_rank(&durations, pct)));
            }
            row
        })
        .collect()
}

/// Cohorts are projects' first weeks over all time, not only the range.
fn retention(selected: &[&EventRow], q: &Query, weeks: u32) -> Vec<Vec<Cell>> {
    let week = Period::Week;
    let mut first: HashMap<Key16, i64> = HashMap::new();
    let mut active: HashSet<(Key16, i64)> = HashSet::new();
    for r in selected {
        let w = week.start_of(r.occurred_at_ms);
        first.entry(r.project).and_modify(|f| *f = (*f).min(w)).or_insert(w);
        active.insert((r.project, w));
    }
    let mut cohorts: BTreeMap<i64, Vec<Key16>> = BTreeMap::new();
    for (p, w) in &first {
        if *w + week.len_ms() > q.from_ms && *w < q.to_ms {
            cohorts.entry(*w).or_default().push(*p);
        }
    }
    let mut out = Vec::new();
    for (cohort, projects) in cohorts {
        for n in 0..=i64::from(weeks) {
            let w = cohort + n * week.len_ms();
            if w >= q.to_ms {
                break;
            }
            let count = projects.iter().filter(|p| active.contains(&(**p, w))).count();
            out.push(vec![date_cell(cohort), Cell::Int(n), Cell::Int(count as i64)]);
        }
    }
    out
}

fn drop_support(rows: &[&EventRow], dimension: Dimension) -> Vec<Vec<Cell>> {
    drop_support_rows(rows.iter().filter_map(|r| Some((r.runtime.as_str(), dimension_value(r, dimension)?, r.project))))
}

fn grouped(groups: impl Iterator<Item = (String, Counts)>) -> Vec<Vec<Cell>> {
    let mut rows: Vec<(String, Counts)> = groups.collect();
    rows.sort_by(|(ka, a), (kb, b)| {
        b.projects.len().cmp(&a.projects.len()).then(b.events.cmp(&a.events)).then(ka.cmp(kb))
    });
    rows.into_iter()
        .map(|(k, c)| {
            let [p, m, e] = c.cells();
            vec![Cell::Text(k), p, m, e]
        })
        .collect()
}

impl EventStore for MemoryStore {
    fn append(&self, rows: &[EventRow]) -> Result<Vec<AppendStatus>, StoreError> {
        Ok(self.state().insert(rows))
    }

    fn apply(&self, rows: &[EventRow], through: u64) -> Result<Vec<AppendStatus>, StoreError> {
        let mut state = self.state();
        state.applied = Some(through);
        Ok(state.insert(rows))
    }

    fn applied_position(&self) -> Result<Option<u64>, StoreError> {
        Ok(self.state().applied)
    }

    fn event_ids_since(&self, since_ms: i64) -> Result<Vec<(Uuid, i64)>, StoreError> {
        Ok(self
            .state()
            .rows
            .iter()
            .filter(|r| r.occurred_at_ms >= since_ms)
            .map(|r| (r.event_id, r.occurred_at_ms))
            .collect())
    }

    fn query(&self, query: &Query) -> Result<Table, StoreError> {
        query.validate()?;
        Ok(evaluate(self.state().rows.iter(), query))
    }

    fn erase_project(&self, project: &ProjectKey) -> Result<u64, StoreError> {
        let mut state = self.state();
        Ok(state.remove(|r| r.project == *project))
    }

    fn apply_retention(&self, app: &str, before_ms: i64) -> Result<u64, StoreError> {
        let mut state = self.state();
        Ok(state.remove(|r| r.app == app && r.occurred_at_ms < before_ms))
    }

    fn known_values(&self, app: &str) -> Result<KnownValues, StoreError> {
        let state = self.state();
        let mut known = KnownValues::default();
        for r in state.rows.iter().filter(|r| r.app == app) {
            known.plugins.extend(r.plugins.iter().cloned());
            for field in ContextField::ALL {
                let value = field.of(r);
                if !value.is_empty() {
                    known.context.entry(field).or_default().insert(value.to_string());
                }
            }
            for (k, v) in &r.props {
                if let PropValue::Str(s) = v {
                    known.props.entry(k.clone()).or_default().insert(s.clone());
                }
            }
        }
        Ok(known)
    }

    fn count_events(&self) -> Result<u64, StoreError> {
        Ok(self.state().rows.len() as u64)
    }
}
