//! What the catalog does to a store's table before answering: derived columns (shares,
//! lift, a baseline's difference), version ordering, and keeping the top labels.

use std::collections::BTreeMap;

use tally_store::{Cell, Column, ColumnType, Table, compare_versions};

use crate::Params;

pub(crate) fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

pub(crate) fn int_at(row: &[Cell], i: Option<usize>) -> Option<i64> {
    i.and_then(|i| row[i].as_int())
}

/// Adds `share` = projects / period_projects (4 decimals).
pub(crate) fn add_share(table: &mut Table, _: &Params) {
    let (p, total) = (table.column("projects"), table.column("period_projects"));
    if p.is_none() || total.is_none() {
        return;
    }
    table.columns.push(Column::new("share", ColumnType::Float));
    for row in &mut table.rows {
        let share = match (int_at(row, p), int_at(row, total)) {
            (Some(a), Some(b)) if b > 0 => Cell::Float(round(a as f64 / b as f64, 4)),
            _ => Cell::Null,
        };
        row.push(share);
    }
}

/// Adds `share_left` = projects_left / runtime_projects (4 decimals): the share of the
/// runtime's projects that dropping the version (and every older one) leaves behind.
pub(crate) fn add_share_left(table: &mut Table, _: &Params) {
    let (left, total) = (table.column("projects_left"), table.column("runtime_projects"));
    table.columns.push(Column::new("share_left", ColumnType::Float));
    for row in &mut table.rows {
        let share = match (int_at(row, left), int_at(row, total)) {
            (Some(a), Some(b)) if b > 0 => Cell::Float(round(a as f64 / b as f64, 4)),
            _ => Cell::Null,
        };
        row.push(share);
    }
}

/// Adds `lift` = P(a and b) / (P(a) P(b)) over projects (3 decimals).
pub(crate) fn add_lift(table: &mut Table, _: &Params) {
    let idx = |n| table.column(n);
    let (both, a, b, total) = (idx("projects_both"), idx("projects_a"), idx("projects_b"), idx("projects_total"));
    table.columns.push(Column::new("lift", ColumnType::Float));
    for row in &mut table.rows {
        let lift = match (int_at(row, both), int_at(row, a), int_at(row, b), int_at(row, total)) {
            (Some(both), Some(a), Some(b), Some(t)) if a > 0 && b > 0 => {
                Cell::Float(round(both as f64 * t as f64 / (a as f64 * b as f64), 3))
            }
            _ => Cell::Null,
        };
        row.push(lift);
    }
}

/// Keeps the first of each pair of rows whose first two columns are the same two values in
/// the other order (b,a after a,b), so that a symmetric matrix lists each pair once.
pub(crate) fn keep_unordered_pairs(table: &mut Table) {
    let mut seen = std::collections::HashSet::new();
    table.rows.retain(|r| {
        let (a, b) = (r[0].to_string(), r[1].to_string());
        if seen.contains(&(b.clone(), a.clone())) {
            return false;
        }
        seen.insert((a, b));
        true
    });
}

/// Keeps the rows of the `limit` first distinct values of the first column (the table is
/// ordered by projects, so these are the top ones).
pub(crate) fn keep_top_labels(table: &mut Table, limit: usize) {
    let mut seen: Vec<Cell> = Vec::new();
    table.rows.retain(|r| {
        if seen.contains(&r[0]) {
            return true;
        }
        if seen.len() < limit {
            seen.push(r[0].clone());
            return true;
        }
        false
    });
}

/// Sorts rows by the version in `column`, newest first, keeping the period order when
/// there is one.
pub(crate) fn sort_versions(table: &mut Table, column: &str) {
    let Some(i) = table.column(column) else { return };
    let period = table.column("period");
    table.rows.sort_by(|x, y| {
        let by_period = match period {
            Some(p) => x[p].to_string().cmp(&y[p].to_string()),
            None => std::cmp::Ordering::Equal,
        };
        by_period.then_with(|| compare_versions(&y[i].to_string(), &x[i].to_string()))
    });
}

/// Adds `baseline_share` and `difference` (share − baseline) for each version.
pub(crate) fn add_baseline(table: &mut Table, column: &str, baseline: &BTreeMap<String, f64>) {
    let (Some(v), Some(share)) = (table.column(column), table.column("share")) else { return };
    table.columns.push(Column::new("baseline_share", ColumnType::Float));
    table.columns.push(Column::new("difference", ColumnType::Float));
    let mut seen = std::collections::BTreeSet::new();
    for row in &mut table.rows {
        let version = row[v].to_string();
        seen.insert(version.clone());
        match (baseline.get(&version), &row[share]) {
            (Some(b), Cell::Float(s)) => {
                let diff = round(s - b, 4);
                row.push(Cell::Float(*b));
                row.push(Cell::Float(diff));
            }
            (Some(b), _) => {
                row.push(Cell::Float(*b));
                row.push(Cell::Null);
            }
            _ => {
                row.push(Cell::Null);
                row.push(Cell::Null);
            }
        }
    }
    // Versions the community uses and this tool's projects do not.
    let width = table.columns.len();
    for (version, b) in baseline.iter().filter(|(k, _)| !seen.contains(*k)) {
        let mut row = vec![Cell::Null; width];
        row[v] = Cell::Text(version.clone());
        for (i, c) in table.columns.iter().enumerate() {
            if c.ty == ColumnType::Int {
                row[i] = Cell::Int(0);
            }
        }
        row[share] = Cell::Float(0.0);
        row[width - 2] = Cell::Float(*b);
        row[width - 1] = Cell::Float(round(-b, 4));
        table.rows.push(row);
    }
    sort_versions(table, column);
}
