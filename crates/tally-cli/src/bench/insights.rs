//! `tally bench insights`: the insight benchmark. Generates stores of N events with the demo's
//! distributions (kept between runs), then times every catalog insight, and the dashboard's
//! requests with other options ([`VARIANTS`]), over the last 28 and 90 days, answered from
//! the rollups and, as the baseline, as plain SQL over the raw events table. Both answers
//! are compared; a difference is reported as an error. With `--clickhouse URL`, the same
//! events also go into a ClickHouse database (one per size, named `<database>_<size>`) and
//! every insight is timed and compared there too.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use tally_insights::{Audience, CATALOG, Params};
use tally_store::{Dimension, EventStore, ServerSecret, Table};
use tally_store_clickhouse::{ClickHouseStore, Config};
use tally_store_duckdb::{DuckDbStore, PlainSql};

const DAY_MS: i64 = tally_store::DAY_MS;

#[derive(Debug, clap::Args)]
pub struct InsightArgs {
    /// Store sizes to benchmark, in events: `10M`, `100M`, `250000`.
    #[arg(long, value_delimiter = ',', default_value = "10M")]
    events: Vec<String>,
    /// Where the generated stores are kept between runs (one directory per size).
    #[arg(long, default_value = "tally-bench", env = "TALLY_BENCH_DIR")]
    data_dir: PathBuf,
    /// Timed runs per insight and range; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Timed runs of the plain-SQL baseline per insight and range (0 skips it).
    #[arg(long, default_value_t = 3)]
    baseline_runs: usize,
    /// Only generate the stores.
    #[arg(long)]
    generate_only: bool,
    /// Only these insights (default: the whole catalog).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Also load the same events into ClickHouse (`clickhouse://host:port/database`; the
    /// database of a size is `<database>_<size>`) and time every insight there.
    #[arg(long)]
    clickhouse: Option<String>,
}

/// What a generated store holds.
#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    events: u64,
    projects: u64,
    /// The exclusive end of the data: midnight UTC after its last day.
    end_ms: i64,
    generate_secs: f64,
}

pub fn run(args: InsightArgs) -> anyhow::Result<()> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    for size in &args.events {
        let n = super::parse_count(size)?;
        let dir = args.data_dir.join(format!("events-{size}"));
        let meta = generate(&dir, n)?;
        let clickhouse = match &args.clickhouse {
            Some(url) => Some(generate_clickhouse(url, size, &dir, &meta)?),
            None => None,
        };
        if args.generate_only {
            continue;
        }
        let report = measure(&dir, &meta, clickhouse.as_ref(), &args)?;
        let file = args.data_dir.join(format!("results-{size}.md"));
        std::fs::write(&file, &report)?;
        println!("{report}");
        eprintln!("bench: results written to {}", file.display());
    }
    Ok(())
}

fn meta_path(dir: &Path) -> PathBuf {
    dir.join("bench.json")
}

