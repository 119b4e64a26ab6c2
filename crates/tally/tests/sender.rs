//! The sender against a collector on loopback, run through the example host tool as a real
//! process: delivered once; refused port, silent port and slow server leave the events in
//! the outbox, and a later run delivers them. No wall-clock assertions: a host that does
//! not exit is caught by `Home::run`'s one-minute hang guard.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Behaviour, Collector, Home, refused_endpoint};
use uuid::Uuid;

/// A home where the user enabled telemetry (so no run is a notice run).
fn enabled_home() -> Home {
    let home = Home::new();
    home.ok(&["telemetry", "enable"], &[]);
    home
}

fn unique(ids: &[Uuid]) -> HashSet<Uuid> {
    ids.iter().copied().collect()
}

/// A later `serve` (1 event of its own, then a flush): it sends the outbox left by
/// earlier runs, then its own event. (The `telemetry` subcommand sends nothing, and a run
/// that exits while the sender is busy with the outbox does not wait for it.)
fn later_run(home: &Home, collector: &Collector) {
    // Posted batches whose answer an earlier run did not wait for may be posted again.
    home.ok(&["serve"], &[("HOSTCLI_ENDPOINT", &collector.endpoint()), ("HOSTCLI_RESEND_AFTER_MS", "0")]);
}

/// The ids received that were waiting in the outbox, in the order received.
fn old_ids(collector: &Collector, waiting: &[Uuid]) -> Vec<Uuid> {
    collector.ids().into_iter().filter(|id| waiting.contains(id)).collect()
}

#[test]
fn delivers_each_event_once() {
    let home = enabled_home();
    let collector = Collector::start(Behaviour::Accept);
    home.ok(
        &["build", "--events", "5"],
        &[("HOSTCLI_ENDPOINT", &collector.endpoint()), ("HOSTCLI_EXIT_BUDGET_MS", "30000")],
    );
    let ids = collector.ids();
    assert_eq!(ids.len(), 7, "1 command.run + 5 steps + build.finished");
    assert_eq!(unique(&ids).len(), 7, "no event twice");
    assert!(home.outbox_ids().is_empty());
    let sent = home.outbox().sent().unwrap();
    assert_eq!(sent.iter().map(|r| r.events.len()).sum::<usize>(), 7);
    // gzip JSON to /v1/batch, and a context the protocol accepts.
    let headers = &collector.headers()[0];
    assert_eq!(headers["content-encoding"], "gzip");
    assert_eq!(headers["content-type"], "application/json");
    for b in collector.batches() {
        tally_protocol::validate::validate_context(&b.context).expect("valid context");
        assert_eq!(b.context.app, "hostcli");
        assert_eq!(b.context.machine.len(), 64);
    }
    // Another run sends nothing old again, only its own.
    later_run(&home, &collector);
    assert_eq!(collector.ids().len(), 8);
    assert_eq!(unique(&collector.ids()).len(), 8);
}

/// Records 3 events against `endpoint` with a small budget, then checks they wait in the
/// outbox and that a later run against a working collector delivers them.
fn recorded_then_delivered_later(home: &Home, endpoint: &str, budget_ms: &str) -> Vec<Uuid> {
    home.ok(&["build", "--events", "1"], &[("HOSTCLI_ENDPOINT", endpoint), ("HOSTCLI_EXIT_BUDGET_MS", budget_ms)]);
    let waiting = home.outbox_ids();
    assert_eq!(waiting.len(), 3, "the run's events are in the outbox");
    let good = Collector::start(Behaviour::Accept);
    later_run(home, &good);
    assert_eq!(unique(&old_ids(&good, &waiting)), unique(&waiting), "delivered by the later run");
    assert_eq!(old_ids(&good, &waiting).len(), 3, "each once");
    assert_eq!(good.ids().len(), 4, "with the later run's own");
    assert!(home.outbox_ids().is_empty(), "and removed from the outbox");
    waiting
}

#[test]
fn refused_port() {
    let home = enabled_home();
    recorded_then_delivered_later(&home, &refused_endpoint(), "5");
    // With a larger budget too: the failure is stored, not retried in a loop.
    let home = enabled_home();
    recorded_then_delivered_later(&home, &refused_endpoint(), "2000");
}

#[test]
fn port_that_accepts_and_never_answers() {
    let home = enabled_home();
    let silent = Collector::start(Behaviour::Silent);
    recorded_then_delivered_later(&home, &silent.endpoint(), "50");
}

#[test]
fn slow_server() {
    let home = enabled_home();
    let slow = Collector::start(Behaviour::Slow(Duration::from_secs(3)));
    let ids = recorded_then_delivered_later(&home, &slow.endpoint(), "50");
    // The slow server may have stored them too before the host gave up waiting; the
    // collector deduplicates by event id, so at most a repeat, never a loss.
    assert!(unique(&slow.ids()).is_subset(&unique(&ids)));
}

