//! A 2xx means durable: acknowledged events survive `kill -9` of the collector, and are
//! present exactly once after a restart.

mod common;

use std::sync::Mutex;

use common::{Server, batch, batch_at, post};
use serde_json::Value;
use tally_store::DAY_MS;
use uuid::Uuid;

#[test]
fn acknowledged_events_survive_kill_9_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let acked: Mutex<Vec<Value>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..4 {
            let acked = &acked;
            let url = server.url.clone();
            s.spawn(move || {
                let agent = common::agent();
                for b in 0..40 {
                    let project = Uuid::new_v4();
                    let events: Vec<(Uuid, &str, &[&str])> =
                        (0..25).map(|_| (Uuid::now_v7(), "command.run", &["graphql"][..])).collect();
                    let body = batch(project, &format!("machine-{t}-{b}"), "production", &events);
                    let (status, answer) = post(&agent, &url, &body);
                    assert_eq!(status, 200, "{answer}");
                    assert_eq!(answer["accepted"], 25);
                    acked.lock().expect("lock").push(body);
                }
            });
        }
    });
    // Right after the last acknowledgement: no checkpoint, no clean shutdown.
    server.kill9();
    let acked = acked.into_inner().expect("lock");
    let expected: usize = acked.len() * 25;

    let server = Server::start(dir.path(), &[]);
    let agent = common::agent();
    let health: Value = serde_json::from_str(&server.admin_get("/healthz").1).expect("json");
    assert_eq!(health["events"].as_u64(), Some(expected as u64), "every acknowledged event is stored once");
    // Every acknowledged event is there: resending any of them is a duplicate.
    for body in &acked {
        let (status, answer) = post(&agent, &server.url, body);
        assert_eq!(status, 200);
        assert_eq!(answer["duplicate"], 25, "{answer}");
    }
    let health: Value = serde_json::from_str(&server.admin_get("/healthz").1).expect("json");
    assert_eq!(health["events"].as_u64(), Some(expected as u64));
}

/// Events posted in one kill round: every batch sent, and those acknowledged.
#[derive(Default)]
struct Round {
    sent: Vec<Value>,
    acked: Vec<Value>,
}

/// Posts batches of 20 from 4 threads until `stop`; a failed connection (the collector was
/// killed) ends a thread.
fn load_until(url: &str, stop: &std::sync::atomic::AtomicBool, round: &Mutex<Round>) {
    load_batches_until(url, stop, round, &|t, b, events| {
        batch(Uuid::new_v4(), &format!("machine-{t}-{b}"), "production", events)
    })
}

/// [`load_until`] with the batches `make` builds from (thread, batch number, events).
fn load_batches_until(
    url: &str,
    stop: &std::sync::atomic::AtomicBool,
    round: &Mutex<Round>,
    make: &(dyn Fn(usize, usize, &[(Uuid, &str, &[&str])]) -> Value + Sync),
) {
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                let agent = common::agent();
                let mut b = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    b += 1;
                    let events: Vec<(Uuid, &str, &[&str])> =
                        (0..20).map(|_| (Uuid::now_v7(), "command.run", &["graphql"][..])).collect();
                    let body = make(t, b, &events);
                    round.lock().expect("lock").sent.push(body.clone());
                    let answer = agent
                        .post(&format!("{url}/v1/batch"))
                        .header("Content-Type", "application/json")
                        .send(serde_json::to_vec(&body).expect("json"));
                    match answer {
                        Ok(resp) if resp.status().as_u16() == 200 => round.lock().expect("lock").acked.push(body),
                        Ok(resp) => panic!("status {} under load", resp.status()),
                        Err(_) => return,
                    }
                }
            });
        }
    });
}

fn health(server: &Server) -> Value {
    serde_json::from_str(&server.admin_get("/healthz").1).expect("json")
}

