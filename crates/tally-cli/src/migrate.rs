//! `tally migrate`: copies a stopped collector's DuckDB store into ClickHouse.
//!
//! The rows are read oldest first and written with `EventStore::append`, which skips ids
//! already stored, so an interrupted migration is resumed by running it again. Events the
//! log holds but DuckDB had not applied are not copied: `tally serve --store clickhouse://…`
//! on the same data dir applies the whole log to ClickHouse under the data dir's new
//! writer name, and the id check drops what was copied already.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, bail};
use tally_store::EventStore as _;

use crate::DEFAULT_DATA_DIR;
use crate::store::StoreUrl;

/// Rows per append: thousands per insert, as ClickHouse wants them.
const BATCH: usize = 50_000;

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// The data dir of the DuckDB store (its collector stopped).
    #[arg(long, default_value = DEFAULT_DATA_DIR, env = "TALLY_DATA_DIR")]
    data_dir: PathBuf,
    /// Where to: `clickhouse://host:port[,host:port…]/database[?cluster=NAME]`.
    #[arg(long)]
    to: StoreUrl,
}

pub fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let StoreUrl::ClickHouse(config) = args.to else {
        bail!("--to must be a clickhouse:// URL: the store is DuckDB already");
    };
    let source = tally_store_duckdb::DuckDbStore::open_read_only(&args.data_dir)
        .with_context(|| format!("while opening the DuckDB store in {}", args.data_dir.display()))?;
    let servers = config.servers.join(",");
    let target = tally_store_clickhouse::ClickHouseStore::open(config)
        .with_context(|| format!("while opening the clickhouse store at {servers}"))?;
    let secret =
        tally_store::ServerSecret::load_or_create(&args.data_dir).context("while reading the server secret")?;
    target.claim_secret(&secret.project_key(&uuid::Uuid::nil()).as_uuid().to_string())?;
    let total = source.count_events()?;
    let started = Instant::now();
    let (mut copied, mut already) = (0u64, 0u64);
    source.export_rows(BATCH, |rows| {
        let status = target.append(&rows)?;
        let new = status.iter().filter(|s| **s == tally_store::AppendStatus::Inserted).count() as u64;
        copied += new;
        already += rows.len() as u64 - new;
        eprintln!("migrate: {} of {total} events", copied + already);
        Ok(())
    })?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "copied {copied} events to clickhouse ({already} were there already) in {secs:.1} s; \
         now run tally serve --store with the same --data-dir"
    );
    Ok(())
}
