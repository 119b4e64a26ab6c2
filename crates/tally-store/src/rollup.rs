//! Rollups: the events of each UTC day folded into one row per distinct (project, machine,
//! context, event name, error kind, plugin set) with an event count, plus the durations of
//! timed events, all dictionary-encoded into dense integers. Every [`QueryKind`] over whole
//! days is answered from them with exact distinct counts (bitsets over dense project and
//! machine numbers), without reading raw events.
//!
//! A backend keeps a [`Rollup`] next to its raw rows: it [`Rollup::add`]s every row it
//! inserts (maintained at ingest), removes what it deletes, and rebuilds it from its raw rows
//! when it opens. [`Rollup::answer`] gives `None` for what it cannot answer exactly (a
//! range that does not start and end at midnight UTC), and the backend answers from raw rows
//! instead. Folding keeps every attribute a query can filter or group by, so the answers are
//! those of the raw rows, to the event; the conformance suite runs on both paths.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use chrono::DateTime;
use tally_protocol::Env;

use crate::query::{Cell, Dimension, Period, Query, QueryKind, Table, version_prefix};
use crate::row::EventRow;
use crate::{DAY_MS, Key16};

/// "No error kind".
const NONE: u32 = u32::MAX;

/// Rollups larger than this many bytes of group bitsets are not attempted (the backend
/// answers from raw rows instead).
const MAX_GROUP_BYTES: usize = 1 << 30;

/// Values numbered densely in order of first sight.
#[derive(Debug)]
struct Interner<T> {
    ids: HashMap<T, u32>,
    values: Vec<T>,
}

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Interner { ids: HashMap::new(), values: Vec::new() }
    }
}

impl<T: Hash + Eq + Clone> Interner<T> {
    fn id(&mut self, v: &T) -> u32 {
        if let Some(id) = self.ids.get(v) {
            return *id;
        }
        let id = self.values.len() as u32;
        self.values.push(v.clone());
        self.ids.insert(v.clone(), id);
        id
    }

    fn get(&self, v: &T) -> Option<u32> {
        self.ids.get(v).copied()
    }

    fn len(&self) -> usize {
        self.values.len()
    }
}

/// The attributes an event shares with the rest of its batch (its context), less the ones
/// no query reads (`os_version`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Context {
    /// The tool.
    pub app: String,
    /// Its version.
    pub app_version: String,
    /// The environment.
    pub env: Env,
    /// OS family.
    pub os: String,
    /// CPU architecture.
    pub arch: String,
    /// Runtime name.
    pub runtime: String,
    /// Runtime version.
    pub runtime_version: String,
    /// CI vendor or empty.
    pub ci: String,
    /// In a container.
    pub container: bool,
}

impl Context {
    fn of(r: &EventRow) -> Context {
        Context {
            app: r.app.clone(),
            app_version: r.app_version.clone(),
            env: r.env,
            os: r.os.clone(),
            arch: r.arch.clone(),
            runtime: r.runtime.clone(),
            runtime_version: r.runtime_version.clone(),
            ci: r.ci.clone(),
            container: r.container,
        }
    }

    fn same_as(&self, r: &EventRow) -> bool {
        self.app == r.app
            && self.app_version == r.app_version
            && self.env == r.env
            && self.os == r.os
            && self.arch == r.arch
            && self.runtime == r.runtime
            && self.runtime_version == r.runtime_version
            && self.ci == r.ci
            && self.container == r.container
    }

    fn value(&self, d: Dimension) -> Option<String> {
        Some(match d {
            Dimension::Env => self.env.as_str().to_string(),
            Dimension::Os => self.os.clone(),
            Dimension::Arch => self.arch.clone(),
            Dimension::Runtime => self.runtime.clone(),
            Dimension::RuntimeVersion => self.runtime_version.clone(),
            Dimension::AppVersion => self.app_version.clone(),
            Dimension::Ci => self.ci.clone(),
            Dimension::Container => self.container.to_string(),
            Dimension::RuntimeMajor => version_prefix(&self.runtime_version, 1),
            Dimension::RuntimeMinor => version_prefix(&self.runtime_version, 2),
            Dimension::Event | Dimension::ErrorKind | Dimension::Plugin => return None,
        })
    }
}

