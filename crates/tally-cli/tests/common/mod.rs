//! Helpers for end-to-end tests: a real `tally serve` process on a free loopback port.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use uuid::Uuid;

/// The `tally` binary under test.
pub fn tally() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tally"));
    // Never pick up a developer's collector or token.
    cmd.env_remove("TALLY_SERVER").env_remove("TALLY_ADMIN_TOKEN").env_remove("TALLY_DATA_DIR");
    cmd.env("TALLY_LOG", "warn");
    cmd
}

/// A running collector process, killed when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub data_dir: PathBuf,
}

impl Server {
    /// Starts `tally serve` on 127.0.0.1:0 and waits for its address.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Self::start_and_wait(data_dir, extra, None).0
    }

    /// Starts `tally serve`, waits for its address and then, if given, for a stdout line
    /// starting with `wait_for`, which is returned.
    pub fn start_and_wait(data_dir: &Path, extra: &[&str], wait_for: Option<&str>) -> (Server, Option<String>) {
        // Tests send from one address far faster than any client, with many distinct values:
        // the per-client limits are off unless a test sets them (tests/overload.rs does).
        let mut per_client = vec![];
        for flag in ["--rate-limit-per-second", "--client-cap-share-percent"] {
            if !extra.contains(&flag) {
                per_client.extend([flag, "0"]);
            }
        }
        let mut child = tally()
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(per_client)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tally serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            let line = lines.next().expect("tally serve printed its address").expect("read stdout");
            if let Some(rest) = line.strip_prefix("tally collector listening on ") {
                break rest.trim().to_string();
            }
        };
        let waited = wait_for.map(|prefix| {
            loop {
                let line = lines
                    .next()
                    .unwrap_or_else(|| panic!("tally serve exited before printing {prefix:?}"))
                    .expect("read");
                if line.starts_with(prefix) {
                    break line;
                }
            }
        });
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        (Server { child, url, data_dir: data_dir.to_path_buf() }, waited)
    }

    /// The admin token the collector made in its data dir.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("admin-token")).expect("admin token").trim().to_string()
    }

    /// GETs `path` with the admin token (`/metrics` needs one, `/healthz` shows its detail
    /// with one); returns the status and the body.
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        let mut resp = agent()
            .get(&format!("{}{path}", self.url))
            .header("Authorization", &format!("Bearer {}", self.admin_token()))
            .call()
            .expect("GET");
        (resp.status().as_u16(), resp.body_mut().read_to_string().expect("body"))
    }

    /// `kill -9`.
    pub fn kill9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "tally serve exited with {status}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// A batch of app `demo` for `project` on `machine`, one event per (id, name, plugins).
pub fn batch(project: Uuid, machine: &str, env: &str, events: &[(Uuid, &str, &[&str])]) -> Value {
    let events: Vec<Value> = events
        .iter()
        .map(
            |(id, name, plugins)| json!({"event_id": id, "event": name, "occurred_at": Utc::now(), "plugins": plugins}),
        )
        .collect();
    json!({
        "sent_at": Utc::now(),
        "context": {"app": "demo", "app_version": "2.5.0", "project": project, "machine": machine, "env": env,
                    "os": "linux", "os_version": "6", "arch": "x86_64", "runtime": "node", "runtime_version": "22.11.0"},
        "events": events,
    })
}

/// Posts a batch; returns the status and the JSON answer.
pub fn post(agent: &ureq::Agent, url: &str, body: &Value) -> (u16, Value) {
    let mut resp = agent
        .post(&format!("{url}/v1/batch"))
        .header("Content-Type", "application/json")
        .send(serde_json::to_vec(body).expect("json"))
        .expect("post batch");
    let status = resp.status().as_u16();
    (status, serde_json::from_str(&resp.body_mut().read_to_string().expect("body")).expect("json answer"))
}

/// Runs `tally insights NAME args… --format json` and parses the answer.
pub fn insight(name: &str, args: &[&str]) -> Value {
    let out = tally().args(["insights", name, "--format", "json"]).args(args).output().expect("run tally insights");
    assert!(out.status.success(), "tally insights {name} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json output")
}

/// Snapshots a command's output with what changes between runs filtered: times, dates,
/// temp paths, loopback ports and the process holding DuckDB's lock.
#[macro_export]
macro_rules! assert_output_snapshot {
    ($name:expr, $text:expr) => {
        insta::with_settings!({
            filters => vec![
                (r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2})?", "[TIME]"),
                (r"\d{4}-\d{2}-\d{2}", "[DATE]"),
                (r#"[^\s"']*/\.tmp[A-Za-z0-9]+"#, "[TMP]"),
                (r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]"),
                // DuckDB names the process holding its lock: binary path and PID.
                (r"held in \S+ \(PID \d+\)", "held in [PROCESS]"),
            ]
        }, {
            insta::assert_snapshot!($name, $text);
        });
    };
}
#[allow(unused_imports)] // not every test binary snapshots output
pub use assert_output_snapshot;

/// Like [`batch`], with every event at `occurred` and the batch sent at `sent` (the
/// collector moves event times by the sender's clock skew: `sent` is the sender's "now").
pub fn batch_at(
    project: Uuid,
    machine: &str,
    occurred: chrono::DateTime<Utc>,
    sent: chrono::DateTime<Utc>,
    events: &[(Uuid, &str, &[&str])],
) -> Value {
    let mut body = batch(project, machine, "production", events);
    body["sent_at"] = json!(sent);
    for e in body["events"].as_array_mut().expect("events") {
        e["occurred_at"] = json!(occurred);
    }
    body
}
