//! `tally bench`: the benchmarks of docs/benchmarks.md.
//!
//! - `insights` (`insights.rs`): every catalog insight on generated stores of 10 M or 100 M
//!   events, answered from the rollups and, as the baseline, as plain SQL.
//! - `ingest` (`ingest.rs`): a load generator (`load.rs`) posting the demo's batches over
//!   loopback HTTP to a no-op endpoint (`noop.rs`, the baseline) and to `tally serve`, in
//!   one run.

mod ingest;
mod insights;
mod load;
mod noop;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, clap::Subcommand)]
enum BenchCommand {
    /// Time every insight on generated stores (rollups vs plain SQL).
    Insights(insights::InsightArgs),
    /// Ingest throughput and latency of `tally serve` against a no-op endpoint.
    Ingest(ingest::IngestArgs),
    /// The no-op endpoint the ingest benchmark starts: reads each body, answers 200.
    #[command(hide = true)]
    Noop(noop::NoopArgs),
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Insights(args) => insights::run(args),
        BenchCommand::Ingest(args) => ingest::run(args),
        BenchCommand::Noop(args) => noop::run(args),
    }
}

/// Parses an event count like `10M`, `250k` or `250000`.
pub(crate) fn parse_count(s: &str) -> anyhow::Result<u64> {
    use anyhow::Context as _;
    let s = s.trim();
    let (digits, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1_000),
        Some('m' | 'M') => (&s[..s.len() - 1], 1_000_000),
        Some('g' | 'G' | 'b' | 'B') => (&s[..s.len() - 1], 1_000_000_000),
        _ => (s, 1),
    };
    let n: u64 = digits.parse().with_context(|| format!("{s:?} is not a count like 10M or 250000"))?;
    Ok(n * mult)
}
