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
struct Interner<T, S = std::hash::RandomState> {
    ids: HashMap<T, u32, S>,
    values: Vec<T>,
}

impl<T, S: Default> Default for Interner<T, S> {
    fn default() -> Self {
        Interner { ids: HashMap::default(), values: Vec::new() }
    }
}

/// Hashes project and machine keys by their first eight bytes: they are keyed hashes
/// already, uniformly distributed, so hashing them again only costs time.
#[derive(Debug, Default, Clone, Copy)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }
}

type KeyInterner = Interner<Key16, std::hash::BuildHasherDefault<KeyHasher>>;

impl<T: Hash + Eq + Clone, S: std::hash::BuildHasher> Interner<T, S> {
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

impl Interner<String> {
    /// [`Interner::id`] without allocating when the value is known.
    fn id_str(&mut self, v: &str) -> u32 {
        match self.ids.get(v) {
            Some(id) => *id,
            None => self.id(&v.to_string()),
        }
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
    /// Durations by event name number.
    timed: HashMap<u32, Vec<Timed>>,
    /// Length of `rows` after the last fold.
    folded: usize,
    /// The index of `rows[..index.rows]`, rebuilt when the rows not covered grow.
    index: Option<DayIndex>,
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
        self.index = None;
    }

    /// The rows the index does not cover.
    fn tail(&self) -> &[Row] {
        &self.rows[self.index.as_ref().map_or(0, |i| i.rows)..]
    }
}

/// A set of dense numbers: a sorted list or a bitset, whichever is smaller.
#[derive(Debug)]
enum Set {
    List(Box<[u32]>),
    Dense(Box<[u64]>),
}

impl Slice {
    fn new(projects: Set, machines: Set, events: i64) -> Slice {
        let counts = (projects.len(), machines.len());
        Slice { projects, machines, events, counts }
    }
}

impl Set {
    fn len(&self) -> i64 {
        match self {
            Set::List(ids) => ids.len() as i64,
            Set::Dense(words) => words.iter().map(|w| i64::from(w.count_ones())).sum(),
        }
    }

    fn from_ids(mut ids: Vec<u32>) -> Set {
        ids.sort_unstable();
        ids.dedup();
        let words = ids.last().map_or(0, |m| (*m as usize + 1).div_ceil(64));
        if ids.len() * 4 > words * 8 {
            let mut bits = vec![0u64; words];
            for i in ids {
                bits[(i >> 6) as usize] |= 1 << (i & 63);
            }
            Set::Dense(bits.into_boxed_slice())
        } else {
            Set::List(ids.into_boxed_slice())
        }
    }
}

/// Distinct projects and machines and an event count, of one value on one day.
#[derive(Debug)]
struct Slice {
    projects: Set,
    machines: Set,
    events: i64,
    /// The sizes of `projects` and `machines`.
    counts: (i64, i64),
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

/// Per value of every dimension, the day's distinct projects and machines: what queries
/// without filters read instead of the rows.
#[derive(Debug)]
struct DayIndex {
    /// How many of the day's rows it covers.
    rows: usize,
    all: Slice,
    /// Per dimension (in [`Dimension::ALL`] order), the slices by value number.
    by: Vec<Vec<(u32, Slice)>>,
    /// Per (plugin, env value) pair: "is feature X used in production?".
    plugin_env: Vec<((u32, u32), Slice)>,
}

/// A slot per [`Dimension::ALL`] entry.
fn slot(d: Dimension) -> usize {
    Dimension::ALL.iter().position(|x| *x == d).expect("every dimension is in ALL")
}

/// The dimensions read from the context, in the order of [`Rollup::ctx_values`].
const CONTEXT_DIMS: [Dimension; 10] = [
    Dimension::Env,
    Dimension::Os,
    Dimension::Arch,
    Dimension::Runtime,
    Dimension::RuntimeVersion,
    Dimension::AppVersion,
    Dimension::Ci,
    Dimension::Container,
    Dimension::RuntimeMajor,
    Dimension::RuntimeMinor,
];

fn context_slot(d: Dimension) -> Option<usize> {
    CONTEXT_DIMS.iter().position(|x| *x == d)
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
    projects: KeyInterner,
    machines: KeyInterner,
    contexts: Interner<Context>,
    /// Per context: its app's number and its value number for each of [`CONTEXT_DIMS`].
    ctx_app: Vec<u32>,
    ctx_values: Vec<[u32; 10]>,
    apps: Interner<String>,
    context_labels: [Interner<String>; 10],
    names: Interner<String>,
    errors: Interner<String>,
    plugins: Interner<String>,
    sets: Interner<Box<[u32]>>,
    /// By (app number, UTC day number).
    days: BTreeMap<(u32, i64), Day>,
    /// By (app number, day number of the Monday): the union of the week's day indexes,
    /// dropped when one of them changes and rebuilt after.
    weeks: BTreeMap<(u32, i64), DayIndex>,
    /// By (app number, day number of the Monday starting a 28-day block): the union of
    /// the block's week indexes.
    blocks: BTreeMap<(u32, i64), DayIndex>,
    last_ctx: Option<u32>,
    /// A day is re-indexed once this many of its rows (and an eighth of them) are not
    /// covered by its index.
    reindex_after: usize,
}

impl Rollup {
    /// An empty rollup.
    pub fn new() -> Rollup {
        let mut r = Rollup { reindex_after: 1024, ..Rollup::default() };
        r.sets.id(&Box::from([]));
        r
    }

