//! Plain SQL over the events table: one builder function per [`QueryKind`], and the
//! conversion of result rows into the table's cells.

use chrono::DateTime;
use duckdb::types::Value;
use duckdb::{Connection, params_from_iter};
use tally_store::{Cell, Column, ColumnType, DAY_MS, Dimension, Period, Query, QueryKind, StoreError, Table};

use crate::backend;

const WEEK_MS: i64 = 7 * DAY_MS;

/// SQL text with its positional parameters, built in text order.
#[derive(Default)]
struct Sql {
    text: String,
    params: Vec<Value>,
}

impl Sql {
    fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    fn param(&mut self, v: Value) -> &mut Self {
        self.text.push('?');
        self.params.push(v);
        self
    }

    fn int(&mut self, i: i64) -> &mut Self {
        self.param(Value::BigInt(i))
    }

    /// `app = ? AND <filters>` and, when given, the `[from, to)` range.
    fn filters(&mut self, q: &Query, range: Option<(i64, i64)>) -> &mut Self {
        self.push("app = ").param(Value::Text(q.app.clone()));
        let f = &q.filters;
        if let Some(env) = f.env {
            self.push(" AND env = ").param(Value::Text(env.as_str().into()));
        }
        if let Some(os) = &f.os {
            self.push(" AND os = ").param(Value::Text(os.clone()));
        }
        if let Some(v) = &f.app_version {
            self.push(" AND app_version = ").param(Value::Text(v.clone()));
        }
        if let Some(p) = &f.plugin {
            self.push(" AND list_contains(plugins, ").param(Value::Text(p.clone())).push(")");
        }
        if let Some((from, to)) = range {
            self.push(" AND occurred_at >= epoch_ms(")
                .int(from)
                .push(") AND occurred_at < epoch_ms(")
                .int(to)
                .push(")");
        }
        self
    }
}

/// A scalar expression for a dimension (not `Plugin`, which needs `unnest`).
fn dimension_expr(d: Dimension) -> &'static str {
    match d {
        Dimension::Env => "env",
        Dimension::Os => "os",
        Dimension::Arch => "arch",
        Dimension::Runtime => "runtime",
        Dimension::RuntimeVersion => "runtime_version",
        Dimension::AppVersion => "app_version",
        Dimension::Ci => "ci",
        Dimension::Container => "CAST(container AS VARCHAR)",
        Dimension::Event => "event",
        Dimension::ErrorKind => "error_kind",
        Dimension::Plugin => "unnest(plugins)",
        Dimension::RuntimeMajor => "split_part(runtime_version, '.', 1)",
        Dimension::RuntimeMinor => "array_to_string(string_split(runtime_version, '.')[1:2], '.')",
    }
}

/// The start (ms) of the period holding `occurred_at`.
fn period_expr(p: Option<Period>) -> String {
    match p {
        None => "0".into(),
        Some(Period::Day) => format!("(epoch_ms(occurred_at) // {DAY_MS}) * {DAY_MS}"),
        Some(Period::Week) => format!("((epoch_ms(occurred_at) // {DAY_MS} + 3) // 7 * 7 - 3) * {DAY_MS}"),
    }
}

/// The SQL of a query: one function per kind, each appending to `s`.
fn build(q: &Query) -> Result<Sql, StoreError> {
    let mut s = Sql::default();
    match &q.kind {
        QueryKind::EventsPerDay => events_per_day(&mut s, q),
        QueryKind::Active { windows } => active(&mut s, q, windows),
        QueryKind::TopPlugins { limit } => top_plugins(&mut s, q, *limit),
        QueryKind::Split { dimension } => split(&mut s, q, *dimension),
        QueryKind::ActiveSeries { window_days } => active_series(&mut s, q, *window_days),
        QueryKind::Breakdown { period, dimensions, limit } => breakdown(&mut s, q, *period, dimensions, *limit)?,
        QueryKind::CoUsage { plugin, limit } => co_usage(&mut s, q, plugin.as_deref(), *limit),
        QueryKind::Durations { event, period, dimension } => durations(&mut s, q, event, *period, *dimension),
        QueryKind::Retention { weeks } => retention(&mut s, q, *weeks),
        QueryKind::DropSupport { dimension } => drop_support(&mut s, q, *dimension),
    }
    Ok(s)
}

/// The query's own `[from, to)` range.
fn range(q: &Query) -> Option<(i64, i64)> {
    Some((q.from_ms, q.to_ms))
}

fn events_per_day(s: &mut Sql, q: &Query) {
    s.push(&format!(
        "SELECT epoch_ms(occurred_at) // {DAY_MS} * {DAY_MS} AS day, count(*), count(DISTINCT project), \
         count(DISTINCT machine) FROM events WHERE "
    ))
    .filters(q, range(q))
    .push(" GROUP BY day ORDER BY day");
}