/// Generates `n` events into `dir` unless a store of that size is already there.
fn generate(dir: &Path, n: u64) -> anyhow::Result<Meta> {
    if let Ok(text) = std::fs::read_to_string(meta_path(dir)) {
        let meta: Meta = serde_json::from_str(&text)?;
        if meta.events >= n {
            eprintln!("bench: reusing {} ({} events)", dir.display(), meta.events);
            return Ok(meta);
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("while clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    let secret = ServerSecret::load_or_create(dir)?;
    let store = DuckDbStore::open(dir)?;
    store.set_checkpoint_threshold(8 << 30)?;
    let end_ms = (chrono::Utc::now().timestamp_millis() / DAY_MS) * DAY_MS;
    let started = Instant::now();
    let (mut events, mut projects) = (0u64, 0u64);
    let mut pending = Vec::with_capacity(300_000);
    let mut next_report = 0u64;
    eprintln!("bench: generating {n} events into {}", dir.display());
    crate::demo::rows(0xbe9c_4a11, end_ms, &secret, |rows| {
        projects += 1;
        let take = rows.len().min((n - events - pending.len() as u64) as usize);
        pending.extend(rows.into_iter().take(take));
        if pending.len() >= 250_000 || events + pending.len() as u64 >= n {
            store.load_new(&pending)?;
            events += pending.len() as u64;
            pending.clear();
            if events >= next_report {
                let secs = started.elapsed().as_secs_f64();
                eprintln!(
                    "bench: {events} events, {projects} projects, {secs:.0} s ({:.0} events/s)",
                    events as f64 / secs
                );
                next_report += 5_000_000;
            }
        }
        Ok(events < n)
    })?;
    store.checkpoint()?;
    let meta = Meta { events, projects, end_ms, generate_secs: started.elapsed().as_secs_f64() };
    std::fs::write(meta_path(dir), serde_json::to_string_pretty(&meta)?)?;
    eprintln!("bench: generated {events} events from {projects} projects in {:.0} s", meta.generate_secs);
    Ok(meta)
}

/// The ClickHouse database of a size, filled with the events of the DuckDB store in `dir`
/// (the same seed, end and server secret) unless it holds them already.
fn generate_clickhouse(url: &str, size: &str, dir: &Path, meta: &Meta) -> anyhow::Result<ClickHouseStore> {
    let mut config = Config::from_url(url).map_err(anyhow::Error::msg)?;
    config.database = format!("{}_{}", config.database, size.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
    let store = ClickHouseStore::open(config).context("while opening the benchmark's clickhouse database")?;
    let stored = store.count_events()?;
    if stored >= meta.events {
        eprintln!("bench: reusing clickhouse database {} ({stored} events)", store.config().database);
        return Ok(store);
    }
    if stored > 0 {
        bail!(
            "the clickhouse database {} holds {stored} events, not {}; drop it",
            store.config().database,
            meta.events
        );
    }
    let secret = ServerSecret::load_or_create(dir)?;
    let started = Instant::now();
    let (mut events, mut pending) = (0u64, Vec::with_capacity(300_000));
    eprintln!("bench: loading {} events into clickhouse {}", meta.events, store.config().database);
    crate::demo::rows(0xbe9c_4a11, meta.end_ms, &secret, |rows| {
        let take = rows.len().min((meta.events - events - pending.len() as u64) as usize);
        pending.extend(rows.into_iter().take(take));
        if pending.len() >= 250_000 || events + pending.len() as u64 >= meta.events {
            events += store.load_new(&pending)?;
            pending.clear();
        }
        Ok(events < meta.events)
    })?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!("bench: loaded {events} events into clickhouse in {secs:.0} s ({:.0} events/s)", events as f64 / secs);
    Ok(store)
}

/// Requests the dashboard's panels make with options the catalog's defaults do not set
/// (`pages.js`; `top-plugins limit=20` is the catalog's default), timed as rows of their
/// own after the catalog's (`--only` takes their insight's name).
const VARIANTS: &[(&str, &str, fn(&mut Params))] = &[
    ("co-usage", "limit=10", |p| p.limit = 10),
    ("plugin-adoption", "limit=8", |p| p.limit = 8),
    ("feature-env", "limit=12", |p| p.limit = 12),
    ("error-kinds", "group_by=os", |p| p.group_by = Some(Dimension::Os)),
    ("error-kinds", "group_by=app_version", |p| p.group_by = Some(Dimension::AppVersion)),
    ("error-kinds", "group_by=runtime_major", |p| p.group_by = Some(Dimension::RuntimeMajor)),
    ("setup-time", "group_by=app_version", |p| p.group_by = Some(Dimension::AppVersion)),
];

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn time(store: &dyn EventStore, name: &str, params: &Params, runs: usize) -> anyhow::Result<(Duration, Table)> {
    let mut times = Vec::with_capacity(runs);
    let mut table = None;
    for _ in 0..runs {
        let started = Instant::now();
        let answer = tally_insights::answer(store, name, params.clone(), Audience::Private)?;
        times.push(started.elapsed());
        table = Some(answer.table);
    }
    Ok((median(times), table.expect("at least one run")))
}

fn measure(
    dir: &Path,
    meta: &Meta,
    clickhouse: Option<&ClickHouseStore>,
    args: &InsightArgs,
) -> anyhow::Result<String> {
    let (runs, baseline_runs) = (args.runs, args.baseline_runs);
    let store = DuckDbStore::open(dir)?;
    let opened = store.opened();
    let mut out = format!(
        "### {} events, {} projects (90 days)\n\nOpened in {:.1} s (rollup: {} days read from its files, {} folded \
         from the events table). Median of {runs} runs (baseline: {baseline_runs}), in ms.\n\n\
         {}\n",
        meta.events,
        meta.projects,
        opened.took.as_secs_f64(),
        opened.days_from_files,
        opened.days_folded,
        if clickhouse.is_some() {
            "| insight | 28 d | 28 d plain SQL | 28 d ClickHouse | 90 d | 90 d plain SQL | 90 d ClickHouse |\n|---|---:|---:|---:|---:|---:|---:|"
        } else {
            "| insight | 28 d | 28 d plain SQL | 90 d | 90 d plain SQL |\n|---|---:|---:|---:|---:|"
        }
    );
    let mut mismatches = Vec::new();
    let rows = CATALOG.iter().map(|i| (i.name, "", None)).chain(VARIANTS.iter().map(|(n, o, f)| (*n, *o, Some(*f))));
    for (name, options, set) in rows.filter(|(name, ..)| args.only.is_empty() || args.only.iter().any(|n| n == name)) {
        let mut cells = Vec::new();
        for days in [28, 90] {
            let mut params = Params::new("demo", meta.end_ms - days * DAY_MS, meta.end_ms);
            if let Some(set) = set {
                set(&mut params);
            }
            // One untimed run warms the caches.
            let fast = tally_insights::answer(&store, name, params.clone(), Audience::Private);
            if let Err(e) = fast {
                cells.push(format!("error: {e}"));
                cells.push(String::new());
                if clickhouse.is_some() {
                    cells.push(String::new());
                }
                continue;
            }
            let (fast_time, fast_table) = time(&store, name, &params, runs)?;
            cells.push(ms(fast_time));
            if baseline_runs == 0 {
                cells.push("–".into());
            } else {
                let (slow_time, slow_table) = time(&PlainSql(&store), name, &params, baseline_runs)?;
                cells.push(ms(slow_time));
                if fast_table != slow_table {
                    mismatches.push(format!("{name} {options} over {days} days"));
                }
            }
            if let Some(ch) = clickhouse {
                tally_insights::answer(ch, name, params.clone(), Audience::Private)?;
                let (ch_time, ch_table) = time(ch, name, &params, baseline_runs.max(1))?;
                cells.push(ms(ch_time));
                if ch_table != fast_table {
                    mismatches.push(format!("{name} {options} over {days} days on clickhouse"));
                }
            }
        }
        let label = if options.is_empty() { name.to_string() } else { format!("{name} `{options}`") };
        eprintln!("bench: {label} {}", cells.join(" | "));
        out.push_str(&format!("| {label} | {} |\n", cells.join(" | ")));
    }
    if !mismatches.is_empty() {
        bail!("answers differ from the rollup's for: {}\n{out}", mismatches.join(", "));
    }
    Ok(out)
}
