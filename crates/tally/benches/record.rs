//! Benchmarks of the SDK, with plain `std::time` (run: `cargo bench -p tally`).
//!
//! 1. `record()` cost per event, on the caller's thread, for a client that sends (into an
//!    in-memory sink, drained by the sender thread as usual) and for a disabled client.
//! 2. The example host tool (`hostcli build`, release build) run as a process: wall time
//!    and peak RSS with telemetry off, and on with the endpoint up, refused and blackholed.
//! 3. Exit cost against the outbox: wall time with the endpoint refused and the outbox
//!    empty or at its 512 KiB bound, as a ratio to telemetry off in the same rounds.
//! 4. Resends per event: 100 runs of a 5 ms command against a loopback collector.
//!
//! Numbers are printed; `docs/benchmarks.md` records a run. Nothing here asserts a time.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Behaviour, Collector, Home, refused_endpoint};
use tally::testing::{MemorySink, Sandbox};
use tally::{Event, Mode};

fn typical_event(i: usize) -> Event {
    Event::command_run("build").plugins(["sass", "minify"]).prop("files", i).prop("typescript", true)
}

/// The scrubber's patterns compile on first use (the SDK does it on its sender thread).
fn bench_scrub_compile() {
    let start = Instant::now();
    let hit = tally_protocol::scrub::is_sensitive("plugin acme-private-plugin-for-client");
    println!(
        "## scrubber\nfirst call (compiles the patterns): {:.2} ms (hit: {hit})",
        start.elapsed().as_secs_f64() * 1e3
    );
    let n = 100_000;
    for s in ["acme-private-plugin", "failed to open /home/alice/site/config.json: permission denied"] {
        let start = Instant::now();
        for _ in 0..n {
            std::hint::black_box(tally_protocol::scrub::scrub(std::hint::black_box(s)));
        }
        println!("scrub({} bytes): {:.0} ns", s.len(), start.elapsed().as_nanos() as f64 / n as f64);
    }
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(uuid::Uuid::now_v7());
    }
    println!("Uuid::now_v7(): {:.0} ns", start.elapsed().as_nanos() as f64 / n as f64);
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(chrono::Utc::now());
    }
    println!("Utc::now(): {:.0} ns\n", start.elapsed().as_nanos() as f64 / n as f64);
}

fn bench_record() {
    let n = 200_000;
    // Measured in bursts of 499 events: below the batch size, so the sender thread sleeps
    // while the caller records (its work is measured separately, by the host benchmark).
    let burst = 499;
    let sandbox = Sandbox::new();
    let sink = MemorySink::new();
    let t = sandbox
        .builder("bench", "1.0.0")
        .sink(sink.clone())
        .queue_capacity(n + 1000)
        .batching(500, Duration::from_secs(3600))
        .build();
    // Warm up (lazy statics, the first batch).
    for i in 0..burst {
        t.record(typical_event(i));
    }
    t.flush(Duration::from_secs(30));

    let mut record_only = Duration::ZERO;
    let mut build_and_record = Duration::ZERO;
    let mut recorded = 0;
    while recorded < n {
        let events: Vec<Event> = (0..burst).map(typical_event).collect();
        let start = Instant::now();
        for e in events {
            t.record(e);
        }
        record_only += start.elapsed();
        t.flush(Duration::from_secs(30));
        let start = Instant::now();
        for i in 0..burst {
            t.record(typical_event(i));
        }
        build_and_record += start.elapsed();
        t.flush(Duration::from_secs(30));
        recorded += burst;
    }
    t.shutdown();
    let n = recorded;

    let long = "failed to open /home/alice/projects/site/config/database.json: permission denied";
    let sandbox2 = Sandbox::new();
    let t2 =
        sandbox2.builder("bench", "1.0.0").sink(MemorySink::new()).batching(500, Duration::from_secs(3600)).build();
    let mut scrubbed = Duration::ZERO;
    let rounds = 40;
    for _ in 0..rounds {
        let events: Vec<Event> = (0..burst).map(|_| Event::new("command.run").prop("detail", long)).collect();
        let start = Instant::now();
        for e in events {
            t2.record(e);
        }
        scrubbed += start.elapsed();
        t2.flush(Duration::from_secs(30));
    }
    let scrubbed = scrubbed / (rounds * burst) as u32;
    t2.shutdown();

    let off = sandbox.builder("bench", "1.0.0").default_mode(Mode::Off).build();
    let events: Vec<Event> = (0..n).map(typical_event).collect();
    let start = Instant::now();
    for e in events {
        off.record(e);
    }
    let disabled = start.elapsed();

    let per = |d: Duration| d.as_nanos() as f64 / n as f64;
    println!("## record()");
    println!("record(), typical event, client on:        {:>7.0} ns/event", per(record_only));
    println!("Event::new(..) + record(), client on:       {:>7.0} ns/event", per(build_and_record));
    println!("record(), 80-byte string with a home path:  {:>7.0} ns/event", scrubbed.as_nanos() as f64);
    println!("record(), client off (just drops the event):{:>7.0} ns/event", per(disabled));
    println!("(delivered to the sink: {} events)", sink.events().len());
}

