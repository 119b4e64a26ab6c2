//! `tally serve`: open the store and the ingest log, load schemas and secrets, serve HTTP
//! (acknowledging batches once they are durable in the log, while the applier catches up
//! on what the store has not applied), optionally fill the store with demo telemetry
//! through the real ingest path.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use tally_collector::{Clock, Collector, Settings};
use tally_store::ServerSecret;

use crate::store::StoreUrl;
use crate::{DEFAULT_DATA_DIR, DEFAULT_LISTEN};

/// File holding the admin token inside the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    #[arg(long, default_value = DEFAULT_LISTEN, env = "TALLY_LISTEN")]
    listen: SocketAddr,
    /// Where the database (with DuckDB), the ingest log, the server secret and the admin
    /// token live.
    #[arg(long, default_value = DEFAULT_DATA_DIR, env = "TALLY_DATA_DIR")]
    data_dir: PathBuf,
    /// The store: `duckdb` (a file in the data dir) or
    /// `clickhouse://host:port[,host:port…]/database[?cluster=NAME]` (docs/deploy.md).
    #[arg(long, default_value = "duckdb", env = "TALLY_STORE")]
    store: StoreUrl,
    /// A directory of app schema files (`*.toml`), loaded besides the built-in ones.
    #[arg(long, env = "TALLY_SCHEMAS")]
    schemas: Option<PathBuf>,
    /// Fill an empty store with 90 days of realistic demo telemetry, sent over HTTP.
    #[arg(long)]
    demo: bool,
    /// Number of demo projects.
    #[arg(long, default_value_t = 3000, requires = "demo")]
    demo_projects: usize,
    /// The admin token for private insights (default: generated into DATA_DIR/admin-token).
    #[arg(long, env = "TALLY_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Minimum distinct projects behind any published row.
    #[arg(long, default_value_t = tally_insights::DEFAULT_K)]
    k: usize,
    /// For tests: the collector's "now" is always this instant (RFC 3339), for event ages
    /// and relative ranges, so that answers are known in advance.
    #[arg(long, hide = true, value_parser = parse_instant)]
    fixed_now: Option<chrono::DateTime<chrono::Utc>>,
    /// A PEM certificate chain (the server's certificate first): serve HTTPS with
    /// --tls-key instead of plain HTTP.
    #[arg(long, requires = "tls_key", conflicts_with = "demo", env = "TALLY_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, requires = "tls_cert", env = "TALLY_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Memory DuckDB may use (buffer pool and queries, not the in-memory rollup), e.g.
    /// `2GiB` or `512MiB`; past it a query spills to disk or fails, instead of taking the
    /// machine's memory (DuckDB's own default is 80 % of RAM).
    #[arg(long, default_value = DEFAULT_DUCKDB_MEMORY_LIMIT, value_parser = parse_memory_limit, env = "TALLY_DUCKDB_MEMORY_LIMIT")]
    duckdb_memory_limit: u64,
    /// The size at which the ingest log closes a segment file and starts the next
    /// (docs/ingest-log.md); applied segments are deleted whole, so smaller segments give
    /// disk space back sooner at the cost of more files and syncs.
    #[arg(long, default_value_t = tally_log::Options::default().segment_bytes, value_parser = clap::value_parser!(u64).range(4096..), env = "TALLY_LOG_SEGMENT_BYTES")]
    log_segment_bytes: u64,
    #[command(flatten)]
    limits: crate::limits::LimitFlags,
}

fn parse_instant(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 time like 2026-10-15T12:00:00Z ({e})"))
}

/// The default of `--duckdb-memory-limit`: a query at 100 M events needs well under it, and
/// it leaves most of a small server's memory to the rollup and the requests in flight.
const DEFAULT_DUCKDB_MEMORY_LIMIT: &str = "2GiB";