/// The last (newest) segment file of the ingest log.
fn last_segment(data_dir: &std::path::Path) -> std::path::PathBuf {
    let mut segments: Vec<_> = std::fs::read_dir(data_dir.join("log"))
        .expect("log dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    segments.pop().expect("a segment")
}

/// `kill -9` at a random moment during load, several rounds on one data dir, with a torn
/// record appended to the log's tail before one restart: every acknowledged event is a
/// duplicate when resent, and after resending everything ever sent the store holds each
/// event exactly once (the applied position survives restarts: nothing is applied twice).
#[test]
fn kill_9_during_load_keeps_every_acknowledged_event_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    kill_rounds(dir.path(), &[]);
}

/// The same with segments of 8 KiB, so that the log starts a new segment every record or
/// two (and the applier releases old ones as often): the kills land during segment
/// switches and releases, and every acknowledged event is still there exactly once.
#[test]
fn kill_9_during_segment_switches_keeps_every_acknowledged_event_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    kill_rounds(dir.path(), &["--log-segment-bytes", "8192"]);
    // Positions are byte offsets and segment files are named by their first one: the log
    // went through hundreds of segments.
    let first: u64 = last_segment(dir.path())
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.trim_start_matches(|c: char| !c.is_ascii_digit()).parse().ok())
        .expect("a segment named by its first position");
    eprintln!("segment switches: at least {}", first / 8192);
    assert!(first / 8192 >= 100, "the log switched segments only about {} times", first / 8192);
}

