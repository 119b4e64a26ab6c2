//! The insight catalog: each question a maintainer asks, as a named insight that turns
//! typed parameters into a typed [`Query`] and applies k-anonymity to what is published.
//!
//! This crate never names a storage backend and never writes SQL: it talks to storage only
//! through [`EventStore`].

use serde::{Deserialize, Serialize};
use tally_store::{Cell, Dimension, EventStore, Filters, Query, QueryKind, StoreError, Table};

/// The default minimum number of distinct projects behind a published row.
pub const DEFAULT_K: usize = 5;

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
    kind: fn(&Params) -> QueryKind,
}

impl Insight {
    /// The query kind this insight asks with these parameters.
    pub fn query_kind(&self, params: &Params) -> QueryKind {
        (self.kind)(params)
    }
}

fn split(dimension: Dimension) -> QueryKind {
    QueryKind::Split { dimension }
}

/// Every insight, in the order `tally insights list` shows them.
pub const CATALOG: &[Insight] = &[
    Insight {
        name: "events-per-day",
        title: "Events per day",
        question: "How many events, projects and machines per day?",
        kind: |_| QueryKind::EventsPerDay,
    },
    Insight {
        name: "active",
        title: "Active projects and machines",
        question: "How many distinct projects and machines were active in the last 1, 7 and 28 days?",
        kind: |_| QueryKind::Active { windows: vec![1, 7, 28] },
    },
    Insight {
        name: "top-plugins",
        title: "Top plugins",
        question: "Which plugins are used by the most projects?",
        kind: |p| QueryKind::TopPlugins { limit: p.limit },
    },
    Insight {
        name: "env-split",
        title: "Environment split",
        question: "How many projects run in development, staging, production and test?",
        kind: |_| split(Dimension::Env),
    },
    Insight {
        name: "os-split",
        title: "OS split",
        question: "Which operating systems do projects run on?",
        kind: |_| split(Dimension::Os),
    },
    Insight {
        name: "arch-split",
        title: "CPU architecture split",
        question: "Which CPU architectures?",
        kind: |_| split(Dimension::Arch),
    },
    Insight {
        name: "runtime-versions",
        title: "Runtime versions",
        question: "Which runtime versions do projects use?",
        kind: |_| split(Dimension::RuntimeVersion),
    },
    Insight {
        name: "app-versions",
        title: "App versions",
        question: "Which versions of the tool are in use?",
        kind: |_| split(Dimension::AppVersion),
    },
    Insight {
        name: "error-kinds",
        title: "Error kinds",
        question: "Which errors affect the most projects?",
        kind: |_| split(Dimension::ErrorKind),
    },
    Insight {
        name: "ci-split",
        title: "CI vendors",
        question: "Which CI systems run the tool?",
        kind: |_| split(Dimension::Ci),
    },
    Insight {
        name: "event-counts",
        title: "Events by name",
        question: "Which events are sent, by how many projects?",
        kind: |_| split(Dimension::Event),
    },
];

/// Finds an insight by name.
pub fn find(name: &str) -> Option<&'static Insight> {
    CATALOG.iter().find(|i| i.name == name)
}

/// Parameters every insight takes.
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
    /// Most rows for "top" insights.
    pub limit: usize,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    /// The threshold applied.
    pub k: usize,
    /// How many rows had fewer than `k` distinct projects and were hidden.
    pub hidden_rows: usize,
}

/// An insight's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The insight's name.
    pub insight: String,
    /// Its title.
    pub title: String,
    /// The parameters it was asked with.
    pub params: Params,
    /// The table.
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
    let query = Query {
        app: params.app.clone(),
        from_ms: params.from_ms,
        to_ms: params.to_ms,
        filters: params.filters.clone(),
        kind: insight.query_kind(&params),
    };
    let mut table = store.query(&query)?;
    let suppression = match audience {
        Audience::Private => None,
        Audience::Public { k } => Some(suppress(&mut table, k)),
    };
    Ok(Answer { insight: insight.name.into(), title: insight.title.into(), params, table, suppression })
}