/// What a folded row is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key {
    pid: u32,
    mid: u32,
    ctx: u32,
    name: u32,
    error: u32,
    set: u32,
}

#[derive(Debug, Clone, Copy)]
struct Row {
    key: Key,
    events: u32,
}

#[derive(Debug, Clone, Copy)]
struct Timed {
    key: Key,
    duration: u64,
}

#[derive(Debug, Default)]
struct Day {
    rows: Vec<Row>,
    timed: Vec<Timed>,
    /// Length of `rows` after the last fold.
    folded: usize,
}

impl Day {
    /// Merges rows with the same key (rows arrive per append, so a key can repeat).
    fn fold(&mut self) {
        self.rows.sort_unstable_by_key(|r| r.key);
        let mut out: Vec<Row> = Vec::with_capacity(self.rows.len());
        for r in self.rows.drain(..) {
            match out.last_mut() {
                Some(last) if last.key == r.key => last.events += r.events,
                _ => out.push(r),
            }
        }
        out.shrink_to_fit();
        self.rows = out;
        self.folded = self.rows.len();
    }
}

/// One folded group, as a backend reads it back from raw rows when it opens.
#[derive(Debug, Clone, Copy)]
pub struct Group<'a> {
    /// The UTC day number (`occurred_at_ms.div_euclid(DAY_MS)`).
    pub day: i64,
    /// The project key.
    pub project: Key16,
    /// The machine key.
    pub machine: Key16,
    /// The context.
    pub context: &'a Context,
    /// The event name.
    pub event: &'a str,
    /// The error kind.
    pub error_kind: Option<&'a str>,
    /// The plugins.
    pub plugins: &'a [String],
    /// How many events.
    pub events: u32,
    /// The durations of those that have one.
    pub durations: &'a [u64],
}

/// Folded, dictionary-encoded events (see the module documentation).
#[derive(Debug, Default)]
pub struct Rollup {
    projects: Interner<Key16>,
    machines: Interner<Key16>,
    contexts: Interner<Context>,
    names: Interner<String>,
    errors: Interner<String>,
    plugins: Interner<String>,
    sets: Interner<Box<[u32]>>,
    days: BTreeMap<i64, Day>,
    last_ctx: Option<u32>,
}

impl Rollup {
    /// An empty rollup.
    pub fn new() -> Rollup {
        let mut r = Rollup::default();
        r.sets.id(&Box::from([]));
        r
    }

    /// How many folded rows it holds.
    pub fn len(&self) -> usize {
        self.days.values().map(|d| d.rows.len()).sum()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.days.is_empty()
    }

    fn set_id(&mut self, plugins: &[String]) -> u32 {
        if plugins.is_empty() {
            return 0;
        }
        let mut ids: Vec<u32> = plugins.iter().map(|p| self.plugins.id(p)).collect();
        ids.sort_unstable();
        ids.dedup();
        self.sets.id(&ids.into_boxed_slice())
    }

    fn push(&mut self, day: i64, key: Key, events: u32, durations: impl Iterator<Item = u64>) {
        let d = self.days.entry(day).or_default();
        d.rows.push(Row { key, events });
        d.timed.extend(durations.map(|duration| Timed { key, duration }));
        if d.rows.len() >= 2 * d.folded + 4096 {
            d.fold();
        }
    }

    /// Adds stored rows (each exactly once: only rows the backend inserted).
    pub fn add(&mut self, rows: &[EventRow]) {
        for r in rows {
            let ctx = match self.last_ctx {
                Some(c) if self.contexts.values[c as usize].same_as(r) => c,
                _ => {
                    let c = self.contexts.id(&Context::of(r));
                    self.last_ctx = Some(c);
                    c
                }
            };
            let key = Key {
                pid: self.projects.id(&r.project),
                mid: self.machines.id(&r.machine),
                ctx,
                name: self.names.id(&r.event),
                error: r.error_kind.as_ref().map_or(NONE, |e| self.errors.id(e)),
                set: self.set_id(&r.plugins),
            };
            self.push(r.occurred_at_ms.div_euclid(DAY_MS), key, 1, r.duration_ms.into_iter());
        }
    }

