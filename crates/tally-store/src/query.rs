//! The typed insight query model: what may be asked of a store, and the table it answers.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use tally_protocol::Env;

/// A question for the store about one app over a time range.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The app whose events are counted.
    pub app: String,
    /// Start of the range (inclusive), ms since the Unix epoch, on `occurred_at`.
    pub from_ms: i64,
    /// End of the range (exclusive), ms since the Unix epoch.
    pub to_ms: i64,
    /// Only rows matching every filter are counted.
    pub filters: Filters,
    /// What to compute.
    pub kind: QueryKind,
}

impl Query {
    /// Refuses what no backend answers: a breakdown by more than two dimensions, or by the
    /// same dimension twice (plugins used together are what [`QueryKind::CoUsage`] answers).
    pub fn validate(&self) -> Result<(), crate::StoreError> {
        if let QueryKind::Breakdown { dimensions, .. } = &self.kind {
            if dimensions.len() > 2 {
                return Err(crate::StoreError::InvalidQuery("a breakdown takes at most two dimensions".into()));
            }
            if dimensions.len() == 2 && dimensions[0] == dimensions[1] {
                return Err(crate::StoreError::InvalidQuery(format!(
                    "a breakdown by {} twice; group by two different dimensions",
                    dimensions[0].name()
                )));
            }
        }
        if let QueryKind::DropSupport { dimension } = &self.kind
            && !dimension.is_runtime_version()
        {
            return Err(crate::StoreError::InvalidQuery(format!(
                "dropping support is asked per runtime_major, runtime_minor or runtime_version, not {}",
                dimension.name()
            )));
        }
        Ok(())
    }
}

/// Row filters; `None` means no filter on that dimension.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filters {
    /// Only this environment.
    pub env: Option<Env>,
    /// Only this OS family.
    pub os: Option<String>,
    /// Only this app version.
    pub app_version: Option<String>,
    /// Only events that list this plugin.
    pub plugin: Option<String>,
}

/// A dimension of the row model that can be split by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// `env`.
    Env,
    /// `os`.
    Os,
    /// `arch`.
    Arch,
    /// `runtime`.
    Runtime,
    /// `runtime_version`.
    RuntimeVersion,
    /// `app_version`.
    AppVersion,
    /// `ci` (empty string when not in CI).
    Ci,
    /// `container` as `true`/`false`.
    Container,
    /// `event` name.
    Event,
    /// `error_kind` (rows without one are not counted).
    ErrorKind,
    /// Each plugin of an event (events without plugins are not counted).
    Plugin,
    /// The runtime's major version: `20` of `20.11.1`.
    RuntimeMajor,
    /// The runtime's major.minor version: `20.11` of `20.11.1`.
    RuntimeMinor,
}

impl Dimension {
    /// The column name.
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Env => "env",
            Dimension::Os => "os",
            Dimension::Arch => "arch",
            Dimension::Runtime => "runtime",
            Dimension::RuntimeVersion => "runtime_version",
            Dimension::AppVersion => "app_version",
            Dimension::Ci => "ci",
            Dimension::Container => "container",
            Dimension::Event => "event",
            Dimension::ErrorKind => "error_kind",
            Dimension::Plugin => "plugin",
            Dimension::RuntimeMajor => "runtime_major",
            Dimension::RuntimeMinor => "runtime_minor",
        }
    }

    /// Whether this is one of the runtime version levels (major, major.minor, exact).
    pub fn is_runtime_version(self) -> bool {
        matches!(self, Dimension::RuntimeVersion | Dimension::RuntimeMajor | Dimension::RuntimeMinor)
    }

    /// Parses a column name.
    pub fn parse(name: &str) -> Option<Dimension> {
        Dimension::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Every dimension.
    pub const ALL: [Dimension; 13] = [
        Dimension::Env,
        Dimension::Os,
        Dimension::Arch,
        Dimension::Runtime,
        Dimension::RuntimeVersion,
        Dimension::AppVersion,
        Dimension::Ci,
        Dimension::Container,
        Dimension::Event,
        Dimension::ErrorKind,
        Dimension::Plugin,
        Dimension::RuntimeMajor,
        Dimension::RuntimeMinor,
    ];
}

impl std::str::FromStr for Dimension {
    type Err = String;

    /// Parses a column name; the error names every dimension.
    fn from_str(s: &str) -> Result<Dimension, String> {
        Dimension::parse(s).ok_or_else(|| {
            let names: Vec<_> = Dimension::ALL.iter().map(|d| d.name()).collect();
            format!("{s:?} is not one of {}", names.join(", "))
        })
    }
}