/// Removes every row whose `projects` cell is below `k` (or every row, if the table has no
/// `projects` column: nothing is published that cannot be checked).
pub fn suppress(table: &mut Table, k: usize) -> Suppression {
    let before = table.rows.len();
    match table.column("projects") {
        Some(i) => table.rows.retain(|r| matches!(r[i], Cell::Int(n) if n >= k as i64)),
        None => table.rows.clear(),
    }
    Suppression { k, hidden_rows: before - table.rows.len() }
}

/// Parses a duration such as `30d`, `12h`, `4w` or `90m` into milliseconds.
pub fn parse_since(s: &str) -> Result<i64, InsightError> {
    let bad = || {
        InsightError::InvalidParams(format!("{s:?} is not a duration; use a number and a unit: 90m, 12h, 30d or 4w"))
    };
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let unit_ms = match unit {
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => tally_store::DAY_MS,
        "w" => 7 * tally_store::DAY_MS,
        _ => return Err(bad()),
    };
    n.checked_mul(unit_ms).filter(|ms| *ms > 0).ok_or_else(bad)
}

/// Parses a point in time: RFC 3339 (`2026-11-01T12:00:00Z`) or a date (`2026-11-01`, at
/// 00:00 UTC), into ms since the Unix epoch.
pub fn parse_time(s: &str) -> Result<i64, InsightError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc().timestamp_millis())
        .map_err(|_| {
            InsightError::InvalidParams(format!("{s:?} is not a time; use 2026-11-01 or 2026-11-01T12:00:00Z"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_store::conformance::{T0, row};
    use tally_store::{DAY_MS, MemoryStore};

    fn params() -> Params {
        Params { app: "demo".into(), from_ms: T0, to_ms: T0 + 10 * DAY_MS, filters: Filters::default(), limit: 10 }
    }

    #[test]
    fn a_plugin_used_by_k_minus_one_projects_is_never_published() {
        let store = MemoryStore::new();
        let mut rows = vec![];
        for p in 0..5u8 {
            let mut r = row(u128::from(p) + 1, 1, 0, p, p);
            r.plugins = vec!["popular".into()];
            if p < 4 {
                r.plugins.push("rare".into());
            }
            rows.push(r);
        }
        store.append(&rows).expect("append");
        let private = answer(&store, "top-plugins", params(), Audience::Private).expect("answer");
        assert_eq!(private.table.rows.len(), 2);
        let public = answer(&store, "top-plugins", params(), Audience::Public { k: 5 }).expect("answer");
        assert_eq!(
            public.table.rows,
            vec![vec![Cell::Text("popular".into()), Cell::Int(5), Cell::Int(5), Cell::Int(5)]]
        );
        assert_eq!(public.suppression, Some(Suppression { k: 5, hidden_rows: 1 }));
        let json = serde_json::to_string(&public).expect("json");
        assert!(!json.contains("rare"), "{json}");
    }

    #[test]
    fn durations_and_times_parse() {
        assert_eq!(parse_since("30d").expect("30d"), 30 * DAY_MS);
        assert_eq!(parse_since("2w").expect("2w"), 14 * DAY_MS);
        assert_eq!(parse_since("90m").expect("90m"), 90 * 60_000);
        for bad in ["", "d", "30", "30x", "-3d", "0d"] {
            assert!(parse_since(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_time("2026-10-01").expect("date"), T0);
        assert_eq!(parse_time("2026-10-01T00:00:00Z").expect("rfc3339"), T0);
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn every_insight_answers_on_an_empty_store() {
        let store = MemoryStore::new();
        for i in CATALOG {
            let a = answer(&store, i.name, params(), Audience::Public { k: DEFAULT_K }).expect(i.name);
            assert_eq!(a.insight, i.name);
        }
        assert!(matches!(answer(&store, "nope", params(), Audience::Private), Err(InsightError::Unknown(_))));
        let mut empty = params();
        empty.to_ms = empty.from_ms;
        assert!(matches!(answer(&store, "active", empty, Audience::Private), Err(InsightError::InvalidParams(_))));
    }
}