    /// Adds a group read back from raw rows.
    pub fn add_group(&mut self, g: &Group<'_>) {
        let key = Key {
            pid: self.projects.id(&g.project),
            mid: self.machines.id(&g.machine),
            ctx: self.contexts.id(g.context),
            name: self.names.id(&g.event.to_string()),
            error: g.error_kind.map_or(NONE, |e| self.errors.id(&e.to_string())),
            set: self.set_id(g.plugins),
        };
        self.push(g.day, key, g.events, g.durations.iter().copied());
    }

    /// Folds every day (after a bulk load).
    pub fn fold_all(&mut self) {
        for d in self.days.values_mut() {
            d.fold();
        }
    }

    /// Removes every row of a project.
    pub fn remove_project(&mut self, project: &Key16) {
        let Some(pid) = self.projects.get(project) else { return };
        for d in self.days.values_mut() {
            d.rows.retain(|r| r.key.pid != pid);
            d.timed.retain(|t| t.key.pid != pid);
            d.folded = d.folded.min(d.rows.len());
        }
        self.days.retain(|_, d| !d.rows.is_empty());
    }

    /// Removes the days before `day` and the whole of `day` (the backend adds back what it
    /// keeps of a partly deleted day).
    pub fn remove_days_through(&mut self, day: i64) {
        self.days = self.days.split_off(&(day + 1));
    }

    /// Answers `q` if it covers whole UTC days; `None` otherwise.
    pub fn answer(&self, q: &Query) -> Option<Table> {
        let aligned = |ms: i64| ms.rem_euclid(DAY_MS) == 0;
        let needs_from = !matches!(q.kind, QueryKind::Active { .. });
        if !aligned(q.to_ms) || (needs_from && !aligned(q.from_ms)) {
            return None;
        }
        Eval::new(self, q).run()
    }
}

/// A set of dense numbers that remembers which words it touched, so that counting and
/// clearing cost what was inserted, not the size of the universe.
#[derive(Debug, Clone)]
struct Bits {
    words: Vec<u64>,
    touched: Vec<u32>,
}

impl Bits {
    fn new(universe: usize) -> Bits {
        Bits { words: vec![0; universe.div_ceil(64)], touched: Vec::new() }
    }

    #[inline]
    fn insert(&mut self, i: u32) {
        let w = (i >> 6) as usize;
        let x = self.words[w];
        if x == 0 {
            self.touched.push(w as u32);
        }
        self.words[w] = x | (1 << (i & 63));
    }

    fn contains(&self, i: u32) -> bool {
        self.words[(i >> 6) as usize] & (1 << (i & 63)) != 0
    }

    fn count(&self) -> i64 {
        self.touched.iter().map(|&w| i64::from(self.words[w as usize].count_ones())).sum()
    }

    fn clear(&mut self) {
        for &w in &self.touched {
            self.words[w as usize] = 0;
        }
        self.touched.clear();
    }

    fn and_count(&self, other: &Bits) -> i64 {
        let (small, big) = if self.touched.len() <= other.touched.len() { (self, other) } else { (other, self) };
        small.touched.iter().map(|&w| i64::from((small.words[w as usize] & big.words[w as usize]).count_ones())).sum()
    }
}

/// Distinct projects and machines and an event count.
#[derive(Debug, Clone)]
struct Counts {
    projects: Bits,
    machines: Bits,
    events: i64,
}

impl Counts {
    fn new(projects: usize, machines: usize) -> Counts {
        Counts { projects: Bits::new(projects), machines: Bits::new(machines), events: 0 }
    }

    #[inline]
    fn add(&mut self, key: &Key, events: u32) {
        self.projects.insert(key.pid);
        self.machines.insert(key.mid);
        self.events += i64::from(events);
    }

    fn clear(&mut self) {
        self.projects.clear();
        self.machines.clear();
        self.events = 0;
    }

    fn cells(&self) -> [Cell; 3] {
        [Cell::Int(self.projects.count()), Cell::Int(self.machines.count()), Cell::Int(self.events)]
    }
}

/// Groups of [`Counts`] by a key, with their storage reused after [`Groups::clear`].
struct Groups<K> {
    index: HashMap<K, usize>,
    counts: Vec<Counts>,
    used: usize,
    universe: (usize, usize),
}