/// How long the host tool pretends to build: a real tool does some work, during which the
/// sender sends what earlier runs left; with none at all every run ends before its
/// sender's first round trip.
const WORK_MS: &str = "20";

/// Wall time (ms) and peak RSS (KiB) of one run of `hostcli build`.
fn run_host(home: &Home, extra: &[(&str, &str)]) -> (f64, u64) {
    run_host_with(home, &["build", "--work-ms", WORK_MS], extra)
}

fn run_host_with(home: &Home, args: &[&str], extra: &[(&str, &str)]) -> (f64, u64) {
    let time = std::path::Path::new("/usr/bin/time");
    let mut cmd = if time.exists() {
        let mut c = Command::new(time);
        c.args(["-f", "%M"]).arg(common::hostcli());
        c
    } else {
        Command::new(common::hostcli())
    };
    cmd.args(args)
        .current_dir(home.project())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.home())
        .env("TALLY_POLICY", home.policy())
        .envs(extra.iter().copied());
    let start = Instant::now();
    let out = cmd.output().expect("run hostcli");
    let wall = start.elapsed().as_secs_f64() * 1000.0;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rss = String::from_utf8_lossy(&out.stderr).lines().last().and_then(|l| l.trim().parse().ok()).unwrap_or(0);
    (wall, rss)
}

fn bench_host() {
    let host = common::hostcli();
    if !host.to_string_lossy().contains("release") {
        println!("\n(host tool numbers skipped: run `cargo bench`, which uses release builds)");
    }
    let rounds = 80;
    let up = Collector::start(Behaviour::Accept);
    let blackhole = Collector::start(Behaviour::Silent);
    let refused = refused_endpoint();
    let scenarios: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("off (DO_NOT_TRACK=1)", vec![("DO_NOT_TRACK", "1".into())]),
        ("on, endpoint up", vec![("HOSTCLI_ENDPOINT", up.endpoint())]),
        ("on, endpoint refused", vec![("HOSTCLI_ENDPOINT", refused.clone())]),
        ("on, endpoint blackholed", vec![("HOSTCLI_ENDPOINT", blackhole.endpoint())]),
        (
            "on, endpoint up, exit budget 1 ms",
            vec![("HOSTCLI_ENDPOINT", up.endpoint()), ("HOSTCLI_EXIT_BUDGET_MS", "1".into())],
        ),
    ];
    let homes: Vec<Home> = scenarios
        .iter()
        .map(|(_, vars)| {
            let home = Home::new();
            home.ok(&["telemetry", "enable"], &[]);
            let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
            run_host(&home, &vars);
            home
        })
        .collect();
    // Round-robin, so that load from elsewhere on the machine hits every scenario alike.
    let mut walls = vec![Vec::new(); scenarios.len()];
    let mut rss = vec![Vec::new(); scenarios.len()];
    for _ in 0..rounds {
        for (i, (_, vars)) in scenarios.iter().enumerate() {
            let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (w, r) = run_host(&homes[i], &vars);
            walls[i].push(w);
            rss[i].push(r);
        }
    }
    println!("\n## hostcli build --work-ms {WORK_MS}, {rounds} runs each, round-robin (default exit budget, 2 ms)");
    println!("| scenario | median wall ms | p90 wall ms | median peak RSS KiB | max peak RSS KiB |");
    println!("|---|---|---|---|---|");
    for (i, (name, _)) in scenarios.iter().enumerate() {
        walls[i].sort_by(f64::total_cmp);
        rss[i].sort();
        println!(
            "| {name} | {:.2} | {:.2} | {} | {} |",
            walls[i][rounds / 2],
            walls[i][rounds * 9 / 10],
            rss[i][rounds / 2],
            rss[i][rounds - 1]
        );
    }
    println!(
        "(collector up received {} events; blackhole saw {} connections)",
        up.ids().len(),
        blackhole.connections()
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// What the outbox holds on disk: its file and any spill files (which count against the
/// bound too: they used to pile up while the sender held the lock).
fn outbox_bytes(home: &Home) -> u64 {
    std::fs::read_dir(home.data_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name == "outbox.jsonl" || name.starts_with("spill-")
        })
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum()
}

