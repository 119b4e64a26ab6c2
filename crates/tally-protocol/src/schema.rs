//! App schemas: which events an app sends and which properties each may carry.
//!
//! Each app declares itself in a TOML file:
//!
//! ```toml
//! app = "demo"
//! description = "the demo framework"
//! version = 2                 # the schema's version (default 1); say what changed below
//!
//! [[changes]]
//! version = 2
//! what = "added template"
//!
//! [plugins]
//! max_distinct = 500          # distinct plugin names kept; more are stored as "other"
//!
//! [props.database]
//! type = "string"             # string | int | float | bool
//! enum = ["postgres", "mysql", "sqlite"]   # values outside the list are stored as "other"
//! why = "which databases to test against"  # required: why it is collected
//!
//! [props.template]
//! type = "string"
//! max_distinct = 50           # distinct values kept; more are stored as "other"
//! why = "which starters to keep"
//!
//! [events."project.created"]
//! description = "a project was created"
//! why = "how many projects are created, and how long setup takes"   # required
//! props = ["database", "template"]
//! ```
//!
//! Every event and property says `why` it is collected: the public "What we collect" page
//! of the dashboard is generated from it, and a schema without one does not load.
//!
//! An event the schema does not declare is rejected; a property the event does not
//! declare is dropped and counted; a value of the wrong type rejects the event.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::validate::{RejectReason, Rejection, is_name};
use crate::wire::{Event, PropValue};

/// The value stored in place of a string over its property's cap or outside its enum.
pub const OTHER: &str = "other";

/// Default cap on distinct values of a string property without an enum.
pub const DEFAULT_MAX_DISTINCT: usize = 100;

