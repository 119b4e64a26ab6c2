//! `tally insights NAME`: ask what was named, a collector (`--server`) or a data
//! directory (`--data-dir`, opened read-only); when neither is named, the collector at the
//! default address, or, when none answers there, the default data directory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tally_insights::{Answer, Bounds, InsightRequest, Resolved};
use tally_store::Cell;

use crate::DEFAULT_DATA_DIR;

/// Where a collector is looked for when neither a server nor a data dir is named: the
/// default `--listen` of `tally serve` (`DEFAULT_LISTEN`) as a URL.
const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// The full answer as JSON (same as the HTTP API).
    Json,
    /// CSV with a header row.
    Csv,
}

#[derive(Debug, clap::Args)]
pub struct InsightsArgs {
    /// The insight, or `list` to name them all.
    name: String,
    #[command(flatten)]
    request: InsightRequest,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// A collector to ask (and nothing else). With neither --server nor --data-dir, the
    /// collector at http://127.0.0.1:7070 is asked, or, when none answers, ./tally-data is read.
    #[arg(long, env = "TALLY_SERVER")]
    server: Option<String>,
    /// A data directory to read (and nothing else), or, with --server, where the admin token
    /// is read from (default ./tally-data).
    #[arg(long, env = "TALLY_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The admin token (default: read from DATA_DIR/admin-token).
    #[arg(long, env = "TALLY_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The collector tried when neither --server nor --data-dir is named (tests move it off
    /// the default port).
    #[arg(long, env = "TALLY_DEFAULT_SERVER", default_value = DEFAULT_SERVER, hide = true)]
    default_server: String,
}

impl InsightsArgs {
    fn data_dir(&self) -> &Path {
        self.data_dir.as_deref().unwrap_or(Path::new(DEFAULT_DATA_DIR))
    }
}

pub fn run(args: InsightsArgs) -> anyhow::Result<()> {
    quiet_when_the_reader_is_gone(ask_and_print(args))
}

/// `tally insights … | head`: when the reader goes away, writing fails with a broken pipe;
/// that is the reader's choice, not an error (the exit status is 0 and nothing is printed).
fn quiet_when_the_reader_is_gone(result: anyhow::Result<()>) -> anyhow::Result<()> {
    match result {
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) => {
            Ok(())
        }
        other => other,
    }
}

fn ask_and_print(args: InsightsArgs) -> anyhow::Result<()> {
    if args.name == "list" {
        return list(args.format);
    }
    if tally_insights::find(&args.name).is_none() {
        bail!("no insight named {:?}; `tally insights list` shows them all", args.name);
    }
    // What is named is what gets asked: a collector that happens to listen on the default
    // address must not answer for a named data dir, nor receive its admin token (issue 11).
    let server = args.server.as_deref().filter(|s| !s.trim().is_empty());
    let answer = match (server, &args.data_dir) {
        (Some(url), _) => ask_server(url, &args)?,
        (None, Some(_)) => ask_data_dir(&args)?,
        (None, None) if server_is_up(&args.default_server) => ask_server(&args.default_server, &args)?,
        (None, None) => ask_data_dir(&args)?,
    };
    let mut out = std::io::stdout().lock();
    render(&answer, args.format, &mut out)?;
    out.flush()?;
    Ok(())
}

fn list(format: Format) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            let v: Vec<_> = tally_insights::CATALOG
                .iter()
                .map(|i| serde_json::json!({"name": i.name, "title": i.title, "question": i.question, "options": i.options}))
                .collect();
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        }
        Format::Csv => {
            writeln!(out, "name,question")?;
            for i in tally_insights::CATALOG {
                writeln!(out, "{},{}", csv_field(i.name), csv_field(i.question))?;
            }
        }
        Format::Table => {
            let width = tally_insights::CATALOG.iter().map(|i| i.name.len()).max().unwrap_or(0);
            for i in tally_insights::CATALOG {
                writeln!(out, "{:width$}  {}", i.name, i.question)?;
                if !i.options.is_empty() {
                    writeln!(out, "{:width$}    options: {}", "", i.options)?;
                }
            }
        }
    }
    Ok(())
}

