//! The kinds that follow projects over time: rolling actives per day
//! ([`QueryKind::ActiveSeries`](crate::QueryKind::ActiveSeries)) and weekly cohorts
//! ([`QueryKind::Retention`](crate::QueryKind::Retention)).

use std::collections::BTreeMap;

use super::{Counts, Eval, Span, date_cell};
use crate::DAY_MS;
use crate::query::{Cell, Period};
use crate::rollup::sets::Bits;

impl Eval<'_> {
    pub(super) fn active_series(&self, window_days: u32) -> Vec<Vec<Cell>> {
        let w = i64::from(window_days);
        let from = self.from;
        let last = (self.q.to_ms - 1).div_euclid(DAY_MS);
        let mut out = Vec::new();
        if self.indexed {
            // Each day's window is a union of whole-day sets.
            let mut c = Counts::new(self.universe);
            for day in from..=last {
                if w > 0 {
                    self.union(day - w + 1, day + 1, &mut c);
                }
                let t = c.totals();
                out.push(vec![date_cell(day * DAY_MS), Cell::Int(t.projects), Cell::Int(t.machines)]);
                c.clear();
            }
            return out;
        }
        let n = (last - from + 1).max(0) as usize;
        let mut diff_p = vec![0i64; n + 1];
        let mut diff_m = vec![0i64; n + 1];
        let mut cov_p = vec![i64::MIN; self.universe.projects];
        let mut cov_m = vec![i64::MIN; self.universe.machines];
        // A project active on day D counts on days D..D+w-1; intervals arrive in day order,
        // so each extends the union of the previous ones.
        let cover = |cov: &mut [i64], diff: &mut [i64], id: u32, day: i64| {
            let start = day.max(cov[id as usize]);
            let end = day + w;
            if start < end {
                cov[id as usize] = end;
                let (s, e) = (start.max(from), end.min(last + 1));
                if s < e {
                    diff[(s - from) as usize] += 1;
                    diff[(e - from) as usize] -= 1;
                }
            }
        };
        if w > 0 {
            for v in self.days(from - w + 1, last + 1, false, Span::Day) {
                for row in self.rows(&v) {
                    cover(&mut cov_p, &mut diff_p, row.key.pid, v.day);
                    cover(&mut cov_m, &mut diff_m, row.key.mid, v.day);
                }
            }
        }
        let (mut p, mut m) = (0, 0);
        for i in 0..n {
            p += diff_p[i];
            m += diff_m[i];
            out.push(vec![date_cell((from + i as i64) * DAY_MS), Cell::Int(p), Cell::Int(m)]);
        }
        out
    }

    pub(super) fn retention(&self, weeks: u32) -> Vec<Vec<Cell>> {
        let week = Period::Week;
        // Projects active per week, over all time (a cohort is a project's first week ever).
        let mut active: BTreeMap<i64, Bits> = BTreeMap::new();
        for v in self.days(i64::MIN, i64::MAX, true, Span::Week) {
            let w = week.start_of(v.day * DAY_MS);
            let bits = active.entry(w).or_insert_with(|| Bits::new(self.universe.projects));
            if let Some(ix) = v.index {
                bits.union(&ix.all.projects);
            }
            for row in self.rows(&v) {
                bits.insert(row.key.pid);
            }
        }
        let mut seen = Bits::new(self.universe.projects);
        let mut cohorts: Vec<(i64, Vec<u32>)> = Vec::new();
        for (&w, bits) in &active {
            let fresh = bits.minus(&seen);
            for p in &fresh {
                seen.insert(*p);
            }
            if w + week.len_ms() > self.q.from_ms && w < self.q.to_ms && !fresh.is_empty() {
                cohorts.push((w, fresh));
            }
        }
        let mut out = Vec::new();
        for (cohort, pids) in cohorts {
            for n in 0..=i64::from(weeks) {
                let w = cohort + n * week.len_ms();
                if w >= self.q.to_ms {
                    break;
                }
                let count = active.get(&w).map_or(0, |a| pids.iter().filter(|p| a.contains(**p)).count());
                out.push(vec![date_cell(cohort), Cell::Int(n), Cell::Int(count as i64)]);
            }
        }
        out
    }
}
