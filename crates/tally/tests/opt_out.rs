//! Opting out uploads nothing. The `telemetry` subcommand used to get a running client,
//! whose sender drained the outbox while `telemetry disable` deleted it: the events the
//! first-run notice promised not to send reached the collector in about half the runs.
//! Each case runs the example host tool as its own process with a connection trap as the
//! collector and a generous exit budget, so that a sender, had one started, would connect.

mod common;

use std::time::Duration;

use common::{Home, refused_endpoint};
use tally::testing::{ConnectionTrap, Sandbox};
use tally::{Event, Mode};

const BUDGET: (&str, &str) = ("HOSTCLI_EXIT_BUDGET_MS", "5000");

/// The first run on a machine: it shows the notice and keeps its 2 events in the outbox.
fn notice_run(home: &Home, trap: &ConnectionTrap) {
    let endpoint = trap.endpoint();
    let out = home.run(&["build"], &[("HOSTCLI_ENDPOINT", &endpoint), BUDGET]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("hostcli telemetry disable"), "the notice: {stderr}");
    assert_eq!(home.outbox_ids().len(), 2, "the notice run keeps its events");
    assert_eq!(trap.connections(), 0, "the notice run sends nothing");
}

/// Issue 12 item 1: `telemetry disable` after the notice run uploaded the events the notice
/// promised not to send (5 of 10 trials).
#[test]
fn opting_out_uploads_data_telemetry_disable() {
    let home = Home::new();
    let trap = ConnectionTrap::new().unwrap();
    notice_run(&home, &trap);
    let endpoint = trap.endpoint();
    let vars = [("HOSTCLI_ENDPOINT", endpoint.as_str()), BUDGET];
    let out = home.ok(&["telemetry", "disable"], &vars);
    assert_eq!(trap.connections(), 0, "`telemetry disable` connected to the collector");
    assert!(out.contains("deleted the outbox: 2 unsent events"), "{out}");
    assert!(!home.data_dir().join("outbox.jsonl").exists(), "the outbox is deleted");
    // Later runs, recording or not, send nothing and keep nothing.
    home.ok(&["build", "--events", "3"], &vars);
    home.ok(&["telemetry", "status"], &vars);
    assert_eq!(trap.connections(), 0, "a run after `telemetry disable` connected");
    assert!(home.outbox_ids().is_empty());
}

/// Issue 12 item 1: `telemetry show` after the notice run uploaded them too (8 of 10).
#[test]
fn opting_out_uploads_data_telemetry_show() {
    let home = Home::new();
    let trap = ConnectionTrap::new().unwrap();
    notice_run(&home, &trap);
    let waiting = home.outbox_ids();
    let endpoint = trap.endpoint();
    let out = home.ok(&["telemetry", "show"], &[("HOSTCLI_ENDPOINT", &endpoint), BUDGET]);
    assert_eq!(trap.connections(), 0, "`telemetry show` connected to the collector");
    assert!(out.contains("2 events waiting"), "{out}");
    assert_eq!(home.outbox_ids(), waiting, "show changes nothing");
}

#[test]
fn every_telemetry_subcommand_sends_nothing() {
    let commands: &[&[&str]] = &[
        &["telemetry"],
        &["telemetry", "status"],
        &["telemetry", "status", "--json"],
        &["telemetry", "show", "--json"],
        &["telemetry", "enable"],
        &["telemetry", "local"],
        &["telemetry", "reset"],
        &["telemetry", "disable"],
    ];
    for args in commands {
        // A user who enabled telemetry, with an outbox left by an offline run.
        let home = Home::new();
        home.ok(&["telemetry", "enable"], &[]);
        home.ok(&["build"], &[("HOSTCLI_ENDPOINT", &refused_endpoint())]);
        assert_eq!(home.outbox_ids().len(), 2);
        let trap = ConnectionTrap::new().unwrap();
        let endpoint = trap.endpoint();
        home.ok(args, &[("HOSTCLI_ENDPOINT", &endpoint), BUDGET]);
        assert_eq!(trap.connections(), 0, "{args:?} connected to the collector");
    }
}

/// Issue 12 item 6: `telemetry disable` as the very first command printed the notice and
/// left `identity.toml` behind while saying nothing is kept.
#[test]
fn telemetry_disable_as_the_first_command_prints_the_notice_and_leaves_identity_toml() {
    let home = Home::new();
    let before = home.snapshot();
    let out = home.run(&["telemetry", "disable"], &[]);
    assert!(out.status.success());
    assert!(out.stderr.is_empty(), "no notice: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("nothing is recorded, kept or sent"), "{stdout}");
    let written: Vec<_> = home.snapshot().into_keys().filter(|p| !before.contains_key(p)).collect();
    assert_eq!(written, [home.config_dir().join("config.toml")], "only the choice is kept");
    // And a later run adds nothing.
    let after = home.snapshot();
    home.ok(&["build"], &[]);
    assert_eq!(home.snapshot(), after);
}

#[test]
fn a_client_that_records_nothing_sends_nothing() {
    // A tool that builds its client before it knows the command (`mytool telemetry
    // disable`) must not upload the outbox from that run.
    let sandbox = Sandbox::new();
    let local = sandbox.builder("demo", "1").default_mode(Mode::Local).build();
    local.record(Event::command_run("build"));
    local.shutdown();
    let outbox = local.outbox().unwrap();
    assert_eq!(outbox.len().unwrap(), 1);
    let trap = ConnectionTrap::new().unwrap();
    let idle = sandbox.builder("demo", "1").endpoint(trap.endpoint()).build();
    assert!(idle.flush(Duration::from_secs(5)));
    idle.shutdown();
    assert_eq!(trap.connections(), 0, "a client that recorded nothing connected");
    assert_eq!(outbox.len().unwrap(), 1, "the outbox waits for a run that records");
    // One that records sends the outbox first (so the trap does catch a sender).
    let busy = sandbox
        .builder("demo", "1")
        .endpoint(trap.endpoint())
        .timeouts(Duration::from_secs(1), Duration::from_secs(1))
        .build();
    busy.record(Event::command_run("build"));
    busy.flush(Duration::from_secs(30));
    busy.shutdown();
    assert!(trap.connections() >= 1);
}