fn parse_memory_limit(text: &str) -> Result<u64, String> {
    match tally_store_duckdb::parse_size(text) {
        Some(bytes) if bytes >= 16 << 20 => Ok(bytes),
        Some(_) => Err("give at least 16MiB".into()),
        None => Err("give a size such as 2GiB or 512MiB".into()),
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("TALLY_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    if args.k == 0 {
        bail!("--k must be at least 1");
    }
    // An empty token would open every private endpoint to `Authorization: Bearer ` alone.
    if args.admin_token.as_deref().is_some_and(|t| t.trim().is_empty()) {
        bail!(
            "--admin-token (or TALLY_ADMIN_TOKEN) is empty; give a token or leave it unset to use DATA_DIR/{ADMIN_TOKEN_FILE}"
        );
    }
    let mut limits = args.limits.resolve()?;
    if args.demo {
        // The demo's generator is one client sending as fast as it can (and many distinct
        // values): the per-client limits would throttle and flatten it.
        limits.rate_limit_per_second = 0;
        limits.client_cap_share_percent = 0;
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tally_collector::Tls::from_pem_files(cert, key).map_err(anyhow::Error::msg)?),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let schemas = tally_collector::builtin::load(args.schemas.as_deref()).context("while loading app schemas")?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("while creating the data dir {}", args.data_dir.display()))?;
    let secret = ServerSecret::load_or_create(&args.data_dir).context("while loading the server secret")?;
    let admin_token = match args.admin_token {
        Some(t) => t,
        None => load_or_create_token(&args.data_dir)?,
    };
    // The store first: DuckDB's file lock (or the data dir's lock with ClickHouse) keeps a
    // second collector out of the log too.
    let opened = crate::store::open(&args.store, &args.data_dir, &secret)?;
    if let Some(duckdb) = &opened.duckdb {
        duckdb.set_memory_limit(args.duckdb_memory_limit).context("while setting DuckDB's memory limit")?;
    }
    let store = opened.store.clone();
    let existing = store.count_events()?;
    let log = Arc::new(open_log_with(&args.data_dir, args.log_segment_bytes)?);
    let clock = args.fixed_now.map_or(Clock::System, Clock::Fixed);
    let mut settings = Settings {
        admin_token: Some(admin_token.clone()),
        tokens: Some(tally_collector::TokenFile::in_dir(&args.data_dir)),
        k: args.k,
        limits,
        clock: clock.clone(),
        ..Settings::default()
    };
    if args.demo {
        // The demo backfills 90 days through the normal ingest path.
        settings.max_event_age_ms = 100 * tally_store::DAY_MS;
    }
    let collector = Collector::with_log(store.clone(), log, schemas, secret, settings)?;
    let runtime = tokio::runtime::Runtime::new().context("while starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("while binding {} (is another collector running there?)", args.listen))?;
        let addr = listener.local_addr()?;
        // Tests and scripts read this line to find the port.
        println!("tally collector listening on {scheme}://{addr}");
        println!("data dir {} ({existing} events stored)", args.data_dir.display());
        println!("dashboard {scheme}://{addr}/ (the admin token is in {}/{ADMIN_TOKEN_FILE})", args.data_dir.display());
        // The serving loop with the connection and request limits (no peer address is
        // read or logged).
        let server = tally_collector::serve_with(
            listener,
            collector.router(),
            collector.limits().clone(),
            tls,
            shutdown_signal(),
        );
        let server = tokio::spawn(server);
        if args.demo {
            if existing > 0 {
                println!("demo: the store already holds {existing} events; not adding more");
            } else {
                let url = format!("http://{addr}");
                let projects = args.demo_projects;
                let summary = tokio::task::spawn_blocking(move || crate::demo::fill(&url, projects, clock.now_ms()))
                    .await
                    .context("demo generator panicked")??;
                println!("{summary}");
            }
            print_next_steps(addr, &args.data_dir, &admin_token);
        }
        server.await.context("server task")?;
        // Nothing is accepted any more: store what the log holds before the checkpoint.
        let draining = collector.clone();
        tokio::task::spawn_blocking(move || draining.shutdown()).await.context("applier shutdown")?;
        // Fold the write-ahead log into the database file, so that readers opening the
        // file next (`tally insights --data-dir`) find everything in it.
        if let Some(duckdb) = &opened.duckdb
            && let Err(e) = duckdb.checkpoint()
        {
            eprintln!("warning: checkpoint at shutdown failed ({e}); the log is replayed at the next start");
        }
        println!("tally collector stopped");
        Ok(())
    })
}

/// Opens `<data_dir>/log`, reporting what recovery found (a torn tail is expected after a
/// crash; corruption means acknowledged events may be lost).
pub fn open_log(data_dir: &Path) -> anyhow::Result<tally_log::Log> {
    open_log_with(data_dir, tally_log::Options::default().segment_bytes)
}

/// [`open_log`] with segments of `segment_bytes`.
fn open_log_with(data_dir: &Path, segment_bytes: u64) -> anyhow::Result<tally_log::Log> {
    let mut options = tally_log::Options::default();
    options.segment_bytes = segment_bytes;
    let log = tally_log::Log::open(data_dir, options)
        .with_context(|| format!("while opening the ingest log in {}", data_dir.display()))?;
    for problem in &log.recovery().problems {
        let level = if problem.kind == tally_log::ProblemKind::TornTail { "warning" } else { "error" };
        eprintln!("{level}: ingest log: {problem}");
    }
    Ok(log)
}

fn print_next_steps(addr: SocketAddr, data_dir: &Path, token: &str) {
    let server = if addr.to_string() == DEFAULT_LISTEN { String::new() } else { format!(" --server http://{addr}") };
    // The token rides in the fragment, which a browser never sends to a server; the
    // dashboard moves it to the tab's sessionStorage and drops it from the address bar.
    let fragment: String = token
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    println!("\nOpen the dashboard (signed in): http://{addr}/#token={fragment}");
    println!("The public page anyone may see: http://{addr}/public/demo");
    println!("\nTry, in another terminal:");
    println!("  cargo run --release -- insights list");
    // The CLI finds the token in ./tally-data by itself; from another data dir it is named.
    let token_arg = if data_dir == Path::new(DEFAULT_DATA_DIR) {
        String::new()
    } else {
        format!(" --token \"$(cat {}/{ADMIN_TOKEN_FILE})\"", data_dir.display())
    };
    println!("  cargo run --release -- insights active{server}{token_arg}");
    println!("  cargo run --release -- insights top-plugins --since 90d{server}{token_arg}");
    println!("  cargo run --release -- insights env-split --public{server}");
    println!(
        "  curl -H \"Authorization: Bearer $(cat {}/{ADMIN_TOKEN_FILE})\" 'http://{addr}/v1/insights/os-split?app=demo'",
        data_dir.display()
    );
    println!("Stop with Ctrl-C.");
}

fn load_or_create_token(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join(ADMIN_TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
        Ok(_) => bail!("{} is empty; delete it to get a new token", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::io::Write as _;
            let token = format!("tly_{}", uuid::Uuid::new_v4().simple());
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options.open(&path).with_context(|| format!("while creating {}", path.display()))?;
            f.write_all(token.as_bytes())?;
            Ok(token)
        }
        Err(e) => Err(e).with_context(|| format!("while reading {}", path.display())),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        tokio::signal::ctrl_c().await.ok();
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
