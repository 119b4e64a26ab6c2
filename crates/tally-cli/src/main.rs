//! The `tally` command: the composition root. It is the only crate that names a concrete
//! storage backend.

mod bench;
mod demo;
mod insights;
mod limits;
mod migrate;
mod serve;
mod store;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Default address of `tally serve`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "tally-data";

/// Privacy-first usage telemetry for developer tools.
#[derive(Debug, Parser)]
#[command(name = "tally", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the collector: receive events over HTTP, store them, answer insights.
    Serve(Box<serve::ServeArgs>),
    /// Answer an insight (`tally insights list` names them all).
    Insights(Box<insights::InsightsArgs>),
    /// Delete every stored event of a project (needs the collector stopped).
    Erase(EraseArgs),
    /// Copy a stopped collector's DuckDB store into ClickHouse (see docs/deploy.md).
    Migrate(migrate::MigrateArgs),
    /// Make, list or revoke named admin tokens (stored hashed in the data dir).
    Token(token::TokenArgs),
    /// Benchmarks: insights on generated stores, ingest against a no-op endpoint (docs/benchmarks.md).
    Bench(bench::BenchArgs),
}

#[derive(Debug, clap::Args)]
struct EraseArgs {
    /// The project's UUID, as in its manifest; or a Strapi project id that is not a UUID
    /// (Strapi projects created by hand may have any string as `projectId`).
    #[arg(long)]
    project: String,
    /// The data directory.
    #[arg(long, default_value = DEFAULT_DATA_DIR, env = "TALLY_DATA_DIR")]
    data_dir: PathBuf,
    /// The store the collector writes to (as `tally serve --store`).
    #[arg(long, default_value = "duckdb", env = "TALLY_STORE")]
    store: store::StoreUrl,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Insights(args) => insights::run(*args),
        Command::Erase(args) => erase(args),
        Command::Migrate(args) => migrate::run(args),
        Command::Token(args) => token::run(args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn erase(args: EraseArgs) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use tally_store::EventStore as _;
    // A mistyped data dir must not become a new, empty store that reports "erased 0": the
    // user would believe the project is gone.
    let needed: &[&str] = match args.store {
        store::StoreUrl::DuckDb => &[tally_store_duckdb::DB_FILE, tally_store::SECRET_FILE],
        store::StoreUrl::ClickHouse(_) => &[tally_store::SECRET_FILE],
    };
    for file in needed {
        if !args.data_dir.join(file).is_file() {
            anyhow::bail!(
                "no tally store in {} ({file} is missing); pass the collector's --data-dir",
                args.data_dir.display()
            );
        }
    }
    let secret = tally_store::ServerSecret::load_or_create(&args.data_dir)
        .with_context(|| format!("while reading the server secret in {}", args.data_dir.display()))?;
    // Held to the end: with ClickHouse it holds the data dir's lock.
    let opened = store::open(&args.store, &args.data_dir, &secret)?;
    let store = &opened.store;
    // Events acknowledged but not yet applied (the collector was killed) are applied first,
    // so that an erased project cannot come back from the log at the next start.
    let log = serve::open_log(&args.data_dir)?;
    let applied = tally_collector::apply_pending(&log, store.as_ref(), 50_000)?;
    if applied > 0 {
        println!("applied {applied} events from the ingest log first");
    }
    // A UUID is the project id itself; any other string can only be a Strapi project id,
    // which the collector mapped to a UUID with the server secret when it stored it.
    let project = tally_collector::strapi::project_uuid(args.project.trim(), &secret);
    let n = store.erase_project(&secret.project_key(&project))?;
    println!("erased {n} events of project {}", args.project);
    Ok(())
}
