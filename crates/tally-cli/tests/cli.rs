//! The `tally` command's refusals: mistakes a user can make on the command line get a clear
//! error and change nothing on disk.

mod common;

use common::{Server, tally};
use serde_json::json;

/// `tally erase --data-dir` with a typo used to create a new, empty store there and report
/// "erased 0 events", as if the project were gone.
#[test]
fn erase_with_a_mistyped_data_dir_fails_and_creates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let typo = dir.path().join("tally-dat");
    let out = tally()
        .args(["erase", "--project", "5e1e1bd2-9a0b-4f7e-8f00-3c3ad7f2a4b1", "--data-dir"])
        .arg(&typo)
        .output()
        .expect("run tally erase");
    assert!(!out.status.success(), "erase succeeded on a dir that holds no store");
    common::assert_output_snapshot!("erase_mistyped_data_dir", String::from_utf8_lossy(&out.stderr));
    assert!(!typo.exists(), "erase created {}", typo.display());
}

/// `--admin-token ""` used to be accepted as the token, so `Authorization: Bearer ` alone
/// would open every private endpoint.
#[test]
fn empty_admin_token_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    for token in ["", "   "] {
        let out = tally()
            .args(["serve", "--listen", "127.0.0.1:0", "--admin-token", token, "--data-dir"])
            .arg(dir.path())
            .output()
            .expect("run tally serve");
        assert!(!out.status.success(), "serve started with the admin token {token:?}");
        common::assert_output_snapshot!("empty_admin_token", String::from_utf8_lossy(&out.stderr));
    }
}

/// `tally insights list` names every insight with its question and options.
#[test]
fn insights_list_names_every_insight() {
    let out = tally().args(["insights", "list"]).output().expect("run tally insights list");
    assert!(out.status.success());
    common::assert_output_snapshot!("insights_list", String::from_utf8(out.stdout).expect("utf-8"));
}

/// `tally erase --project` took only UUIDs, so a Strapi project whose `projectId` is any
/// other string (stored under a key derived from it) could never be erased.
#[test]
fn strapi_project_ids_that_are_not_uuids_can_be_erased() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let agent = common::agent();
    for (project, event) in [("my-hand-made-project", "didStartServer"), ("another-project", "didStartServer")] {
        let body = json!({
            "event": event,
            "deviceId": "a1b2c3d4e5f60718293a4b5c6d7e8f90",
            "groupProperties": {"projectId": project, "projectType": "Community"},
        });
        let resp = agent
            .post(&format!("{}/api/v2/track", server.url))
            .header("Content-Type", "application/json")
            .send(serde_json::to_vec(&body).expect("json"))
            .expect("post to the Strapi route");
        assert!(resp.status().is_success(), "{}", resp.status());
    }
    server.stop();
    let erase = |project: &str| {
        let out = tally()
            .args(["erase", "--project", project, "--data-dir"])
            .arg(dir.path())
            .output()
            .expect("run tally erase");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8")
    };
    assert!(erase("my-hand-made-project").starts_with("erased 1 events"));
    assert!(erase("my-hand-made-project").starts_with("erased 0 events"));
    // The other project is untouched.
    let dir_arg = dir.path().to_str().expect("utf-8 path");
    let active = common::insight("active", &["--data-dir", dir_arg, "--app", "strapi"]);
    assert_eq!(active["table"]["rows"][0][1], json!(1), "{active}");
}

/// A data dir with installs of 20.5 s, 41.5 s and 62 s in production and one of 850 ms
/// in development, all today.
fn setup_times() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let agent = common::agent();
    for (i, ms) in [20_500, 41_500, 62_000, 850].into_iter().enumerate() {
        let env = if ms < 1000 { "development" } else { "production" };
        let mut body = common::batch(uuid::Uuid::new_v4(), &format!("{:032x}", i + 1), env, &[]);
        body["events"] = json!([{"event_id": uuid::Uuid::new_v4(), "event": "project.created",
                                 "occurred_at": chrono::Utc::now(), "duration_ms": ms}]);
        let (status, answer) = common::post(&agent, &server.url, &body);
        assert_eq!(status, 200, "{answer}");
    }
    server.stop();
    dir
}

