//! Shutdown keeps to its exit budget: against a collector that accepts and never answers,
//! with request timeouts of an hour (so a shutdown that waited for its post would not
//! return), and with another process holding the outbox lock (so one that waited for the
//! lock past its budget would be late). The events are in the outbox afterwards. No
//! wall-clock assertion: a shutdown that blocks is caught by a hang guard; the elapsed time
//! is only printed.

mod common;

use std::fs::File;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Behaviour, Collector};
use tally::testing::Sandbox;
use tally::{Event, Telemetry};

const AN_HOUR: Duration = Duration::from_secs(3600);

/// Shuts `t` down on another thread; panics if that has not returned after 30 s.
fn shutdown_returns(t: Telemetry) {
    let (done, returned) = mpsc::channel();
    let start = Instant::now();
    std::thread::spawn(move || {
        t.shutdown();
        let _ = done.send(());
    });
    assert!(
        returned.recv_timeout(Duration::from_secs(30)).is_ok(),
        "shutdown did not return: it waited for a post that never ends, or for the lock"
    );
    eprintln!("shutdown returned after {:?}", start.elapsed());
}

/// A client of `sandbox` against `collector` with this exit budget and hour-long timeouts;
/// records two events.
fn recording(sandbox: &Sandbox, collector: &Collector, budget: Duration) -> Telemetry {
    let t = sandbox
        .builder("demo", "1.0.0")
        .endpoint(collector.endpoint())
        .exit_budget(budget)
        .timeouts(AN_HOUR, AN_HOUR)
        .build();
    t.record(Event::command_run("build"));
    t.record(Event::build_finished(Duration::from_millis(12)));
    t
}

fn waiting_ids(t: &Telemetry) -> Vec<uuid::Uuid> {
    t.outbox().unwrap().chunks().unwrap().into_iter().flat_map(|c| c.events).map(|e| e.event_id).collect()
}

/// A budget shorter than the round trip (100 ms against a listener that never answers):
/// shutdown posts, gives up at its budget, and keeps the batch, marked as posted.
#[test]
fn a_budget_shorter_than_the_round_trip_returns_and_keeps_the_events() {
    let sandbox = Sandbox::new();
    let silent = Collector::start(Behaviour::Silent);
    let t = recording(&sandbox, &silent, Duration::from_millis(100));
    let outbox = t.outbox().unwrap();
    shutdown_returns(t.clone());
    assert!(silent.connections() >= 1, "the batch was posted");
    let chunks = outbox.chunks().unwrap();
    assert_eq!(chunks.iter().map(|c| c.events.len()).sum::<usize>(), 2, "both events kept");
    assert!(chunks.iter().all(|c| c.posted_at.is_some()), "marked posted, so not posted again at once");
    assert_eq!(waiting_ids(&t).len(), 2);
}

/// A budget already spent when the lock is needed: the sender took the whole budget, and
/// another process holds the outbox lock. Shutdown does not wait for the lock (it tries
/// once) and writes a spill file that the next sender merges.
#[test]
fn a_spent_budget_does_not_wait_for_the_lock() {
    let sandbox = Sandbox::new();
    let silent = Collector::start(Behaviour::Silent);
    let t = recording(&sandbox, &silent, Duration::from_millis(100));
    let outbox = t.outbox().unwrap();
    std::fs::create_dir_all(outbox.dir()).unwrap();
    let other_process = File::create(outbox.dir().join("outbox.lock")).unwrap();
    other_process.lock().unwrap();
    shutdown_returns(t.clone());
    let spills = std::fs::read_dir(outbox.dir())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("spill-"))
        .count();
    assert_eq!(spills, 1, "written beside the locked outbox");
    other_process.unlock().unwrap();
    assert_eq!(waiting_ids(&t).len(), 2, "and read back with it");
    outbox.compact().unwrap();
    assert_eq!(waiting_ids(&t).len(), 2, "merged by a compaction");
}

/// A zero budget (spent before shutdown starts): nothing is posted that the host cannot
/// wait for, and the events go straight to the outbox.
#[test]
fn a_zero_budget_posts_nothing_and_keeps_the_events() {
    let sandbox = Sandbox::new();
    let silent = Collector::start(Behaviour::Silent);
    let t = recording(&sandbox, &silent, Duration::ZERO);
    shutdown_returns(t.clone());
    assert_eq!(silent.connections(), 0, "no post started");
    assert_eq!(waiting_ids(&t).len(), 2);
    let chunks = t.outbox().unwrap().chunks().unwrap();
    assert!(chunks.iter().all(|c| c.posted_at.is_none()), "never posted: the next run posts them");
}