/// One row with two columns per window (projects, machines); [`run`] turns it into a row
/// per window.
fn active(s: &mut Sql, q: &Query, windows: &[u32]) {
    let longest = windows.iter().max().copied().unwrap_or(0);
    s.push("SELECT ");
    for (i, &win) in windows.iter().enumerate() {
        let start = q.to_ms - i64::from(win) * DAY_MS;
        if i > 0 {
            s.push(", ");
        }
        s.push("count(DISTINCT project) FILTER (WHERE occurred_at >= epoch_ms(").int(start);
        s.push(")), count(DISTINCT machine) FILTER (WHERE occurred_at >= epoch_ms(").int(start).push("))");
    }
    s.push(" FROM events WHERE ").filters(q, Some((q.to_ms - i64::from(longest) * DAY_MS, q.to_ms)));
}

fn top_plugins(s: &mut Sql, q: &Query, limit: usize) {
    s.push("SELECT plugin, count(DISTINCT project) AS p, count(DISTINCT machine) AS m, count(*) AS e FROM (SELECT unnest(plugins) AS plugin, project, machine FROM events WHERE ")
        .filters(q, range(q))
        .push(&format!(") GROUP BY plugin ORDER BY p DESC, e DESC, plugin LIMIT {limit}"));
}

fn split(s: &mut Sql, q: &Query, dimension: Dimension) {
    s.push(&format!(
        "SELECT v, count(DISTINCT project) AS p, count(DISTINCT machine) AS m, count(*) AS e FROM (SELECT {} AS v, project, machine FROM events WHERE ",
        dimension_expr(dimension)
    ))
    .filters(q, range(q))
    .push(") WHERE v IS NOT NULL GROUP BY v ORDER BY p DESC, e DESC, v");
}

fn active_series(s: &mut Sql, q: &Query, window_days: u32) {
    let window = i64::from(window_days) * DAY_MS;
    let first = Period::Day.start_of(q.from_ms);
    let last = Period::Day.start_of(q.to_ms - 1);
    if last < first {
        s.push("SELECT 0, 0, 0 WHERE false");
        return;
    }
    s.push("WITH days AS (SELECT unnest(generate_series(").int(first).push(", ").int(last);
    s.push(&format!(
        ", {DAY_MS})) AS d), ev AS (SELECT epoch_ms(occurred_at) AS t, project, machine FROM events WHERE "
    ));
    s.filters(q, Some((first + DAY_MS - window, last + DAY_MS)));
    s.push(&format!(
        ") SELECT d, count(DISTINCT project), count(DISTINCT machine) FROM days LEFT JOIN ev \
         ON ev.t >= d + {DAY_MS} - {window} AND ev.t < d + {DAY_MS} GROUP BY d ORDER BY d"
    ));
}

fn breakdown(
    s: &mut Sql,
    q: &Query,
    period: Option<Period>,
    dimensions: &[Dimension],
    limit: Option<usize>,
) -> Result<(), StoreError> {
    if dimensions.len() > 2 {
        return Err(StoreError::InvalidQuery("a breakdown takes at most two dimensions".into()));
    }
    let dim = |i: usize| dimensions.get(i).map_or("''", |d| dimension_expr(*d));
    s.push(&format!("WITH rows AS (SELECT {} AS period, * FROM events WHERE ", period_expr(period)));
    s.filters(q, range(q));
    s.push(&format!(
        "), pp AS (SELECT period, count(DISTINCT project) AS period_projects FROM rows GROUP BY period), \
         t AS (SELECT * FROM (SELECT period, project, machine, {} AS d1, {} AS d2 FROM rows) WHERE d1 IS NOT NULL AND d2 IS NOT NULL), \
         g AS (SELECT period, d1, d2, count(DISTINCT project) AS p, count(DISTINCT machine) AS m, count(*) AS e FROM t GROUP BY period, d1, d2)",
        dim(0),
        dim(1)
    ));
    let keep = match limit {
        Some(n) => {
            s.push(&format!(
                ", top AS (SELECT d1, d2 FROM t GROUP BY d1, d2 ORDER BY count(DISTINCT project) DESC, count(*) DESC, d1, d2 LIMIT {n})"
            ));
            " SEMI JOIN top USING (d1, d2)"
        }
        None => "",
    };
    let mut cols = Vec::new();
    if period.is_some() {
        cols.push("g.period");
    }
    cols.extend(["g.d1", "g.d2"].iter().take(dimensions.len()));
    cols.extend(["p", "m", "e", "period_projects"]);
    s.push(&format!(
        " SELECT {} FROM g JOIN pp USING (period){keep} ORDER BY g.period, p DESC, e DESC, g.d1, g.d2",
        cols.join(", ")
    ));
    Ok(())
}

