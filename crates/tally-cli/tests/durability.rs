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
    let mut resp = agent.get(&format!("{}/healthz", server.url)).call().expect("healthz");
    let health: Value = serde_json::from_str(&resp.body_mut().read_to_string().expect("body")).expect("json");
    assert_eq!(health["events"].as_u64(), Some(expected as u64), "every acknowledged event is stored once");
    // Every acknowledged event is there: resending any of them is a duplicate.
    for body in &acked {
        let (status, answer) = post(&agent, &server.url, body);
        assert_eq!(status, 200);
        assert_eq!(answer["duplicate"], 25, "{answer}");
    }
    let mut resp = agent.get(&format!("{}/healthz", server.url)).call().expect("healthz");
    let health: Value = serde_json::from_str(&resp.body_mut().read_to_string().expect("body")).expect("json");
    assert_eq!(health["events"].as_u64(), Some(expected as u64));
}