    /// Sets how many rows a day gathers beyond its index before it is re-indexed (default
    /// 1024; 0 re-indexes on every append, which tests use to cover the indexes).
    pub fn set_reindex_after(&mut self, rows: usize) {
        self.reindex_after = rows;
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
        let mut ids: Vec<u32> = plugins.iter().map(|p| self.plugins.id_str(p)).collect();
        ids.sort_unstable();
        ids.dedup();
        self.sets.id(&ids.into_boxed_slice())
    }

    fn context_id(&mut self, c: &Context) -> u32 {
        let before = self.contexts.len();
        let id = self.contexts.id(c);
        if self.contexts.len() > before {
            self.ctx_app.push(self.apps.id(&c.app));
            let mut values = [0; 10];
            for (i, d) in CONTEXT_DIMS.iter().enumerate() {
                values[i] = self.context_labels[i].id(&c.value(*d).expect("a context dimension"));
            }
            self.ctx_values.push(values);
        }
        id
    }

    fn push(&mut self, day: i64, key: Key, events: u32, durations: impl Iterator<Item = u64>) {
        let app = self.ctx_app[key.ctx as usize];
        let d = self.days.entry((app, day)).or_default();
        d.rows.push(Row { key, events });
        let mut durations = durations.peekable();
        if durations.peek().is_some() {
            d.timed.entry(key.name).or_default().extend(durations.map(|duration| Timed { key, duration }));
        }
        if d.rows.len() >= 2 * d.folded + 4096 {
            d.fold();
            self.weeks.remove(&(app, monday(day)));
            self.blocks.remove(&(app, block(day)));
        }
    }