fn server_is_up(url: &str) -> bool {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(Duration::from_millis(500))).build().into();
    agent.get(&format!("{url}/healthz")).call().is_ok()
}

fn token(args: &InsightsArgs) -> Option<String> {
    args.token.clone().or_else(|| {
        std::fs::read_to_string(args.data_dir().join(crate::serve::ADMIN_TOKEN_FILE)).ok().map(|t| t.trim().to_string())
    })
}

fn ask_server(url: &str, args: &InsightsArgs) -> anyhow::Result<Answer> {
    let url = url.trim_end_matches('/');
    // The collector resolves the request itself (with its k and its clock); resolving it
    // here too only makes a bad value fail with the same message as without a collector.
    args.request.resolve(chrono::Utc::now().timestamp_millis(), tally_insights::DEFAULT_K, &Bounds::default())?;
    let mut req = ureq::get(&format!("{url}/v1/insights/{}", args.name));
    for (name, value) in args.request.query_pairs() {
        req = req.query(name, value);
    }
    if !args.request.public {
        let Some(token) = token(args) else {
            bail!(
                "private insights need the admin token: pass --token, set TALLY_ADMIN_TOKEN, or point --data-dir at the \
                 collector's data dir (or use --public)"
            );
        };
        req = req.header("Authorization", &format!("Bearer {token}"));
    }
    let mut resp = req
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .with_context(|| format!("while asking the collector at {url}"))?;
    let status = resp.status();
    let body = resp.body_mut().read_to_string().context("while reading the collector's answer")?;
    if !status.is_success() {
        let message = serde_json::from_str::<tally_protocol::wire::ErrorBody>(&body).map(|e| e.message).unwrap_or(body);
        bail!("the collector at {url} answered {status}: {message}");
    }
    serde_json::from_str(&body).context("the collector's answer is not an insight")
}

fn ask_data_dir(args: &InsightsArgs) -> anyhow::Result<Answer> {
    apply_pending_log(args.data_dir())?;
    let store = tally_store_duckdb::DuckDbStore::open_read_only(args.data_dir()).map_err(|e| match e {
        tally_store::StoreError::Locked(_) if args.data_dir.is_some() => {
            anyhow::anyhow!("{e}\nto ask the collector that holds it, pass --server URL")
        }
        tally_store::StoreError::Locked(_) => anyhow::anyhow!(
            "{e}\nno collector answered at {}; if one runs elsewhere, pass --server URL",
            args.default_server
        ),
        e => anyhow::anyhow!(e),
    })?;
    // No collector: its k is not known, so the default k is the floor (a public answer may
    // raise k, never lower it).
    let Resolved { params, audience } =
        args.request.resolve(chrono::Utc::now().timestamp_millis(), tally_insights::DEFAULT_K, &Bounds::default())?;
    Ok(tally_insights::answer(&store, &args.name, params, audience)?)
}

