//! Every consent source and value, each in its own process (the example host tool,
//! spawned with a cleared environment and a private home): the decision, the source that
//! made it, and for every "off" that a recording run created no file and opened no
//! connection.

mod common;

use common::Home;
use tally::testing::ConnectionTrap;

/// Runs `telemetry status` and, for off, a recording `build` against a connection trap.
fn check(home: &Home, extra: &[(&str, &str)], mode: &str, source: &str) {
    let status = home.status(extra);
    assert_eq!(
        (status["mode"].as_str().unwrap(), status["source"].as_str().unwrap()),
        (mode, source),
        "env {extra:?}: {status:#}"
    );
    if mode == "off" {
        let trap = ConnectionTrap::new().unwrap();
        let before = home.snapshot();
        let mut vars = extra.to_vec();
        let endpoint = trap.endpoint();
        vars.push(("HOSTCLI_ENDPOINT", &endpoint));
        vars.push(("HOSTCLI_EXIT_BUDGET_MS", "200"));
        let out = home.run(&["build", "--events", "3"], &vars);
        assert!(out.status.success());
        assert!(out.stderr.is_empty(), "off prints nothing: {:?}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(home.snapshot(), before, "off wrote files ({extra:?})");
        assert_eq!(trap.connections(), 0, "off connected ({extra:?})");
    }
}

const YES: &[&str] = &["1", "true", "TRUE", "yes", "on", " 1 ", "2", "anything"];
const NO: &[&str] = &["0", "false", "FALSE", "no", "off", "n", ""];

#[test]
fn policy_file() {
    for (policy, mode, source) in [
        ("telemetry = \"off\"", "off", "policy"),
        ("telemetry = \"local\"", "local", "policy"),
        ("telemetry = \"allow\"", "on", "author_default"),
        ("telemetry = \"nonsense\"", "off", "policy"),
        ("this is [not toml", "off", "policy"),
        ("[apps.hostcli]\ntelemetry = \"off\"", "off", "policy"),
        ("[apps.othertool]\ntelemetry = \"off\"", "on", "author_default"),
        ("telemetry = \"off\"\n[apps.hostcli]\ntelemetry = \"allow\"", "on", "author_default"),
    ] {
        let home = Home::new();
        std::fs::write(home.policy(), policy).unwrap();
        // The policy decides before everything else, even an explicit user choice.
        if mode != "on" {
            home.ok(&["telemetry", "enable"], &[]);
        }
        check(&home, &[], mode, source);
    }
    // TALLY_POLICY naming a file that does not exist fails closed.
    let home = Home::new();
    let missing = home.dir.path().join("missing.toml");
    check(&home, &[("TALLY_POLICY", missing.to_str().unwrap())], "off", "policy");
}

#[test]
fn do_not_track() {
    for v in YES {
        let home = Home::new();
        home.ok(&["telemetry", "enable"], &[]);
        check(&home, &[("DO_NOT_TRACK", v)], "off", "do_not_track");
    }
    for v in NO {
        check(&Home::new(), &[("DO_NOT_TRACK", v)], "on", "author_default");
    }
}

#[test]
fn app_variable() {
    for v in YES {
        let home = Home::new();
        home.ok(&["telemetry", "enable"], &[]);
        check(&home, &[("HOSTCLI_TELEMETRY_DISABLED", v)], "off", "app_variable");
    }
    for v in NO {
        check(&Home::new(), &[("HOSTCLI_TELEMETRY_DISABLED", v)], "on", "author_default");
    }
    // DO_NOT_TRACK is checked first.
    check(&Home::new(), &[("DO_NOT_TRACK", "1"), ("HOSTCLI_TELEMETRY_DISABLED", "1")], "off", "do_not_track");
}

#[test]
fn project_manifest() {
    let id = "7b581c0d-89b7-479e-b379-a76ab90b8754";
    let cases: &[(&str, &str, &str, &str)] = &[
        // (file, contents, mode, source)
        ("package.json", r#"{"name":"site"}"#, "off", "no_project_id"),
        ("package.json", r#"{"hostcli":{}}"#, "off", "no_project_id"),
        ("package.json", r#"{"hostcli":{"uuid":"not-a-uuid"}}"#, "off", "no_project_id"),
        ("package.json", r#"{"hostcli":{"uuid":"ID","telemetryDisabled":true}}"#, "off", "project_manifest"),
        ("package.json", r#"{"hostcli":{"uuid":"ID"}}"#, "on", "author_default"),
        ("Cargo.toml", "[package]\nname='x'\n[package.metadata.hostcli]\nuuid='ID'\n", "on", "author_default"),
        ("Cargo.toml", "[package.metadata.hostcli]\nuuid='ID'\ntelemetry-disabled=true\n", "off", "project_manifest"),
        (".hostcli/telemetry.toml", "uuid = 'ID'\n", "on", "author_default"),
        (".hostcli/telemetry.toml", "# no id\n", "off", "no_project_id"),
    ];
    for (file, contents, mode, source) in cases {
        let home = Home::new();
        home.ok(&["telemetry", "enable"], &[]);
        std::fs::remove_file(home.project().join("package.json")).unwrap();
        let path = home.project().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents.replace("ID", id)).unwrap();
        let source = if *source == "author_default" { "user_config" } else { source };
        check(&home, &[], mode, source);
    }
    // No manifest at all.
    let home = Home::new();
    std::fs::remove_file(home.project().join("package.json")).unwrap();
    check(&home, &[], "off", "no_project_id");
}

#[test]
fn user_config() {
    for (cmd, default, mode) in
        [("disable", "on", "off"), ("local", "on", "local"), ("enable", "off", "on"), ("enable", "on", "on")]
    {
        let home = Home::new();
        home.ok(&["telemetry", cmd], &[("HOSTCLI_DEFAULT", default)]);
        check(&home, &[("HOSTCLI_DEFAULT", default)], mode, "user_config");
    }
    // An unreadable config fails closed.
    let home = Home::new();
    home.ok(&["telemetry", "enable"], &[]);
    std::fs::write(home.config_dir().join("config.toml"), "telemetry = [").unwrap();
    check(&home, &[], "off", "user_config_unreadable");
}

#[test]
fn author_default() {
    for (default, mode) in [("on", "on"), ("off", "off"), ("local", "local")] {
        let home = Home::new();
        check(&home, &[("HOSTCLI_DEFAULT", default)], mode, "author_default");
    }
}

#[test]
fn local_mode_keeps_events_and_connects_nowhere() {
    let home = Home::new();
    home.ok(&["telemetry", "local"], &[]);
    let trap = ConnectionTrap::new().unwrap();
    let endpoint = trap.endpoint();
    home.ok(&["build", "--events", "2"], &[("HOSTCLI_ENDPOINT", &endpoint), ("HOSTCLI_EXIT_BUDGET_MS", "5000")]);
    assert_eq!(home.outbox_ids().len(), 4);
    assert_eq!(trap.connections(), 0);
}

#[test]
fn first_run_notice_once_and_no_upload_on_that_run() {
    let home = Home::new();
    let trap = ConnectionTrap::new().unwrap();
    let endpoint = trap.endpoint();
    let vars = [("HOSTCLI_ENDPOINT", endpoint.as_str()), ("HOSTCLI_EXIT_BUDGET_MS", "5000")];
    let first = home.run(&["build"], &vars);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(stderr.contains("hostcli telemetry disable"), "{stderr}");
    assert_eq!(trap.connections(), 0, "the notice run uploads nothing");
    assert_eq!(home.outbox_ids().len(), 2, "its events wait in the outbox");
    let second = home.run(&["build"], &[]);
    assert!(second.stderr.is_empty(), "the notice is shown once");
    // No notice in CI.
    let ci = Home::new();
    let out = ci.run(&["build"], &[("CI", "true"), ("GITHUB_ACTIONS", "true")]);
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn debug_prints_payloads_and_sends_nothing() {
    let home = Home::new();
    home.ok(&["telemetry", "enable"], &[]);
    let before = home.snapshot();
    let trap = ConnectionTrap::new().unwrap();
    let endpoint = trap.endpoint();
    let out = home.run(&["build"], &[("HOSTCLI_TELEMETRY_DEBUG", "1"), ("HOSTCLI_ENDPOINT", &endpoint)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("\"build.finished\""), "{stderr}");
    assert!(stderr.contains("nothing was sent"), "{stderr}");
    assert_eq!(trap.connections(), 0);
    assert_eq!(home.snapshot(), before, "debug writes nothing");
}
