//! The insight queries in ClickHouse SQL: one function per [`QueryKind`].
//!
//! Every query reads `events FINAL` (copies of an event id count once before any merge)
//! and aggregates in the outermost query over the table, or in the innermost one when a
//! result needs a second step: on a `Distributed` table, that is the query each shard
//! answers for its rows, with exact distinct counts (`uniqExact`) merged by the server
//! that was asked. What is small and needs an order that SQL on 18.16 writes awkwardly
//! (zero rows of a series, the top-N of a breakdown, a cohort grid) is put together here
//! from grouped answers. Written for 18.16: no window functions, no lambdas over table
//! columns, no non-equi joins, no `JOIN ON`.

use std::collections::{HashMap, HashSet};

use chrono::DateTime;
use serde_json::Value;
use tally_store::{Cell, DAY_MS, Dimension, Period, Query, QueryKind, StoreError, Table};

use crate::http::{Node, quote};
use crate::write::day;

const WEEK_MS: i64 = 7 * DAY_MS;

/// Answers a query on `node`.
pub(crate) fn run(node: &Node, q: &Query) -> Result<Table, StoreError> {
    q.validate()?;
    let mut table = Table::new(Table::columns_for(&q.kind));
    table.rows = match &q.kind {
        QueryKind::EventsPerDay => events_per_day(node, q)?,
        QueryKind::Active { windows } => active(node, q, windows)?,
        QueryKind::TopPlugins { limit } => top_plugins(node, q, *limit)?,
        QueryKind::Split { dimension } => split(node, q, *dimension)?,
        QueryKind::ActiveSeries { window_days } => active_series(node, q, *window_days)?,
        QueryKind::Breakdown { period, dimensions, limit } => breakdown(node, q, *period, dimensions, *limit)?,
        QueryKind::CoUsage { plugin, limit } => co_usage(node, q, plugin.as_deref(), *limit)?,
        QueryKind::Durations { event, period, dimension } => durations(node, q, event, *period, *dimension)?,
        QueryKind::Retention { weeks } => retention(node, q, *weeks)?,
        QueryKind::DropSupport { dimension } => drop_support(node, q, *dimension)?,
    };
    Ok(table)
}

/// `app = … AND <filters>` and, when given, the `[from, to)` range (also as days, which
/// the table's order and partitions use).
fn filters(q: &Query, range: Option<(i64, i64)>) -> String {
    let mut w = format!("app = {}", quote(&q.app));
    let f = &q.filters;
    if let Some(env) = f.env {
        w += &format!(" AND env = {}", quote(env.as_str()));
    }
    if let Some(os) = &f.os {
        w += &format!(" AND os = {}", quote(os));
    }
    if let Some(v) = &f.app_version {
        w += &format!(" AND app_version = {}", quote(v));
    }
    if let Some(p) = &f.plugin {
        w += &format!(" AND has(plugins, {})", quote(p));
    }
    if let Some((from, to)) = range {
        w += &format!(
            " AND occurred_at >= {from} AND occurred_at < {to} AND day >= toDate('{}') AND day <= toDate('{}')",
            day(from),
            day(to - 1)
        );
    }
    w
}

/// How rows are read for a grouping by `dims`: the `FROM` clause (unnesting plugins when
/// one of them is `Plugin`) and the conditions that drop rows without a value.
struct Source {
    from: &'static str,
    conditions: String,
}

impl Source {
    fn for_dims(dims: &[Dimension]) -> Source {
        let unnest = dims.contains(&Dimension::Plugin);
        Source {
            from: if unnest { "events FINAL ARRAY JOIN plugins AS plugin" } else { "events FINAL" },
            conditions: if dims.contains(&Dimension::ErrorKind) {
                " AND error_kind IS NOT NULL".into()
            } else {
                String::new()
            },
        }
    }
}