impl<K: Hash + Eq + Clone> Groups<K> {
    fn new(universe: (usize, usize)) -> Self {
        Groups { index: HashMap::new(), counts: Vec::new(), used: 0, universe }
    }

    #[inline]
    fn get(&mut self, k: &K) -> &mut Counts {
        let i = match self.index.get(k) {
            Some(i) => *i,
            None => {
                if self.used == self.counts.len() {
                    self.counts.push(Counts::new(self.universe.0, self.universe.1));
                }
                self.used += 1;
                self.index.insert(k.clone(), self.used - 1);
                self.used - 1
            }
        };
        &mut self.counts[i]
    }

    /// The groups, then empties them for reuse.
    fn drain(&mut self) -> Vec<(K, [Cell; 3], i64)> {
        let out = self
            .index
            .drain()
            .map(|(k, i)| {
                let c = &self.counts[i];
                (k, c.cells(), c.projects.count())
            })
            .collect();
        for c in &mut self.counts[..self.used] {
            c.clear();
        }
        self.used = 0;
        out
    }
}

/// How a dimension's value is found for a folded row.
enum Source {
    /// By context number.
    Context(Vec<u32>),
    /// By event name number.
    Name,
    /// By error kind number (none: not counted).
    Error,
    /// By plugin: one value per plugin of the row's set.
    Plugin,
}

/// A dimension resolved against the dictionaries: value numbers and their labels.
struct Dim {
    source: Source,
    labels: Vec<String>,
}

impl Dim {
    fn new(r: &Rollup, d: Dimension) -> Dim {
        match d {
            Dimension::Event => Dim { source: Source::Name, labels: r.names.values.clone() },
            Dimension::ErrorKind => Dim { source: Source::Error, labels: r.errors.values.clone() },
            Dimension::Plugin => Dim { source: Source::Plugin, labels: r.plugins.values.clone() },
            _ => {
                let mut labels = Interner::<String>::default();
                let ids =
                    r.contexts.values.iter().map(|c| labels.id(&c.value(d).expect("a context dimension"))).collect();
                Dim { source: Source::Context(ids), labels: labels.values }
            }
        }
    }

    /// Calls `f` with each value of the row.
    #[inline]
    fn each(&self, r: &Rollup, key: &Key, mut f: impl FnMut(u32)) {
        match &self.source {
            Source::Context(ids) => f(ids[key.ctx as usize]),
            Source::Name => f(key.name),
            Source::Error => {
                if key.error != NONE {
                    f(key.error)
                }
            }
            Source::Plugin => r.sets.values[key.set as usize].iter().for_each(|p| f(*p)),
        }
    }
}

fn date_cell(ms: i64) -> Cell {
    Cell::Date(DateTime::from_timestamp_millis(ms).expect("time in range").date_naive())
}

/// One query's evaluation.
struct Eval<'a> {
    r: &'a Rollup,
    q: &'a Query,
    /// Contexts that match the app and the context filters.
    ctx_ok: Vec<bool>,
    /// Plugin sets that hold the filtered plugin (all, without the filter).
    set_ok: Vec<bool>,
    universe: (usize, usize),
}

