//! The HTTP API against its own OpenAPI document (`GET /v1/openapi.json`), with
//! schemathesis (PyPI): property-based requests to every operation the document describes
//! (its examples, boundary and mutated values, random ones and chains of calls), sent to a
//! live `tally serve` on loopback, once with the admin token and once without. No answer
//! may be a 5xx or take over 10 s (a hang), and every answer must match what the document
//! says of it (status code, content type, headers, body schema). Also the request bound
//! flags, end to end.
//!
//! Needs schemathesis: run `tests/api-schemathesis/setup.sh` and set `TALLY_SCHEMATHESIS` to
//! the path it prints (`cargo xtask test` does both). The figures of the last measured run
//! are in docs/hardening.md.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, agent, batch, post};
use uuid::Uuid;

/// Examples per operation and phase: with about 26 operations this is some 1,000 to 2,000
/// requests per run, about 15 s.
const MAX_EXAMPLES: &str = "30";

/// What schemathesis checks of every answer; not the checks that a schema-valid request
/// is accepted (`positive_data_acceptance`): the collector's checks are stricter than a
/// JSON schema says (a known app, a machine id's characters, a range within the bounds).
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance";

fn schemathesis() -> PathBuf {
    // Like the repository's other tests that need a setup, this fails rather than skips
    // without it: a skipped API test would let a 5xx pass unnoticed.
    let Some(bin) = std::env::var_os("TALLY_SCHEMATHESIS") else {
        panic!(
            "TALLY_SCHEMATHESIS is not set: run \
             `export TALLY_SCHEMATHESIS=\"$(bash crates/tally-cli/tests/api-schemathesis/setup.sh | tail -n 1)\"` \
             (installs schemathesis from PyPI into a venv) and run the tests again; `cargo xtask test` does both"
        );
    };
    let bin = PathBuf::from(bin);
    assert!(bin.is_file(), "{} is missing: rerun crates/tally-cli/tests/api-schemathesis/setup.sh", bin.display());
    bin
}

/// Runs schemathesis against `server`, with `token` as the bearer token if given; returns
/// the number of requests it sent (from its HAR report).
fn run_schemathesis(bin: &Path, server: &Server, token: Option<&str>, work: &Path) -> usize {
    let reports = work.join("reports");
    let mut cmd = Command::new(bin);
    cmd.arg("run")
        .arg(format!("{}/v1/openapi.json", server.url))
        .args(["--checks", CHECKS, "--max-examples", MAX_EXAMPLES, "--request-timeout", "10"])
        .args(["--max-response-time", "10", "--workers", "1", "--report", "har", "--report-dir"])
        .arg(&reports)
        // Its example database and caches go to the work dir, not the source tree.
        .current_dir(work)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(token) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let child = cmd.spawn().expect("start schemathesis");
    let pid = child.id();
    // A run that hangs is killed; the bound is far above the 15 s a run takes.
    let (done, waited) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if waited.recv_timeout(Duration::from_secs(300)).is_err() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    });
    let out = child.wait_with_output().expect("run schemathesis");
    let _ = done.send(());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures ({}, token: {}):\n{stdout}\n{}",
        out.status,
        token.is_some(),
        String::from_utf8_lossy(&out.stderr)
    );
    let har = std::fs::read_dir(&reports)
        .expect("reports")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("a HAR report");
    let har: serde_json::Value = serde_json::from_slice(&std::fs::read(&har).expect("read HAR")).expect("HAR json");
    std::fs::remove_dir_all(&reports).expect("clear reports");
    let summary = stdout.lines().rfind(|l| l.contains(" generated, ")).unwrap_or_default();
    let requests = har["log"]["entries"].as_array().expect("HAR entries").len();
    eprintln!("schemathesis (token: {}): {requests} requests; {}", token.is_some(), summary.trim());
    requests
}

#[test]
fn schemathesis_finds_no_5xx_and_no_hang_with_and_without_the_admin_token() {
    let bin = schemathesis();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    // Some stored events, so that insights have rows to count, group and suppress.
    let agent = agent();
    for p in 0..6 {
        let project = Uuid::new_v4();
        let body = batch(
            project,
            &format!("m{p}"),
            "production",
            &[(Uuid::now_v7(), "command.run", &["seo", "i18n"][..]), (Uuid::now_v7(), "project.created", &[])],
        );
        assert_eq!(post(&agent, &server.url, &body).0, 200);
    }
    let started = Instant::now();
    let token = server.admin_token();
    let mut requests = 0;
    for token in [Some(token.as_str()), None] {
        let work = dir.path().join(if token.is_some() { "with-token" } else { "without-token" });
        std::fs::create_dir_all(&work).expect("work dir");
        requests += run_schemathesis(&bin, &server, token, &work);
    }
    eprintln!("schemathesis: {requests} requests in {:.1} s", started.elapsed().as_secs_f64());
    // The collector is still healthy after everything it was sent.
    let (status, body) = server.admin_get("/healthz");
    assert_eq!(status, 200, "{body}");
    server.stop();
}

#[test]
fn request_bound_flags_are_what_serve_enforces() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(
        &dir.path().join("data"),
        &["--public-max-limit", "10", "--public-max-range-days", "30", "--private-max-range-days", "40"],
    );
    let agent = agent();
    let status = |path: &str, token: bool| {
        let mut request = agent.get(&format!("{}{path}", server.url));
        if token {
            request = request.header("Authorization", &format!("Bearer {}", server.admin_token()));
        }
        request.call().expect("GET").status().as_u16()
    };
    assert_eq!(status("/v1/insights/top-plugins?app=demo&public=true&limit=10", false), 200);
    assert_eq!(status("/v1/insights/top-plugins?app=demo&public=true&limit=11", false), 400);
    assert_eq!(status("/v1/insights/active?app=demo&public=true&since=31d", false), 400);
    assert_eq!(status("/v1/insights/active?app=demo&since=40d", true), 200);
    assert_eq!(status("/v1/insights/active?app=demo&since=41d", true), 400);
    // A public bound above the private one: refused at start, with what to do.
    let out = common::tally()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("other"))
        .args(["--public-max-range-days", "500", "--private-max-range-days", "450"])
        .output()
        .expect("run tally serve");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--public-max-range-days 500 is above --private-max-range-days 450"), "{stderr}");
}
