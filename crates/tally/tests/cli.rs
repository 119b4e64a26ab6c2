//! The `telemetry` subcommand and project creation, through the example host tool.

mod common;

use common::{Home, refused_endpoint};

#[test]
fn show_disable_and_reset() {
    let home = Home::new();
    let refused = refused_endpoint();
    home.ok(&["telemetry", "enable"], &[]);
    home.ok(&["build"], &[("HOSTCLI_ENDPOINT", &refused)]);
    assert_eq!(home.outbox_ids().len(), 2);

    // `show` lists exactly what waits in the outbox, as the user would read it.
    let shown: serde_json::Value = serde_json::from_str(&home.ok(&["telemetry", "show", "--json"], &[])).unwrap();
    let queued: Vec<String> = shown["queued"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["events"].as_array().unwrap().iter())
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    let ids: Vec<String> = home.outbox_ids().iter().map(|i| i.to_string()).collect();
    assert_eq!(queued, ids);
    let text = home.ok(&["telemetry", "show"], &[]);
    assert!(text.contains("2 events waiting"), "{text}");
    assert!(text.contains("build.finished"), "{text}");

    let status = home.status(&[]);
    assert_eq!(status["outbox_events"], 2);
    let machine = status["machine"].as_str().unwrap().to_string();
    assert_eq!(machine.len(), 64);

    // reset: new identity, empty outbox, and the Node SDK's copy of the machine hash gone.
    let cache = home.config_dir().join("machine.cache");
    std::fs::write(&cache, "0123456789abcdef 00\n").unwrap();
    home.ok(&["telemetry", "reset"], &[]);
    assert!(home.outbox_ids().is_empty());
    assert!(!cache.exists(), "reset deletes machine.cache");
    let after = home.status(&[]);
    assert_ne!(after["machine"].as_str().unwrap(), machine, "reset changes the machine hash");

    // disable: off from the next run, and the outbox is deleted.
    home.ok(&["build"], &[("HOSTCLI_ENDPOINT", &refused)]);
    assert_eq!(home.outbox_ids().len(), 2);
    std::fs::write(&cache, "0123456789abcdef 00\n").unwrap();
    let out = home.ok(&["telemetry", "disable"], &[]);
    assert!(out.contains("disabled"), "{out}");
    assert!(home.outbox_ids().is_empty());
    assert!(!cache.exists(), "disable deletes machine.cache");
    let status = home.status(&[]);
    assert_eq!((status["mode"].as_str(), status["source"].as_str()), (Some("off"), Some("user_config")));
}

#[test]
fn choice_overridden_by_an_earlier_source_says_so() {
    let home = Home::new();
    let out = home.ok(&["telemetry", "enable"], &[("DO_NOT_TRACK", "1")]);
    assert!(out.contains("note: DO_NOT_TRACK decides before your choice"), "{out}");
}

#[test]
fn new_project_gets_an_id_and_records_its_creation() {
    let home = Home::new();
    for (dir, manifest) in [("site-a", "package-json"), ("site-b", "cargo"), ("site-c", "toml")] {
        let out = home.ok(&["new", dir, "--manifest", manifest], &[]);
        let id = out.split_whitespace().nth(2).unwrap().to_string();
        let status: serde_json::Value = serde_json::from_str(
            &home.ok(&["-C", home.project().join(dir).to_str().unwrap(), "telemetry", "status", "--json"], &[]),
        )
        .unwrap();
        assert_eq!(status["project"].as_str(), Some(id.as_str()), "{manifest}");
    }
    // The first run showed the notice, so project.created waits in the outbox.
    let events: Vec<String> =
        home.outbox().chunks().unwrap().into_iter().flat_map(|c| c.events).map(|e| e.event).collect();
    assert!(events.contains(&"project.created".to_string()), "{events:?}");
}

/// Issue 12 item 4, as a process: `hostcli new` builds its client first (at the top, as the
/// README shows), in a directory with no project, so the client starts off.
#[test]
fn project_created_is_lost_silently_when_the_client_is_built_first() {
    let home = Home::new();
    home.ok(&["telemetry", "enable"], &[]);
    let empty = home.dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = home.ok(&["-C", empty.to_str().unwrap(), "new", "site", "--manifest", "toml"], &[]);
    let id: uuid::Uuid = out.split_whitespace().nth(2).unwrap().parse().unwrap();
    let chunks = home.outbox().chunks().unwrap();
    let created: Vec<_> = chunks
        .iter()
        .flat_map(|c| c.events.iter().map(move |e| (c.context.project, e.event.clone())))
        .filter(|(_, name)| name == "project.created")
        .collect();
    assert_eq!(created, [(id, "project.created".to_string())], "{chunks:?}");
}
