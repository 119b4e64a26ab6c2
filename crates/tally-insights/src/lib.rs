//! The insight catalog: each question a maintainer asks, as a named insight that turns
//! typed parameters into a typed [`Query`] and applies k-anonymity to what is published.
//!
//! [`InsightRequest`] is the request as the CLI and the HTTP API take it, resolved into
//! [`Params`] in one place.
//!
//! This crate never names a storage backend and never writes SQL: it talks to storage only
//! through [`EventStore`].

mod bounds;
mod request;
mod shape;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tally_store::{Cell, Dimension, EventStore, Filters, Period, Query, QueryKind, StoreError, Table};

pub use bounds::{Bounds, QueryBounds};
pub use request::{InsightRequest, Resolved, parse_baseline, parse_since, parse_time, range_until_now};
use shape::{add_baseline, add_lift, add_share, add_share_left, keep_top_labels, keep_unordered_pairs, sort_versions};
pub use tally_store::compare_versions;

/// The default minimum number of distinct projects behind a published row.
pub const DEFAULT_K: usize = 5;

/// The event whose `duration_ms` `setup-time` reads unless asked for another.
pub const SETUP_EVENT: &str = "project.created";

/// The default number of rows for "top" insights.
pub const DEFAULT_LIMIT: usize = 20;

/// One named insight.
#[derive(Debug, Clone, Copy)]
pub struct Insight {
    /// The name used on the CLI and in `/v1/insights/{name}`.
    pub name: &'static str,
    /// A short title.
    pub title: &'static str,
    /// The question it answers.
    pub question: &'static str,
    /// The optional parameters it reads besides app, range, filters and limit.
    pub options: &'static str,
    kind: fn(&Params) -> Result<QueryKind, InsightError>,
    finish: fn(&mut Table, &Params),
}

impl Insight {
    /// The query kind this insight asks with these parameters.
    pub fn query_kind(&self, params: &Params) -> Result<QueryKind, InsightError> {
        (self.kind)(params)
    }
}

fn split(dimension: Dimension) -> Result<QueryKind, InsightError> {
    Ok(QueryKind::Split { dimension })
}

fn nothing(_: &mut Table, _: &Params) {}

fn breakdown(
    period: Option<Period>,
    dimensions: Vec<Dimension>,
    limit: Option<usize>,
) -> Result<QueryKind, InsightError> {
    Ok(QueryKind::Breakdown { period, dimensions, limit })
}

fn runtime_dimension(p: &Params) -> Result<Dimension, InsightError> {
    match p.group_by {
        None => Ok(Dimension::RuntimeMajor),
        Some(d @ (Dimension::RuntimeMajor | Dimension::RuntimeMinor | Dimension::RuntimeVersion)) => Ok(d),
        Some(d) => Err(InsightError::InvalidParams(format!(
            "runtime-versions and drop-support group by runtime_major, runtime_minor or runtime_version, not {}",
            d.name()
        ))),
    }
}

