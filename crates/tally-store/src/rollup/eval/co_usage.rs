//! [`QueryKind::CoUsage`](crate::QueryKind::CoUsage): per plugin the set of projects
//! using it, and the sizes of the pairwise intersections.

use std::collections::HashMap;

use super::{DayView, Eval, Span};
use crate::query::{Cell, Dimension};
use crate::rollup::dict::Dim;
use crate::rollup::in_parts;
use crate::rollup::index::slot;
use crate::rollup::sets::Bits;

/// Two plugins (by number) used together by `both` projects.
struct Pair {
    a: usize,
    b: usize,
    both: i64,
}

impl<'a> Eval<'a> {
    pub(super) fn co_usage(&self, plugin: Option<&str>, limit: usize) -> Vec<Vec<Cell>> {
        let dict = &self.r.dict;
        let views = self.days(self.from, self.to, true, Span::Block);
        let mut total = Bits::new(self.universe.projects);
        for v in &views {
            if let Some(ix) = v.index {
                total.union(&ix.all.projects);
            }
            self.rows(v).for_each(|row| total.insert(row.key.pid));
        }
        let uses = self.plugin_projects(&views);
        let name = |p: usize| dict.plugins.values[p].as_str();
        let used: Vec<(usize, i64)> =
            uses.iter().enumerate().filter_map(|(p, b)| b.as_ref().map(|b| (p, b.count()))).collect();
        let per: HashMap<usize, i64> = used.iter().copied().collect();
        let wanted: Vec<usize> = match plugin {
            Some(p) => dict
                .plugins
                .get(&p.to_string())
                .map(|id| id as usize)
                .into_iter()
                .filter(|p| per.contains_key(p))
                .collect(),
            None => {
                let mut ranked = used.clone();
                ranked.sort_by(|a, b| b.1.cmp(&a.1).then(name(a.0).cmp(name(b.0))));
                ranked.into_iter().take(limit).map(|(p, _)| p).collect()
            }
        };
        let partners: Vec<usize> =
            if plugin.is_some() { used.iter().map(|(p, _)| *p).collect() } else { wanted.clone() };
        let mut pairs: Vec<Pair> = Vec::new();
        for &a in &wanted {
            for &b in &partners {
                if a == b {
                    continue;
                }
                let (Some(ba), Some(bb)) = (&uses[a], &uses[b]) else { continue };
                let both = ba.and_count(bb);
                if both > 0 {
                    pairs.push(Pair { a, b, both });
                }
            }
        }
        pairs.sort_by(|x, y| y.both.cmp(&x.both).then(name(x.a).cmp(name(y.a))).then(name(x.b).cmp(name(y.b))));
        if plugin.is_some() {
            pairs.truncate(limit);
        }
        let total = total.count();
        pairs
            .into_iter()
            .map(|p| {
                vec![
                    Cell::Text(name(p.a).into()),
                    Cell::Text(name(p.b).into()),
                    Cell::Int(p.both),
                    Cell::Int(per[&p.a]),
                    Cell::Int(per[&p.b]),
                    Cell::Int(total),
                ]
            })
            .collect()
    }

    /// Per plugin number, the projects using it in the views (`None`: none), built in parts
    /// by plugin number.
    fn plugin_projects(&self, views: &[DayView<'a>]) -> Vec<Option<Bits>> {
        let dict = &self.r.dict;
        let dim = Dim::new(dict, Dimension::Plugin);
        let ps = slot(Dimension::Plugin);
        let mut uses: Vec<Option<Bits>> = vec![None; dict.plugins.len()];
        let parts = in_parts(|part, parts| {
            let mut mine: Vec<Option<Bits>> = vec![None; dict.plugins.len()];
            let new = || Bits::new(self.universe.projects);
            for v in views {
                if let Some(ix) = v.index {
                    for (p, slice) in ix.by[ps].iter().filter(|(p, _)| *p as usize % parts == part) {
                        mine[*p as usize].get_or_insert_with(new).union(&slice.projects);
                    }
                }
                for row in self.rows(v) {
                    dim.each(dict, &row.key, |p| {
                        if p as usize % parts == part {
                            mine[p as usize].get_or_insert_with(new).insert(row.key.pid)
                        }
                    });
                }
            }
            mine
        });
        for part in parts {
            for (p, bits) in part.into_iter().enumerate() {
                if bits.is_some() {
                    uses[p] = bits;
                }
            }
        }
        uses
    }
}