    /// Adds stored rows (each exactly once: only rows the backend inserted), then brings
    /// the day indexes up to date where many rows are not covered yet.
    pub fn add<'r>(&mut self, rows: impl IntoIterator<Item = &'r EventRow>) {
        for r in rows {
            let ctx = match self.last_ctx {
                Some(c) if self.contexts.values[c as usize].same_as(r) => c,
                _ => {
                    let c = self.context_id(&Context::of(r));
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
        self.reindex(false);
    }

    /// Adds a group read back from raw rows (call [`Rollup::finish_load`] after the last).
    pub fn add_group(&mut self, g: &Group<'_>) {
        let key = Key {
            pid: self.projects.id(&g.project),
            mid: self.machines.id(&g.machine),
            ctx: self.context_id(g.context),
            name: self.names.id_str(g.event),
            error: g.error_kind.map_or(NONE, |e| self.errors.id_str(e)),
            set: self.set_id(g.plugins),
        };
        self.push(g.day, key, g.events, g.durations.iter().copied());
    }

    /// Folds and indexes every day (after a bulk load).
    pub fn finish_load(&mut self) {
        let mut days: Vec<&mut Day> = self.days.values_mut().collect();
        let chunk = days.len().div_ceil(parallelism()).max(1);
        std::thread::scope(|scope| {
            for part in days.chunks_mut(chunk) {
                scope.spawn(move || part.iter_mut().for_each(|d| d.fold()));
            }
        });
        self.weeks.clear();
        self.blocks.clear();
        self.reindex(true);
    }

    /// Rebuilds the index of each day whose uncovered rows are many (`all`: every day
    /// with any).
    fn reindex(&mut self, all: bool) {
        let keys: Vec<(u32, i64)> = self
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
        let indexes: Vec<((u32, i64), DayIndex)> = in_parts(|part, parts| {
            keys.iter()
                .enumerate()
                .filter(|(i, _)| i % parts == part)
                .map(|(_, k)| (*k, self.build_index(&self.days[k].rows)))
                .collect::<Vec<_>>()
        })
        .into_iter()
        .flatten()
        .collect();
        for (k, index) in indexes {
            self.days.get_mut(&k).expect("day present").index = Some(index);
            self.weeks.remove(&(k.0, monday(k.1)));
            self.blocks.remove(&(k.0, block(k.1)));
        }
        self.rebuild_weeks();
    }

    /// Builds the index of every week that has none and whose days all have one.
    fn rebuild_weeks(&mut self) {
        let mut wanted: Vec<(u32, i64)> = self.days.keys().map(|(app, day)| (*app, monday(*day))).collect();
        wanted.dedup();
        wanted.retain(|k| !self.weeks.contains_key(k));
        if wanted.is_empty() {
            return self.rebuild_blocks();
        }
        let universe = (self.projects.len(), self.machines.len());
        let built: Vec<((u32, i64), DayIndex)> = in_parts(|part, parts| {
            let mut out = Vec::new();
            for (i, &(app, m)) in wanted.iter().enumerate() {
                if i % parts != part {
                    continue;
                }
                let days: Option<Vec<&DayIndex>> =
                    self.days.range((app, m)..(app, m + 7)).map(|(_, d)| d.index.as_ref()).collect();
                if let Some(days) = days {
                    out.push(((app, m), merge(&days, universe)));
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
        let mut wanted: Vec<(u32, i64)> = self.days.keys().map(|(app, day)| (*app, block(*day))).collect();
        wanted.dedup();
        wanted.retain(|k| !self.blocks.contains_key(k));
        if wanted.is_empty() {
            return;
        }
        let universe = (self.projects.len(), self.machines.len());
        let built: Vec<((u32, i64), DayIndex)> = in_parts(|part, parts| {
            let mut out = Vec::new();
            'blocks: for (i, &(app, b)) in wanted.iter().enumerate() {
                if i % parts != part {
                    continue;
                }
                let mut weeks = Vec::new();
                for m in (0..4).map(|w| b + 7 * w) {
                    if self.days.range((app, m)..(app, m + 7)).next().is_none() {
                        continue;
                    }
                    match self.weeks.get(&(app, m)) {
                        Some(w) => weeks.push(w),
                        None => continue 'blocks,
                    }
                }
                out.push(((app, b), merge(&weeks, universe)));
            }
            out
        })
        .into_iter()
        .flatten()
        .collect();
        self.blocks.extend(built);
    }

    fn build_index(&self, rows: &[Row]) -> DayIndex {
        let mut all = SliceBuilder::default();
        let mut by: Vec<Vec<SliceBuilder>> = Dimension::ALL.iter().map(|_| Vec::new()).collect();
        let mut plugin_env: HashMap<(u32, u32), SliceBuilder> = HashMap::new();
        let (event, error, plugin) = (slot(Dimension::Event), slot(Dimension::ErrorKind), slot(Dimension::Plugin));
        let ctx_slots: Vec<usize> = CONTEXT_DIMS.iter().map(|d| slot(*d)).collect();
        for row in rows {
            all.add(row);
            let values = &self.ctx_values[row.key.ctx as usize];
            for (i, s) in ctx_slots.iter().enumerate() {
                add_at(&mut by[*s], values[i], row);
            }
            add_at(&mut by[event], row.key.name, row);
            if row.key.error != NONE {
                add_at(&mut by[error], row.key.error, row);
            }
            for p in self.sets.values[row.key.set as usize].iter() {
                add_at(&mut by[plugin], *p, row);
                plugin_env.entry((*p, values[0])).or_default().add(row);
            }
        }
        let by = by
            .into_iter()
            .map(|v| {
                v.into_iter().enumerate().filter(|(_, b)| b.events > 0).map(|(i, b)| (i as u32, b.build())).collect()
            })
            .collect();
        let mut plugin_env: Vec<((u32, u32), Slice)> = plugin_env.into_iter().map(|(k, b)| (k, b.build())).collect();
        plugin_env.sort_by_key(|(k, _)| *k);
        DayIndex { rows: rows.len(), all: all.build(), by, plugin_env }
    }

    /// Removes every row of a project.
    pub fn remove_project(&mut self, project: &Key16) {
        let Some(pid) = self.projects.get(project) else { return };
        for d in self.days.values_mut() {
            let before = d.rows.len();
            d.rows.retain(|r| r.key.pid != pid);
            d.timed.values_mut().for_each(|t| t.retain(|t| t.key.pid != pid));
            d.folded = d.folded.min(d.rows.len());
            if d.rows.len() != before {
                d.index = None;
            }
        }
        self.days.retain(|_, d| !d.rows.is_empty());
        self.weeks.clear();
        self.blocks.clear();
        self.reindex(true);
    }

    /// Removes the days before `day` and the whole of `day` (the backend adds back what it
    /// keeps of a partly deleted day).
    pub fn remove_days_through(&mut self, day: i64) {
        self.days.retain(|(_, d), _| *d > day);
        self.weeks.retain(|(_, m), _| *m > day);
        self.blocks.retain(|(_, b), _| *b > day);
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

/// The day number of the Monday starting the week of `day`.
fn monday(day: i64) -> i64 {
    Period::Week.start_of(day * DAY_MS) / DAY_MS
}

/// The day number of the Monday starting the 28-day block of `day` (blocks count from
/// Monday 1970-01-05, day 4).
fn block(day: i64) -> i64 {
    let m = monday(day);
    m - (m - 4).rem_euclid(28)
}

/// The largest span a query may read as one index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Span {
    Day,
    Week,
    Block,
}

/// The union of sets, as a set.
fn merge_sets<'s>(sets: impl Iterator<Item = &'s Set>, universe: usize) -> Set {
    let mut words = vec![0u64; universe.div_ceil(64)];
    for set in sets {
        match set {
            Set::List(ids) => ids.iter().for_each(|i| words[(i >> 6) as usize] |= 1 << (i & 63)),
            Set::Dense(d) => words.iter_mut().zip(d.iter()).for_each(|(w, x)| *w |= x),
        }
    }
    let used = words.iter().rposition(|w| *w != 0).map_or(0, |i| i + 1);
    words.truncate(used);
    let n: usize = words.iter().map(|w| w.count_ones() as usize).sum();
    if n * 4 > used * 8 {
        Set::Dense(words.into_boxed_slice())
    } else {
        let mut ids = Vec::with_capacity(n);
        for (i, w) in words.iter().enumerate() {
            let mut w = *w;
            while w != 0 {
                ids.push(i as u32 * 64 + w.trailing_zeros());
                w &= w - 1;
            }
        }
        Set::List(ids.into_boxed_slice())
    }
}

fn merge_slices(slices: &[&Slice], universe: (usize, usize)) -> Slice {
    Slice::new(
        merge_sets(slices.iter().map(|s| &s.projects), universe.0),
        merge_sets(slices.iter().map(|s| &s.machines), universe.1),
        slices.iter().map(|s| s.events).sum(),
    )
}

/// The index of the union of days.
fn merge(days: &[&DayIndex], universe: (usize, usize)) -> DayIndex {
    let all: Vec<&Slice> = days.iter().map(|d| &d.all).collect();
    let by = (0..Dimension::ALL.len())
        .map(|s| {
            let mut values: BTreeMap<u32, Vec<&Slice>> = BTreeMap::new();
            for d in days {
                for (v, slice) in &d.by[s] {
                    values.entry(*v).or_default().push(slice);
                }
            }
            values.into_iter().map(|(v, slices)| (v, merge_slices(&slices, universe))).collect()
        })
        .collect();
    let mut pairs: BTreeMap<(u32, u32), Vec<&Slice>> = BTreeMap::new();
    for d in days {
        for (k, slice) in &d.plugin_env {
            pairs.entry(*k).or_default().push(slice);
        }
    }
    DayIndex {
        rows: 0,
        all: merge_slices(&all, universe),
        by,
        plugin_env: pairs.into_iter().map(|(k, slices)| (k, merge_slices(&slices, universe))).collect(),
    }
}

/// Grows `v` to hold `i` and adds the row to the slice builder there.
#[inline]
fn add_at(v: &mut Vec<SliceBuilder>, i: u32, row: &Row) {
    if v.len() <= i as usize {
        v.resize_with(i as usize + 1, SliceBuilder::default);
    }
    v[i as usize].add(row);
}

/// A set of dense numbers. While sparse it remembers which words it touched, so that
/// counting and clearing cost what was inserted; once a bitset is merged in it switches to
/// whole-array operations, which the compiler vectorizes.
#[derive(Debug, Clone)]
struct Bits {
    words: Vec<u64>,
    touched: Vec<u32>,
    dense: bool,
}

impl Bits {
    fn new(universe: usize) -> Bits {
        Bits { words: vec![0; universe.div_ceil(64)], touched: Vec::new(), dense: false }
    }

    #[inline]
    fn insert(&mut self, i: u32) {
        let w = (i >> 6) as usize;
        let x = self.words[w];
        if x == 0 && !self.dense {
            self.touched.push(w as u32);
        }
        self.words[w] = x | (1 << (i & 63));
    }

    fn union(&mut self, set: &Set) {
        match set {
            // A long list makes the set dense enough for whole-array operations, and
            // inserting without bookkeeping has no unpredictable branch.
            Set::List(ids) if self.dense || ids.len() * 8 > self.words.len() => {
                self.dense = true;
                self.touched.clear();
                for &i in ids.iter() {
                    self.words[(i >> 6) as usize] |= 1 << (i & 63);
                }
            }
            Set::List(ids) => ids.iter().for_each(|i| self.insert(*i)),
            Set::Dense(words) => {
                self.dense = true;
                self.touched.clear();
                self.words.iter_mut().zip(words.iter()).for_each(|(mine, theirs)| *mine |= theirs);
            }
        }
    }

    fn contains(&self, i: u32) -> bool {
        self.words[(i >> 6) as usize] & (1 << (i & 63)) != 0
    }

    fn count(&self) -> i64 {
        if self.dense {
            return self.words.iter().map(|w| i64::from(w.count_ones())).sum();
        }
        self.touched.iter().map(|&w| i64::from(self.words[w as usize].count_ones())).sum()
    }

    fn clear(&mut self) {
        if self.dense {
            self.words.iter_mut().for_each(|w| *w = 0);
            self.dense = false;
        } else {
            for &w in &self.touched {
                self.words[w as usize] = 0;
            }
        }
        self.touched.clear();
    }

    fn and_count(&self, other: &Bits) -> i64 {
        if self.dense && other.dense {
            return self.words.iter().zip(&other.words).map(|(a, b)| i64::from((a & b).count_ones())).sum();
        }
        let (small, big) = match (self.dense, other.dense) {
            (false, true) => (self, other),
            (true, false) => (other, self),
            _ if self.touched.len() <= other.touched.len() => (self, other),
            _ => (other, self),
        };
        small.touched.iter().map(|&w| i64::from((small.words[w as usize] & big.words[w as usize]).count_ones())).sum()
    }

    /// The numbers in the set and not in `other`.
    fn minus(&self, other: &Bits) -> Vec<u32> {
        let mut out = Vec::new();
        let mut take = |i: usize| {
            let mut w = self.words[i] & !other.words[i];
            while w != 0 {
                out.push(i as u32 * 64 + w.trailing_zeros());
                w &= w - 1;
            }
        };
        if self.dense {
            (0..self.words.len()).for_each(&mut take);
        } else {
            let mut touched = self.touched.clone();
            touched.sort_unstable();
            touched.into_iter().for_each(|i| take(i as usize));
        }
        out
    }
}

/// Distinct projects and machines and an event count. A group made of one index slice
/// alone takes that slice's precomputed counts, without copying its sets.
#[derive(Debug, Clone)]
struct Counts<'a> {
    projects: Bits,
    machines: Bits,
    events: i64,
    /// The only thing added so far, when it is one slice.
    pending: Option<&'a Slice>,
    /// Nothing added since the last clear.
    fresh: bool,
}

impl<'a> Counts<'a> {
    fn new(universe: (usize, usize)) -> Counts<'a> {
        Counts {
            projects: Bits::new(universe.0),
            machines: Bits::new(universe.1),
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
    fn add(&mut self, row: &Row) {
        if self.pending.is_some() || self.fresh {
            self.materialize();
        }
        self.projects.insert(row.key.pid);
        self.machines.insert(row.key.mid);
        self.events += i64::from(row.events);
    }

    fn union(&mut self, s: &'a Slice) {
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

    fn clear(&mut self) {
        self.projects.clear();
        self.machines.clear();
        self.events = 0;
        self.pending = None;
        self.fresh = true;
    }

    fn events(&self) -> i64 {
        self.pending.map_or(self.events, |s| s.events)
    }

    fn project_count(&self) -> i64 {
        self.pending.map_or_else(|| self.projects.count(), |s| s.counts.0)
    }

    fn cells(&self) -> [Cell; 3] {
        match self.pending {
            Some(s) => [Cell::Int(s.counts.0), Cell::Int(s.counts.1), Cell::Int(s.events)],
            None => [Cell::Int(self.projects.count()), Cell::Int(self.machines.count()), Cell::Int(self.events)],
        }
    }
}

/// Groups of [`Counts`] by a dense key, their storage reused after [`Groups::drain`].
struct Groups<'a> {
    slots: Vec<u32>,
    keys: Vec<usize>,
    counts: Vec<Counts<'a>>,
    universe: (usize, usize),
}

impl<'a> Groups<'a> {
    fn new(universe: (usize, usize), keys: usize) -> Self {
        Groups { slots: vec![u32::MAX; keys], keys: Vec::new(), counts: Vec::new(), universe }
    }

    #[inline]
    fn get(&mut self, k: usize) -> &mut Counts<'a> {
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

    /// The groups (key, cells, projects), then empties them for reuse.
    fn drain(&mut self) -> Vec<(usize, [Cell; 3], i64)> {
        let out = self
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let c = &self.counts[i];
                (*k, c.cells(), c.project_count())
            })
            .collect();
        for (i, k) in self.keys.drain(..).enumerate() {
            self.slots[k] = u32::MAX;
            self.counts[i].clear();
        }
        out
    }
}

/// A dimension resolved against the dictionaries: how to find a folded row's values, and
/// their labels.
struct Dim {
    dimension: Dimension,
    context: Option<usize>,
    labels: Vec<String>,
}

impl Dim {
    fn new(r: &Rollup, d: Dimension) -> Dim {
        let context = context_slot(d);
        let labels = match (d, context) {
            (_, Some(i)) => r.context_labels[i].values.clone(),
            (Dimension::Event, _) => r.names.values.clone(),
            (Dimension::ErrorKind, _) => r.errors.values.clone(),
            _ => r.plugins.values.clone(),
        };
        Dim { dimension: d, context, labels }
    }

    /// Calls `f` with each value of the row (none, one, or one per plugin).
    #[inline]
    fn each(&self, r: &Rollup, key: &Key, mut f: impl FnMut(u32)) {
        match (self.context, self.dimension) {
            (Some(i), _) => f(r.ctx_values[key.ctx as usize][i]),
            (None, Dimension::Event) => f(key.name),
            (None, Dimension::ErrorKind) => {
                if key.error != NONE {
                    f(key.error)
                }
            }
            _ => r.sets.values[key.set as usize].iter().for_each(|p| f(*p)),
        }
    }
}

/// How many threads rollup work uses: the cores, at most 4.
fn parallelism() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4)
}

/// Runs `f(part, parts)` for each part on its own thread (the first on this one) and
/// returns the results in part order. Group work is split by group key (`key % parts ==
/// part`), so the parts never share a group.
fn in_parts<T: Send>(f: impl Fn(usize, usize) -> T + Sync) -> Vec<T> {
    let parts = parallelism();
    if parts == 1 {
        return vec![f(0, 1)];
    }
    std::thread::scope(|scope| {
        let f = &f;
        let others: Vec<_> = (1..parts).map(|part| scope.spawn(move || f(part, parts))).collect();
        let mut out = vec![f(0, parts)];
        out.extend(others.into_iter().map(|h| h.join().expect("a rollup worker panicked")));
        out
    })
}

fn date_cell(ms: i64) -> Cell {
    Cell::Date(DateTime::from_timestamp_millis(ms).expect("time in range").date_naive())
}

/// What a day offers a query: its index (only for queries without filters, which are
/// what the index holds) and the rows the index does not cover.
struct DayView<'a> {
    /// The day, or the Monday of a week.
    day: i64,
    index: Option<&'a DayIndex>,
    rows: Vec<&'a [Row]>,
}

/// One query's evaluation.
struct Eval<'a> {
    r: &'a Rollup,
    q: &'a Query,
    app: Option<u32>,
    /// Contexts that match the app and the context filters.
    ctx_ok: Vec<bool>,
    /// Plugin sets that hold the filtered plugin (all, without the filter).
    set_ok: Vec<bool>,
    /// No filters: day indexes apply.
    indexed: bool,
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
        let indexed = *f == crate::Filters::default();
        Eval { r, q, app: r.apps.get(&q.app), ctx_ok, set_ok, indexed, universe: (r.projects.len(), r.machines.len()) }
    }

