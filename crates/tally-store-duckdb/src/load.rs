//! Building the rollup from the events table: when the store opens (all of it, or the days
//! its saved files lack), and for what retention keeps of the day it cuts.

use std::collections::HashMap;

use duckdb::{Connection, params_from_iter};
use tally_store::rollup::{Context, Group};
use tally_store::{DAY_MS, Key16, Rollup, StoreError};

use crate::backend;

/// Adds the events of `app` in `[from, to)` (all, without a range) to `rollup` (the caller
/// then calls [`Rollup::finish_load`]): the rows are streamed as Arrow batches (no
/// per-value allocation) and folded in memory.
pub(crate) fn load_rollup(
    conn: &Connection,
    rollup: &mut Rollup,
    range: Option<(&str, i64, i64)>,
) -> Result<(), StoreError> {
    use duckdb::arrow::array::{Array, AsArray};
    use duckdb::arrow::datatypes::Int64Type;

    let mut text = "SELECT epoch_ms(occurred_at), project::VARCHAR, machine::VARCHAR, app, app_version, env, os, \
                    arch, runtime, runtime_version, ci, container, event, error_kind, plugins, duration_ms FROM events"
        .to_string();
    let mut args: Vec<duckdb::types::Value> = Vec::new();
    if let Some((app, from, to)) = range {
        text.push_str(" WHERE app = ? AND occurred_at >= epoch_ms(?) AND occurred_at < epoch_ms(?)");
        args = vec![app.to_string().into(), from.into(), to.into()];
    }
    let mut stmt = conn.prepare(&text).map_err(backend)?;
    let key = |s: &str| -> Result<Key16, StoreError> {
        uuid::Uuid::parse_str(s).map(|u| Key16(*u.as_bytes())).map_err(|e| StoreError::Backend(e.to_string()))
    };
    let bad = |what: &str| StoreError::Backend(format!("unexpected Arrow type for {what} in the events table"));
    let mut context: Option<Context> = None;
    let mut plugins: Vec<String> = Vec::new();
    for batch in stmt.stream_arrow(params_from_iter(args.iter())).map_err(backend)? {
        let batch = batch.map_err(backend)?;
        let col = |i: usize| batch.column(i);
        let at = col(0).as_primitive_opt::<Int64Type>().ok_or_else(|| bad("occurred_at"))?;
        let text = |i: usize, what: &str| col(i).as_string_opt::<i32>().ok_or_else(|| bad(what));
        let (project, machine, app, app_version, env, os, arch, runtime, runtime_version, ci, event, error_kind) = (
            text(1, "project")?,
            text(2, "machine")?,
            text(3, "app")?,
            text(4, "app_version")?,
            text(5, "env")?,
            text(6, "os")?,
            text(7, "arch")?,
            text(8, "runtime")?,
            text(9, "runtime_version")?,
            text(10, "ci")?,
            text(12, "event")?,
            text(13, "error_kind")?,
        );
        let container = col(11).as_boolean_opt().ok_or_else(|| bad("container"))?;
        let lists = col(14).as_list_opt::<i32>().ok_or_else(|| bad("plugins"))?;
        let durations = col(15).as_primitive_opt::<Int64Type>().ok_or_else(|| bad("duration_ms"))?;
        for i in 0..batch.num_rows() {
            let same = context.as_ref().is_some_and(|c| {
                c.app == app.value(i)
                    && c.app_version == app_version.value(i)
                    && c.env.as_str() == env.value(i)
                    && c.os == os.value(i)
                    && c.arch == arch.value(i)
                    && c.runtime == runtime.value(i)
                    && c.runtime_version == runtime_version.value(i)
                    && c.ci == ci.value(i)
                    && c.container == container.value(i)
            });
            if !same {
                let env = tally_protocol::Env::parse(env.value(i)).ok_or_else(|| {
                    StoreError::Backend(format!("unknown env {:?} in the events table", env.value(i)))
                })?;
                context = Some(Context {
                    app: app.value(i).into(),
                    app_version: app_version.value(i).into(),
                    env,
                    os: os.value(i).into(),
                    arch: arch.value(i).into(),
                    runtime: runtime.value(i).into(),
                    runtime_version: runtime_version.value(i).into(),
                    ci: ci.value(i).into(),
                    container: container.value(i),
                });
            }
            plugins.clear();
            let list = lists.value(i);
            let names = list.as_string_opt::<i32>().ok_or_else(|| bad("plugins"))?;
            plugins.extend((0..names.len()).map(|j| names.value(j).to_string()));
            let duration = (!durations.is_null(i)).then(|| durations.value(i)).and_then(|d| u64::try_from(d).ok());
            rollup.add_group(&Group {
                day: at.value(i).div_euclid(DAY_MS),
                project: key(project.value(i))?,
                machine: key(machine.value(i))?,
                context: context.as_ref().expect("set above"),
                event: event.value(i),
                error_kind: (!error_kind.is_null(i)).then(|| error_kind.value(i)),
                plugins: &plugins,
                events: 1,
                durations: duration.as_slice(),
            });
        }
    }
    Ok(())
}

/// The number of events of every (app, UTC day) in the events table, from `day_events`
/// (compacted on the way); counted from the events table first when that does not add up
/// to the table's size (a store made before `day_events` existed).
pub(crate) fn day_counts(conn: &mut Connection) -> Result<HashMap<(String, i64), u64>, StoreError> {
    let read = |conn: &Connection| -> Result<HashMap<(String, i64), u64>, StoreError> {
        let mut stmt =
            conn.prepare("SELECT app, day, sum(events)::BIGINT FROM day_events GROUP BY ALL").map_err(backend)?;
        let rows = stmt
            .query_map([], |r| Ok(((r.get::<_, String>(0)?, r.get::<_, i64>(1)?), r.get::<_, i64>(2)? as u64)))
            .map_err(backend)?;
        rows.map(|r| r.map_err(backend)).collect()
    };
    let counts = read(conn)?;
    let stored: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0)).map_err(backend)?;
    let tx = conn.transaction().map_err(backend)?;
    if counts.values().sum::<u64>() == stored as u64 {
        crate::append::compact_days(&tx)?;
        tx.commit().map_err(backend)?;
        return Ok(counts);
    }
    crate::append::recount_days(&tx, None)?;
    tx.commit().map_err(backend)?;
    read(conn)
}

/// Adds the events of the (app, UTC day) pairs to `rollup`, consecutive days of an app in
/// one range (the caller then calls [`Rollup::finish_load`]).
pub(crate) fn load_days(
    conn: &Connection,
    rollup: &mut Rollup,
    mut days: Vec<(String, i64)>,
) -> Result<(), StoreError> {
    days.sort();
    let mut i = 0;
    while i < days.len() {
        let (app, first) = &days[i];
        let mut last = *first;
        while i + 1 < days.len() && days[i + 1].0 == *app && days[i + 1].1 == last + 1 {
            i += 1;
            last += 1;
        }
        load_rollup(conn, rollup, Some((app, first * DAY_MS, (last + 1) * DAY_MS)))?;
        i += 1;
    }
    Ok(())
}
