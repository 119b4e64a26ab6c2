//! A 2xx means durable: acknowledged events survive `kill -9` of the collector, and are
//! present exactly once after a restart.

mod common;

use std::sync::Mutex;

use common::{Server, batch, post};
use serde_json::Value;
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
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                let agent = common::agent();
                let mut b = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    b += 1;
                    let events: Vec<(Uuid, &str, &[&str])> =
                        (0..20).map(|_| (Uuid::now_v7(), "command.run", &["graphql"][..])).collect();
                    let body = batch(Uuid::new_v4(), &format!("machine-{t}-{b}"), "production", &events);
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
    use rand::Rng as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut all_sent = Vec::new();
    let mut rng = rand::rng();
    // CI runs 4 rounds; the full run 20 (TALLY_CRASH_ROUNDS=20, docs/hardening.md).
    let rounds: usize = std::env::var("TALLY_CRASH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(4);
    let mut acked_total = 0;
    for round_no in 0..rounds {
        let server = Server::start(dir.path(), &[]);
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
            let mut f = std::fs::OpenOptions::new().append(true).open(last_segment(dir.path())).expect("open");
            f.write_all(&[200, 0, 0, 0, 1, 2, 3]).expect("tear");
        }
        let server = Server::start(dir.path(), &[]);
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
    let server = Server::start(dir.path(), &[]);
    let agent = common::agent();
    for body in &all_sent {
        assert_eq!(post(&agent, &server.url, body).0, 200);
    }
    assert_eq!(health(&server)["events"].as_u64(), Some(all_sent.len() as u64 * 20), "each event once");
    server.stop();
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
