//! `tally bench ingest`: durable ingest throughput and latency of `tally serve`, measured
//! against a no-op endpoint in the same run.
//!
//! Both servers are child processes of this binary (`tally bench noop`, `tally serve`), so
//! their CPU time and peak RSS are read from `/proc` apart from the load generator's. Each
//! scenario (events per request × body encoding) posts the same prepared bodies, built
//! from the demo's batches (its contexts, event mix, plugins and properties, event ids
//! fresh per request), first to the no-op endpoint, then to the collector. After the
//! collector's run the benchmark waits until `/healthz` reports no lag and checks that the
//! store holds exactly the events acknowledged. The collector runs with its per-client
//! limits off (`--rate-limit-per-second 0 --client-cap-share-percent 0`): the load
//! generator is one client on loopback, where a real collector serves many.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hyper::body::Bytes;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tally_protocol::Batch;

use super::load::{self, Bodies, Outcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Encoding {
    Plain,
    Gzip,
}

#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Events per request; one scenario per size.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    batch_sizes: Vec<usize>,
    /// Request body encodings; one scenario per encoding.
    #[arg(long, value_delimiter = ',', default_value = "plain,gzip")]
    encodings: Vec<Encoding>,
    /// Concurrent connections (default: 64 for one event per request, 16 otherwise).
    #[arg(long)]
    connections: Option<usize>,
    /// Requests per scenario (default: 20,000; 10,000 for 100 or more events per request).
    #[arg(long)]
    requests: Option<usize>,
    /// Run the collector on this data dir (e.g. a store made by `tally bench insights`:
    /// `tally-bench/events-10M`); the benchmark's events are added to it. Default: an empty
    /// store in a temporary directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Also write the report (Markdown) to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// A server child process, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    /// Starts `tally <args>` and waits for the line naming its address.
    fn start(args: &[&std::ffi::OsStr], marker: &str) -> anyhow::Result<Server> {
        let exe = std::env::current_exe().context("cannot find the tally binary")?;
        let mut child = Command::new(exe)
            .args(args)
            .env("TALLY_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("while starting a server")?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let addr = loop {
            let Some(line) = lines.next().transpose()? else { bail!("the server exited before listening") };
            if let Some(rest) = line.split(marker).nth(1) {
                break rest.trim().trim_start_matches("http://").parse().context("an unexpected address line")?;
            }
        };
        // Keep reading its output, so that it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Server { child, addr })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Asks the server to stop (SIGTERM) and waits for it.
    fn stop(mut self) -> anyhow::Result<()> {
        Command::new("kill").args(["-TERM", &self.pid().to_string()]).status()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat`.
fn cpu_secs(pid: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).context("/proc is needed for CPU figures")?;
    // Fields after the command name (which may hold spaces): state is the first.
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default().split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime, in clock ticks of 1/100 s (USER_HZ on Linux).
    Ok((ticks(11) + ticks(12)) / 100.0)
}

/// Peak resident memory of a process in MiB (`VmHWM`).
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The prepared bodies of one scenario.
fn bodies(
    pool: &[Batch],
    size: usize,
    requests: usize,
    encoding: Encoding,
    rng: &mut StdRng,
) -> anyhow::Result<Bodies> {
    let mut out = Vec::with_capacity(requests);
    for i in 0..requests {
        let src = &pool[i % pool.len()];
        let round = i / pool.len();
        let events = (0..size)
            .map(|j| {
                let mut e = src.events[(round * size + j) % src.events.len()].clone();
                e.event_id = uuid::Builder::from_random_bytes(rng.random()).into_uuid();
                e
            })
            .collect();
        let batch = Batch { sent_at: chrono::Utc::now(), context: src.context.clone(), events };
        let json = serde_json::to_vec(&batch)?;
        let body = match encoding {
            Encoding::Plain => json,
            Encoding::Gzip => {
                use std::io::Write as _;
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(&json)?;
                gz.finish()?
            }
        };
        out.push(Bytes::from(body));
    }
    Ok(Bodies { bodies: out, gzip: encoding == Encoding::Gzip, events: size })
}

#[derive(serde::Deserialize)]
struct Health {
    events: u64,
    lag: Lag,
}

#[derive(serde::Deserialize)]
struct Lag {
    events: u64,
    records: u64,
}

/// The admin token the benchmark starts the collector with (`/healthz` shows its counts
/// only with a token).
const TOKEN: &str = "bench-admin-token";

fn health(agent: &ureq::Agent, addr: SocketAddr) -> anyhow::Result<Health> {
    let mut resp = agent
        .get(format!("http://{addr}/healthz"))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .context("GET /healthz")?;
    Ok(serde_json::from_str(&resp.body_mut().read_to_string()?)?)
}

/// Waits until the collector has applied everything it acknowledged; returns how long.
fn wait_applied(agent: &ureq::Agent, addr: SocketAddr) -> anyhow::Result<(Duration, u64)> {
    let started = Instant::now();
    loop {
        let h = health(agent, addr)?;
        if h.lag.events == 0 && h.lag.records == 0 {
            return Ok((started.elapsed(), h.events));
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("the collector still lags {} events after 10 minutes", h.lag.events);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One measured run against one server.
struct Measured {
    outcome: Outcome,
    cpu_cores: f64,
    load_cpu_cores: f64,
    peak_rss_mib: f64,
}

fn measure(server: &Server, bodies: &Arc<Bodies>, connections: usize) -> anyhow::Result<Measured> {
    let pid = server.pid().to_string();
    let (cpu0, self0) = (cpu_secs(&pid)?, cpu_secs("self")?);
    let outcome = load::run(server.addr, tally_protocol::BATCH_PATH, bodies.clone(), connections)?;
    let (cpu1, self1) = (cpu_secs(&pid)?, cpu_secs("self")?);
    let secs = outcome.elapsed.as_secs_f64();
    Ok(Measured {
        cpu_cores: (cpu1 - cpu0) / secs,
        load_cpu_cores: (self1 - self0) / secs,
        peak_rss_mib: peak_rss_mib(server.pid()),
        outcome,
    })
}

fn row(scenario: &str, target: &str, m: &Measured, ratio: Option<f64>, note: &str) -> String {
    let secs = m.outcome.elapsed.as_secs_f64();
    format!(
        "| {scenario} | {target} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {} | {note} |\n",
        m.outcome.ok as f64 / secs,
        m.outcome.events as f64 / secs,
        m.outcome.percentile_ms(0.5),
        m.outcome.percentile_ms(0.99),
        m.cpu_cores,
        m.cpu_cores * secs * 1e6 / m.outcome.events.max(1) as f64,
        m.load_cpu_cores,
        m.peak_rss_mib,
        ratio.map_or("–".to_string(), |r| format!("{r:.3}")),
    )
}

pub fn run(args: IngestArgs) -> anyhow::Result<()> {
    if args.batch_sizes.iter().any(|&b| b == 0 || b > tally_protocol::limits::MAX_EVENTS_PER_BATCH) {
        bail!("--batch-sizes must be between 1 and {}", tally_protocol::limits::MAX_EVENTS_PER_BATCH);
    }
    let temp;
    let data_dir: &Path = match &args.data_dir {
        Some(d) => d,
        None => {
            temp = tempfile::tempdir().context("while creating a temporary data dir")?;
            temp.path()
        }
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    let pool = crate::demo::recent_batches(0x1e57_b47c, 2_000, now_ms, 28);
    eprintln!("bench: {} demo batches as templates", pool.len());
    let noop = Server::start(&["bench".as_ref(), "noop".as_ref()], "listening on")?;
    let serve_args = [
        "serve".as_ref(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--data-dir".as_ref(),
        data_dir.as_os_str(),
        "--admin-token".as_ref(),
        TOKEN.as_ref(),
        "--rate-limit-per-second".as_ref(),
        "0".as_ref(),
        "--client-cap-share-percent".as_ref(),
        "0".as_ref(),
    ];
    let tally = Server::start(&serve_args, "tally collector listening on")?;
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(60))).build().into();
    let stored_at_start = wait_applied(&agent, tally.addr)?.1;
    let mut rng = StdRng::seed_from_u64(0xb0d1e5);
    let mut report = format!(
        "### Ingest, {stored_at_start} events stored at the start\n\n\
         Each scenario posts the same bodies to a no-op endpoint (reads the body, answers 200) and to \
         `tally serve` (acknowledged once durable in the ingest log). CPU in cores used during the run \
         (the collector's CPU per event counts what it did while the load ran: its applier may still be \
         behind); RSS is the server's peak so far.\n\n\
         | scenario | target | requests/s | events/s | p50 ms | p99 ms | server CPU | server CPU µs/event | load CPU | peak RSS MiB | events/s vs no-op | notes |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"
    );
    let mut expected = stored_at_start;
    for &size in &args.batch_sizes {
        for &encoding in &args.encodings {
            let requests = args.requests.unwrap_or(if size >= 100 { 10_000 } else { 20_000 });
            let connections = args.connections.unwrap_or(if size == 1 { 64 } else { 16 });
            let scenario = format!("{size}/req, {encoding:?}, {connections} conns").to_lowercase();
            let bodies = Arc::new(bodies(&pool, size, requests, encoding, &mut rng)?);
            let mb = bodies.bodies.iter().map(|b| b.len()).sum::<usize>() as f64 / 1e6;
            eprintln!("bench: {scenario}: {requests} requests, {mb:.1} MB of bodies");
            let base = measure(&noop, &bodies, connections)?;
            let ours = measure(&tally, &bodies, connections)?;
            let (applied_after, stored) = wait_applied(&agent, tally.addr)?;
            expected += ours.outcome.accepted;
            if ours.outcome.accepted != ours.outcome.events {
                bail!("{scenario}: {} events sent, {} accepted", ours.outcome.events, ours.outcome.accepted);
            }
            if stored != expected {
                bail!("{scenario}: the store holds {stored} events, {expected} were acknowledged");
            }
            let base_rate = base.outcome.events as f64 / base.outcome.elapsed.as_secs_f64();
            let ours_rate = ours.outcome.events as f64 / ours.outcome.elapsed.as_secs_f64();
            let note = format!(
                "all applied {:.2} s after the last ack; {} retried",
                applied_after.as_secs_f64(),
                ours.outcome.retried
            );
            report.push_str(&row(&scenario, "no-op", &base, None, ""));
            report.push_str(&row(&scenario, "tally", &ours, Some(ours_rate / base_rate), &note));
            eprint!("{}", row(&scenario, "tally", &ours, Some(ours_rate / base_rate), &note));
        }
    }
    tally.stop()?;
    drop(noop);
    println!("{report}");
    if let Some(out) = &args.out {
        std::fs::write(out, &report).with_context(|| format!("while writing {}", out.display()))?;
    }
    Ok(())
}