/// Issue 13: `tally insights setup-time` printed durations as raw milliseconds (`41500`);
/// the table shows them for people, JSON and CSV keep the raw numbers.
#[test]
fn insights_table_prints_durations_for_people() {
    let dir = setup_times();
    let dir_arg = dir.path().to_str().expect("utf-8 path");
    let args = ["insights", "setup-time", "--app", "demo", "--since", "7d", "--group-by", "env", "--data-dir", dir_arg];
    let out = tally().args(args).output().expect("run tally insights");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    common::assert_output_snapshot!("insights_setup_time_table", String::from_utf8(out.stdout).expect("utf-8"));
    let csv = tally().args(args).args(["--format", "csv"]).output().expect("run tally insights --format csv");
    let csv = String::from_utf8(csv.stdout).expect("utf-8");
    assert_eq!(
        csv.lines().skip(1).collect::<Vec<_>>(),
        ["development,1,1,850,850,850", "production,3,3,41500,62000,62000"]
    );
    let answer =
        common::insight("setup-time", &["--app", "demo", "--since", "7d", "--group-by", "env", "--data-dir", dir_arg]);
    assert_eq!(answer["table"]["rows"][1][3], json!(41500), "{answer}");
}

/// Issue 13: `tally insights … | head` ended with "error: Broken pipe" and a failure
/// status; a reader that goes away is no error.
#[test]
fn insights_stop_quietly_when_the_reader_goes_away() {
    let dir = setup_times();
    let dir_arg = dir.path().to_str().expect("utf-8 path");
    for args in [&["insights", "list"][..], &["insights", "setup-time", "--app", "demo", "--data-dir", dir_arg]] {
        let mut child = tally()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run tally insights");
        // The reader is gone before the first write.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && stderr.is_empty(), "{args:?}: {:?}, stderr: {stderr}", out.status);
    }
}

/// `tally token create|list|revoke` against a running collector: the token is printed once,
/// stored hashed, opens private endpoints at once, and is refused once revoked.
#[test]
fn named_tokens_are_made_listed_and_revoked_while_the_collector_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let token_cmd = |args: &[&str]| {
        let out = tally().arg("token").args(args).arg("--data-dir").arg(dir.path()).output().expect("run tally token");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, token, stderr) = token_cmd(&["create", "grafana"]);
    assert!(ok, "{stderr}");
    let token = token.trim().to_string();
    assert!(token.starts_with("tly_") && token.len() > 60, "{token}");
    assert!(stderr.contains("shown only now"), "{stderr}");
    let stored = std::fs::read_to_string(dir.path().join("tokens.json")).expect("tokens file");
    assert!(!stored.contains(&token), "the token itself is not stored");
    let metrics = |token: &str| {
        common::agent()
            .get(&format!("{}/metrics", server.url))
            .header("Authorization", &format!("Bearer {token}"))
            .call()
            .expect("metrics")
            .status()
            .as_u16()
    };
    assert_eq!(metrics(&token), 200);
    assert_eq!(metrics(&server.admin_token()), 200, "the admin token works beside named ones");
    let (ok, list, _) = token_cmd(&["list"]);
    assert!(ok && list.starts_with("grafana\t") && !list.contains(&token), "{list}");
    let (ok, _, stderr) = token_cmd(&["create", "grafana"]);
    assert!(!ok && stderr.contains("exists"), "{stderr}");
    let (ok, _, stderr) = token_cmd(&["revoke", "grafana"]);
    assert!(ok, "{stderr}");
    assert_eq!(metrics(&token), 401);
    let (ok, _, stderr) = token_cmd(&["revoke", "grafana"]);
    assert!(!ok && stderr.contains("no token named"), "{stderr}");
}

#[test]
fn token_create_on_a_dir_without_a_store_fails_and_creates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = tally().args(["token", "create", "ci", "--data-dir"]).arg(dir.path()).output().expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no tally data dir"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.path().join("tokens.json").exists());
}

#[test]
fn limit_flags_that_would_switch_a_limit_off_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (flag, value, says) in [
        ("--duckdb-memory-limit", "1MiB", "at least 16MiB"),
        ("--duckdb-memory-limit", "lots", "2GiB"),
        ("--max-connections", "0", "at least 1"),
        ("--body-read-timeout", "0", "above 0"),
    ] {
        let out = tally()
            .args(["serve", "--listen", "127.0.0.1:0", flag, value, "--data-dir"])
            .arg(dir.path())
            .output()
            .expect("run tally serve");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(says), "{flag} {value}: {stderr}");
    }
}
