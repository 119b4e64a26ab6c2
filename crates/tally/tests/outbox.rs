//! Processes writing to one outbox at once lose nothing. The writers are this test binary
//! re-executed with `TALLY_OUTBOX_WRITER` set (each in its own process, like runs of a
//! tool): two append, a third appends and removes (as a sender does after delivery).

use std::collections::HashSet;
use std::process::Command;

use chrono::Utc;
use tally_protocol::{Context, Env, Event};
use uuid::Uuid;

const WRITES: usize = 100;
const PER_WRITE: usize = 3;

fn context() -> Context {
    Context {
        app: "demo".into(),
        app_version: "1.0.0".into(),
        project: Uuid::new_v4(),
        machine: "m".repeat(64),
        env: Env::Development,
        os: "linux".into(),
        os_version: String::new(),
        arch: "x86_64".into(),
        runtime: "rust".into(),
        runtime_version: String::new(),
        ci: None,
        container: false,
    }
}

fn event(writer: &str, n: usize) -> Event {
    Event {
        event_id: Uuid::now_v7(),
        event: "command.run".into(),
        occurred_at: Utc::now(),
        plugins: vec![],
        duration_ms: None,
        error_kind: Some(format!("{writer}-{n}")),
        props: Default::default(),
    }
}

/// The writer: does nothing unless started by `concurrent_writers_lose_nothing`.
#[test]
fn writer_process() {
    let (Ok(dir), Ok(name)) = (std::env::var("TALLY_OUTBOX_DIR"), std::env::var("TALLY_OUTBOX_WRITER")) else {
        return;
    };
    // Start together: wait for the parent's go.
    let go = std::path::Path::new(&dir).join("go");
    for _ in 0..30_000 {
        if go.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let outbox = tally::Outbox::new(dir);
    let ctx = context();
    for w in 0..WRITES {
        let events: Vec<_> = (0..PER_WRITE).map(|i| event(&name, w * PER_WRITE + i)).collect();
        let mut tries = 0;
        // A busy lock is an error after 500 ms; a writer in a real tool would put the
        // events back. Here we retry so the test checks for lost writes, not lock waits.
        while outbox.append(&ctx, &events).is_err() {
            tries += 1;
            assert!(tries < 100, "the outbox stayed locked");
        }
        // Writer "c" also removes events, as a sender does after delivery: a rewrite of
        // the file while the others append.
        if name == "c" {
            let sent = [events[0].event_id].into_iter().collect();
            while outbox.remove(&sent).is_err() {}
        }
    }
}

#[test]
fn concurrent_writers_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|name| {
            Command::new(&exe)
                .args(["--exact", "writer_process", "--nocapture", "--test-threads=1"])
                .env("TALLY_OUTBOX_DIR", dir.path())
                .env("TALLY_OUTBOX_WRITER", name)
                .spawn()
                .unwrap()
        })
        .collect();
    std::fs::write(dir.path().join("go"), "").unwrap();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let outbox = tally::Outbox::new(dir.path());
    let kinds: HashSet<String> =
        outbox.chunks().unwrap().into_iter().flat_map(|c| c.events).filter_map(|e| e.error_kind).collect();
    for name in ["a", "b", "c"] {
        for n in 0..WRITES * PER_WRITE {
            let removed = name == "c" && n % PER_WRITE == 0;
            assert_eq!(kinds.contains(&format!("{name}-{n}")), !removed, "{name}-{n}");
        }
    }
    assert_eq!(kinds.len(), 3 * WRITES * PER_WRITE - WRITES);
    // No temporary file is left behind.
    let names: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    assert!(names.contains(&"outbox.jsonl".to_string()));
}