fn co_usage(s: &mut Sql, q: &Query, plugin: Option<&str>, limit: usize) {
    s.push("WITH pp AS (SELECT DISTINCT project, plugin FROM (SELECT project, unnest(plugins) AS plugin FROM events WHERE ");
    s.filters(q, range(q));
    s.push(")), total AS (SELECT count(DISTINCT project) AS n FROM events WHERE ");
    s.filters(q, range(q));
    s.push("), per AS (SELECT plugin, count(*) AS n FROM pp GROUP BY plugin), wanted AS (");
    match plugin {
        Some(p) => {
            s.push("SELECT ").param(Value::Text(p.to_string())).push(" AS plugin");
        }
        None => {
            s.push(&format!("SELECT plugin FROM per ORDER BY n DESC, plugin LIMIT {limit}"));
        }
    }
    let both_wanted = if plugin.is_some() { "" } else { " AND b.plugin IN (SELECT plugin FROM wanted)" };
    s.push(&format!(
        "), pairs AS (SELECT a.plugin AS pa, b.plugin AS pb, count(*) AS both_n FROM pp a JOIN pp b \
         ON a.project = b.project AND a.plugin <> b.plugin \
         WHERE a.plugin IN (SELECT plugin FROM wanted){both_wanted} GROUP BY pa, pb) \
         SELECT pa, pb, both_n, per_a.n, per_b.n, total.n FROM pairs \
         JOIN per per_a ON per_a.plugin = pa JOIN per per_b ON per_b.plugin = pb CROSS JOIN total \
         ORDER BY both_n DESC, pa, pb"
    ));
    if plugin.is_some() {
        s.push(&format!(" LIMIT {limit}"));
    }
}

/// Always selects the period and the dimension (`0` and `''` when not asked for); [`run`]
/// drops the unused ones.
fn durations(s: &mut Sql, q: &Query, event: &str, period: Option<Period>, dimension: Option<Dimension>) {
    let dim = dimension.map_or("''", dimension_expr);
    s.push(&format!(
        "SELECT period, d, count(*) AS n, count(DISTINCT project), \
         list_sort(list(duration_ms))[greatest(1, (50 * count(*) + 99) // 100)], \
         list_sort(list(duration_ms))[greatest(1, (90 * count(*) + 99) // 100)], \
         list_sort(list(duration_ms))[greatest(1, (99 * count(*) + 99) // 100)] \
         FROM (SELECT {} AS period, {dim} AS d, project, duration_ms FROM events WHERE duration_ms IS NOT NULL AND event = ",
        period_expr(period)
    ));
    s.param(Value::Text(event.to_string())).push(" AND ").filters(q, range(q));
    s.push(") WHERE d IS NOT NULL GROUP BY period, d ORDER BY period, d");
}

/// Cohorts come from every week of the filtered rows, not only the range's.
fn retention(s: &mut Sql, q: &Query, weeks: u32) {
    s.push(&format!(
        "WITH act AS (SELECT DISTINCT project, {} AS w FROM events WHERE ",
        period_expr(Some(Period::Week))
    ));
    s.filters(q, None);
    s.push("), cohorts AS (SELECT project, min(w) AS c FROM act GROUP BY project), chosen AS (SELECT * FROM cohorts WHERE c + ");
    s.int(WEEK_MS).push(" > ").int(q.from_ms).push(" AND c < ").int(q.to_ms);
    s.push(&format!("), grid AS (SELECT c, n FROM (SELECT DISTINCT c FROM chosen) CROSS JOIN (SELECT unnest(range(0, {} + 1)) AS n) WHERE c + n * {WEEK_MS} < ", weeks));
    s.int(q.to_ms);
    s.push(&format!(
        "), hits AS (SELECT ch.c, (a.w - ch.c) // {WEEK_MS} AS n, count(*) AS k FROM chosen ch JOIN act a USING (project) \
         WHERE a.w >= ch.c AND a.w <= ch.c + {weeks}::BIGINT * {WEEK_MS} GROUP BY ch.c, n) \
         SELECT grid.c, grid.n, coalesce(hits.k, 0) FROM grid LEFT JOIN hits USING (c, n) ORDER BY grid.c, grid.n"
    ));
}

/// The sort key of a version in `tally_store::compare_versions`' order: a list of parts
/// (split at `.`, `-`, `+`), each `{t: 0 when it starts with a digit else 1, n: its leading
/// number (0 when none or too large), s: the text after it}`; DuckDB orders lists and
/// structs element by element, a prefix first. Ties are broken by the text itself.
const VERSION_KEY: &str = "list_transform(regexp_split_to_array(v, '[.+-]'), lambda p: {'t': CASE WHEN regexp_matches(p, '^[0-9]') THEN 0 ELSE 1 END, \
     'n': coalesce(TRY_CAST(regexp_extract(p, '^[0-9]+') AS UBIGINT), 0), 's': regexp_replace(p, '^[0-9]+', '')})";