/// Issue 12 item 2: with the endpoint unreachable and the outbox at its bound, every run
/// paid for reading and rewriting it. Each "on" home gets the same outbox back before each
/// run (none, one earlier run's 2 events, or a full one), so the rows differ only in what
/// the outbox holds; the figure that matters is full against small (both have something
/// to send, so both try the endpoint once).
fn bench_exit() {
    let rounds = 80;
    let refused = refused_endpoint();
    let on = [("HOSTCLI_ENDPOINT", refused.as_str())];
    let homes: Vec<Home> = (0..4).map(|_| Home::new()).collect();
    for h in &homes {
        h.ok(&["telemetry", "enable"], &[]);
    }
    let [off, empty, small, full] = &homes[..] else { unreachable!() };
    small.ok(&["build"], &on);
    // Filled as an endpoint unreachable for a while fills it, to just under its bound.
    while outbox_bytes(full) < 480 * 1024 {
        full.ok(&["build", "--events", "100"], &on);
    }
    let file = |h: &Home| h.data_dir().join("outbox.jsonl");
    let (small_outbox, full_outbox) = (std::fs::read(file(small)).unwrap(), std::fs::read(file(full)).unwrap());
    let args = ["build", "--work-ms", "5"];
    let mut times: [Vec<f64>; 4] = Default::default();
    for _ in 0..rounds {
        times[0].push(run_host_with(off, &args, &[("DO_NOT_TRACK", "1")]).0);
        let _ = std::fs::remove_file(file(empty));
        times[1].push(run_host_with(empty, &args, &on).0);
        std::fs::write(file(small), &small_outbox).unwrap();
        times[2].push(run_host_with(small, &args, &on).0);
        std::fs::write(file(full), &full_outbox).unwrap();
        times[3].push(run_host_with(full, &args, &on).0);
    }
    let [off_ms, empty_ms, small_ms, full_ms] = times.map(median);
    println!("\n## exit cost against the outbox: hostcli build --work-ms 5, endpoint refused, {rounds} runs each");
    println!("| scenario | median wall ms | ratio to off | ratio to small outbox |");
    println!("|---|---|---|---|");
    println!("| off (DO_NOT_TRACK=1) | {off_ms:.2} | 1.00 | |");
    println!("| on, outbox empty at start | {empty_ms:.2} | {:.2} | |", empty_ms / off_ms);
    println!(
        "| on, outbox of one earlier run at start ({} bytes) | {small_ms:.2} | {:.2} | 1.00 |",
        small_outbox.len(),
        small_ms / off_ms
    );
    println!(
        "| on, outbox at its bound at start ({} KiB) | {full_ms:.2} | {:.2} | {:.2} |",
        full_outbox.len() / 1024,
        full_ms / off_ms,
        full_ms / small_ms
    );
    let left = std::fs::read_dir(full.data_dir()).unwrap().count();
    println!("(files in the full home's data dir after the last run: {left})");
}

/// Issue 12 item 3: a run shorter than one round trip posted the same events run after
/// run. Posts received per event recorded, for 100 runs of a 5 ms command.
fn bench_resends() {
    let runs = 100;
    println!("\n## resends per event: {runs} runs of hostcli build --work-ms 5 against a loopback collector");
    println!(
        "| resend_after | events recorded | posts received | unique received | resends per event | still waiting |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, resend) in [("10 min (default)", None), ("0 (post again at once, as before)", Some("0"))] {
        let home = Home::new();
        home.ok(&["telemetry", "enable"], &[]);
        let collector = Collector::start(Behaviour::Accept);
        let endpoint = collector.endpoint();
        let mut vars = vec![("HOSTCLI_ENDPOINT", endpoint.as_str())];
        if let Some(r) = resend {
            vars.push(("HOSTCLI_RESEND_AFTER_MS", r));
        }
        for _ in 0..runs {
            run_host_with(&home, &["build", "--work-ms", "5"], &vars);
        }
        let ids = collector.ids();
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        let waiting = home.outbox_ids();
        let recorded = runs * 2;
        println!(
            "| {name} | {recorded} | {} | {} | {:.2} | {} |",
            ids.len(),
            unique.len(),
            (ids.len() - unique.len()) as f64 / unique.len().max(1) as f64,
            waiting.len()
        );
    }
}

fn main() {
    // `cargo test --benches` runs benches with `--test`-like flags: keep that quick.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    // TALLY_BENCH=record|host|exit|resends runs one part only.
    let only = std::env::var("TALLY_BENCH").unwrap_or_default();
    if only.is_empty() || only == "record" {
        bench_scrub_compile();
        bench_record();
    }
    if only.is_empty() || only == "host" {
        bench_host();
    }
    if only.is_empty() || only == "exit" {
        bench_exit();
    }
    if only.is_empty() || only == "resends" {
        bench_resends();
    }
}