/// A dimension's value as a string expression (`plugin` needs [`Source::for_dims`]).
fn dimension_expr(d: Dimension) -> &'static str {
    match d {
        Dimension::Env => "env",
        Dimension::Os => "os",
        Dimension::Arch => "arch",
        Dimension::Runtime => "runtime",
        Dimension::RuntimeVersion => "runtime_version",
        Dimension::AppVersion => "app_version",
        Dimension::Ci => "ci",
        Dimension::Container => "if(container = 1, 'true', 'false')",
        Dimension::Event => "event",
        Dimension::ErrorKind => "assumeNotNull(error_kind)",
        Dimension::Plugin => "plugin",
        Dimension::RuntimeMajor => "splitByChar('.', runtime_version)[1]",
        Dimension::RuntimeMinor => "arrayStringConcat(arraySlice(splitByChar('.', runtime_version), 1, 2), '.')",
    }
}

/// The start (ms) of the period holding `occurred_at`; `0` without a period.
fn period_expr(p: Option<Period>) -> String {
    match p {
        None => "toInt64(0)".into(),
        Some(Period::Day) => format!("intDiv(occurred_at, {DAY_MS}) * {DAY_MS}"),
        Some(Period::Week) => format!("(intDiv(intDiv(occurred_at, {DAY_MS}) + 3, 7) * 7 - 3) * {DAY_MS}"),
    }
}

fn events_per_day(node: &Node, q: &Query) -> Result<Vec<Vec<Cell>>, StoreError> {
    let sql = format!(
        "SELECT intDiv(occurred_at, {DAY_MS}) * {DAY_MS} AS t, count(), uniqExact(project), uniqExact(machine) \
         FROM events FINAL WHERE {} GROUP BY t ORDER BY t",
        filters(q, Some((q.from_ms, q.to_ms)))
    );
    node.rows(&sql)?
        .iter()
        .map(|r| Ok(vec![date(&r[0])?, int_cell(&r[1])?, int_cell(&r[2])?, int_cell(&r[3])?]))
        .collect()
}

fn active(node: &Node, q: &Query, windows: &[u32]) -> Result<Vec<Vec<Cell>>, StoreError> {
    let Some(longest) = windows.iter().max() else { return Ok(vec![]) };
    let columns: Vec<String> = windows
        .iter()
        .map(|w| {
            let start = q.to_ms - i64::from(*w) * DAY_MS;
            format!("uniqExactIf(project, occurred_at >= {start}), uniqExactIf(machine, occurred_at >= {start})")
        })
        .collect();
    let sql = format!(
        "SELECT {} FROM events FINAL WHERE {}",
        columns.join(", "),
        filters(q, Some((q.to_ms - i64::from(*longest) * DAY_MS, q.to_ms)))
    );
    let rows = node.rows(&sql)?;
    let r = rows.first().ok_or_else(|| StoreError::Backend("clickhouse returned no row for an aggregate".into()))?;
    windows
        .iter()
        .enumerate()
        .map(|(i, w)| Ok(vec![Cell::Int(i64::from(*w)), int_cell(&r[2 * i])?, int_cell(&r[2 * i + 1])?]))
        .collect()
}

/// Rows of (text, projects, machines, events), as ClickHouse ordered them.
fn counted(node: &Node, sql: &str) -> Result<Vec<Vec<Cell>>, StoreError> {
    node.rows(sql)?
        .iter()
        .map(|r| Ok(vec![text(&r[0])?, int_cell(&r[1])?, int_cell(&r[2])?, int_cell(&r[3])?]))
        .collect()
}

fn top_plugins(node: &Node, q: &Query, limit: usize) -> Result<Vec<Vec<Cell>>, StoreError> {
    counted(
        node,
        &format!(
            "SELECT plugin, uniqExact(project) AS p, uniqExact(machine) AS m, count() AS e \
             FROM events FINAL ARRAY JOIN plugins AS plugin WHERE {} GROUP BY plugin ORDER BY p DESC, e DESC, plugin LIMIT {limit}",
            filters(q, Some((q.from_ms, q.to_ms)))
        ),
    )
}

fn split(node: &Node, q: &Query, dimension: Dimension) -> Result<Vec<Vec<Cell>>, StoreError> {
    let src = Source::for_dims(&[dimension]);
    counted(
        node,
        &format!(
            "SELECT {} AS v, uniqExact(project) AS p, uniqExact(machine) AS m, count() AS e FROM {} WHERE {}{} \
             GROUP BY v ORDER BY p DESC, e DESC, v",
            dimension_expr(dimension),
            src.from,
            filters(q, Some((q.from_ms, q.to_ms))),
            src.conditions
        ),
    )
}