/// Every insight, in the order `tally insights list` shows them.
pub const CATALOG: &[Insight] = &[
    Insight {
        name: "events-per-day",
        title: "Events per day",
        question: "How many events, projects and machines per day?",
        options: "",
        kind: |_| Ok(QueryKind::EventsPerDay),
        finish: nothing,
    },
    Insight {
        name: "active",
        title: "Active projects and machines",
        question: "How many distinct projects and machines were active in the last 1, 7 and 28 days?",
        options: "",
        kind: |_| Ok(QueryKind::Active { windows: vec![1, 7, 28] }),
        finish: nothing,
    },
    Insight {
        name: "active-trend",
        title: "Active projects and machines per day",
        question: "How many distinct projects and machines were active each day (or in the N days up to it)?",
        options: "window_days (1, 7, 28, ...; default 1)",
        kind: |p| Ok(QueryKind::ActiveSeries { window_days: p.window_days.unwrap_or(1).max(1) }),
        finish: nothing,
    },
    Insight {
        name: "top-plugins",
        title: "Top plugins",
        question: "Which plugins are used by the most projects?",
        options: "",
        kind: |p| Ok(QueryKind::TopPlugins { limit: p.limit }),
        finish: nothing,
    },
    Insight {
        name: "plugin-adoption",
        title: "Plugin adoption over time",
        question: "What share of active projects uses each of the top plugins, per week (or day)?",
        options: "period (day|week; default week)",
        kind: |p| breakdown(Some(p.period.unwrap_or(Period::Week)), vec![Dimension::Plugin], Some(p.limit)),
        finish: add_share,
    },
    Insight {
        name: "co-usage",
        title: "Plugins used together",
        question: "Which plugins are used by the same projects, and how much more often than by chance (lift)?",
        options: "focus (a plugin: its companions; default: the matrix of the top plugins)",
        kind: |p| Ok(QueryKind::CoUsage { plugin: p.focus.clone(), limit: p.limit }),
        finish: |t, p| {
            // The store answers the matrix in both orders (a,b and b,a); a pair is one
            // answer, so the CLI, the API and the dashboard list each once.
            if p.focus.is_none() {
                keep_unordered_pairs(t);
            }
            add_lift(t, p);
        },
    },
    Insight {
        name: "env-split",
        title: "Environment split",
        question: "How many projects run in development, staging, production and test (per plugin or other dimension with group_by)?",
        options: "group_by (a dimension, e.g. plugin)",
        kind: |p| match p.group_by {
            None => split(Dimension::Env),
            Some(d) => breakdown(None, vec![d, Dimension::Env], None),
        },
        finish: |t, p| {
            if p.group_by.is_some() {
                add_share(t, p)
            }
        },
    },
    Insight {
        name: "feature-env",
        title: "Plugins by environment",
        question: "Is each of the top plugins used in production, or only in development?",
        options: "",
        kind: |_| breakdown(None, vec![Dimension::Plugin, Dimension::Env], None),
        finish: |t, p| keep_top_labels(t, p.limit),
    },
    Insight {
        name: "setup-time",
        title: "Setup time",
        question: "How long does setup take (p50, p90, p99), per week or app version — is it getting slower?",
        options: "event (default project.created), period (day|week; default week), group_by (e.g. app_version)",
        kind: |p| {
            Ok(QueryKind::Durations {
                event: p.event.clone().unwrap_or_else(|| SETUP_EVENT.into()),
                period: if p.group_by.is_some() { p.period } else { Some(p.period.unwrap_or(Period::Week)) },
                dimension: p.group_by,
            })
        },
        finish: |t, p| {
            if p.group_by.is_some_and(is_version) {
                sort_versions(t, p.group_by.map_or("", Dimension::name));
            }
        },
    },
    Insight {
        name: "error-kinds",
        title: "Error kinds",
        question: "Which errors affect the most projects (over time with period, split by os, runtime_version or app_version with group_by)?",
        options: "period (day|week), group_by (a dimension, e.g. os)",
        kind: |p| {
            let mut dims = vec![Dimension::ErrorKind];
            dims.extend(p.group_by);
            breakdown(p.period, dims, Some(p.limit))
        },
        finish: add_share,
    },
    Insight {
        name: "runtime-versions",
        title: "Runtime versions",
        question: "What share of active projects runs each runtime version, against a baseline distribution?",
        options: "group_by (runtime_major|runtime_minor|runtime_version; default runtime_major), baseline (version -> share)",
        kind: |p| breakdown(None, vec![runtime_dimension(p)?], None),
        finish: |t, p| {
            add_share(t, p);
            let column = runtime_dimension(p).map_or("runtime_major", Dimension::name);
            sort_versions(t, column);
            if let Some(baseline) = &p.baseline {
                add_baseline(t, column, baseline);
            }
        },
    },
    Insight {
        name: "drop-support",
        title: "Dropping a runtime version",
        question: "What share of active projects would dropping support for a runtime version, and every older one, leave behind (projects none of whose machines ran a newer version)?",
        options: "group_by (runtime_major|runtime_minor|runtime_version; default runtime_major)",
        kind: |p| Ok(QueryKind::DropSupport { dimension: runtime_dimension(p)? }),
        finish: add_share_left,
    },
    Insight {
        name: "os-split",
        title: "OS split",
        question: "Which operating systems do projects run on?",
        options: "",
        kind: |_| split(Dimension::Os),
        finish: nothing,
    },
    Insight {
        name: "arch-split",
        title: "CPU architecture split",
        question: "Which CPU architectures?",
        options: "",
        kind: |_| split(Dimension::Arch),
        finish: nothing,
    },
    Insight {
        name: "ci-split",
        title: "CI vendors",
        question: "Which CI systems run the tool (empty: not CI)?",
        options: "",
        kind: |_| split(Dimension::Ci),
        finish: nothing,
    },
    Insight {
        name: "container-split",
        title: "Containers",
        question: "How many projects run the tool in a container?",
        options: "",
        kind: |_| split(Dimension::Container),
        finish: nothing,
    },
    Insight {
        name: "app-versions",
        title: "App versions",
        question: "Which versions of the tool are in use?",
        options: "",
        kind: |_| split(Dimension::AppVersion),
        finish: |t, _| sort_versions(t, "app_version"),
    },
    Insight {
        name: "app-version-adoption",
        title: "App version adoption",
        question: "How fast do projects move to a new release (share of active projects per version, per day or week)?",
        options: "period (day|week; default day)",
        kind: |p| breakdown(Some(p.period.unwrap_or(Period::Day)), vec![Dimension::AppVersion], None),
        finish: add_share,
    },
    Insight {
        name: "retention",
        title: "Retention",
        question: "Of the projects first seen in week W, how many are still active N weeks later?",
        options: "weeks (default 8)",
        kind: |p| Ok(QueryKind::Retention { weeks: p.weeks.unwrap_or(8) }),
        finish: nothing,
    },
    Insight {
        name: "event-counts",
        title: "Events by name",
        question: "Which events are sent, by how many projects?",
        options: "",
        kind: |_| split(Dimension::Event),
        finish: nothing,
    },
];