/// With no collector running, events it acknowledged and did not apply before it was
/// killed are still only in its ingest log: apply them, so that the answer counts them.
/// Opening the store for writing costs a rollup build, so it is done only when the log
/// holds something the store has not applied. A collector holding the store makes this a
/// no-op (the read-only open below then says so).
fn apply_pending_log(data_dir: &std::path::Path) -> anyhow::Result<()> {
    use tally_store::EventStore as _;
    if !data_dir.join("log").is_dir() {
        return Ok(());
    }
    let Ok(store) = tally_store_duckdb::DuckDbStore::open_read_only(data_dir) else { return Ok(()) };
    let applied = store.applied_position().ok().flatten().unwrap_or(0);
    drop(store);
    let log = crate::serve::open_log(data_dir)?;
    if log.durable_end() <= applied.max(log.start()) {
        return Ok(());
    }
    let Ok(store) = tally_store_duckdb::DuckDbStore::open(data_dir) else { return Ok(()) };
    tally_collector::apply_pending(&log, &store, 50_000)?;
    store.checkpoint()?;
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// The columns of durations in milliseconds (the percentiles of `setup-time`), which the
/// table shows for people; JSON and CSV keep the raw numbers.
const DURATION_COLUMNS: &[&str] = &["p50", "p90", "p99"];

/// A duration for people, as the dashboard shows it: `850 ms`, `41.5 s`, `2.3 min`, `1.2 h`.
fn fmt_duration(ms: f64) -> String {
    if ms < 1_000.0 {
        format!("{} ms", ms.round())
    } else if ms < 60_000.0 {
        format!("{:.1} s", ms / 1_000.0)
    } else if ms < 3_600_000.0 {
        format!("{:.1} min", ms / 60_000.0)
    } else {
        format!("{:.1} h", ms / 3_600_000.0)
    }
}

fn table_cell(column: &str, cell: &Cell) -> String {
    let ms = match cell {
        Cell::Int(n) => Some(*n as f64),
        Cell::Float(f) => Some(*f),
        _ => None,
    };
    match ms {
        Some(ms) if DURATION_COLUMNS.contains(&column) => fmt_duration(ms),
        _ => cell.to_string(),
    }
}

/// Writes an answer in the chosen format.
pub fn render(answer: &Answer, format: Format, out: &mut impl Write) -> anyhow::Result<()> {
    let table = &answer.table;
    match format {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(answer)?)?,
        Format::Csv => {
            let header: Vec<_> = table.columns.iter().map(|c| csv_field(&c.name)).collect();
            writeln!(out, "{}", header.join(","))?;
            for row in &table.rows {
                let cells: Vec<_> = row.iter().map(|c| csv_field(&c.to_string())).collect();
                writeln!(out, "{}", cells.join(","))?;
            }
        }
        Format::Table => {
            let from =
                chrono::DateTime::from_timestamp_millis(answer.params.from_ms).map(|d| d.format("%Y-%m-%d %H:%M"));
            let to = chrono::DateTime::from_timestamp_millis(answer.params.to_ms).map(|d| d.format("%Y-%m-%d %H:%M"));
            writeln!(out, "{} — app {}, {} to {} UTC", answer.title, answer.params.app, fmt_opt(from), fmt_opt(to))?;
            let cells: Vec<Vec<String>> = table
                .rows
                .iter()
                .map(|r| r.iter().zip(&table.columns).map(|(cell, col)| table_cell(&col.name, cell)).collect())
                .collect();
            let widths: Vec<usize> = table
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| cells.iter().map(|r| r[i].chars().count()).chain([c.name.len()]).max().unwrap_or(0))
                .collect();
            let numeric: Vec<bool> = table
                .columns
                .iter()
                .map(|c| matches!(c.ty, tally_store::ColumnType::Int | tally_store::ColumnType::Float))
                .collect();
            let line =
                |vals: Vec<&str>| {
                    vals.iter()
                        .enumerate()
                        .map(|(i, v)| {
                            if numeric[i] {
                                format!("{v:>w$}", w = widths[i])
                            } else {
                                format!("{v:<w$}", w = widths[i])
                            }
                        })
                        .collect::<Vec<_>>()
                        .join("  ")
                        .trim_end()
                        .to_string()
                };
            writeln!(out, "{}", line(table.columns.iter().map(|c| c.name.as_str()).collect()))?;
            for r in &cells {
                writeln!(out, "{}", line(r.iter().map(String::as_str).collect()))?;
            }
            if table.rows.is_empty() {
                writeln!(out, "(no rows)")?;
            }
            if let Some(s) = answer.suppression {
                writeln!(out, "{} row(s) hidden: fewer than k={} distinct projects", s.hidden_rows, s.k)?;
            }
        }
    }
    Ok(())
}

fn fmt_opt(v: Option<impl std::fmt::Display>) -> String {
    v.map_or_else(|| "?".into(), |v| v.to_string())
}