impl<'a> Eval<'a> {
    fn new(r: &'a Rollup, q: &'a Query) -> Eval<'a> {
        let f = &q.filters;
        let ctx_ok = r
            .contexts
            .values
            .iter()
            .map(|c| {
                c.app == q.app
                    && f.env.is_none_or(|e| c.env == e)
                    && f.os.as_ref().is_none_or(|o| &c.os == o)
                    && f.app_version.as_ref().is_none_or(|v| &c.app_version == v)
            })
            .collect();
        let set_ok = match &f.plugin {
            None => vec![true; r.sets.len()],
            Some(p) => match r.plugins.get(p) {
                None => vec![false; r.sets.len()],
                Some(id) => r.sets.values.iter().map(|s| s.contains(&id)).collect(),
            },
        };
        Eval { r, q, ctx_ok, set_ok, universe: (r.projects.len(), r.machines.len()) }
    }

    fn day_range(&self) -> (i64, i64) {
        (self.q.from_ms.div_euclid(DAY_MS), self.q.to_ms.div_euclid(DAY_MS))
    }

    #[inline]
    fn ok(&self, key: &Key) -> bool {
        self.ctx_ok[key.ctx as usize] && self.set_ok[key.set as usize]
    }

    /// Calls `f(day, row)` for each matching folded row of days in `[from, to)`, in day order.
    fn scan(&self, from: i64, to: i64, mut f: impl FnMut(i64, &Row)) {
        if from >= to {
            return;
        }
        for (day, d) in self.r.days.range(from..to) {
            for row in d.rows.iter().filter(|row| self.ok(&row.key)) {
                f(*day, row);
            }
        }
    }

    fn run(self) -> Option<Table> {
        let mut table = Table::new(Table::columns_for(&self.q.kind));
        let (from, to) = self.day_range();
        match &self.q.kind {
            QueryKind::EventsPerDay => {
                let mut c = Counts::new(self.universe.0, self.universe.1);
                let mut current = None;
                let flush = |day: Option<i64>, c: &mut Counts, table: &mut Table| {
                    if let Some(day) = day {
                        let [p, m, e] = c.cells();
                        table.rows.push(vec![date_cell(day * DAY_MS), e, p, m]);
                    }
                    c.clear();
                };
                self.scan(from, to, |day, row| {
                    if current != Some(day) {
                        flush(current, &mut c, &mut table);
                        current = Some(day);
                    }
                    c.add(&row.key, row.events);
                });
                flush(current, &mut c, &mut table);
            }
            QueryKind::Active { windows } => {
                let longest = i64::from(windows.iter().copied().max().unwrap_or(0));
                let mut last_p = vec![i64::MIN; self.universe.0];
                let mut last_m = vec![i64::MIN; self.universe.1];
                self.scan(to - longest, to, |day, row| {
                    last_p[row.key.pid as usize] = day;
                    last_m[row.key.mid as usize] = day;
                });
                for &w in windows {
                    let start = to - i64::from(w);
                    let count = |last: &[i64]| last.iter().filter(|d| **d >= start).count() as i64;
                    table.rows.push(vec![
                        Cell::Int(i64::from(w)),
                        Cell::Int(count(&last_p)),
                        Cell::Int(count(&last_m)),
                    ]);
                }
            }
            QueryKind::TopPlugins { limit } => {
                let mut groups = Groups::<u32>::new(self.universe);
                self.scan(from, to, |_, row| {
                    for p in self.r.sets.values[row.key.set as usize].iter() {
                        groups.get(p).add(&row.key, row.events);
                    }
                });
                table.rows = ranked(groups.drain().into_iter().map(|(p, c, _)| (self.r.plugins.values[p as usize].clone(), c)));
                table.rows.truncate(*limit);
            }
            QueryKind::Split { dimension } => {
                let dim = Dim::new(self.r, *dimension);
                let mut groups = Groups::<u32>::new(self.universe);
                self.scan(from, to, |_, row| dim.each(self.r, &row.key, |v| groups.get(&v).add(&row.key, row.events)));
                table.rows = ranked(groups.drain().into_iter().map(|(v, c, _)| (dim.labels[v as usize].clone(), c)));
            }
            QueryKind::ActiveSeries { window_days } => {
                let w = i64::from(*window_days);
                let last = (self.q.to_ms - 1).div_euclid(DAY_MS);
                let n = (last - from + 1).max(0) as usize;
                let mut diff_p = vec![0i64; n + 1];
                let mut diff_m = vec![0i64; n + 1];
                let mut cov_p = vec![i64::MIN; self.universe.0];
                let mut cov_m = vec![i64::MIN; self.universe.1];
                // A project active on day D counts on days D..D+w-1; intervals arrive in
                // day order, so each extends the union of the previous ones.
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
                    self.scan(from - w + 1, last + 1, |day, row| {
                        cover(&mut cov_p, &mut diff_p, row.key.pid, day);
                        cover(&mut cov_m, &mut diff_m, row.key.mid, day);
                    });
                }
                let (mut p, mut m) = (0, 0);
                for i in 0..n {
                    p += diff_p[i];
                    m += diff_m[i];
                    table.rows.push(vec![date_cell((from + i as i64) * DAY_MS), Cell::Int(p), Cell::Int(m)]);
                }
            }
            QueryKind::Breakdown { period, dimensions, limit } => {
                if dimensions.len() > 2 {
                    return None;
                }
                let dims: Vec<Dim> = dimensions.iter().map(|d| Dim::new(self.r, *d)).collect();
                let tuples: usize = dims.iter().map(|d| d.labels.len().max(1)).product();
                let bytes_per_group = self.universe.0.div_ceil(8) + self.universe.1.div_ceil(8);
                if tuples.saturating_mul(bytes_per_group).saturating_mul(if limit.is_some() { 2 } else { 1 })
                    > MAX_GROUP_BYTES
                {
                    return None;
                }
                let bucket = |day: i64| period.map(|p| p.start_of(day * DAY_MS));
                let mut groups = Groups::<(u32, u32)>::new(self.universe);
                let mut overall = Groups::<(u32, u32)>::new(self.universe);
                let mut period_projects = Bits::new(self.universe.0);
                let mut out: Vec<(Option<i64>, (u32, u32), [Cell; 3], i64, i64)> = Vec::new();
                let mut current: Option<Option<i64>> = None;
                let flush =
                    |b: Option<Option<i64>>, groups: &mut Groups<(u32, u32)>, pp: &mut Bits, out: &mut Vec<_>| {
                        if let Some(b) = b {
                            let total = pp.count();
                            for (t, cells, projects) in groups.drain() {
                                out.push((b, t, cells, projects, total));
                            }
                        }
                        pp.clear();
                    };
                self.scan(from, to, |day, row| {
                    let b = bucket(day);
                    if current != Some(b) {
                        flush(current, &mut groups, &mut period_projects, &mut out);
                        current = Some(b);
                    }
                    period_projects.insert(row.key.pid);
                    let mut each_tuple = |t: (u32, u32)| {
                        groups.get(&t).add(&row.key, row.events);
                        if limit.is_some() {
                            overall.get(&t).add(&row.key, row.events);
                        }
                    };
                    match dims.as_slice() {
                        [] => each_tuple((0, 0)),
                        [a] => a.each(self.r, &row.key, |v| each_tuple((v, 0))),
                        [a, b] => a.each(self.r, &row.key, |v| b.each(self.r, &row.key, |w| each_tuple((v, w)))),
                        _ => unreachable!("at most two dimensions"),
                    }
                });
                flush(current, &mut groups, &mut period_projects, &mut out);
                let label = |t: (u32, u32)| -> Vec<String> {
                    dims.iter().zip([t.0, t.1]).map(|(d, v)| d.labels[v as usize].clone()).collect()
                };
                let keep: Option<std::collections::HashSet<(u32, u32)>> = limit.map(|n| {
                    let mut ranked: Vec<((u32, u32), Vec<String>, i64, i64)> = overall
                        .drain()
                        .into_iter()
                        .map(|(t, cells, projects)| (t, label(t), projects, cells[2].as_int().unwrap_or(0)))
                        .collect();
                    ranked.sort_by(|a, b| b.2.cmp(&a.2).then(b.3.cmp(&a.3)).then(a.1.cmp(&b.1)));
                    ranked.into_iter().take(n).map(|r| r.0).collect()
                });
                let mut rows: Vec<(Option<i64>, Vec<String>, [Cell; 3], i64, i64)> = out
                    .into_iter()
                    .filter(|(_, t, ..)| keep.as_ref().is_none_or(|k| k.contains(t)))
                    .map(|(b, t, cells, projects, total)| (b, label(t), cells, projects, total))
                    .collect();
                rows.sort_by(|a, b| {
                    let events = |r: &(Option<i64>, Vec<String>, [Cell; 3], i64, i64)| r.2[2].as_int().unwrap_or(0);
                    a.0.cmp(&b.0).then(b.3.cmp(&a.3)).then(events(b).cmp(&events(a))).then(a.1.cmp(&b.1))
                });
                for (b, t, cells, _, total) in rows {
                    let mut row = Vec::new();
                    if let Some(b) = b {
                        row.push(date_cell(b));
                    }
                    row.extend(t.into_iter().map(Cell::Text));
                    row.extend(cells);
                    row.push(Cell::Int(total));
                    table.rows.push(row);
                }
            }
            QueryKind::CoUsage { plugin, limit } => {
                let mut total = Bits::new(self.universe.0);
                let mut uses: Vec<Option<Bits>> = vec![None; self.r.plugins.len()];
                self.scan(from, to, |_, row| {
                    total.insert(row.key.pid);
                    for p in self.r.sets.values[row.key.set as usize].iter() {
                        uses[*p as usize].get_or_insert_with(|| Bits::new(self.universe.0)).insert(row.key.pid);
                    }
                });
                let name = |p: usize| self.r.plugins.values[p].as_str();
                let used: Vec<(usize, i64)> =
                    uses.iter().enumerate().filter_map(|(p, b)| b.as_ref().map(|b| (p, b.count()))).collect();
                let per: HashMap<usize, i64> = used.iter().copied().collect();
                let wanted: Vec<usize> = match plugin {
                    Some(p) => self.r.plugins.get(p).map(|id| id as usize).into_iter().filter(|p| per.contains_key(p)).collect(),
                    None => {
                        let mut ranked = used.clone();
                        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(name(a.0).cmp(name(b.0))));
                        ranked.into_iter().take(*limit).map(|(p, _)| p).collect()
                    }
                };
                let partners: Vec<usize> =
                    if plugin.is_some() { used.iter().map(|(p, _)| *p).collect() } else { wanted.clone() };
                let mut rows: Vec<(&str, &str, i64, usize, usize)> = Vec::new();
                for &a in &wanted {
                    for &b in &partners {
                        if a == b {
                            continue;
                        }
                        let (Some(ba), Some(bb)) = (&uses[a], &uses[b]) else { continue };
                        let both = ba.and_count(bb);
                        if both > 0 {
                            rows.push((name(a), name(b), both, a, b));
                        }
                    }
                }
                rows.sort_by(|x, y| y.2.cmp(&x.2).then(x.0.cmp(y.0)).then(x.1.cmp(y.1)));
                if plugin.is_some() {
                    rows.truncate(*limit);
                }
                let total = total.count();
                for (a, b, both, ia, ib) in rows {
                    table.rows.push(vec![
                        Cell::Text(a.into()),
                        Cell::Text(b.into()),
                        Cell::Int(both),
                        Cell::Int(per[&ia]),
                        Cell::Int(per[&ib]),
                        Cell::Int(total),
                    ]);
                }
            }
            QueryKind::Durations { event, period, dimension } => {
                let Some(name) = self.r.names.get(event) else { return Some(table) };
                let dim = dimension.map(|d| Dim::new(self.r, d));
                let mut groups: BTreeMap<(Option<i64>, Option<String>), (Vec<u64>, Bits)> = BTreeMap::new();
                for (day, d) in self.r.days.range(from..to) {
                    let b = period.map(|p| p.start_of(day * DAY_MS));
                    for t in d.timed.iter().filter(|t| t.key.name == name && self.ok(&t.key)) {
                        let mut add = |label: Option<String>| {
                            let g = groups.entry((b, label)).or_insert_with(|| (Vec::new(), Bits::new(self.universe.0)));
                            g.0.push(t.duration);
                            g.1.insert(t.key.pid);
                        };
                        match &dim {
                            None => add(None),
                            Some(dim) => dim.each(self.r, &t.key, |v| add(Some(dim.labels[v as usize].clone()))),
                        }
                    }
                }
                for ((b, label), (mut durations, projects)) in groups {
                    durations.sort_unstable();
                    let mut row = Vec::new();
                    if let Some(b) = b {
                        row.push(date_cell(b));
                    }
                    if let Some(label) = label {
                        row.push(Cell::Text(label));
                    }
                    row.push(Cell::Int(durations.len() as i64));
                    row.push(Cell::Int(projects.count()));
                    for pct in [50, 90, 99] {
                        row.push(Cell::Int(crate::memory::nearest_rank(&durations, pct)));
                    }
                    table.rows.push(row);
                }
            }
            QueryKind::Retention { weeks } => {
                let week = Period::Week;
                let mut first = vec![i64::MAX; self.universe.0];
                let mut active: BTreeMap<i64, Bits> = BTreeMap::new();
                self.scan(i64::MIN, i64::MAX, |day, row| {
                    let w = week.start_of(day * DAY_MS);
                    let f = &mut first[row.key.pid as usize];
                    *f = (*f).min(w);
                    active.entry(w).or_insert_with(|| Bits::new(self.universe.0)).insert(row.key.pid);
                });
                let mut cohorts: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
                for (pid, &c) in first.iter().enumerate() {
                    if c != i64::MAX && c + week.len_ms() > self.q.from_ms && c < self.q.to_ms {
                        cohorts.entry(c).or_default().push(pid as u32);
                    }
                }
                for (cohort, pids) in cohorts {
                    for n in 0..=i64::from(*weeks) {
                        let w = cohort + n * week.len_ms();
                        if w >= self.q.to_ms {
                            break;
                        }
                        let count = active.get(&w).map_or(0, |a| pids.iter().filter(|p| a.contains(**p)).count());
                        table.rows.push(vec![date_cell(cohort), Cell::Int(n), Cell::Int(count as i64)]);
                    }
                }
            }
        }
        Some(table)
    }
}

