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
        }
    }
}
