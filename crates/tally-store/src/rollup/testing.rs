//! A test backend: rows in memory, answers from a [`Rollup`] when it can.

use std::sync::Mutex;

use super::Rollup;
use crate::{AppendStatus, EventRow, EventStore, KnownValues, MemoryStore, ProjectKey, Query, StoreError, Table};

#[derive(Debug, Default)]
pub(crate) struct RolledUp {
    raw: MemoryStore,
    kept: Mutex<Kept>,
    eager: bool,
}

/// The rows stored and the rollup of them (`None` before the first append).
#[derive(Debug, Default)]
struct Kept {
    rows: Vec<EventRow>,
    rollup: Option<Rollup>,
}

impl RolledUp {
    /// Days re-indexed on every append (else the conformance datasets, too small to be
    /// indexed, are read from the folded rows).
    pub(crate) fn eager() -> RolledUp {
        RolledUp { eager: true, ..RolledUp::default() }
    }

    fn fresh(&self) -> Rollup {
        let mut r = Rollup::new();
        if self.eager {
            r.set_reindex_after(0);
        }
        r
    }

    /// Adds the rows `status` says were inserted to the kept rows and the rollup.
    fn fold(&self, state: &mut Kept, rows: &[EventRow], status: &[AppendStatus]) {
        let inserted: Vec<EventRow> =
            rows.iter().zip(status).filter(|(_, s)| **s == AppendStatus::Inserted).map(|(r, _)| r.clone()).collect();
        state.rollup.get_or_insert_with(|| self.fresh()).add(&inserted);
        state.rows.extend(inserted);
    }

    fn rebuild(&self, state: &mut Kept) {
        let mut r = self.fresh();
        r.add(&state.rows);
        state.rollup = Some(r);
    }
}

impl EventStore for RolledUp {
    fn append(&self, rows: &[EventRow]) -> Result<Vec<AppendStatus>, StoreError> {
        let mut state = self.kept.lock().expect("lock");
        let status = self.raw.append(rows)?;
        self.fold(&mut state, rows, &status);
        Ok(status)
    }
    fn apply(&self, rows: &[EventRow], through: u64) -> Result<Vec<AppendStatus>, StoreError> {
        let mut state = self.kept.lock().expect("lock");
        let status = self.raw.apply(rows, through)?;
        self.fold(&mut state, rows, &status);
        Ok(status)
    }
    fn applied_position(&self) -> Result<Option<u64>, StoreError> {
        self.raw.applied_position()
    }
    fn event_ids_since(&self, since_ms: i64) -> Result<Vec<(uuid::Uuid, i64)>, StoreError> {
        self.raw.event_ids_since(since_ms)
    }
    fn query(&self, q: &Query) -> Result<Table, StoreError> {
        q.validate()?;
        let state = self.kept.lock().expect("lock");
        match state.rollup.as_ref().and_then(|r| r.answer(q)) {
            Some(t) => Ok(t),
            None if q.from_ms % crate::DAY_MS == 0 && q.to_ms % crate::DAY_MS == 0 && state.rollup.is_some() => {
                panic!("a whole-day query the rollup did not answer: {q:?}")
            }
            None => self.raw.query(q),
        }
    }
    fn erase_project(&self, project: &ProjectKey) -> Result<u64, StoreError> {
        let mut state = self.kept.lock().expect("lock");
        state.rows.retain(|r| r.project != *project);
        if let Some(r) = state.rollup.as_mut() {
            r.remove_project(project);
        }
        self.raw.erase_project(project)
    }
    fn apply_retention(&self, app: &str, before_ms: i64) -> Result<u64, StoreError> {
        let mut state = self.kept.lock().expect("lock");
        state.rows.retain(|r| r.app != app || r.occurred_at_ms >= before_ms);
        self.rebuild(&mut state);
        self.raw.apply_retention(app, before_ms)
    }
    fn known_values(&self, app: &str) -> Result<KnownValues, StoreError> {
        self.raw.known_values(app)
    }
    fn count_events(&self) -> Result<u64, StoreError> {
        self.raw.count_events()
    }
}