    fn day_range(&self) -> (i64, i64) {
        (self.q.from_ms.div_euclid(DAY_MS), self.q.to_ms.div_euclid(DAY_MS))
    }

    #[inline]
    fn ok(&self, key: &Key) -> bool {
        self.ctx_ok[key.ctx as usize] && self.set_ok[key.set as usize]
    }

    /// The app's days in `[from, to)`, in order. With `use_index` (and a query the
    /// indexes hold), each day's index and the rows it does not cover, else all rows; with
    /// `weeks` too, whole Monday-to-Sunday weeks inside the range come as one view with the
    /// week's index.
    fn days(&self, from: i64, to: i64, use_index: bool, span: Span) -> Vec<DayView<'a>> {
        let Some(app) = self.app else { return Vec::new() };
        if from >= to {
            return Vec::new();
        }
        let indexed = use_index && self.indexed;
        let mut out: Vec<DayView<'a>> = Vec::new();
        let r = self.r;
        for (&(_, day), d) in r.days.range((app, from)..(app, to)) {
            let b = block(day);
            if indexed
                && span == Span::Block
                && b >= from
                && b + 28 <= to
                && let Some(blk) = r.blocks.get(&(app, b))
            {
                match out.last_mut() {
                    Some(v) if v.day == b && v.index.is_some_and(|i| std::ptr::eq(i, blk)) => v.rows.push(d.tail()),
                    _ => out.push(DayView { day: b, index: Some(blk), rows: vec![d.tail()] }),
                }
                continue;
            }
            let m = monday(day);
            if indexed
                && span >= Span::Week
                && m >= from
                && m + 7 <= to
                && let Some(week) = r.weeks.get(&(app, m))
            {
                match out.last_mut() {
                    Some(v) if v.day == m && v.index.is_some_and(|i| std::ptr::eq(i, week)) => v.rows.push(d.tail()),
                    _ => out.push(DayView { day: m, index: Some(week), rows: vec![d.tail()] }),
                }
                continue;
            }
            out.push(match (&d.index, indexed) {
                (Some(ix), true) => DayView { day, index: Some(ix), rows: vec![d.tail()] },
                _ => DayView { day, index: None, rows: vec![&d.rows] },
            });
        }
        out
    }

    /// Calls `f` with each matching row of the view.
    #[inline]
    fn rows<'v>(&'v self, v: &'v DayView<'a>) -> impl Iterator<Item = &'a Row> + 'v {
        v.rows.iter().flat_map(|rows| rows.iter()).filter(move |row| self.ok(&row.key))
    }

    /// Adds every matching event of days `[from, to)` to `c`.
    fn union(&self, from: i64, to: i64, c: &mut Counts<'a>) {
        for v in self.days(from, to, true, Span::Block) {
            if let Some(ix) = v.index {
                c.union(&ix.all);
            }
            for row in self.rows(&v) {
                c.add(row);
            }
        }
    }

    /// Adds every matching event of days `[from, to)` to the group of each of its values of
    /// `dim` (keyed by value number).
    /// The groups (value number, cells, projects) of every matching event of days
    /// `[from, to)` by its values of `dim`, computed in parts on several threads.
    fn group_by(&self, from: i64, to: i64, dim: &Dim) -> Vec<(usize, [Cell; 3], i64)> {
        let s = slot(dim.dimension);
        let views = self.days(from, to, true, Span::Block);
        in_parts(|part, parts| {
            let mine = |v: u32| v as usize % parts == part;
            let mut groups = Groups::new(self.universe, dim.labels.len());
            for v in &views {
                if let Some(ix) = v.index {
                    for (value, slice) in ix.by[s].iter().filter(|(value, _)| mine(*value)) {
                        groups.get(*value as usize).union(slice);
                    }
                }
                for row in self.rows(v) {
                    dim.each(self.r, &row.key, |value| {
                        if mine(value) {
                            groups.get(value as usize).add(row)
                        }
                    });
                }
            }
            groups.drain()
        })
        .into_iter()
        .flatten()
        .collect()
    }

    fn run(self) -> Option<Table> {
        let mut table = Table::new(Table::columns_for(&self.q.kind));
        let (from, to) = self.day_range();
        match &self.q.kind {
            QueryKind::EventsPerDay => {
                let mut c = Counts::new(self.universe);
                for v in self.days(from, to, true, Span::Day) {
                    if let Some(ix) = v.index {
                        c.union(&ix.all);
                    }
                    for row in self.rows(&v) {
                        c.add(row);
                    }
                    if c.events() > 0 {
                        let [p, m, e] = c.cells();
                        table.rows.push(vec![date_cell(v.day * DAY_MS), e, p, m]);
                    }
                    c.clear();
                }
            }
            QueryKind::Active { windows } => {
                let mut c = Counts::new(self.universe);
                for &w in windows {
                    self.union(to - i64::from(w), to, &mut c);
                    let [p, m, _] = c.cells();
                    table.rows.push(vec![Cell::Int(i64::from(w)), p, m]);
                    c.clear();
                }
            }
            QueryKind::TopPlugins { limit } => {
                let dim = Dim::new(self.r, Dimension::Plugin);
                let groups = self.group_by(from, to, &dim);
                table.rows = ranked(groups.into_iter().map(|(v, c, _)| (dim.labels[v].clone(), c)));
                table.rows.truncate(*limit);
            }
            QueryKind::Split { dimension } => {
                let dim = Dim::new(self.r, *dimension);
                let groups = self.group_by(from, to, &dim);
                table.rows = ranked(groups.into_iter().map(|(v, c, _)| (dim.labels[v].clone(), c)));
            }
            QueryKind::ActiveSeries { window_days } => {
                let w = i64::from(*window_days);
                let last = (self.q.to_ms - 1).div_euclid(DAY_MS);
                if self.indexed {
                    // Each day's window is a union of whole-day sets.
                    let mut c = Counts::new(self.universe);
                    for day in from..=last {
                        if w > 0 {
                            self.union(day - w + 1, day + 1, &mut c);
                        }
                        let [p, m, _] = c.cells();
                        table.rows.push(vec![date_cell(day * DAY_MS), p, m]);
                        c.clear();
                    }
                    return Some(table);
                }
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
                    table.rows.push(vec![date_cell((from + i as i64) * DAY_MS), Cell::Int(p), Cell::Int(m)]);
                }
            }
            QueryKind::Breakdown { period, dimensions, limit } => {
                if dimensions.len() > 2 {
                    return None;
                }
                let dims: Vec<Dim> = dimensions.iter().map(|d| Dim::new(self.r, *d)).collect();
                let n1 = dims.first().map_or(1, |d| d.labels.len().max(1));
                let tuples: usize = dims.iter().map(|d| d.labels.len().max(1)).product();
                let bytes_per_group = self.universe.0.div_ceil(8) + self.universe.1.div_ceil(8);
                if tuples.saturating_mul(bytes_per_group).saturating_mul(if limit.is_some() { 2 } else { 1 })
                    > MAX_GROUP_BYTES
                {
                    return None;
                }
                // Which index slices hold the tuples, if any.
                let index_of = |ix: &'a DayIndex| -> Option<Vec<(usize, &'a Slice)>> {
                    match dimensions.as_slice() {
                        [] => Some(vec![(0, &ix.all)]),
                        [d] => Some(ix.by[slot(*d)].iter().map(|(v, s)| (*v as usize, s)).collect()),
                        [Dimension::Plugin, Dimension::Env] => {
                            Some(ix.plugin_env.iter().map(|((p, e), s)| (*p as usize + *e as usize * n1, s)).collect())
                        }
                        _ => None,
                    }
                };
                let use_index = matches!(dimensions.as_slice(), [] | [_] | [Dimension::Plugin, Dimension::Env]);
                let bucket = |day: i64| period.map(|p| p.start_of(day * DAY_MS));
                let span = match period {
                    None => Span::Block,
                    Some(Period::Week) => Span::Week,
                    Some(Period::Day) => Span::Day,
                };
                let views = self.days(from, to, use_index, span);
                // Distinct projects per period, for shares.
                let mut totals: HashMap<Option<i64>, i64> = HashMap::new();
                {
                    let mut pp = Bits::new(self.universe.0);
                    let mut current = None;
                    for v in &views {
                        let b = bucket(v.day);
                        if current != Some(b) {
                            if let Some(c) = current {
                                totals.insert(c, pp.count());
                            }
                            pp.clear();
                            current = Some(b);
                        }
                        if let Some(ix) = v.index {
                            pp.union(&ix.all.projects);
                        }
                        self.rows(v).for_each(|row| pp.insert(row.key.pid));
                    }
                    if let Some(c) = current {
                        totals.insert(c, pp.count());
                    }
                }
                type Parts = (Vec<(Option<i64>, usize, [Cell; 3], i64)>, Vec<(usize, [Cell; 3], i64)>);
                let parts: Vec<Parts> = in_parts(|part, parts| {
                    let mine = |t: usize| t % parts == part;
                    let mut groups = Groups::new(self.universe, tuples);
                    let mut overall = Groups::new(self.universe, tuples);
                    let mut out = Vec::new();
                    let mut current: Option<Option<i64>> = None;
                    for v in &views {
                        let b = bucket(v.day);
                        if current != Some(b) {
                            if let Some(c) = current {
                                out.extend(groups.drain().into_iter().map(|(t, cells, p)| (c, t, cells, p)));
                            }
                            current = Some(b);
                        }
                        if let Some(ix) = v.index {
                            for (t, slice) in index_of(ix).expect("an indexed breakdown") {
                                if mine(t) {
                                    groups.get(t).union(slice);
                                    if limit.is_some() {
                                        overall.get(t).union(slice);
                                    }
                                }
                            }
                        }
                        for row in self.rows(v) {
                            let mut each_tuple = |t: usize| {
                                if mine(t) {
                                    groups.get(t).add(row);
                                    if limit.is_some() {
                                        overall.get(t).add(row);
                                    }
                                }
                            };
                            match dims.as_slice() {
                                [] => each_tuple(0),
                                [a] => a.each(self.r, &row.key, |v| each_tuple(v as usize)),
                                [a, b] => a.each(self.r, &row.key, |v| {
                                    b.each(self.r, &row.key, |w| each_tuple(v as usize + w as usize * n1))
                                }),
                                _ => unreachable!("at most two dimensions"),
                            }
                        }
                    }
                    if let Some(c) = current {
                        out.extend(groups.drain().into_iter().map(|(t, cells, p)| (c, t, cells, p)));
                    }
                    (out, overall.drain())
                });
                let mut out: Vec<(Option<i64>, usize, [Cell; 3], i64, i64)> = Vec::new();
                let mut overall: Vec<(usize, [Cell; 3], i64)> = Vec::new();
                for (o, all) in parts {
                    out.extend(
                        o.into_iter().map(|(b, t, cells, p)| (b, t, cells, p, totals.get(&b).copied().unwrap_or(0))),
                    );
                    overall.extend(all);
                }
                let label = |t: usize| -> Vec<String> {
                    dims.iter().zip([t % n1, t / n1]).map(|(d, v)| d.labels[v].clone()).collect()
                };
                let keep: Option<std::collections::HashSet<usize>> = limit.map(|n| {
                    let mut ranked: Vec<(usize, Vec<String>, i64, i64)> = overall
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
                let dim = Dim::new(self.r, Dimension::Plugin);
                let ps = slot(Dimension::Plugin);
                let views = self.days(from, to, true, Span::Block);
                let mut total = Bits::new(self.universe.0);
                for v in &views {
                    if let Some(ix) = v.index {
                        total.union(&ix.all.projects);
                    }
                    self.rows(v).for_each(|row| total.insert(row.key.pid));
                }
                // The projects of each plugin, built in parts by plugin number.
                let mut uses: Vec<Option<Bits>> = vec![None; self.r.plugins.len()];
                let parts = in_parts(|part, parts| {
                    let mut mine: Vec<Option<Bits>> = vec![None; self.r.plugins.len()];
                    let new = || Bits::new(self.universe.0);
                    for v in &views {
                        if let Some(ix) = v.index {
                            for (p, slice) in ix.by[ps].iter().filter(|(p, _)| *p as usize % parts == part) {
                                mine[*p as usize].get_or_insert_with(new).union(&slice.projects);
                            }
                        }
                        for row in self.rows(v) {
                            dim.each(self.r, &row.key, |p| {
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
                let name = |p: usize| self.r.plugins.values[p].as_str();
                let used: Vec<(usize, i64)> =
                    uses.iter().enumerate().filter_map(|(p, b)| b.as_ref().map(|b| (p, b.count()))).collect();
                let per: HashMap<usize, i64> = used.iter().copied().collect();
                let wanted: Vec<usize> = match plugin {
                    Some(p) => self
                        .r
                        .plugins
                        .get(p)
                        .map(|id| id as usize)
                        .into_iter()
                        .filter(|p| per.contains_key(p))
                        .collect(),
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
                let app = self.app.unwrap_or(u32::MAX);
                let days = if from < to {
                    self.r.days.range((app, from)..(app, to))
                } else {
                    self.r.days.range((app, 0)..(app, 0))
                };
                for (&(_, day), d) in days {
                    let b = period.map(|p| p.start_of(day * DAY_MS));
                    for t in d.timed.get(&name).into_iter().flatten().filter(|t| self.ok(&t.key)) {
                        let mut add = |label: Option<String>| {
                            let g =
                                groups.entry((b, label)).or_insert_with(|| (Vec::new(), Bits::new(self.universe.0)));
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
                // Projects active per week, over all time (a cohort is a project's first week ever).
                let mut active: BTreeMap<i64, Bits> = BTreeMap::new();
                for v in self.days(i64::MIN, i64::MAX, true, Span::Week) {
                    let w = week.start_of(v.day * DAY_MS);
                    let bits = active.entry(w).or_insert_with(|| Bits::new(self.universe.0));
                    if let Some(ix) = v.index {
                        bits.union(&ix.all.projects);
                    }
                    for row in self.rows(&v) {
                        bits.insert(row.key.pid);
                    }
                }
                let mut seen = Bits::new(self.universe.0);
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
        eager: bool,
    }

    impl RolledUp {
        /// Days re-indexed on every append (else only the folded rows are read).
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

        fn rebuild(&self, state: &mut (Vec<EventRow>, Option<Rollup>)) {
            let mut r = self.fresh();
            r.add(&state.0);
            state.1 = Some(r);
        }
    }

    impl EventStore for RolledUp {
        fn append(&self, rows: &[EventRow]) -> Result<Vec<AppendStatus>, StoreError> {
            let status = self.raw.append(rows)?;
            let inserted: Vec<EventRow> = rows
                .iter()
                .zip(&status)
                .filter(|(_, s)| **s == AppendStatus::Inserted)
                .map(|(r, _)| r.clone())
                .collect();
            let mut state = self.kept.lock().expect("lock");
            if state.1.is_none() {
                state.1 = Some(self.fresh());
            }
            state.1.as_mut().expect("just set").add(&inserted);
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
            self.rebuild(&mut state);
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
