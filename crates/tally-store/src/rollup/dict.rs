//! Dictionaries: every value a folded row refers to, numbered densely in order of first
//! sight (projects and machines 0..n, so that sets of them are bitsets), the [`Context`]s
//! rows share, and [`Key`], a row's values as numbers.

use std::collections::HashMap;
use std::hash::Hash;

use tally_protocol::Env;

use super::Group;
use super::sets::Universe;
use crate::Key16;
use crate::query::{Dimension, version_prefix};
use crate::row::EventRow;

/// "No error kind".
pub(super) const NONE: u32 = u32::MAX;

/// Values numbered densely in order of first sight.
#[derive(Debug)]
pub(super) struct Interner<T, S = std::hash::RandomState> {
    ids: HashMap<T, u32, S>,
    pub(super) values: Vec<T>,
}

impl<T, S: Default> Default for Interner<T, S> {
    fn default() -> Self {
        Interner { ids: HashMap::default(), values: Vec::new() }
    }
}

/// Hashes project and machine keys by their first eight bytes: they are keyed hashes
/// already, uniformly distributed, so hashing them again only costs time.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct KeyHasher(u64);

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

pub(super) type KeyInterner = Interner<Key16, std::hash::BuildHasherDefault<KeyHasher>>;

/// Saved as its values in number order; the lookup table is rebuilt when read.
impl<T: serde::Serialize, S> serde::Serialize for Interner<T, S> {
    fn serialize<Z: serde::Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        self.values.serialize(serializer)
    }
}

impl<'de, T, S> serde::Deserialize<'de> for Interner<T, S>
where
    T: serde::Deserialize<'de> + Hash + Eq + Clone,
    S: std::hash::BuildHasher + Default,
{
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let values = Vec::<T>::deserialize(deserializer)?;
        let mut ids = HashMap::with_capacity_and_hasher(values.len(), S::default());
        for (i, v) in values.iter().enumerate() {
            if ids.insert(v.clone(), i as u32).is_some() {
                return Err(serde::de::Error::custom("a dictionary holds a value twice"));
            }
        }
        Ok(Interner { ids, values })
    }
}

impl<T: Hash + Eq + Clone, S: std::hash::BuildHasher> Interner<T, S> {
    pub(super) fn id(&mut self, v: &T) -> u32 {
        if let Some(id) = self.ids.get(v) {
            return *id;
        }
        let id = self.values.len() as u32;
        self.values.push(v.clone());
        self.ids.insert(v.clone(), id);
        id
    }

    pub(super) fn get(&self, v: &T) -> Option<u32> {
        self.ids.get(v).copied()
    }

    pub(super) fn len(&self) -> usize {
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
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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

    /// Its value of a context dimension (`None` for the others).
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

/// The dimensions read from the context, in the order of [`Dictionaries::ctx_values`].
/// `Env` comes first: the plugin × env index reads it at position 0.
pub(super) const CONTEXT_DIMS: [Dimension; 10] = [
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

/// The position of a context dimension in [`CONTEXT_DIMS`].
pub(super) fn context_slot(d: Dimension) -> Option<usize> {
    CONTEXT_DIMS.iter().position(|x| *x == d)
}

/// What a folded row is keyed by: the numbers of its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Key {
    pub(super) pid: u32,
    pub(super) mid: u32,
    pub(super) ctx: u32,
    pub(super) name: u32,
    /// [`NONE`] without an error kind.
    pub(super) error: u32,
    /// The plugin set; 0 is the empty set.
    pub(super) set: u32,
}

/// Every dictionary of a rollup (saved whole by `persist`, less the last context seen).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct Dictionaries {
    pub(super) projects: KeyInterner,
    pub(super) machines: KeyInterner,
    pub(super) contexts: Interner<Context>,
    /// Per context: its app's number.
    pub(super) ctx_app: Vec<u32>,
    /// Per context: its value number for each of [`CONTEXT_DIMS`].
    pub(super) ctx_values: Vec<[u32; 10]>,
    pub(super) apps: Interner<String>,
    /// Per entry of [`CONTEXT_DIMS`], the labels of its values.
    pub(super) context_labels: [Interner<String>; 10],
    pub(super) names: Interner<String>,
    pub(super) errors: Interner<String>,
    pub(super) plugins: Interner<String>,
    /// Plugin sets, each sorted plugin numbers.
    pub(super) sets: Interner<Box<[u32]>>,
    /// The context of the last row added, which the next row most likely shares.
    #[serde(skip)]
    last_ctx: Option<u32>,
}

impl Default for Dictionaries {
    fn default() -> Self {
        let mut d = Dictionaries {
            projects: KeyInterner::default(),
            machines: KeyInterner::default(),
            contexts: Interner::default(),
            ctx_app: Vec::new(),
            ctx_values: Vec::new(),
            apps: Interner::default(),
            context_labels: Default::default(),
            names: Interner::default(),
            errors: Interner::default(),
            plugins: Interner::default(),
            sets: Interner::default(),
            last_ctx: None,
        };
        // The empty plugin set is number 0, which `set_id` gives without a lookup.
        d.sets.id(&Box::from([]));
        d
    }
}

impl Dictionaries {
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