/// Rows ordered by projects descending, events descending, then label.
fn ranked(groups: impl Iterator<Item = (String, [Cell; 3])>) -> Vec<Vec<Cell>> {
    let mut rows: Vec<(String, [Cell; 3])> = groups.collect();
    let key = |c: &[Cell; 3]| (c[0].as_int().unwrap_or(0), c[2].as_int().unwrap_or(0));
    rows.sort_by(|(la, a), (lb, b)| {
        let (pa, ea) = key(a);
        let (pb, eb) = key(b);
        pb.cmp(&pa).then(eb.cmp(&ea)).then(la.cmp(lb))
    });
    rows.into_iter()
        .map(|(label, cells)| {
            let mut row = vec![Cell::Text(label)];
            row.extend(cells);
            row
        })
        .collect()
}

/// A test backend: rows in memory, answers from a [`Rollup`] when it can.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Mutex;

    use super::Rollup;
    use crate::{AppendStatus, EventRow, EventStore, KnownValues, MemoryStore, ProjectKey, Query, StoreError, Table};

    #[derive(Debug, Default)]
    pub(crate) struct RolledUp {
        raw: MemoryStore,
        kept: Mutex<(Vec<EventRow>, Option<Rollup>)>,
    }

    impl RolledUp {
        fn rebuild(state: &mut (Vec<EventRow>, Option<Rollup>)) {
            let mut r = Rollup::new();
            r.add(&state.0);
            state.1 = Some(r);
        }
    }

    impl EventStore for RolledUp {
        fn append(&self, rows: &[EventRow]) -> Result<Vec<AppendStatus>, StoreError> {
            let status = self.raw.append(rows)?;
            let inserted: Vec<EventRow> =
                rows.iter().zip(&status).filter(|(_, s)| **s == AppendStatus::Inserted).map(|(r, _)| r.clone()).collect();
            let mut state = self.kept.lock().expect("lock");
            state.1.get_or_insert_with(Rollup::new).add(&inserted);
            state.0.extend(inserted);
            Ok(status)
        }
        fn query(&self, q: &Query) -> Result<Table, StoreError> {
            q.validate()?;
            let state = self.kept.lock().expect("lock");
            match state.1.as_ref().and_then(|r| r.answer(q)) {
                Some(t) => Ok(t),
                None if q.from_ms % crate::DAY_MS == 0 && q.to_ms % crate::DAY_MS == 0 && state.1.is_some() => {
                    panic!("a whole-day query the rollup did not answer: {q:?}")
                }
                None => self.raw.query(q),
            }
        }
        fn erase_project(&self, project: &ProjectKey) -> Result<u64, StoreError> {
            let mut state = self.kept.lock().expect("lock");
            state.0.retain(|r| r.project != *project);
            if let Some(r) = state.1.as_mut() {
                r.remove_project(project);
            }
            self.raw.erase_project(project)
        }
        fn apply_retention(&self, before_ms: i64) -> Result<u64, StoreError> {
            let mut state = self.kept.lock().expect("lock");
            state.0.retain(|r| r.occurred_at_ms >= before_ms);
            Self::rebuild(&mut state);
            self.raw.apply_retention(before_ms)
        }
        fn known_values(&self, app: &str) -> Result<KnownValues, StoreError> {
            self.raw.known_values(app)
        }
        fn count_events(&self) -> Result<u64, StoreError> {
            self.raw.count_events()
        }
    }
}
