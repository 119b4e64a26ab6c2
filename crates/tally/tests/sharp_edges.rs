//! The smaller defects of issue 12 (items 5 and 6), each in its own process where the
//! environment matters: the command name apart from the app id, errors that name their
//! file, a notice that cannot be remembered, a corrupt config file, the config comment, the
//! dependency line in the docs, "1 batches", dropped properties.

mod common;

use std::time::Duration;

use common::{Behaviour, Collector, Home};
use tally::testing::{ConnectionTrap, MemorySink, Sandbox};
use tally::{Event, Mode, Source};

/// Issue 12 item 5: with app `demo`, users were told to run `demo telemetry disable`.
#[test]
fn the_app_name_is_also_the_command_name() {
    let sandbox = Sandbox::new();
    let b = sandbox.builder("demo", "1.0.0").command("demo-cli").env_prefix("DEMOCLI");
    let off = b.clone().vars([("DEMOCLI_TELEMETRY_DISABLED", "1")]).build();
    assert_eq!(off.decision().source, Source::AppVariable { name: "DEMOCLI_TELEMETRY_DISABLED".into() });
    let sink = MemorySink::new();
    let on = b.clone().vars([("DEMO_TELEMETRY_DISABLED", "1"), ("DEMOCLI_ENV", "staging")]).sink(sink.clone()).build();
    assert_eq!(on.mode(), Mode::On, "the app id's prefix is not the tool's any more");
    assert_eq!(on.command(), "demo-cli");
    on.record(Event::command_run("build"));
    assert!(on.flush(Duration::from_secs(10)));
    let context = &sink.batches()[0].context;
    assert_eq!((context.app.as_str(), context.env), ("demo", tally::Env::Staging), "the app id on the wire");
    let controls = b.controls();
    assert_eq!(controls.status().command, "demo-cli");
    let choice = controls.set_choice(Mode::Local).unwrap();
    let text = std::fs::read_to_string(&choice.config_file).unwrap();
    assert!(text.contains("`demo-cli telemetry enable|disable|local`"), "{text}");
    assert!(!text.contains("<tool>"), "{text}");
    assert!(choice.config_file.to_string_lossy().contains("config"), "config dirs still by app id");
}

/// A home whose `HOME` is a file: nothing can be written under it.
fn unwritable_home() -> Home {
    let home = Home::new();
    std::fs::remove_dir_all(home.home()).unwrap();
    std::fs::write(home.home(), "not a directory").unwrap();
    home
}

/// Issue 12 item 6: an unwritable HOME gave `Os { code: 2, kind: NotFound }`.
#[test]
fn errors_name_the_file_they_failed_on() {
    let home = unwritable_home();
    let out = home.run(&["telemetry", "enable"], &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&home.home().join(".config/tally/hostcli").display().to_string()), "{stderr}");
    assert!(!stderr.contains("Os {"), "{stderr}");
    // `reset` writes the identity file.
    let out = home.run(&["telemetry", "reset"], &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&home.home().display().to_string()) && !stderr.contains("Os {"), "{stderr}");
}

/// Issue 12 item 6: the notice was shown on every run when it could not be remembered.
#[test]
fn the_notice_is_shown_on_every_run_when_it_cannot_be_remembered() {
    let home = unwritable_home();
    let trap = ConnectionTrap::new().unwrap();
    for _ in 0..2 {
        let out = home.run(&["build"], &[("HOSTCLI_ENDPOINT", &trap.endpoint()), ("HOSTCLI_EXIT_BUDGET_MS", "2000")]);
        assert!(out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("telemetry disable"), "no notice that cannot be remembered: {stderr}");
    }
    assert_eq!(trap.connections(), 0, "and no upload on a run whose notice is not remembered");
}

/// Issue 12 item 6: a config file that does not parse was reported as "your choice".
#[test]
fn a_corrupt_config_is_reported_as_your_choice() {
    let home = Home::new();
    std::fs::create_dir_all(home.config_dir()).unwrap();
    std::fs::write(home.config_dir().join("config.toml"), "telemetry = [").unwrap();
    let status = home.status(&[]);
    assert_eq!(status["mode"], "off");
    assert_eq!(status["source"], "user_config_unreadable");
    let text = home.ok(&["telemetry", "status"], &[]);
    assert!(!text.contains("your choice"), "{text}");
    assert!(text.contains("cannot be read"), "{text}");
}

/// Issue 12 item 6: "1 batches".
#[test]
fn one_batch_is_not_one_batches() {
    let home = Home::new();
    home.ok(&["telemetry", "enable"], &[]);
    let collector = Collector::start(Behaviour::Accept);
    home.ok(&["build"], &[("HOSTCLI_ENDPOINT", &collector.endpoint()), ("HOSTCLI_EXIT_BUDGET_MS", "30000")]);
    let text = home.ok(&["telemetry", "status"], &[]);
    assert!(text.contains("0 events waiting, 1 batch sent recently"), "{text}");
    let show = home.ok(&["telemetry", "show"], &[]);
    assert!(show.contains("1 batch sent recently:") && show.contains("— 2 events ("), "{show}");
}

/// Issue 12 item 6: properties the collector dropped were not shown by `telemetry show`.
#[test]
fn properties_the_collector_dropped_are_not_shown() {
    let home = Home::new();
    home.ok(&["telemetry", "enable"], &[]);
    let collector = Collector::start(Behaviour::Accept);
    collector.drop_props(2);
    home.ok(&["build"], &[("HOSTCLI_ENDPOINT", &collector.endpoint()), ("HOSTCLI_EXIT_BUDGET_MS", "30000")]);
    let show = home.ok(&["telemetry", "show"], &[]);
    assert!(show.contains("2 properties dropped by the collector: not in the app's schema"), "{show}");
}

/// Issue 12 item 6: the config file's comment said `<tool> telemetry …`.
#[test]
fn a_literal_tool_placeholder_in_the_written_config_comment() {
    let home = Home::new();
    home.ok(&["telemetry", "local"], &[]);
    let text = std::fs::read_to_string(home.config_dir().join("config.toml")).unwrap();
    assert!(text.starts_with("# Telemetry settings for hostcli; change them with `hostcli telemetry"), "{text}");
    assert!(!text.contains("<tool>"), "{text}");
}

/// Issue 12 item 6: the docs told tool authors to depend on the crate by a git line, as if
/// it were published; the line must be a path into a checkout of this repository.
#[test]
fn a_git_dependency_line_in_the_docs() {
    let crate_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let repo = crate_dir.parent().and_then(std::path::Path::parent).unwrap();
    let repo_name = repo.file_name().unwrap().to_string_lossy().into_owned();
    for doc in ["docs/sdk.md", "README.md"] {
        let text = std::fs::read_to_string(repo.join(doc)).unwrap();
        let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| l.starts_with("tally = {")).collect();
        for line in &lines {
            assert!(!line.contains("git ="), "{doc}: {line}");
            let path = line.split("path = \"").nth(1).and_then(|r| r.split('"').next()).expect("a path dependency");
            // From a checkout next to the tool: `../<checkout>/crates/tally`.
            let inside = path.strip_prefix("../").and_then(|p| p.split_once('/')).map(|(_, p)| p);
            assert_eq!(inside, Some("crates/tally"), "{doc}: {line}");
            assert!(repo.join(inside.unwrap()).join("Cargo.toml").exists(), "{doc}: {line} ({repo_name})");
        }
        if doc == "docs/sdk.md" {
            assert!(!lines.is_empty(), "docs/sdk.md shows the dependency line");
        }
    }
}