fn is_version(d: Dimension) -> bool {
    matches!(d, Dimension::AppVersion | Dimension::RuntimeVersion | Dimension::RuntimeMajor | Dimension::RuntimeMinor)
}

/// Finds an insight by name.
pub fn find(name: &str) -> Option<&'static Insight> {
    CATALOG.iter().find(|i| i.name == name)
}

/// Parameters every insight takes; the optional ones are read by the insights that name
/// them in [`Insight::options`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// The app.
    pub app: String,
    /// Start of the range (inclusive), ms since the Unix epoch.
    pub from_ms: i64,
    /// End of the range (exclusive), ms since the Unix epoch.
    pub to_ms: i64,
    /// Row filters.
    #[serde(default)]
    pub filters: Filters,
    /// Most rows (or plugins, versions) for "top" insights.
    pub limit: usize,
    /// Time bucket for insights over time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// A second dimension to split by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<Dimension>,
    /// Rolling window of `active-trend`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_days: Option<u32>,
    /// The timed event of `setup-time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The plugin whose companions `co-usage` lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub focus: Option<String>,
    /// Weeks after the cohort for `retention`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weeks: Option<u32>,
    /// Baseline share per version for `runtime-versions` (e.g. the community's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BTreeMap<String, f64>>,
}

impl Params {
    /// Parameters with only the required fields set.
    pub fn new(app: impl Into<String>, from_ms: i64, to_ms: i64) -> Params {
        Params {
            app: app.into(),
            from_ms,
            to_ms,
            filters: Filters::default(),
            limit: DEFAULT_LIMIT,
            period: None,
            group_by: None,
            window_days: None,
            event: None,
            focus: None,
            weeks: None,
            baseline: None,
        }
    }
}

/// Whether the answer is for the maintainer or for publication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Every row.
    Private,
    /// Rows with fewer than `k` distinct projects are suppressed.
    Public {
        /// The threshold.
        k: usize,
    },
}

/// What was hidden from a published answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Suppression {
    /// The threshold applied.
    pub k: usize,
    /// How many rows had fewer than `k` distinct projects and were hidden.
    pub hidden_rows: usize,
}

/// An insight's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Answer {
    /// The insight's name.
    pub insight: String,
    /// Its title.
    pub title: String,
    /// The parameters it was asked with (range in ms since the epoch, filters, options).
    #[schema(value_type = Object)]
    pub params: Params,
    /// The table: its columns (docs/insights.md lists each insight's) and rows.
    #[schema(value_type = Object)]
    pub table: Table,
    /// Present on published answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppression: Option<Suppression>,
}

/// Why an insight could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum InsightError {
    /// No insight has this name.
    #[error("no insight named {0:?}; `tally insights list` shows them all")]
    Unknown(String),
    /// The parameters are not valid.
    #[error("{0}")]
    InvalidParams(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Answers insight `name` from `store`.
pub fn answer(store: &dyn EventStore, name: &str, params: Params, audience: Audience) -> Result<Answer, InsightError> {
    let insight = find(name).ok_or_else(|| InsightError::Unknown(name.to_string()))?;
    if params.from_ms >= params.to_ms {
        return Err(InsightError::InvalidParams("the time range is empty: `from` must be before `to`".into()));
    }
    if params.limit == 0 {
        return Err(InsightError::InvalidParams("limit must be at least 1".into()));
    }
    let query = Query {
        app: params.app.clone(),
        from_ms: params.from_ms,
        to_ms: params.to_ms,
        filters: params.filters.clone(),
        kind: insight.query_kind(&params)?,
    };
    let mut table = store.query(&query)?;
    // Suppress on the store's counts, before anything derived from them is added.
    let suppression = match audience {
        Audience::Private => None,
        Audience::Public { k } => Some(suppress(&mut table, k)),
    };
    (insight.finish)(&mut table, &params);
    Ok(Answer { insight: insight.name.into(), title: insight.title.into(), params, table, suppression })
}

/// Removes every row in which any distinct-project count (every column whose name contains
/// `projects`) is below `k`; a table without such a column is emptied: nothing is
/// published that cannot be checked.
pub fn suppress(table: &mut Table, k: usize) -> Suppression {
    let before = table.rows.len();
    let checked: Vec<usize> =
        table.columns.iter().enumerate().filter(|(_, c)| c.name.contains("projects")).map(|(i, _)| i).collect();
    if checked.is_empty() {
        table.rows.clear();
    } else {
        // Compared in u64, k converted saturating: `k as i64` turned a huge k negative and
        // published every row (issue 11). A negative count is never published.
        let k = u64::try_from(k).unwrap_or(u64::MAX);
        let enough = |n: i64| u64::try_from(n).is_ok_and(|n| n >= k);
        table.rows.retain(|r| checked.iter().all(|i| matches!(r[*i], Cell::Int(n) if enough(n))));
    }
    Suppression { k, hidden_rows: before - table.rows.len() }
}

#[cfg(test)]
mod tests;
