//! [`QueryKind::DropSupport`](crate::QueryKind::DropSupport): per runtime and version the
//! set of projects seen on it, then, from the newest version down, the projects not seen
//! on any newer one (those whose newest version it is).
//!
//! The indexes hold the projects of each version value but not of each (runtime, version)
//! pair, so they answer only for an app whose events all name one runtime (as a tool's
//! usually do), where the two are the same; otherwise, and with filters, the folded rows
//! are scanned.

use std::collections::HashMap;

use super::{Eval, Span};
use crate::query::{Cell, Dimension, compare_versions};
use crate::rollup::dict::{CONTEXT_DIMS, Dim};
use crate::rollup::index::slot;
use crate::rollup::sets::Bits;

/// A (runtime, version) pair by value numbers.
type Pair = (u32, u32);

impl<'a> Eval<'a> {
    pub(super) fn drop_support(&self, dimension: Dimension) -> Vec<Vec<Cell>> {
        let dict = &self.r.dict;
        let runtime = Dim::new(dict, Dimension::Runtime);
        let version = Dim::new(dict, dimension);
        let mut sets: HashMap<Pair, Bits> = HashMap::new();
        let new = || Bits::new(self.universe.projects);
        match self.only_runtime() {
            Some(rt) => {
                let s = slot(dimension);
                for v in self.days(self.from, self.to, true, Span::Block) {
                    if let Some(ix) = v.index {
                        for (value, slice) in &ix.by[s] {
                            sets.entry((rt, *value)).or_insert_with(new).union(&slice.projects);
                        }
                    }
                    for row in self.rows(&v) {
                        version.each(dict, &row.key, |value| {
                            sets.entry((rt, value)).or_insert_with(new).insert(row.key.pid)
                        });
                    }
                }
            }
            None => {
                for v in self.days(self.from, self.to, false, Span::Day) {
                    for row in self.rows(&v) {
                        runtime.each(dict, &row.key, |rt| {
                            version.each(dict, &row.key, |value| {
                                sets.entry((rt, value)).or_insert_with(new).insert(row.key.pid)
                            })
                        });
                    }
                }
            }
        }
        let mut pairs: Vec<(Pair, Bits)> = sets.into_iter().collect();
        let label = |p: &Pair| (runtime.labels[p.0 as usize].as_str(), version.labels[p.1 as usize].as_str());
        pairs.sort_by(|(a, _), (b, _)| {
            let ((ra, va), (rb, vb)) = (label(a), label(b));
            ra.cmp(rb).then_with(|| compare_versions(va, vb))
        });
        let mut out = Vec::new();
        for runtime_pairs in pairs.chunk_by(|(a, _), (b, _)| a.0 == b.0) {
            // From the newest version down: the projects not seen on a newer one.
            let mut seen = new();
            let mut newest = vec![0i64; runtime_pairs.len()];
            for (i, (_, projects)) in runtime_pairs.iter().enumerate().rev() {
                let newcomers = projects.minus(&seen);
                newest[i] = newcomers.len() as i64;
                newcomers.into_iter().for_each(|p| seen.insert(p));
            }
            let total = seen.count();
            let mut left = 0;
            for ((pair, _), n) in runtime_pairs.iter().zip(newest) {
                left += n;
                let (rt, v) = label(pair);
                out.push(vec![
                    Cell::Text(rt.into()),
                    Cell::Text(v.into()),
                    Cell::Int(n),
                    Cell::Int(left),
                    Cell::Int(total - left),
                    Cell::Int(total),
                ]);
            }
        }
        out
    }

    /// The runtime value every context of the query's app has, when the indexes apply and
    /// there is exactly one.
    fn only_runtime(&self) -> Option<u32> {
        if !self.indexed {
            return None;
        }
        let app = self.app?;
        let dict = &self.r.dict;
        let at = CONTEXT_DIMS.iter().position(|d| *d == Dimension::Runtime)?;
        let mut runtimes =
            dict.ctx_app.iter().zip(&dict.ctx_values).filter(|(a, _)| **a == app).map(|(_, values)| values[at]);
        let first = runtimes.next()?;
        runtimes.all(|rt| rt == first).then_some(first)
    }
}
