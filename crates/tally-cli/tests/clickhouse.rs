//! `tally serve --store clickhouse://…` against real ClickHouse servers on loopback
//! (started by `tally_store_clickhouse::testing`): every catalog insight answers the same
//! table as DuckDB; two collectors share one database; and `kill -9` of a collector during
//! load and a ClickHouse restart during load keep every acknowledged event exactly once.

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Server, batch, post};
use serde_json::Value;
use tally_store_clickhouse::testing::{Cluster, CurrentServer, Server as ClickHouse};
use uuid::Uuid;

/// `/healthz` with its detail (the event count needs a token; every server here has `t0ken`).
fn health(url: &str) -> Value {
    let mut resp =
        common::agent().get(&format!("{url}/healthz")).header("Authorization", "Bearer t0ken").call().expect("healthz");
    serde_json::from_str(&resp.body_mut().read_to_string().expect("body")).expect("json")
}

/// Waits (at most a minute) until the collector's store holds `n` events; returns what it
/// holds at the end.
fn wait_for_events(url: &str, n: u64) -> u64 {
    let started = Instant::now();
    loop {
        let events = health(url)["events"].as_u64().unwrap_or(0);
        if events == n || started.elapsed() > Duration::from_secs(60) {
            return events;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A batch of `n` new events of a new project, with plugins, durations and an error, so
/// that every insight has something to count.
fn varied_batch(i: usize, n: usize) -> Value {
    let plugins: [&[&str]; 4] = [&["graphql"], &["graphql", "i18n"], &[], &["seo", "i18n"]];
    let names = ["command.run", "server.started", "project.created", "error"];
    let events: Vec<(Uuid, &str, &[&str])> =
        (0..n).map(|k| (Uuid::now_v7(), names[(i + k) % 4], plugins[(i * 3 + k) % 4])).collect();
    let env = ["production", "development", "test"][i % 3];
    let mut body = batch(Uuid::new_v4(), &format!("machine-{}", i % 7), env, &events);
    for (k, e) in body["events"].as_array_mut().expect("events").iter_mut().enumerate() {
        if e["event"] == "project.created" {
            e["duration_ms"] = Value::from(100 + (i * 37 + k * 11) % 5000);
        }
        if e["event"] == "error" {
            e["error_kind"] = Value::from(["EACCES", "PORT_IN_USE"][k % 2]);
        }
    }
    body
}

fn insight_table(url: &str, token: &str, name: &str) -> (u16, Value) {
    let mut resp = common::agent()
        .get(&format!("{url}/v1/insights/{name}?app=demo&since=30d"))
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .expect("insight");
    let status = resp.status().as_u16();
    let body: Value = serde_json::from_str(&resp.body_mut().read_to_string().expect("body")).expect("json");
    (status, if status == 200 { body["table"].clone() } else { body })
}

/// The same batches into a DuckDB collector and a ClickHouse collector (one server, then a
/// two-shard cluster): every insight of the catalog answers the same table.
#[test]
fn every_insight_answers_on_clickhouse_as_on_duckdb() {
    let clickhouse = ClickHouse::start();
    let cluster = Cluster::start(2);
    let duck_dir = tempfile::tempdir().expect("tempdir");
    let duck = Server::start(duck_dir.path(), &["--admin-token", "t0ken"]);
    let stores = [clickhouse.url(), cluster.url()];
    let dirs: Vec<_> = stores.iter().map(|_| tempfile::tempdir().expect("tempdir")).collect();
    let others: Vec<Server> = stores
        .iter()
        .zip(&dirs)
        .map(|(url, dir)| Server::start(dir.path(), &["--admin-token", "t0ken", "--store", url]))
        .collect();
    let agent = common::agent();
    for i in 0..60 {
        let body = varied_batch(i, 10);
        for server in std::iter::once(&duck).chain(&others) {
            let (status, answer) = post(&agent, &server.url, &body);
            assert_eq!((status, &answer["accepted"]), (200, &Value::from(10)), "{answer}");
        }
    }
    // Insights wait at most a second for the applier; a loaded machine may need longer.
    for server in std::iter::once(&duck).chain(&others) {
        assert_eq!(wait_for_events(&server.url, 600), 600);
    }
    let mut answered = 0;
    for insight in tally_insights::CATALOG {
        let want = insight_table(&duck.url, "t0ken", insight.name);
        if want.0 == 200 && want.1["rows"].as_array().is_some_and(|r| !r.is_empty()) {
            answered += 1;
        }
        for (server, store) in others.iter().zip(&stores) {
            assert_eq!(insight_table(&server.url, "t0ken", insight.name), want, "{} on {store}", insight.name);
        }
    }
    eprintln!("{answered} of {} insights answered rows", tally_insights::CATALOG.len());
    assert_eq!(answered, tally_insights::CATALOG.len(), "every insight has rows to compare");
}

/// Two collectors, each with its own data dir and log, write to one database at once;
/// some batches go to both (a client retrying through a load balancer): each event is
/// stored once, and both collectors count the same.
#[test]
fn two_collectors_writing_to_one_clickhouse_store_each_event_once() {
    let clickhouse = ClickHouse::start();
    let url = clickhouse.url();
    let dirs = [tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir")];
    let first = Server::start(dirs[0].path(), &["--store", &url, "--admin-token", "t0ken"]);
    // A collector with a secret of its own is refused: one project would count as two.
    let out = common::tally()
        .args(["serve", "--listen", "127.0.0.1:0", "--store", &url, "--data-dir"])
        .arg(dirs[1].path())
        .output()
        .expect("run tally serve");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("collectors sharing a database must share it"), "{stderr}");
    std::fs::copy(dirs[0].path().join("server-secret"), dirs[1].path().join("server-secret")).expect("copy secret");
    let second = Server::start(dirs[1].path(), &["--store", &url, "--admin-token", "t0ken"]);
    let servers = [first, second];
    let unique = Mutex::new(0u64);
    std::thread::scope(|s| {
        for t in 0..4 {
            let (servers, unique) = (&servers, &unique);
            s.spawn(move || {
                let agent = common::agent();
                for b in 0..30 {
                    let body = varied_batch(t * 100 + b, 20);
                    let (status, _) = post(&agent, &servers[(t + b) % 2].url, &body);
                    assert_eq!(status, 200);
                    if b % 3 == 0 {
                        // The same batch again, through the other collector.
                        assert_eq!(post(&agent, &servers[(t + b + 1) % 2].url, &body).0, 200);
                    }
                    *unique.lock().expect("lock") += 20;
                }
            });
        }
    });
    let unique = unique.into_inner().expect("lock");
    for server in &servers {
        assert_eq!(wait_for_events(&server.url, unique), unique, "each event once");
        // Every batch is a project of its own (120): counted once through either collector.
        let (status, table) = insight_table(&server.url, "t0ken", "active");
        assert_eq!(status, 200);
        assert_eq!(table["rows"][0][1], 120, "{table}");
    }
}

/// Events posted in one round: every batch sent, and those acknowledged.
#[derive(Default)]
struct Round {
    sent: Vec<Value>,
    acked: Vec<Value>,
}

/// Posts batches of 20 from 4 threads until `stop`; a failed connection (the collector was
/// killed) ends a thread.
fn load_until(url: &str, stop: &AtomicBool, round: &Mutex<Round>) {
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                let agent = common::agent();
                let mut b = 0;
                while !stop.load(Ordering::Relaxed) {
                    b += 1;
                    let body = varied_batch(t * 10_000 + b, 20);
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

/// `kill -9` of the collector at a random moment under load, then a `kill -9` and restart
/// of the ClickHouse server under load (the applier retries until it is back; the log keeps
/// acknowledging): every acknowledged event is stored, and after resending everything
/// ever sent each event is stored exactly once.
#[test]
fn kill_9_of_a_collector_and_a_clickhouse_restart_keep_every_acknowledged_event_once() {
    use rand::Rng as _;
    let mut clickhouse = ClickHouse::start();
    let url = clickhouse.url();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = rand::rng();
    let mut all_sent = Vec::new();
    let mut all_acked = Vec::new();
    // Round 0 kills the collector; round 1 restarts ClickHouse while the collector runs.
    for round_no in 0..2 {
        let server = Server::start(dir.path(), &["--store", &url, "--admin-token", "t0ken"]);
        let round = Mutex::new(Round::default());
        let stop = AtomicBool::new(false);
        let after = Duration::from_millis(rng.random_range(300..1200));
        std::thread::scope(|s| {
            s.spawn(|| load_until(&server.url, &stop, &round));
            std::thread::sleep(after);
            if round_no == 0 {
                stop.store(true, Ordering::Relaxed);
                let pid = server.child.id().to_string();
                std::process::Command::new("kill").args(["-KILL", &pid]).status().expect("kill -9");
            } else {
                clickhouse.restart();
                std::thread::sleep(after);
                stop.store(true, Ordering::Relaxed);
            }
        });
        let round = round.into_inner().expect("lock");
        assert!(!round.acked.is_empty(), "round {round_no} acknowledged something");
        if round_no == 0 {
            server.kill9();
        } else {
            server.stop();
        }
        all_sent.extend(round.sent);
        all_acked.extend(round.acked);
    }
    let server = Server::start(dir.path(), &["--store", &url, "--admin-token", "t0ken"]);
    let agent = common::agent();
    // Every acknowledged event is there: resending it is a duplicate. (More than the
    // acknowledged events may be stored: a batch made durable just before the kill, whose
    // answer never left.)
    for body in &all_acked {
        let (status, answer) = post(&agent, &server.url, body);
        assert_eq!(
            (status, &answer["duplicate"]),
            (200, &Value::from(20)),
            "an acknowledged event is missing: {answer}"
        );
    }
    let acked = all_acked.len() as u64 * 20;
    let started = Instant::now();
    while health(&server.url)["events"].as_u64().unwrap_or(0) < acked && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(health(&server.url)["events"].as_u64().unwrap_or(0) >= acked, "every acknowledged event is in clickhouse");
    for body in &all_sent {
        assert_eq!(post(&agent, &server.url, body).0, 200);
    }
    let sent = all_sent.len() as u64 * 20;
    assert_eq!(wait_for_events(&server.url, sent), sent, "each event once after resending everything");
    server.stop();
}

/// `--store` that is neither backend is refused with a message naming both.
#[test]
fn an_unknown_store_url_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = common::tally()
        .args(["serve", "--listen", "127.0.0.1:0", "--store", "postgres://localhost/tally", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("run tally serve");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("neither duckdb nor a clickhouse://"), "{stderr}");
}

/// `tally migrate` copies a stopped collector's DuckDB store into ClickHouse; run again it
/// copies nothing; a collector on the same data dir with `--store clickhouse://…` then
/// answers every insight as before and holds each event once (the log it replays under
/// its new writer name adds nothing).
#[test]
fn a_duckdb_store_migrated_to_clickhouse_answers_the_same() {
    let clickhouse = ClickHouse::start();
    migrated_answers_the_same(&clickhouse.url());
}

/// The same on a current release (ClickHouse 26.9's engine, `CurrentServer`): `tally
/// migrate`, then the collector ingesting into it and answering every insight.
#[test]
fn a_duckdb_store_migrated_to_a_current_clickhouse_answers_the_same() {
    let clickhouse = CurrentServer::start();
    migrated_answers_the_same(&clickhouse.url());
}

fn migrated_answers_the_same(url: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--admin-token", "t0ken"]);
    let agent = common::agent();
    for i in 0..30 {
        assert_eq!(post(&agent, &server.url, &varied_batch(i, 10)).0, 200);
    }
    assert_eq!(wait_for_events(&server.url, 300), 300);
    let before: Vec<_> = tally_insights::CATALOG.iter().map(|i| insight_table(&server.url, "t0ken", i.name)).collect();
    server.stop();
    let migrate = || {
        let out = common::tally()
            .args(["migrate", "--to", url, "--data-dir"])
            .arg(dir.path())
            .output()
            .expect("run tally migrate");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(migrate().starts_with("copied 300 events to clickhouse (0 were there already)"));
    assert!(migrate().starts_with("copied 0 events to clickhouse (300 were there already)"));
    let server = Server::start(dir.path(), &["--admin-token", "t0ken", "--store", url]);
    assert_eq!(wait_for_events(&server.url, 300), 300);
    for (insight, want) in tally_insights::CATALOG.iter().zip(before) {
        assert_eq!(insight_table(&server.url, "t0ken", insight.name), want, "{}", insight.name);
    }
    server.stop();
}