/// Default cap on distinct plugin names of an app.
pub const DEFAULT_MAX_PLUGINS: usize = 1000;
/// Days events are kept when a schema does not say (13 months: a year-on-year comparison
/// plus a month).
pub const DEFAULT_RETENTION_DAYS: u32 = 396;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// A schema file that could not be loaded: which file, which line, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {message}", file.display())]
pub struct SchemaError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line of the problem (1 when unknown).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// The type of a property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PropType {
    /// A string, capped by `enum` or `max_distinct`.
    String,
    /// A whole number.
    Int,
    /// A number (whole numbers are accepted too).
    Float,
    /// `true` / `false`.
    Bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaFile {
    app: Spanned<String>,
    #[serde(default)]
    description: String,
    version: Option<Spanned<u32>>,
    retention_days: Option<Spanned<u32>>,
    #[serde(default)]
    changes: Vec<ChangeFile>,
    #[serde(default)]
    plugins: PluginsFile,
    #[serde(default)]
    props: BTreeMap<Spanned<String>, PropFile>,
    #[serde(default)]
    events: BTreeMap<Spanned<String>, EventFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeFile {
    version: Spanned<u32>,
    what: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginsFile {
    max_distinct: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PropFile {
    #[serde(rename = "type")]
    ty: PropType,
    #[serde(rename = "enum")]
    allowed: Option<Spanned<Vec<String>>>,
    max_distinct: Option<Spanned<usize>>,
    #[serde(default)]
    description: String,
    why: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventFile {
    #[serde(default)]
    description: String,
    why: Option<String>,
    #[serde(default)]
    props: Vec<Spanned<String>>,
}

/// A declared property.
#[derive(Debug, Clone, PartialEq)]
pub struct PropSpec {
    /// Its type.
    pub ty: PropType,
    /// For strings: the allowed values, when the schema lists them.
    pub allowed: Option<BTreeSet<String>>,
    /// For strings without an enum: how many distinct values are kept.
    pub max_distinct: usize,
    /// What it means.
    pub description: String,
    /// Why it is collected.
    pub why: String,
}

/// A declared event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSpec {
    /// What it means.
    pub description: String,
    /// Why it is collected.
    pub why: String,
    /// The properties it may carry.
    pub props: BTreeSet<String>,
}

/// One app's schema, loaded and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct AppSchema {
    /// The app's name.
    pub app: String,
    /// What the app is.
    pub description: String,
    /// The schema's version (1 unless the file says otherwise).
    pub version: u32,
    /// What changed in each version, oldest first.
    pub changes: Vec<SchemaChange>,
    /// How many distinct plugin names are kept.
    pub max_plugins: usize,
    /// How many days events are kept (by `occurred_at`); older whole days are deleted by
    /// the collector's retention schedule. Default [`DEFAULT_RETENTION_DAYS`] (13 months).
    pub retention_days: u32,
    /// Declared properties.
    pub props: BTreeMap<String, PropSpec>,
    /// Declared events.
    pub events: BTreeMap<String, EventSpec>,
}

/// What changed in one version of a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaChange {
    /// The version that made the change.
    pub version: u32,
    /// What changed.
    pub what: String,
}

/// An event after the schema check: properties converted to their declared types, strings
/// capped by enum (cardinality caps are applied by the caller, which knows what is stored).
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaChecked {
    /// Kept properties.
    pub props: BTreeMap<String, PropValue>,
    /// How many properties were dropped because the event does not declare them.
    pub dropped_props: usize,
}

impl AppSchema {
    /// Parses a schema from TOML text; `file` is used in error messages only.
    pub fn parse(text: &str, file: &Path) -> Result<AppSchema, SchemaError> {
        let err = |span: Option<std::ops::Range<usize>>, message: String| SchemaError {
            file: file.to_path_buf(),
            line: span.map_or(1, |s| line_of(text, s.start)),
            message,
        };
        let raw: SchemaFile = toml::from_str(text).map_err(|e| {
            let message = e.message().trim().to_string();
            err(e.span(), message)
        })?;
        if !is_name(raw.app.get_ref()) {
            return Err(err(Some(raw.app.span()), "app must be 1-64 characters of [a-z0-9._-]".into()));
        }
        let mut props = BTreeMap::new();
        for (name, p) in raw.props {
            if !is_name(name.get_ref()) {
                return Err(err(
                    Some(name.span()),
                    format!("property name {:?} must be 1-64 characters of [a-z0-9._-]", name.get_ref()),
                ));
            }
            if p.ty != PropType::String {
                if let Some(a) = &p.allowed {
                    return Err(err(
                        Some(a.span()),
                        format!("property {}: enum is only allowed on string properties", name.get_ref()),
                    ));
                }
                if let Some(m) = &p.max_distinct {
                    return Err(err(
                        Some(m.span()),
                        format!("property {}: max_distinct is only allowed on string properties", name.get_ref()),
                    ));
                }
            }
            if let Some(m) = &p.max_distinct
                && *m.get_ref() == 0
            {
                return Err(err(
                    Some(m.span()),
                    format!("property {}: max_distinct must be at least 1", name.get_ref()),
                ));
            }
            let Some(why) = p.why.filter(|w| !w.trim().is_empty()) else {
                return Err(err(Some(name.span()), missing_why("property", name.get_ref())));
            };
            let allowed = p.allowed.map(|a| a.into_inner().into_iter().collect::<BTreeSet<_>>());
            props.insert(
                name.into_inner(),
                PropSpec {
                    ty: p.ty,
                    max_distinct: allowed.as_ref().map_or_else(
                        || p.max_distinct.map_or(DEFAULT_MAX_DISTINCT, Spanned::into_inner),
                        |a| a.len() + 1,
                    ),
                    allowed,
                    description: p.description,
                    why,
                },
            );
        }
        let mut events = BTreeMap::new();
        for (name, e) in raw.events {
            if !is_name(name.get_ref()) {
                return Err(err(
                    Some(name.span()),
                    format!("event name {:?} must be 1-64 characters of [a-z0-9._-]", name.get_ref()),
                ));
            }
            let Some(why) = e.why.filter(|w| !w.trim().is_empty()) else {
                return Err(err(Some(name.span()), missing_why("event", name.get_ref())));
            };
            let mut declared = BTreeSet::new();
            for p in e.props {
                if !props.contains_key(p.get_ref()) {
                    return Err(err(
                        Some(p.span()),
                        format!(
                            "event {} uses property {:?}, which no [props.{}] table declares",
                            name.get_ref(),
                            p.get_ref(),
                            p.get_ref()
                        ),
                    ));
                }
                declared.insert(p.into_inner());
            }
            events.insert(name.into_inner(), EventSpec { description: e.description, why, props: declared });
        }
        if events.is_empty() {
            return Err(err(None, "the schema declares no events; add at least one [events.\"name\"] table".into()));
        }
        let version = raw.version.as_ref().map_or(1, |v| *v.get_ref());
        let mut changes = Vec::new();
        for c in raw.changes {
            if *c.version.get_ref() == 0 || *c.version.get_ref() > version {
                return Err(err(
                    Some(c.version.span()),
                    format!(
                        "a change of version {} must name a version from 1 to the schema's version {version}",
                        c.version.get_ref()
                    ),
                ));
            }
            changes.push(SchemaChange { version: c.version.into_inner(), what: c.what });
        }
        changes.sort_by_key(|c| c.version);
        let retention_days = match raw.retention_days {
            None => DEFAULT_RETENTION_DAYS,
            // Shorter than the acceptance window, events would be deleted as they arrive.
            Some(d) if i64::from(*d.get_ref()) * DAY_MS < crate::limits::MAX_EVENT_AGE_MS => {
                return Err(err(
                    Some(d.span()),
                    format!(
                        "retention_days must be at least {} (the days an event may be late)",
                        crate::limits::MAX_EVENT_AGE_MS / DAY_MS
                    ),
                ));
            }
            Some(d) => d.into_inner(),
        };
        Ok(AppSchema {
            app: raw.app.into_inner(),
            description: raw.description,
            version,
            changes,
            max_plugins: raw.plugins.max_distinct.unwrap_or(DEFAULT_MAX_PLUGINS),
            retention_days,
            props,
            events,
        })
    }

    /// Checks an event against this schema.
    pub fn check(&self, event: &Event) -> Result<SchemaChecked, Rejection> {
        let Some(spec) = self.events.get(&event.event) else {
            return Err(Rejection::new(
                RejectReason::UnknownEvent,
                format!("app {} declares no event {:?}", self.app, event.event),
            ));
        };
        let mut props = BTreeMap::new();
        let mut dropped_props = 0;
        for (key, value) in &event.props {
            let Some(prop) = spec.props.contains(key).then(|| &self.props[key]) else {
                dropped_props += 1;
                continue;
            };
            let value = match (prop.ty, value) {
                (PropType::String, PropValue::Str(s)) => match &prop.allowed {
                    Some(allowed) if !allowed.contains(s) => PropValue::Str(OTHER.to_string()),
                    _ => PropValue::Str(s.clone()),
                },
                (PropType::Int, PropValue::Int(i)) => PropValue::Int(*i),
                (PropType::Float, PropValue::Float(f)) => PropValue::Float(*f),
                (PropType::Float, PropValue::Int(i)) => PropValue::Float(*i as f64),
                (PropType::Bool, PropValue::Bool(b)) => PropValue::Bool(*b),
                (ty, v) => {
                    return Err(Rejection::new(
                        RejectReason::InvalidProperty,
                        format!("property {key} must be {}, got {}", ty.name(), v.type_name()),
                    ));
                }
            };
            props.insert(key.clone(), value);
        }
        Ok(SchemaChecked { props, dropped_props })
    }
}

impl PropType {
    /// The schema name of the type.
    pub fn name(self) -> &'static str {
        match self {
            PropType::String => "string",
            PropType::Int => "int",
            PropType::Float => "float",
            PropType::Bool => "bool",
        }
    }
}

