//! What a query accumulates: [`Counts`] of one group (distinct projects and machines and
//! events, from rows and index slices) and [`Groups`] of them by a dense key.

use crate::query::Cell;
use crate::rollup::day::Row;
use crate::rollup::index::Slice;
use crate::rollup::sets::{Bits, Universe};

/// A group's distinct projects and machines and its event count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Totals {
    pub(super) projects: i64,
    pub(super) machines: i64,
    pub(super) events: i64,
}

impl Totals {
    /// `projects`, `machines`, `events`: the last columns of most tables.
    pub(super) fn cells(self) -> [Cell; 3] {
        [Cell::Int(self.projects), Cell::Int(self.machines), Cell::Int(self.events)]
    }
}

/// The totals of the group with this key.
#[derive(Debug, Clone, Copy)]
pub(super) struct GroupTotals {
    pub(super) key: usize,
    pub(super) totals: Totals,
}

/// Distinct projects and machines and an event count. A group made of one index slice
/// alone takes that slice's precomputed counts, without copying its sets.
#[derive(Debug, Clone)]
pub(super) struct Counts<'a> {
    projects: Bits,
    machines: Bits,
    events: i64,
    /// The only thing added so far, when it is one slice.
    pending: Option<&'a Slice>,
    /// Nothing added since the last clear.
    fresh: bool,
}

impl<'a> Counts<'a> {
    pub(super) fn new(universe: Universe) -> Counts<'a> {
        Counts {
            projects: Bits::new(universe.projects),
            machines: Bits::new(universe.machines),
            events: 0,
            pending: None,
            fresh: true,
        }
    }

    fn materialize(&mut self) {
        if let Some(s) = self.pending.take() {
            self.projects.union(&s.projects);
            self.machines.union(&s.machines);
            self.events += s.events;
        }
        self.fresh = false;
    }

    #[inline]
    pub(super) fn add(&mut self, row: &Row) {
        if self.pending.is_some() || self.fresh {
            self.materialize();
        }
        self.projects.insert(row.key.pid);
        self.machines.insert(row.key.mid);
        self.events += i64::from(row.events);
    }

    pub(super) fn union(&mut self, s: &'a Slice) {
        if self.fresh {
            self.pending = Some(s);
            self.fresh = false;
            return;
        }
        self.materialize();
        self.projects.union(&s.projects);
        self.machines.union(&s.machines);
        self.events += s.events;
    }

    pub(super) fn clear(&mut self) {
        self.projects.clear();
        self.machines.clear();
        self.events = 0;
        self.pending = None;
        self.fresh = true;
    }

    pub(super) fn events(&self) -> i64 {
        self.pending.map_or(self.events, |s| s.events)
    }

    pub(super) fn totals(&self) -> Totals {
        match self.pending {
            Some(s) => Totals { projects: s.project_count, machines: s.machine_count, events: s.events },
            None => Totals { projects: self.projects.count(), machines: self.machines.count(), events: self.events },
        }
    }
}

/// Groups of [`Counts`] by a dense key, their storage reused after [`Groups::drain`].
pub(super) struct Groups<'a> {
    /// Per key, its position in `keys` and `counts` (`u32::MAX`: no group yet).
    slots: Vec<u32>,
    keys: Vec<usize>,
    counts: Vec<Counts<'a>>,
    universe: Universe,
}

impl<'a> Groups<'a> {
    /// No groups, for keys below `keys`.
    pub(super) fn new(universe: Universe, keys: usize) -> Self {
        Groups { slots: vec![u32::MAX; keys], keys: Vec::new(), counts: Vec::new(), universe }
    }

    #[inline]
    pub(super) fn get(&mut self, k: usize) -> &mut Counts<'a> {
        let mut i = self.slots[k] as usize;
        if i == u32::MAX as usize {
            i = self.keys.len();
            if i == self.counts.len() {
                self.counts.push(Counts::new(self.universe));
            }
            self.keys.push(k);
            self.slots[k] = i as u32;
        }
        &mut self.counts[i]
    }

    /// The groups' totals, in the order the groups appeared, then empties them for reuse.
    pub(super) fn drain(&mut self) -> Vec<GroupTotals> {
        let out =
            self.keys.iter().zip(&self.counts).map(|(k, c)| GroupTotals { key: *k, totals: c.totals() }).collect();
        for (i, k) in self.keys.drain(..).enumerate() {
            self.slots[k] = u32::MAX;
            self.counts[i].clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::{Counts, Groups, Totals};
    use crate::rollup::day::Row;
    use crate::rollup::dict::Key;
    use crate::rollup::index::Slice;
    use crate::rollup::sets::{Set, Universe};

    const UNIVERSE: Universe = Universe { projects: 100, machines: 100 };

    fn row(pid: u32, mid: u32, events: u32) -> Row {
        Row { key: Key { pid, mid, ctx: 0, name: 0, error: 0, set: 0 }, events }
    }

    fn slice(projects: &[u32], machines: &[u32], events: i64) -> Slice {
        Slice::new(Set::from_ids(projects.to_vec()), Set::from_ids(machines.to_vec()), events)
    }

    fn totals(projects: i64, machines: i64, events: i64) -> Totals {
        Totals { projects, machines, events }
    }

    #[test]
    fn one_slice_alone_gives_its_own_counts() {
        let s = slice(&[1, 2, 3], &[7], 10);
        let mut c = Counts::new(UNIVERSE);
        c.union(&s);
        assert_eq!((c.totals(), c.events()), (totals(3, 1, 10), 10));
    }

    #[test]
    fn slices_and_rows_add_up_as_distinct_sets() {
        let (a, b) = (slice(&[1, 2], &[1], 5), slice(&[2, 3], &[1, 2], 4));
        let mut c = Counts::new(UNIVERSE);
        c.union(&a);
        c.union(&b);
        c.add(&row(3, 9, 2));
        c.add(&row(50, 1, 1));
        assert_eq!(c.totals(), totals(4, 3, 12));
        // A row first, then a slice.
        c.clear();
        assert_eq!(c.totals(), totals(0, 0, 0));
        c.add(&row(1, 1, 1));
        c.union(&a);
        assert_eq!(c.totals(), totals(2, 1, 6));
    }

    #[test]
    fn groups_drain_in_order_of_appearance_and_are_reused() {
        let s = slice(&[4], &[4], 3);
        let mut g = Groups::new(UNIVERSE, 10);
        g.get(7).add(&row(1, 1, 1));
        g.get(2).union(&s);
        g.get(7).add(&row(2, 1, 1));
        let drained: Vec<(usize, Totals)> = g.drain().into_iter().map(|x| (x.key, x.totals)).collect();
        assert_eq!(drained, vec![(7, totals(2, 1, 2)), (2, totals(1, 1, 3))]);
        assert!(g.drain().is_empty());
        g.get(2).add(&row(9, 9, 1));
        let drained: Vec<(usize, Totals)> = g.drain().into_iter().map(|x| (x.key, x.totals)).collect();
        assert_eq!(drained, vec![(2, totals(1, 1, 1))]);
    }
}