/// The leading part of a version: `version_prefix("20.11.1", 2) == "20.11"`.
pub fn version_prefix(version: &str, parts: usize) -> String {
    version.split('.').take(parts).collect::<Vec<_>>().join(".")
}

/// The order of version strings every backend and insight uses (`20.9` < `20.10` < `22`,
/// `2.9.0` < `2.9.0-beta` < `2.9.1`). A version is split into parts at `.`, `-` and `+`,
/// and parts are compared in turn; a version that is a prefix of another sorts first. A
/// part that starts with ASCII digits compares by that number (0 when it does not fit in
/// 64 bits), then by the text after it; a part that starts with anything else sorts after
/// every numeric part, by its text. So values that are not versions (`other`, `[redacted]`)
/// sort after every version. Versions that compare equal this way (`20.0`, `20.00`) are
/// ordered by their bytes, so that the order is total.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    version_key(a).cmp(&version_key(b)).then_with(|| a.cmp(b))
}

/// The rows of [`QueryKind::DropSupport`] from each (runtime, version, project) seen in
/// range, in any order and repeats allowed: per runtime, every version in
/// [`compare_versions`] order with the projects whose newest version it is, those left
/// behind by dropping it and everything older, those kept, and the runtime's projects. The
/// reference evaluator and backends that cannot rank versions in SQL share it.
pub fn drop_support_rows<R, V, P>(seen: impl IntoIterator<Item = (R, V, P)>) -> Vec<Vec<Cell>>
where
    R: AsRef<str> + Ord,
    V: AsRef<str>,
    P: std::hash::Hash + Eq,
{
    use std::collections::{BTreeMap, HashMap, HashSet};
    // Per runtime, every version seen and each project's newest one.
    let mut versions: BTreeMap<R, HashSet<String>> = BTreeMap::new();
    let mut newest: BTreeMap<String, HashMap<P, String>> = BTreeMap::new();
    for (runtime, v, project) in seen {
        let v = v.as_ref();
        let per = newest.entry(runtime.as_ref().to_string()).or_default();
        per.entry(project)
            .and_modify(|n| {
                if compare_versions(v, n).is_gt() {
                    *n = v.to_string();
                }
            })
            .or_insert_with(|| v.to_string());
        versions.entry(runtime).or_default().insert(v.to_string());
    }
    let mut out = Vec::new();
    for (runtime, seen) in versions {
        let mut seen: Vec<String> = seen.into_iter().collect();
        seen.sort_by(|a, b| compare_versions(a, b));
        let on_runtime: Vec<&String> = newest.get(runtime.as_ref()).map(|p| p.values().collect()).unwrap_or_default();
        let total = on_runtime.len() as i64;
        for v in seen {
            let at = on_runtime.iter().filter(|n| ***n == v).count() as i64;
            let left = on_runtime.iter().filter(|n| compare_versions(n, &v).is_le()).count() as i64;
            out.push(vec![
                Cell::Text(runtime.as_ref().to_string()),
                Cell::Text(v),
                Cell::Int(at),
                Cell::Int(left),
                Cell::Int(total - left),
                Cell::Int(total),
            ]);
        }
    }
    out
}

/// One part of a version: (not numeric, number, text after the number).
type VersionPart<'a> = (bool, u64, &'a str);

fn version_key(v: &str) -> Vec<VersionPart<'_>> {
    v.split(['.', '-', '+'])
        .map(|p| {
            let digits = p.bytes().take_while(u8::is_ascii_digit).count();
            (digits == 0, p[..digits].parse().unwrap_or(0), &p[digits..])
        })
        .collect()
}

/// A calendar bucket of time (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// A UTC day.
    Day,
    /// A week starting Monday 00:00 UTC.
    Week,
}

impl std::str::FromStr for Period {
    type Err = String;

    /// Parses `day` or `week`.
    fn from_str(s: &str) -> Result<Period, String> {
        match s {
            "day" => Ok(Period::Day),
            "week" => Ok(Period::Week),
            _ => Err(format!("{s:?} is not one of day, week")),
        }
    }
}

impl Period {
    /// The start (ms) of the bucket holding `ms`.
    pub fn start_of(self, ms: i64) -> i64 {
        let day = ms.div_euclid(crate::DAY_MS);
        match self {
            Period::Day => day * crate::DAY_MS,
            // 1970-01-01 was a Thursday: shift so that weeks start on Monday.
            Period::Week => ((day + 3).div_euclid(7) * 7 - 3) * crate::DAY_MS,
        }
    }