impl fmt::Display for PropType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn missing_why(what: &str, name: &str) -> String {
    format!("{what} {name} has no `why`: say why it is collected (the public \"What we collect\" page shows it)")
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1
}

/// The schemas a collector knows, by app name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SchemaSet {
    apps: BTreeMap<String, AppSchema>,
}

impl SchemaSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a schema, replacing one of the same app.
    pub fn insert(&mut self, schema: AppSchema) {
        self.apps.insert(schema.app.clone(), schema);
    }

    /// The schema of `app`.
    pub fn get(&self, app: &str) -> Option<&AppSchema> {
        self.apps.get(app)
    }

    /// All schemas, by app name.
    pub fn iter(&self) -> impl Iterator<Item = &AppSchema> {
        self.apps.values()
    }

    /// Parses several schema texts (name, text), failing on the first bad one or on two
    /// files declaring the same app.
    pub fn from_texts<'a>(files: impl IntoIterator<Item = (&'a Path, &'a str)>) -> Result<SchemaSet, SchemaError> {
        let mut set = SchemaSet::new();
        let mut origin: BTreeMap<String, PathBuf> = BTreeMap::new();
        for (path, text) in files {
            let schema = AppSchema::parse(text, path)?;
            if let Some(first) = origin.get(&schema.app) {
                return Err(SchemaError {
                    file: path.to_path_buf(),
                    line: 1,
                    message: format!("app {} is already declared by {}", schema.app, first.display()),
                });
            }
            origin.insert(schema.app.clone(), path.to_path_buf());
            set.insert(schema);
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AppSchema, String> {
        AppSchema::parse(text, Path::new("x.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn errors_name_file_line_and_problem() {
        let cases = [
            (
                "app = \"demo\"\n[events.a]\nwhy = \"w\"\nprops = [\"missing\"]\n",
                "x.toml:4: event a uses property \"missing\"",
            ),
            (
                "app = \"demo\"\n\n[props.n]\ntype = \"int\"\nenum = [\"a\"]\nwhy = \"w\"\n[events.a]\nwhy = \"w\"\n",
                "x.toml:5: property n: enum is only allowed",
            ),
            ("app = \"Demo App\"\n[events.a]\nwhy = \"w\"\n", "x.toml:1: app must be"),
            ("app = \"demo\"\n[props.n]\ntype = \"text\"\n[events.a]\n", "x.toml:3: unknown variant `text`"),
            ("app = \"demo\"\n[events.a]\nbogus = 1\n", "x.toml:3: unknown field `bogus`"),
            ("app = \"demo\"\n[events.a\n", "x.toml:2:"),
            ("app = \"demo\"\n", "x.toml:1: the schema declares no events"),
            (
                "app = \"demo\"\nversion = 2\n[[changes]]\nversion = 3\nwhat = \"x\"\n[events.a]\nwhy = \"w\"\n",
                "x.toml:4: a change of version 3 must name a version from 1 to the schema's version 2",
            ),
            (
                "app = \"demo\"\n\nretention_days = 7\n[events.a]\nwhy = \"w\"\n",
                "x.toml:3: retention_days must be at least 31",
            ),
        ];
        for (text, expected) in cases {
            let got = parse(text).expect_err(text);
            assert!(got.starts_with(expected), "for {text:?}\n got: {got}\nwant: {expected}");
        }
    }

    #[test]
    fn a_schema_without_why_names_file_and_line() {
        let cases = [
            ("app = \"demo\"\n\n[events.started]\ndescription = \"d\"\n", "x.toml:3: event started has no `why`"),
            (
                "app = \"demo\"\n[events.a]\nwhy = \"w\"\n\n[events.\"b.c\"]\nwhy = \"  \"\n",
                "x.toml:5: event b.c has no `why`",
            ),
            (
                "app = \"demo\"\n[props.db]\ntype = \"string\"\n\n[props.n]\ntype = \"int\"\n[events.a]\nwhy = \"w\"\n",
                "x.toml:2: property db has no `why`",
            ),
        ];
        for (text, expected) in cases {
            let got = parse(text).expect_err(text);
            assert!(got.starts_with(expected), "for {text:?}\n got: {got}\nwant: {expected}");
        }
    }

    #[test]
    fn version_and_changes_are_read_in_order() {
        let schema = parse(
            "app = \"demo\"\nversion = 3\n[[changes]]\nversion = 3\nwhat = \"c\"\n[[changes]]\nversion = 2\nwhat = \"b\"\n[events.a]\nwhy = \"w\"\n",
        )
        .expect("valid");
        assert_eq!(schema.version, 3);
        let changes: Vec<_> = schema.changes.iter().map(|c| (c.version, c.what.as_str())).collect();
        assert_eq!(changes, [(2, "b"), (3, "c")]);
        assert_eq!(parse("app = \"demo\"\n[events.a]\nwhy = \"w\"\n").expect("valid").version, 1);
    }

    #[test]
    fn retention_days_default_to_13_months() {
        let schema = |extra: &str| parse(&format!("app = \"demo\"\n{extra}[events.a]\nwhy = \"w\"\n")).expect("valid");
        assert_eq!(schema("").retention_days, DEFAULT_RETENTION_DAYS);
        assert_eq!(schema("retention_days = 90\n").retention_days, 90);
    }

    #[test]
    fn check_converts_drops_and_caps() {
        let schema = parse(
            "app = \"demo\"\n[props.db]\ntype = \"string\"\nenum = [\"pg\"]\nwhy = \"w\"\n[props.n]\ntype = \"float\"\nwhy = \"w\"\n[props.ts]\ntype = \"bool\"\nwhy = \"w\"\n[events.a]\nwhy = \"w\"\nprops = [\"db\", \"n\", \"ts\"]\n[events.b]\nwhy = \"w\"\n",
        )
        .expect("valid");
        let mut e = Event {
            event_id: uuid::Uuid::from_u128(1),
            event: "a".into(),
            occurred_at: chrono::Utc::now(),
            plugins: vec![],
            duration_ms: None,
            error_kind: None,
            props: BTreeMap::from([
                ("db".into(), PropValue::Str("oracle".into())),
                ("n".into(), PropValue::Int(3)),
                ("extra".into(), PropValue::Bool(true)),
            ]),
        };
        let checked = schema.check(&e).expect("accepted");
        assert_eq!(checked.dropped_props, 1);
        assert_eq!(checked.props["db"], PropValue::Str(OTHER.into()));
        assert_eq!(checked.props["n"], PropValue::Float(3.0));
        e.props.insert("ts".into(), PropValue::Str("yes".into()));
        assert_eq!(schema.check(&e).expect_err("wrong type").reason, RejectReason::InvalidProperty);
        e.event = "c".into();
        assert_eq!(schema.check(&e).expect_err("unknown").reason, RejectReason::UnknownEvent);
    }
}