/// Kill rounds on `dir` with `extra` flags for `tally serve` (see the tests above).
fn kill_rounds(dir: &std::path::Path, extra: &[&str]) {
    use rand::Rng as _;
    let mut all_sent = Vec::new();
    let mut rng = rand::rng();
    // CI runs 4 rounds; the full run 20 (TALLY_CRASH_ROUNDS=20, docs/hardening.md).
    let rounds: usize = std::env::var("TALLY_CRASH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(4);
    let mut acked_total = 0;
    for round_no in 0..rounds {
        let server = Server::start(dir, extra);
        let round = Mutex::new(Round::default());
        let stop = std::sync::atomic::AtomicBool::new(false);
        let kill_after = std::time::Duration::from_millis(rng.random_range(300..1200));
        std::thread::scope(|s| {
            s.spawn(|| load_until(&server.url, &stop, &round));
            std::thread::sleep(kill_after);
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            // Killed while requests are in flight.
            let pid = server.child.id().to_string();
            std::process::Command::new("kill").args(["-KILL", &pid]).status().expect("kill -9");
        });
        server.kill9();
        let round = round.into_inner().expect("lock");
        assert!(!round.acked.is_empty(), "round {round_no} acknowledged something");
        if round_no == 1 {
            // A torn record at the tail, as a crash mid-write leaves it.
            use std::io::Write as _;
            let mut f = std::fs::OpenOptions::new().append(true).open(last_segment(dir)).expect("open");
            f.write_all(&[200, 0, 0, 0, 1, 2, 3]).expect("tear");
        }
        let server = Server::start(dir, extra);
        let agent = common::agent();
        for body in &round.acked {
            let (status, answer) = post(&agent, &server.url, body);
            assert_eq!(status, 200);
            assert_eq!(answer["duplicate"], 20, "round {round_no}: an acknowledged event is missing: {answer}");
        }
        server.stop();
        acked_total += round.acked.len() * 20;
        all_sent.extend(round.sent);
    }
    eprintln!(
        "crash rounds: {rounds} survived, {acked_total} acknowledged events checked, {} sent",
        all_sent.len() * 20
    );
    let server = Server::start(dir, extra);
    let agent = common::agent();
    for body in &all_sent {
        assert_eq!(post(&agent, &server.url, body).0, 200);
    }
    assert_eq!(health(&server)["events"].as_u64(), Some(all_sent.len() as u64 * 20), "each event once");
    server.stop();
}

/// `kill -9` while the retention schedule drops old days, under load. 30 days of events
/// are stored; then rounds of: start with the collector's clock moved on so that the
/// default retention (396 days) cuts 15 days back, and one day further each round (the
/// schedule runs at start and drops that day), load, `kill -9` at a random moment of the
/// first 30 ms, restart, resend. Every acknowledged event is a duplicate when resent, a
/// day's rows never go before its saved rollup file does, and at the end the days before the
/// last cut are gone from the events table and from every day of the rollup, the days after
/// it are all there, and nothing is counted twice.
#[test]
fn kill_9_during_retention_keeps_every_event_it_should_and_none_it_should_not() {
    use rand::Rng as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let now = chrono::Utc::now();
    let server = Server::start(dir.path(), &[]);
    let agent = common::agent();
    let per_day = 4_000;
    let mut stored_at = Vec::new();
    for day in 1..=30 {
        let at = now - chrono::Duration::days(day);
        for b in 0..per_day / 500 {
            let events: Vec<(Uuid, &str, &[&str])> =
                (0..500).map(|_| (Uuid::now_v7(), "command.run", &["graphql"][..])).collect();
            let body = batch_at(Uuid::new_v4(), &format!("old-{day}-{b}"), at, chrono::Utc::now(), &events);
            let (status, answer) = post(&agent, &server.url, &body);
            assert_eq!((status, answer["accepted"].as_u64()), (200, Some(500)), "{answer}");
        }
        stored_at.push(at);
    }
    // A clean stop: everything applied and the rollup's days saved to files.
    server.stop();
    let day_files = |cut: i64| day_files_before(dir.path(), cut.div_euclid(DAY_MS));
    let kept = |cut: i64| stored_at.iter().filter(|at| at.timestamp_millis() >= cut).count() as u64 * per_day;
    // Round r's clock, and the cut its schedule makes.
    let clock = |r: usize| now + chrono::Duration::days(396 - 15 + r as i64);
    let cut_of = |r: usize| (clock(r) - chrono::Duration::days(396)).timestamp_millis().div_euclid(DAY_MS) * DAY_MS;
    assert!(day_files(cut_of(0)) > 0, "the days before the cut were saved");
    assert_eq!(old_rows(dir.path(), now, cut_of(0)), 30 * per_day - kept(cut_of(0)), "they are stored");

    // CI runs 4 rounds; the full run 14 (the stored days after the first cut).
    let rounds: usize = std::env::var("TALLY_CRASH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(4).min(14);
    let mut rng = rand::rng();
    let mut all_sent = Vec::new();
    // Kills before, during and after the schedule's run.
    let mut landed = [0; 3];
    for round_no in 0..rounds {
        let (at, cut) = (clock(round_no), cut_of(round_no));
        let at_arg = at.to_rfc3339();
        let flags = ["--fixed-now", at_arg.as_str()];
        let files_before = day_files(cut);
        assert!(files_before > 0, "round {round_no} has a day to drop");
        let server = Server::start(dir.path(), &flags);
        let round = Mutex::new(Round::default());
        let stop = std::sync::atomic::AtomicBool::new(false);
        // The schedule's run starts with the collector and is often done by the time it
        // listens: the first round is killed at once, the others within 30 ms.
        let kill_after = std::time::Duration::from_millis(if round_no == 0 { 0 } else { rng.random_range(0..30) });
        std::thread::scope(|s| {
            s.spawn(|| {
                load_batches_until(&server.url, &stop, &round, &|t, b, events| {
                    batch_at(Uuid::new_v4(), &format!("new-{round_no}-{t}-{b}"), at, at, events)
                })
            });
            std::thread::sleep(kill_after);
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let pid = server.child.id().to_string();
            std::process::Command::new("kill").args(["-KILL", &pid]).status().expect("kill -9");
        });
        server.kill9();
        // Where the kill landed: before the schedule's run (the dropped days' files and rows
        // still there), during it (files forgotten, rows not yet deleted) or after (neither).
        let (files, rows) = (day_files(cut), old_rows(dir.path(), now, cut));
        assert!(rows > 0 || files == 0, "round {round_no}: rows deleted while {files} of their days' files remain");
        landed[if rows == 0 {
            2
        } else if files < files_before {
            1
        } else {
            0
        }] += 1;
        let round = round.into_inner().expect("lock");
        let server = Server::start(dir.path(), &flags);
        for body in &round.acked {
            let (status, answer) = post(&agent, &server.url, body);
            assert_eq!(status, 200);
            assert_eq!(answer["duplicate"], 20, "round {round_no}: an acknowledged event is missing: {answer}");
        }
        server.kill9();
        all_sent.extend(round.sent);
    }
    eprintln!(
        "retention crash rounds: {rounds}; killed before the schedule's run {}, during it {}, after it {}",
        landed[0], landed[1], landed[2]
    );
    let last = rounds - 1;
    let (last_arg, cut) = (clock(last).to_rfc3339(), cut_of(last));
    let server = Server::start(dir.path(), &["--fixed-now", last_arg.as_str()]);
    for body in &all_sent {
        assert_eq!(post(&agent, &server.url, body).0, 200);
    }
    let expected = kept(cut) + all_sent.len() as u64 * 20;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while health(&server)["events"].as_u64() != Some(expected) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(health(&server)["events"].as_u64(), Some(expected), "the kept days and every event sent, once");
    assert_eq!(day_files(cut), 0, "no file of a day before the cut is left");
    // The rollup, day by day over the stored days: nothing before the cut, every event after.
    let from = (now - chrono::Duration::days(31)).format("%Y-%m-%d").to_string();
    let to = now.format("%Y-%m-%d").to_string();
    let answer: Value =
        serde_json::from_str(&server.admin_get(&format!("/v1/insights/events-per-day?app=demo&from={from}&to={to}")).1)
            .expect("json");
    let mut total = 0;
    for row in answer["table"]["rows"].as_array().expect("rows") {
        let day = chrono::NaiveDate::parse_from_str(row[0].as_str().expect("day"), "%Y-%m-%d").expect("date");
        let day_ms = day.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp_millis();
        let events = row[1].as_u64().expect("events");
        assert!(day_ms >= cut || events == 0, "{day} is before the cut and still has {events} events");
        total += events;
    }
    assert_eq!(total, kept(cut), "every kept day whole: {answer}");
    server.stop();
}

/// The stored events before `cut` of the 31 days before `now`, read by the CLI from the
/// data dir (no collector running).
fn old_rows(data_dir: &std::path::Path, now: chrono::DateTime<chrono::Utc>, cut: i64) -> u64 {
    let from = (now - chrono::Duration::days(31)).format("%Y-%m-%d").to_string();
    let to = chrono::DateTime::from_timestamp_millis(cut).expect("cut").format("%Y-%m-%d").to_string();
    let dir = data_dir.to_str().expect("utf-8 path");
    let answer = common::insight("events-per-day", &["--data-dir", dir, "--from", &from, "--to", &to]);
    answer["table"]["rows"].as_array().expect("rows").iter().map(|r| r[1].as_u64().expect("events")).sum()
}

/// Saved rollup days (`rollup/a<app>-d<day>.day`) before `day`.
fn day_files_before(data_dir: &std::path::Path, day: i64) -> usize {
    let Ok(entries) = std::fs::read_dir(data_dir.join("rollup")) else { return 0 };
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".day")?.split_once("-d")?.1.parse::<i64>().ok())
        .filter(|&d| d < day)
        .count()
}

/// `tally erase` after a crash applies the unapplied log first: the erased project does
/// not come back from the log at the next start.
#[test]
fn erase_after_a_crash_applies_the_log_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let agent = common::agent();
    let doomed = Uuid::new_v4();
    let events: Vec<(Uuid, &str, &[&str])> = (0..10).map(|_| (Uuid::now_v7(), "command.run", &[][..])).collect();
    assert_eq!(post(&agent, &server.url, &batch(doomed, "m1", "production", &events)).0, 200);
    let kept: Vec<(Uuid, &str, &[&str])> = (0..5).map(|_| (Uuid::now_v7(), "command.run", &[][..])).collect();
    assert_eq!(post(&agent, &server.url, &batch(Uuid::new_v4(), "m2", "production", &kept)).0, 200);
    server.kill9();
    let out = common::tally()
        .args(["erase", "--project", &doomed.to_string(), "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("run tally erase");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("erased 10 events"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let server = Server::start(dir.path(), &[]);
    assert_eq!(health(&server)["events"], 5);
    server.stop();
}