    /// Length of a bucket in ms.
    pub fn len_ms(self) -> i64 {
        match self {
            Period::Day => crate::DAY_MS,
            Period::Week => 7 * crate::DAY_MS,
        }
    }
}

/// What a [`Query`] computes. Each variant fixes the columns and the row order of its
/// table; `projects` and `machines` are exact distinct counts.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryKind {
    /// Per UTC day with at least one event in range: columns `day` (date), `events`,
    /// `projects`, `machines`; ordered by `day` ascending.
    EventsPerDay,
    /// Active projects and machines over windows of N days that end at `to_ms` (exclusive;
    /// `from_ms` is ignored): columns `window_days`, `projects`, `machines`; one row per
    /// window in the order given, also when zero.
    Active {
        /// Window lengths in days, e.g. `[1, 7, 28]`.
        windows: Vec<u32>,
    },
    /// Plugins by the number of distinct projects using them in range: columns `plugin`,
    /// `projects`, `machines`, `events`; ordered by `projects` descending then `plugin`
    /// ascending; at most `limit` rows.
    TopPlugins {
        /// Most rows returned.
        limit: usize,
    },
    /// Events split by one dimension: columns `<dimension name>` (text), `projects`,
    /// `machines`, `events`; ordered by `projects` descending, then `events` descending,
    /// then value ascending.
    Split {
        /// The dimension.
        dimension: Dimension,
    },
    /// Distinct active projects and machines per UTC day of the range, each over the
    /// `window_days` days ending with that day (1 = daily actives, 7 and 28 = rolling):
    /// columns `day`, `projects`, `machines`; one row per day of the range, also when zero,
    /// ordered by `day`.
    ActiveSeries {
        /// Window length in days.
        window_days: u32,
    },
    /// Events grouped by an optional period and up to two dimensions: columns `period`
    /// (date, when a period is given), one text column per dimension, then `projects`,
    /// `machines`, `events` and `period_projects` (distinct projects of the period — or
    /// of the whole range — with any event, for shares). With `limit`, only the `limit`
    /// dimension tuples with the most projects over the whole range are kept. Ordered by
    /// `period`, then `projects` descending, `events` descending, dimension values
    /// ascending.
    Breakdown {
        /// Bucket the range by this period.
        period: Option<Period>,
        /// Group by these dimensions (at most two).
        dimensions: Vec<Dimension>,
        /// Keep only the top tuples.
        limit: Option<usize>,
    },
    /// Plugins used together, per project: a project uses a plugin when any of its events
    /// in range lists it. Columns `plugin_a`, `plugin_b`, `projects_both`, `projects_a`,
    /// `projects_b`, `projects_total` (projects with any event in range). With `plugin`,
    /// `plugin_a` is that plugin and every other plugin is a `plugin_b`; without, the
    /// `limit` plugins with the most projects form a full matrix (both orders, no
    /// diagonal). Pairs never used together are omitted. Ordered by `projects_both`
    /// descending, then `plugin_a`, then `plugin_b`.
    CoUsage {
        /// The plugin whose companions are wanted.
        plugin: Option<String>,
        /// Matrix size without `plugin`; most rows with it.
        limit: usize,
    },
    /// Percentiles of `duration_ms` of events named `event` (rows without a duration are
    /// ignored), by an optional period and dimension: columns `period`, `<dimension>`,
    /// then `events`, `projects`, `p50`, `p90`, `p99` (nearest-rank: the value at
    /// position ceil(q·n) of the sorted durations). Ordered by `period`, then the
    /// dimension value.
    Durations {
        /// The timed event, e.g. `project.created`.
        event: String,
        /// Bucket the range by this period.
        period: Option<Period>,
        /// Group by this dimension.
        dimension: Option<Dimension>,
    },
    /// What dropping support for a runtime version would cost, per runtime (`runtime`) and
    /// version at the level of `dimension` (runtime major, minor or exact version). A
    /// project's **newest** version of a runtime is the highest version, in the order of
    /// [`compare_versions`], among its events on that runtime in range (after the
    /// filters): the newest any of its machines ran. Dropping support for version V and
    /// every older one leaves behind the projects whose newest version is V or older,
    /// since none of their machines was seen on a version that stays supported. Columns
    /// `runtime`, `<dimension>`, `projects_newest` (projects whose newest version is this
    /// one), `projects_left` (projects whose newest version is this one or older),
    /// `projects_kept` (the others: projects seen on a newer version) and
    /// `runtime_projects` (projects with any event on the runtime in range); one row per
    /// version seen on the runtime in range. Ordered by `runtime`, then version ascending.
    DropSupport {
        /// [`Dimension::RuntimeMajor`], [`Dimension::RuntimeMinor`] or
        /// [`Dimension::RuntimeVersion`]; others are refused by [`Query::validate`].
        dimension: Dimension,
    },
    /// Weekly cohorts: projects whose first event (ever, among the filtered rows) falls in
    /// week W of the range, and how many of them have events in week W+N. Columns
    /// `cohort` (date, Monday), `week` (N), `projects`; N runs from 0 to `weeks`, only for
    /// weeks starting before `to_ms`. Ordered by `cohort`, then `week`.
    Retention {
        /// Most weeks after the cohort's.
        weeks: u32,
    },
}