/// Each project's newest version per runtime (the first by key descending), counted per
/// version and summed from the oldest up.
fn drop_support(s: &mut Sql, q: &Query, dimension: Dimension) {
    s.push(&format!(
        "WITH pv AS (SELECT DISTINCT runtime AS rt, {} AS v, project FROM events WHERE ",
        dimension_expr(dimension)
    ));
    s.filters(q, range(q));
    s.push(&format!(
        "), k AS (SELECT rt, v, project, {VERSION_KEY} AS vk FROM pv), \
         top AS (SELECT rt, v, vk, row_number() OVER (PARTITION BY rt, project ORDER BY vk DESC, v DESC) = 1 AS newest FROM k), \
         per AS (SELECT rt, v, vk, count(*) FILTER (WHERE newest) AS n FROM top GROUP BY rt, v, vk), \
         tot AS (SELECT rt, count(DISTINCT project) AS total FROM pv GROUP BY rt), \
         cum AS (SELECT rt, v, vk, n, sum(n) OVER (PARTITION BY rt ORDER BY vk, v ROWS UNBOUNDED PRECEDING) AS left_n FROM per) \
         SELECT cum.rt, cum.v, cum.n, cum.left_n, tot.total - cum.left_n, tot.total \
         FROM cum JOIN tot USING (rt) ORDER BY cum.rt, cum.vk, cum.v"
    ));
}

pub(crate) fn run(conn: &Connection, q: &Query) -> Result<Table, StoreError> {
    let mut table = Table::new(Table::columns_for(&q.kind));
    if let QueryKind::Active { windows } = &q.kind
        && windows.is_empty()
    {
        return Ok(table);
    }
    let sql = build(q)?;
    let mut stmt = conn.prepare(&sql.text).map_err(backend)?;
    let width = match &q.kind {
        QueryKind::Active { windows } => windows.len() * 2,
        // The query always returns period and dimension; unused ones are dropped below.
        QueryKind::Durations { .. } => 7,
        _ => table.columns.len(),
    };
    let mut rows = stmt.query(params_from_iter(sql.params.iter())).map_err(backend)?;
    while let Some(r) = rows.next().map_err(backend)? {
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            values.push(r.get_ref(i).map_err(backend)?.to_owned());
        }
        match &q.kind {
            QueryKind::Active { windows } => {
                for (i, win) in windows.iter().enumerate() {
                    table.rows.push(vec![
                        Cell::Int(i64::from(*win)),
                        Cell::Int(int(&values[2 * i])?),
                        Cell::Int(int(&values[2 * i + 1])?),
                    ]);
                }
            }
            QueryKind::Durations { period, dimension, .. } => {
                let mut kept = Vec::new();
                if period.is_some() {
                    kept.push(values[0].clone());
                }
                if dimension.is_some() {
                    kept.push(values[1].clone());
                }
                kept.extend(values[2..].iter().cloned());
                table.rows.push(cells(&table.columns, &kept)?);
            }
            _ => table.rows.push(cells(&table.columns, &values)?),
        }
    }
    Ok(table)
}

/// Converts a result row to cells of the table's column types (dates arrive as ms).
fn cells(columns: &[Column], values: &[Value]) -> Result<Vec<Cell>, StoreError> {
    columns
        .iter()
        .zip(values)
        .map(|(c, v)| match c.ty {
            ColumnType::Int => Ok(Cell::Int(int(v)?)),
            ColumnType::Float => match v {
                Value::Double(f) => Ok(Cell::Float(*f)),
                other => Ok(Cell::Float(int(other)? as f64)),
            },
            ColumnType::Text => match v {
                Value::Text(s) => Ok(Cell::Text(s.clone())),
                other => Err(StoreError::Backend(format!("expected text, got {other:?}"))),
            },
            ColumnType::Date => {
                let ms = int(v)?;
                DateTime::from_timestamp_millis(ms)
                    .map(|d| Cell::Date(d.date_naive()))
                    .ok_or_else(|| StoreError::Backend(format!("time {ms} out of range")))
            }
        })
        .collect()
}

fn int(v: &Value) -> Result<i64, StoreError> {
    use duckdb::types::Value::*;
    match v {
        TinyInt(i) => Ok(i64::from(*i)),
        SmallInt(i) => Ok(i64::from(*i)),
        Int(i) => Ok(i64::from(*i)),
        BigInt(i) => Ok(*i),
        HugeInt(i) => i64::try_from(*i).map_err(|e| StoreError::Backend(e.to_string())),
        UBigInt(i) => i64::try_from(*i).map_err(|e| StoreError::Backend(e.to_string())),
        UInt(i) => Ok(i64::from(*i)),
        other => Err(StoreError::Backend(format!("expected an integer, got {other:?}"))),
    }
}
