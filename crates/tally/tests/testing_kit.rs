//! The test kit tool authors use (feature `testing`), checked the way they would use it.

use std::time::Duration;

use tally::testing::{ConnectionTrap, MemorySink, Sandbox};
use tally::{Event, Mode, Source};

#[test]
fn records_into_the_sink() {
    let sandbox = Sandbox::new();
    let sink = MemorySink::new();
    let t = sandbox.builder("demo", "2.0.0").sink(sink.clone()).build();
    t.record(Event::command_run("build").plugin("sass"));
    t.record(Event::error("ENOENT"));
    assert!(t.flush(Duration::from_secs(10)));
    assert_eq!(sink.names(), ["command.run", "error"]);
    assert_eq!(sink.assert_recorded("error").error_kind.as_deref(), Some("ENOENT"));
    sink.assert_not_recorded("project.created");
    let batch = &sink.batches()[0];
    assert_eq!(batch.context.app, "demo");
    assert_eq!(batch.context.app_version, "2.0.0");
}

#[test]
fn disabled_client_touches_no_file_and_no_socket() {
    let sandbox = Sandbox::new();
    let before = sandbox.files();
    let trap = ConnectionTrap::new().unwrap();
    for builder in [
        sandbox.builder("demo", "1").default_mode(Mode::Off),
        sandbox.builder("demo", "1").vars([("DO_NOT_TRACK", "1")]),
        sandbox.builder("demo", "1").vars([("DEMO_TELEMETRY_DISABLED", "true")]),
    ] {
        let t = builder.endpoint(trap.endpoint()).build();
        assert_eq!(t.mode(), Mode::Off);
        assert!(!t.is_enabled());
        t.record(Event::command_run("build"));
        assert!(t.flush(Duration::from_secs(1)));
        t.shutdown();
    }
    assert_eq!(sandbox.files(), before);
    sandbox.assert_no_files();
    assert_eq!(trap.connections(), 0);
}

#[test]
fn decision_names_its_source() {
    let sandbox = Sandbox::new();
    let t = sandbox.builder("demo", "1").vars([("DO_NOT_TRACK", "true")]).build();
    assert_eq!(t.decision().source, Source::DoNotTrack);
    let t = sandbox.builder("demo", "1").build();
    assert_eq!(t.decision().source, Source::AuthorDefault);
    assert_eq!(t.mode(), Mode::On);
}

#[test]
fn full_queue_drops_without_blocking() {
    let sandbox = Sandbox::new();
    let sink = MemorySink::new();
    let t = sandbox
        .builder("demo", "1")
        .sink(sink.clone())
        .queue_capacity(10)
        .batching(500, Duration::from_secs(3600))
        .build();
    for _ in 0..1000 {
        t.record(Event::command_run("x"));
    }
    t.shutdown();
    let n = sink.events().len();
    assert!((10..1000).contains(&n), "{n}");
}

#[test]
fn record_after_shutdown_is_ignored() {
    let sandbox = Sandbox::new();
    let sink = MemorySink::new();
    let t = sandbox.builder("demo", "1").sink(sink.clone()).build();
    t.shutdown();
    t.record(Event::command_run("late"));
    t.shutdown();
    sink.assert_empty();
}

#[test]
fn clones_share_one_client() {
    let sandbox = Sandbox::new();
    let sink = MemorySink::new();
    let t = sandbox.builder("demo", "1").sink(sink.clone()).build();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let t = t.clone();
            std::thread::spawn(move || {
                for _ in 0..25 {
                    t.record(Event::command_run("x"));
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    drop(t);
    assert_eq!(sink.events().len(), 100);
}

/// Issue 12 item 4: a client built at the top of `main`, before `new` created the project,
/// dropped `project.created` silently.
#[test]
fn project_created_is_lost_silently_when_the_client_is_built_first() {
    let sandbox = Sandbox::new();
    let sink = MemorySink::new();
    let dir = sandbox.root().join("new-site");
    // The client records for the sandbox's project; `new` creates another.
    let t = sandbox.builder("demo", "1.0.0").sink(sink.clone()).build();
    let id = t.create_project_id(&dir, tally::ManifestKind::TelemetryToml).unwrap();
    assert!(t.is_enabled());
    t.record(Event::project_created(Duration::from_millis(5)));
    assert!(t.flush(Duration::from_secs(10)));
    let batch = &sink.batches()[0];
    assert_eq!(batch.context.project, id, "recorded for the new project");
    assert_eq!(sink.names(), ["project.created"]);
    // The id is where a later run finds it.
    let found = tally::project::find(&dir, "demo").unwrap();
    assert_eq!(found.id, Some(id));
}