/// The type of a table column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// Text.
    Text,
    /// 64-bit integer.
    Int,
    /// 64-bit float.
    Float,
    /// Calendar date (UTC).
    Date,
}

/// A named, typed column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub ty: ColumnType,
}

impl Column {
    /// A column.
    pub fn new(name: impl Into<String>, ty: ColumnType) -> Self {
        Column { name: name.into(), ty }
    }
}

/// One value of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Cell {
    /// No value.
    Null,
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A date, serialized as `YYYY-MM-DD`.
    Date(NaiveDate),
    /// Text.
    Text(String),
}

impl Cell {
    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Cell::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The text, if this is text.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Cell::Text(s) => Some(s),
            _ => None,
        }
    }
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cell::Null => Ok(()),
            Cell::Int(i) => write!(f, "{i}"),
            Cell::Float(x) => write!(f, "{x}"),
            Cell::Date(d) => write!(f, "{d}"),
            Cell::Text(s) => f.write_str(s),
        }
    }
}

/// A typed result table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// The columns.
    pub columns: Vec<Column>,
    /// The rows; each has one cell per column.
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    /// An empty table with these columns.
    pub fn new(columns: Vec<Column>) -> Self {
        Table { columns, rows: Vec::new() }
    }

    /// The index of a column by name.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The columns a query kind's table has.
    pub fn columns_for(kind: &QueryKind) -> Vec<Column> {
        use ColumnType::*;
        let counts = |first: Column| {
            vec![first, Column::new("projects", Int), Column::new("machines", Int), Column::new("events", Int)]
        };
        match kind {
            QueryKind::EventsPerDay => vec![
                Column::new("day", Date),
                Column::new("events", Int),
                Column::new("projects", Int),
                Column::new("machines", Int),
            ],
            QueryKind::Active { .. } => {
                vec![Column::new("window_days", Int), Column::new("projects", Int), Column::new("machines", Int)]
            }
            QueryKind::TopPlugins { .. } => counts(Column::new("plugin", Text)),
            QueryKind::Split { dimension } => counts(Column::new(dimension.name(), Text)),
            QueryKind::ActiveSeries { .. } => {
                vec![Column::new("day", Date), Column::new("projects", Int), Column::new("machines", Int)]
            }
            QueryKind::Breakdown { period, dimensions, .. } => {
                let mut cols = Vec::new();
                if period.is_some() {
                    cols.push(Column::new("period", Date));
                }
                cols.extend(dimensions.iter().map(|d| Column::new(d.name(), Text)));
                for c in ["projects", "machines", "events", "period_projects"] {
                    cols.push(Column::new(c, Int));
                }
                cols
            }
            QueryKind::CoUsage { .. } => vec![
                Column::new("plugin_a", Text),
                Column::new("plugin_b", Text),
                Column::new("projects_both", Int),
                Column::new("projects_a", Int),
                Column::new("projects_b", Int),
                Column::new("projects_total", Int),
            ],
            QueryKind::Durations { period, dimension, .. } => {
                let mut cols = Vec::new();
                if period.is_some() {
                    cols.push(Column::new("period", Date));
                }
                if let Some(d) = dimension {
                    cols.push(Column::new(d.name(), Text));
                }
                for c in ["events", "projects", "p50", "p90", "p99"] {
                    cols.push(Column::new(c, Int));
                }
                cols
            }
            QueryKind::Retention { .. } => {
                vec![Column::new("cohort", Date), Column::new("week", Int), Column::new("projects", Int)]
            }
            QueryKind::DropSupport { dimension } => vec![
                Column::new("runtime", Text),
                Column::new(dimension.name(), Text),
                Column::new("projects_newest", Int),
                Column::new("projects_left", Int),
                Column::new("projects_kept", Int),
                Column::new("runtime_projects", Int),
            ],
        }
    }
}