#[test]
fn retryable_status_keeps_events_and_client_errors_drop_them() {
    for (code, kept) in [(429, true), (503, true), (500, true), (408, true), (400, false), (413, false)] {
        let home = enabled_home();
        let collector = Collector::start(Behaviour::Status(code));
        home.ok(&["build"], &[("HOSTCLI_ENDPOINT", &collector.endpoint()), ("HOSTCLI_EXIT_BUDGET_MS", "30000")]);
        assert!(collector.connections() >= 1, "{code}: a request was made");
        assert_eq!(!home.outbox_ids().is_empty(), kept, "status {code}");
        assert!(home.outbox().sent().unwrap().is_empty(), "status {code}");
    }
}

#[test]
fn outbox_of_several_runs_is_sent_once_in_order() {
    let home = enabled_home();
    let refused = refused_endpoint();
    for _ in 0..3 {
        home.ok(&["build"], &[("HOSTCLI_ENDPOINT", &refused)]);
    }
    let waiting = home.outbox_ids();
    assert_eq!(waiting.len(), 6);
    let good = Collector::start(Behaviour::Accept);
    later_run(&home, &good);
    assert_eq!(old_ids(&good, &waiting), waiting, "oldest first, each once");
    assert_eq!(good.ids()[..6], waiting, "before the later run's own events");
    let old_batches = good.batches().into_iter().filter(|b| b.events.iter().any(|e| waiting.contains(&e.event_id)));
    assert_eq!(old_batches.count(), 1, "runs with the same context go in one batch");
}

#[test]
fn https_proxy_is_honoured() {
    let home = enabled_home();
    let proxy = Collector::start(Behaviour::Accept);
    // The collector's host does not resolve: only the proxy can deliver.
    home.ok(
        &["build"],
        &[
            ("HOSTCLI_ENDPOINT", "http://telemetry.invalid:8080"),
            ("HTTPS_PROXY", &proxy.endpoint()),
            ("HOSTCLI_EXIT_BUDGET_MS", "30000"),
        ],
    );
    assert!(proxy.proxied() >= 1, "the request went through the proxy");
    assert_eq!(proxy.ids().len(), 2);
    assert!(home.outbox_ids().is_empty());
}

#[test]
fn retry_after_is_honoured_by_a_long_running_host() {
    use tally::Event;
    use tally::testing::Sandbox;
    let collector = Collector::start(Behaviour::StatusOnce(429));
    let sandbox = Sandbox::new();
    let t =
        sandbox.builder("demo", "1.0.0").endpoint(collector.endpoint()).batching(1, Duration::from_millis(1)).build();
    t.record(Event::command_run("serve"));
    // Wait for the outcome (a hang guard, not a timing assertion).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while collector.ids().is_empty() {
        assert!(std::time::Instant::now() < deadline, "never delivered after the 429");
        std::thread::sleep(Duration::from_millis(10));
    }
    t.shutdown();
    let times = collector.request_times();
    assert_eq!(times.len(), 2, "one refused try, one retry");
    // `Retry-After: 1` is longer than the first backoff step (0.5 s): the retry waited it.
    assert!(times[1] - times[0] >= Duration::from_secs(1), "{:?}", times[1] - times[0]);
    assert_eq!(collector.ids().len(), 1);
    assert!(t.outbox().unwrap().is_empty().unwrap());
}

/// Issue 12 item 3: a run shorter than one round trip exits before the answer to its post
/// of the outbox; later runs used to post the same events again, run after run.
#[test]
fn short_commands_never_see_an_acknowledgement_and_do_not_post_again() {
    let home = enabled_home();
    // A budget long enough to see the refusal: a post the host did not wait for counts as
    // posted, even if it was refused a moment later.
    home.ok(&["build"], &[("HOSTCLI_ENDPOINT", &refused_endpoint()), ("HOSTCLI_EXIT_BUDGET_MS", "5000")]);
    let first = home.outbox_ids();
    assert_eq!(first.len(), 2);
    assert!(home.outbox().chunks().unwrap().iter().all(|c| c.posted_at.is_none()));
    // This run posts `first` early, and exits (after 300 ms of work) before the answer.
    let slow = Collector::start(Behaviour::Slow(Duration::from_secs(5)));
    home.ok(&["build", "--work-ms", "300"], &[("HOSTCLI_ENDPOINT", &slow.endpoint())]);
    let good = Collector::start(Behaviour::Accept);
    home.ok(&["serve"], &[("HOSTCLI_ENDPOINT", &good.endpoint())]);
    assert!(old_ids(&good, &first).is_empty(), "posted once, not again by the next run");
    assert!(!good.ids().is_empty(), "the events that were never posted are");
    assert_eq!(home.outbox_ids(), first, "kept, marked posted");
    // Past `resend_after` they are posted again (the collector deduplicates).
    later_run(&home, &good);
    assert_eq!(old_ids(&good, &first), first);
    assert!(home.outbox_ids().is_empty());
}