/// Each (runtime, version, project) once from the server; each project's newest version
/// and the cumulative counts are put together by [`tally_store::drop_support_rows`] (18.16
/// has no window functions, and the order is tally's `compare_versions`, not SQL's).
fn drop_support(node: &Node, q: &Query, dimension: Dimension) -> Result<Vec<Vec<Cell>>, StoreError> {
    let src = Source::for_dims(&[dimension]);
    let rows = node.rows(&format!(
        "SELECT runtime, {} AS v, toString(project) FROM {} WHERE {}{} GROUP BY runtime, v, project",
        dimension_expr(dimension),
        src.from,
        filters(q, Some((q.from_ms, q.to_ms))),
        src.conditions
    ))?;
    let seen = rows
        .iter()
        .map(|r| Ok((string(&r[0])?, string(&r[1])?, string(&r[2])?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(tally_store::drop_support_rows(seen))
}

/// Each event counts for the `window_days` days starting with its own (`ARRAY JOIN
/// range(N)`); days without any are filled in with zeros.
fn active_series(node: &Node, q: &Query, window_days: u32) -> Result<Vec<Vec<Cell>>, StoreError> {
    let first = Period::Day.start_of(q.from_ms);
    let last = Period::Day.start_of(q.to_ms - 1);
    if last < first {
        return Ok(vec![]);
    }
    let window = i64::from(window_days) * DAY_MS;
    let sql = format!(
        "SELECT (intDiv(occurred_at, {DAY_MS}) + k) * {DAY_MS} AS t, uniqExact(project), uniqExact(machine) \
         FROM events FINAL ARRAY JOIN range({window_days}) AS k WHERE {} GROUP BY t HAVING t >= {first} AND t <= {last}",
        filters(q, Some((first + DAY_MS - window, last + DAY_MS)))
    );
    let mut found = HashMap::new();
    for r in node.rows(&sql)? {
        found.insert(int(&r[0])?, (int(&r[1])?, int(&r[2])?));
    }
    Ok((0..=(last - first) / DAY_MS)
        .map(|i| {
            let t = first + i * DAY_MS;
            let (p, m) = found.get(&t).copied().unwrap_or((0, 0));
            vec![date_ms(t), Cell::Int(p), Cell::Int(m)]
        })
        .collect())
}

/// One group of a breakdown.
struct Group {
    period: i64,
    values: [String; 2],
    projects: i64,
    machines: i64,
    events: i64,
}

fn breakdown(
    node: &Node,
    q: &Query,
    period: Option<Period>,
    dims: &[Dimension],
    limit: Option<usize>,
) -> Result<Vec<Vec<Cell>>, StoreError> {
    let src = Source::for_dims(dims);
    let range = filters(q, Some((q.from_ms, q.to_ms)));
    let pexpr = period_expr(period);
    let dim = |i: usize| dims.get(i).map_or("''", |d| dimension_expr(*d));
    let mut period_projects = HashMap::new();
    for r in
        node.rows(&format!("SELECT {pexpr} AS pr, uniqExact(project) FROM events FINAL WHERE {range} GROUP BY pr"))?
    {
        period_projects.insert(int(&r[0])?, int(&r[1])?);
    }
    let keep: Option<HashSet<[String; 2]>> = match limit {
        Some(n) => Some(
            node.rows(&format!(
                "SELECT {} AS x1, {} AS x2, uniqExact(project) AS p, count() AS e FROM {} WHERE {range}{} \
                 GROUP BY x1, x2 ORDER BY p DESC, e DESC, x1, x2 LIMIT {n}",
                dim(0),
                dim(1),
                src.from,
                src.conditions
            ))?
            .iter()
            .map(|r| Ok([string(&r[0])?, string(&r[1])?]))
            .collect::<Result<_, StoreError>>()?,
        ),
        None => None,
    };
    let mut groups = Vec::new();
    for r in node.rows(&format!(
        "SELECT {pexpr} AS pr, {} AS x1, {} AS x2, uniqExact(project), uniqExact(machine), count() FROM {} \
         WHERE {range}{} GROUP BY pr, x1, x2",
        dim(0),
        dim(1),
        src.from,
        src.conditions
    ))? {
        let g = Group {
            period: int(&r[0])?,
            values: [string(&r[1])?, string(&r[2])?],
            projects: int(&r[3])?,
            machines: int(&r[4])?,
            events: int(&r[5])?,
        };
        // Grouped by constants only (no period, no dimension), ClickHouse answers one row
        // of zeros for no rows at all.
        if g.events > 0 && keep.as_ref().is_none_or(|k| k.contains(&g.values)) {
            groups.push(g);
        }
    }
    groups.sort_by(|a, b| {
        (a.period.cmp(&b.period))
            .then(b.projects.cmp(&a.projects))
            .then(b.events.cmp(&a.events))
            .then(a.values.cmp(&b.values))
    });
    Ok(groups
        .into_iter()
        .map(|g| {
            let mut row = Vec::new();
            if period.is_some() {
                row.push(date_ms(g.period));
            }
            row.extend(g.values.into_iter().take(dims.len()).map(Cell::Text));
            row.extend([Cell::Int(g.projects), Cell::Int(g.machines), Cell::Int(g.events)]);
            row.push(Cell::Int(period_projects.get(&g.period).copied().unwrap_or(0)));
            row
        })
        .collect())
}

/// Each project's set of plugins (`groupUniqArray`, merged across shards), then the pairs
/// of the wanted plugins with every other plugin of the same set.
fn co_usage(node: &Node, q: &Query, plugin: Option<&str>, limit: usize) -> Result<Vec<Vec<Cell>>, StoreError> {
    let range = filters(q, Some((q.from_ms, q.to_ms)));
    let mut per: Vec<(String, i64)> = node
        .rows(&format!(
            "SELECT plugin, uniqExact(project) FROM events FINAL ARRAY JOIN plugins AS plugin WHERE {range} GROUP BY plugin"
        ))?
        .iter()
        .map(|r| Ok((string(&r[0])?, int(&r[1])?)))
        .collect::<Result<_, StoreError>>()?;
    let total = node.rows(&format!("SELECT uniqExact(project) FROM events FINAL WHERE {range}"))?;
    let total = total.first().map_or(Ok(0), |r| int(&r[0]))?;
    let wanted: Vec<String> = match plugin {
        Some(p) => vec![p.to_string()],
        None => {
            per.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            per.iter().take(limit).map(|(p, _)| p.clone()).collect()
        }
    };
    if wanted.is_empty() {
        return Ok(vec![]);
    }
    let list = format!("[{}]", wanted.iter().map(|p| quote(p)).collect::<Vec<_>>().join(", "));
    let partner = if plugin.is_some() { String::new() } else { format!(" AND has({list}, pb)") };
    let sql = format!(
        "SELECT pa, pb, count() FROM (SELECT pa, arrayJoin(ps) AS pb FROM (\
           SELECT ps, arrayJoin(arrayFilter(x -> has(ps, x), {list})) AS pa FROM (\
             SELECT project, groupUniqArray(plugin) AS ps FROM events FINAL ARRAY JOIN plugins AS plugin \
             WHERE {range} GROUP BY project))) \
         WHERE pa != pb{partner} GROUP BY pa, pb"
    );
    let per: HashMap<String, i64> = per.into_iter().collect();
    let mut pairs = node
        .rows(&sql)?
        .iter()
        .map(|r| Ok((string(&r[0])?, string(&r[1])?, int(&r[2])?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    pairs.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1)));
    if plugin.is_some() {
        pairs.truncate(limit);
    }
    Ok(pairs
        .into_iter()
        .map(|(a, b, both)| {
            let count = |p: &str| Cell::Int(per.get(p).copied().unwrap_or(0));
            let (count_a, count_b) = (count(&a), count(&b));
            vec![Cell::Text(a), Cell::Text(b), Cell::Int(both), count_a, count_b, Cell::Int(total)]
        })
        .collect())
}

/// Nearest-rank percentiles from the sorted durations of each group (the value at
/// position ceil(q·n)), as the reference computes them.
fn durations(
    node: &Node,
    q: &Query,
    event: &str,
    period: Option<Period>,
    dimension: Option<Dimension>,
) -> Result<Vec<Vec<Cell>>, StoreError> {
    let src = Source::for_dims(dimension.as_slice());
    let rank = |pct: u32| format!("s[toUInt64(greatest(1, intDiv({pct} * n + 99, 100)))]");
    let sql = format!(
        "SELECT pr, x, n, pj, {}, {}, {} FROM (\
           SELECT {} AS pr, {} AS x, count() AS n, uniqExact(project) AS pj, arraySort(groupArray(assumeNotNull(duration_ms))) AS s \
           FROM {} WHERE duration_ms IS NOT NULL AND event = {} AND {}{} GROUP BY pr, x) ORDER BY pr, x",
        rank(50),
        rank(90),
        rank(99),
        period_expr(period),
        dimension.map_or("''", dimension_expr),
        src.from,
        quote(event),
        filters(q, Some((q.from_ms, q.to_ms))),
        src.conditions
    );
    node.rows(&sql)?
        .iter()
        // A grouping by constants answers one empty group for no rows.
        .filter(|r| r[2].as_u64() != Some(0))
        .map(|r| {
            let mut row = Vec::new();
            if period.is_some() {
                row.push(date(&r[0])?);
            }
            if dimension.is_some() {
                row.push(text(&r[1])?);
            }
            for v in &r[2..7] {
                row.push(int_cell(v)?);
            }
            Ok(row)
        })
        .collect()
}

/// Each project's first week and its active weeks (over all its filtered rows), counted
/// per (cohort, weeks after); the grid of every cohort's weeks is filled in here.
fn retention(node: &Node, q: &Query, weeks: u32) -> Result<Vec<Vec<Cell>>, StoreError> {
    let week = period_expr(Some(Period::Week));
    let sql = format!(
        "SELECT c, intDiv(w - c, {WEEK_MS}) AS n, count() FROM (SELECT c, arrayJoin(ws) AS w FROM (\
           SELECT project, min({week}) AS c, groupUniqArray({week}) AS ws FROM events FINAL WHERE {} GROUP BY project) \
         WHERE c + {WEEK_MS} > {} AND c < {}) WHERE n <= {weeks} GROUP BY c, n",
        filters(q, None),
        q.from_ms,
        q.to_ms
    );
    let mut hits = HashMap::new();
    let mut cohorts = Vec::new();
    for r in node.rows(&sql)? {
        let (c, n) = (int(&r[0])?, int(&r[1])?);
        hits.insert((c, n), int(&r[2])?);
        cohorts.push(c);
    }
    cohorts.sort_unstable();
    cohorts.dedup();
    let mut out = Vec::new();
    for c in cohorts {
        for n in (0..=i64::from(weeks)).take_while(|n| c + n * WEEK_MS < q.to_ms) {
            out.push(vec![date_ms(c), Cell::Int(n), Cell::Int(hits.get(&(c, n)).copied().unwrap_or(0))]);
        }
    }
    Ok(out)
}

fn int(v: &Value) -> Result<i64, StoreError> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_u64().and_then(|u| i64::try_from(u).ok())),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| StoreError::Backend(format!("expected an integer from clickhouse, got {v}")))
}

fn int_cell(v: &Value) -> Result<Cell, StoreError> {
    int(v).map(Cell::Int)
}

fn string(v: &Value) -> Result<String, StoreError> {
    v.as_str().map(str::to_string).ok_or_else(|| StoreError::Backend(format!("expected text from clickhouse, got {v}")))
}

fn text(v: &Value) -> Result<Cell, StoreError> {
    string(v).map(Cell::Text)
}

fn date(v: &Value) -> Result<Cell, StoreError> {
    int(v).map(date_ms)
}

fn date_ms(ms: i64) -> Cell {
    DateTime::from_timestamp_millis(ms).map_or(Cell::Null, |d| Cell::Date(d.date_naive()))
}