    /// The key of a stored row, numbering its new values.
    pub(super) fn key_of_row(&mut self, r: &EventRow) -> Key {
        let ctx = match self.last_ctx {
            Some(c) if self.contexts.values[c as usize].same_as(r) => c,
            _ => {
                let c = self.context_id(&Context::of(r));
                self.last_ctx = Some(c);
                c
            }
        };
        Key {
            pid: self.projects.id(&r.project),
            mid: self.machines.id(&r.machine),
            ctx,
            name: self.names.id(&r.event),
            error: r.error_kind.as_ref().map_or(NONE, |e| self.errors.id(e)),
            set: self.set_id(&r.plugins),
        }
    }

    /// The key of a group read back from raw rows, numbering its new values.
    pub(super) fn key_of_group(&mut self, g: &Group<'_>) -> Key {
        Key {
            pid: self.projects.id(&g.project),
            mid: self.machines.id(&g.machine),
            ctx: self.context_id(g.context),
            name: self.names.id_str(g.event),
            error: g.error_kind.map_or(NONE, |e| self.errors.id_str(e)),
            set: self.set_id(g.plugins),
        }
    }

    /// The app a key's context belongs to.
    pub(super) fn app_of(&self, key: &Key) -> u32 {
        self.ctx_app[key.ctx as usize]
    }

    pub(super) fn universe(&self) -> Universe {
        Universe { projects: self.projects.len(), machines: self.machines.len() }
    }
}

/// A dimension resolved against the dictionaries: how to find a folded row's values, and
/// their labels.
pub(super) struct Dim {
    pub(super) dimension: Dimension,
    context: Option<usize>,
    pub(super) labels: Vec<String>,
}

impl Dim {
    pub(super) fn new(dict: &Dictionaries, d: Dimension) -> Dim {
        let context = context_slot(d);
        let labels = match (d, context) {
            (_, Some(i)) => dict.context_labels[i].values.clone(),
            (Dimension::Event, _) => dict.names.values.clone(),
            (Dimension::ErrorKind, _) => dict.errors.values.clone(),
            _ => dict.plugins.values.clone(),
        };
        Dim { dimension: d, context, labels }
    }

    /// Calls `f` with each value of the row (none, one, or one per plugin).
    #[inline]
    pub(super) fn each(&self, dict: &Dictionaries, key: &Key, mut f: impl FnMut(u32)) {
        match (self.context, self.dimension) {
            (Some(i), _) => f(dict.ctx_values[key.ctx as usize][i]),
            (None, Dimension::Event) => f(key.name),
            (None, Dimension::ErrorKind) => {
                if key.error != NONE {
                    f(key.error)
                }
            }
            _ => dict.sets.values[key.set as usize].iter().for_each(|p| f(*p)),
        }
    }
}
