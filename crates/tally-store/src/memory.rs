//! An in-memory [`EventStore`]: fast unit tests and the reference the other backends are
//! checked against. Not durable.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use chrono::DateTime;
use tally_protocol::PropValue;
use uuid::Uuid;

use crate::query::{Cell, Dimension, Filters, Query, QueryKind, Table};
use crate::row::{AppendStatus, EventRow, KnownValues};
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
    })
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

/// Evaluates a query over rows: the reference semantics of every [`QueryKind`].
pub(crate) fn evaluate<'a>(rows: impl Iterator<Item = &'a EventRow> + Clone, q: &Query) -> Table {
    let selected = rows.filter(|r| r.app == q.app && matches(r, &q.filters));
    let in_range = selected.clone().filter(|r| r.occurred_at_ms >= q.from_ms && r.occurred_at_ms < q.to_ms);
    let mut table = Table::new(Table::columns_for(&q.kind));
    match &q.kind {
        QueryKind::EventsPerDay => {
            let mut days: BTreeMap<i64, Counts> = BTreeMap::new();
            for r in in_range {
                days.entry(r.occurred_at_ms.div_euclid(DAY_MS)).or_default().add(r);
            }
            for (day, c) in days {
                let date = DateTime::from_timestamp_millis(day * DAY_MS).expect("day in range").date_naive();
                let [p, m, e] = c.cells();
                table.rows.push(vec![Cell::Date(date), e, p, m]);
            }
        }
        QueryKind::Active { windows } => {
            for &w in windows {
                let start = q.to_ms - i64::from(w) * DAY_MS;
                let mut c = Counts::default();
                for r in selected.clone().filter(|r| r.occurred_at_ms >= start && r.occurred_at_ms < q.to_ms) {
                    c.add(r);
                }
                let [p, m, _] = c.cells();
                table.rows.push(vec![Cell::Int(i64::from(w)), p, m]);
            }
        }
        QueryKind::TopPlugins { limit } => {
            let mut by: HashMap<&str, Counts> = HashMap::new();
            for r in in_range {
                for p in &r.plugins {
                    by.entry(p).or_default().add(r);
                }
            }
            table.rows = grouped(by.into_iter().map(|(k, v)| (k.to_string(), v)));
            table.rows.truncate(*limit);
        }
        QueryKind::Split { dimension } => {
            let mut by: HashMap<String, Counts> = HashMap::new();
            for r in in_range {
                if let Some(v) = dimension_value(r, *dimension) {
                    by.entry(v).or_default().add(r);
                }
            }
            table.rows = grouped(by.into_iter());
        }
    }
    table
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
        let mut state = self.state();
        Ok(rows
            .iter()
            .map(|row| {
                if state.ids.insert(row.event_id) {
                    state.rows.push(row.clone());
                    AppendStatus::Inserted
                } else {
                    AppendStatus::Duplicate
                }
            })
            .collect())
    }

    fn query(&self, query: &Query) -> Result<Table, StoreError> {
        Ok(evaluate(self.state().rows.iter(), query))
    }

    fn erase_project(&self, project: &ProjectKey) -> Result<u64, StoreError> {
        let mut state = self.state();
        Ok(state.remove(|r| r.project == *project))
    }

    fn apply_retention(&self, before_ms: i64) -> Result<u64, StoreError> {
        let mut state = self.state();
        Ok(state.remove(|r| r.occurred_at_ms < before_ms))
    }

    fn known_values(&self, app: &str) -> Result<KnownValues, StoreError> {
        let state = self.state();
        let mut known = KnownValues::default();
        for r in state.rows.iter().filter(|r| r.app == app) {
            known.plugins.extend(r.plugins.iter().cloned());
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
