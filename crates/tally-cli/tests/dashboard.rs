//! The dashboard in a real browser: `tally serve` as a process with known data posted over
//! HTTP and a fixed clock (`--fixed-now`, and the same instant in the browser), and Debian's
//! chromium driven by playwright-core (`tests/dashboard-browser/check.js`) through every
//! page. The script checks that each data table holds exactly its JSON
//! answer and runs axe-core; this test checks the numbers against what was sent, what the
//! public page hides, and that axe-core found no serious accessibility issue. Screenshots
//! of every page are kept in `CARGO_TARGET_TMPDIR/dashboard-screenshots`.
//!
//! Needs chromium, playwright-core and axe-core: run `tests/dashboard-browser/setup.sh` and set
//! `TALLY_DASHBOARD_NODE_MODULES` to the path it prints (`cargo xtask test` does both).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Utc};
use common::{Server, post};
use serde_json::{Value, json};
use uuid::Uuid;

const TOKEN: &str = "dashboard-test-token";
const K: i64 = 5;
/// The collector's and the browser's "now": Thursday 2026-10-15, noon UTC. `since=7d` is
/// 2026-10-09 to 2026-10-15, the previous period 2026-10-02 to 2026-10-08.
const NOW: &str = "2026-10-15T12:00:00Z";

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(NOW).expect("NOW").with_timezone(&Utc)
}

fn context(i: usize, app_version: &str) -> Value {
    json!({"app": "demo", "app_version": app_version, "project": uuid::Uuid::from_u128(i as u128 + 1),
           "machine": format!("{:032x}", i + 1), "env": if i < 5 { "production" } else { "development" },
           "os": if i.is_multiple_of(2) { "linux" } else { "macos" }, "os_version": "6", "arch": "x86_64",
           "runtime": "node", "runtime_version": if i.is_multiple_of(2) { "22.11.0" } else { "20.10.0" }})
}

/// Project `i` of 8, today: production for 0..5, development after; Linux and Node 22 for
/// even, macOS and Node 20 for odd; app 2.5.0 for 0..4; plugins sass + minify for 0..6,
/// sass + rare for 6 and 7; an install time of 20.5 s + i s; errors in 0..4
/// (network.timeout in three, config.invalid in one).
fn project_batch(i: usize) -> Value {
    let at = now() - chrono::Duration::seconds(60);
    let plugins: &[&str] = if i < 6 { &["sass", "minify"] } else { &["sass", "rare"] };
    let mut events = vec![
        json!({"event_id": Uuid::new_v4(), "event": "command.run", "occurred_at": at, "plugins": plugins}),
        json!({"event_id": Uuid::new_v4(), "event": "project.created", "occurred_at": at, "duration_ms": 20_500 + 1000 * i}),
    ];
    if i < 4 {
        let kind = if i == 3 { "config.invalid" } else { "network.timeout" };
        events.push(json!({"event_id": Uuid::new_v4(), "event": "error", "occurred_at": at, "error_kind": kind}));
    }
    json!({"sent_at": now(), "context": context(i, if i < 4 { "2.5.0" } else { "2.4.0" }), "events": events})
}

/// Projects 0..4, ten days ago (2026-10-05, the previous period): one `command.run` each on
/// 2.4.0, before they moved to 2.5.0.
fn earlier_batch(i: usize) -> Value {
    let at = now() - chrono::Duration::days(10);
    let events = [json!({"event_id": Uuid::new_v4(), "event": "command.run", "occurred_at": at, "plugins": ["sass"]})];
    json!({"sent_at": now(), "context": context(i, "2.4.0"), "events": events})
}

fn rows(report: &Value, pointer: &str) -> Vec<Vec<String>> {
    serde_json::from_value(report.pointer(pointer).unwrap_or_else(|| panic!("report has {pointer}")).clone())
        .unwrap_or_else(|e| panic!("{pointer} is a table ({e})"))
}

/// A page's charts (by panel) and the bands their uPlot holds, as check.js reports them.
fn chart_bands(report: &Value, page: &str) -> BTreeMap<String, String> {
    let pointer = format!("/pages/~1{page}/charts");
    serde_json::from_value(report.pointer(&pointer).unwrap_or_else(|| panic!("report has {pointer}")).clone())
        .expect("charts: panel to bands")
}

fn firsts(rows: &[Vec<String>], n: usize) -> Vec<Vec<&str>> {
    rows.iter().map(|r| r.iter().take(n).map(String::as_str).collect()).collect()
}

#[test]
fn dashboard_in_a_real_browser() {
    // Like the repository's other Node-backed tests, this fails rather than skips without
    // its setup: a skipped browser test would let a broken dashboard pass unnoticed.
    let Some(modules) = std::env::var_os("TALLY_DASHBOARD_NODE_MODULES") else {
        panic!(
            "TALLY_DASHBOARD_NODE_MODULES is not set: run \
             `export TALLY_DASHBOARD_NODE_MODULES=\"$(bash crates/tally-cli/tests/dashboard-browser/setup.sh | tail -n 1)\"` \
             (installs Debian's chromium, playwright-core and axe-core) and run the tests again; `cargo xtask test` does both"
        );
    };
    let modules = PathBuf::from(modules);
    assert!(
        modules.join("playwright-core/package.json").is_file(),
        "{} has no playwright-core: rerun crates/tally-cli/tests/dashboard-browser/setup.sh",
        modules.display()
    );
    assert!(Path::new("/usr/bin/chromium").is_file(), "/usr/bin/chromium is missing: rerun the setup script");

    let dir = tempfile::tempdir().expect("tempdir");
    let server =
        Server::start(&dir.path().join("data"), &["--admin-token", TOKEN, "--k", &K.to_string(), "--fixed-now", NOW]);
    let agent = common::agent();
    for batch in (0..8).map(project_batch).chain((0..4).map(earlier_batch)) {
        let (status, answer) = post(&agent, &server.url, &batch);
        assert_eq!(status, 200, "{answer}");
        let results = answer["results"].as_array().expect("results");
        assert!(
            results.iter().all(|r| r["status"] == "accepted"),
            "every event is accepted at the fixed now: {answer}"
        );
    }

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard-browser/check.js");
    let out = Command::new("node")
        .arg(&script)
        .env("TALLY_URL", &server.url)
        .env("TALLY_TOKEN", TOKEN)
        .env("TALLY_APP", "demo")
        .env("TALLY_NOW", NOW)
        .env("TALLY_SCREENSHOTS", &shots)
        .env("TALLY_PROFILE", dir.path().join("chromium-profile"))
        .env("TALLY_DASHBOARD_NODE_MODULES", &modules)
        .output()
        .expect("run node (is Node.js installed?)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "check.js failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("check.js's last line is its JSON report ({e})\n{stdout}\n{stderr}"));
    eprintln!("dashboard screenshots: {}", shots.display());

    assert_eq!(report["consoleErrors"], json!([]), "no console errors");
    for (page, violations) in report["axe"].as_object().expect("axe") {
        assert_eq!(violations, &json!([]), "axe-core finds serious accessibility issues on {page}");
    }
    assert_eq!(
        report["axe"].as_object().expect("axe").len(),
        10,
        "sign-in, 7 private pages, the public one and what the app collects"
    );

    // The private pages refuse a missing or wrong token and keep the right one per tab.
    assert_eq!(report["signIn"]["tablesWithoutToken"], 0);
    assert_eq!(report["signIn"]["wrongToken"], "The collector refused this admin token.");
    assert_eq!(report["signIn"]["localStorage"], 0, "the token is kept in sessionStorage only");
    assert_eq!(report["signIn"]["inUrl"], false);
    assert_eq!(report["freshTab"]["tables"], 0, "a new tab asks for the token again");
    assert!(!report["tokenLink"]["url"].as_str().expect("url").contains("token"), "{}", report["tokenLink"]);
    assert!(report["tokenLink"]["tables"].as_i64().expect("tables") > 0, "the demo's link signs in");

    // Every panel of every page loaded, and shows what was sent.
    for (page, panels) in report["pages"].as_object().expect("pages") {
        for p in panels["panels"].as_array().expect("panels") {
            assert_eq!(p["state"], "ready", "{page}: {p}");
        }
    }
    assert_eq!(
        firsts(&rows(&report, "/pages/~1/active/rows"), 3),
        [["1", "8", "8"], ["7", "8", "8"], ["28", "8", "8"]]
    );
    // Against the window before each: none the day before, the 4 projects of 2026-10-05 in
    // the 7 days before, none in the 28 days before.
    assert_eq!(
        rows(&report, "/pages/~1/active/text"),
        [
            ["1 day", "8", "8", "0", "new", "0", "new"],
            ["7 days", "8", "8", "4", "+100.0%", "4", "+100.0%"],
            ["28 days", "8", "8", "0", "new", "0", "new"],
        ]
    );
    // The chart's table: one day, 8 runs, 8 installs and 4 errors.
    assert_eq!(rows(&report, "/pages/~1/events/rows"), [["2026-10-15", "20", "8", "8"]]);
    assert_eq!(firsts(&rows(&report, "/pages/~1/env/rows"), 2), [["production", "5"], ["development", "3"]]);
    assert_eq!(
        rows(&report, "/pages/~1plugins/top-plugins/rows"),
        [["sass", "8", "8", "8"], ["minify", "6", "6", "6"], ["rare", "2", "2", "2"]]
    );
    assert_eq!(
        firsts(&rows(&report, "/pages/~1errors/error-kinds/rows"), 2),
        [["network.timeout", "3"], ["config.invalid", "1"]]
    );
    // Durations for people: 8 installs of 20.5 s to 27.5 s; p50 is the 4th (nearest rank).
    let setup = rows(&report, "/pages/~1setup-time/setup-week/text");
    assert_eq!(setup.len(), 1, "{setup:?}");
    assert_eq!(setup[0][1..], ["8", "8", "23.5 s", "27.5 s", "27.5 s"]);
    // Both setup-time charts fill p50 to p90 and p90 to p99 (as uPlot was configured), and
    // the lines of every other chart stay unfilled.
    let charts = chart_bands(&report, "setup-time");
    let bands = "p90>p50 p99>p90";
    assert_eq!(charts, BTreeMap::from([("setup-week".into(), bands.into()), ("setup-version".into(), bands.into())]));
    let overview = chart_bands(&report, "");
    assert!(!overview.is_empty() && overview.values().all(String::is_empty), "{overview:?}");

    // Releases: 2.4.0 was first seen on 2026-10-05, 2.5.0 today; errors happened on 2.5.0
    // only (3 and 1 of its 4 projects); setup time per version.
    let since_release = rows(&report, "/pages/~1releases/since-release/text");
    let released: Vec<[&str; 4]> =
        since_release.iter().map(|r| [r[0].as_str(), r[1].as_str(), r[7].as_str(), r[8].as_str()]).collect();
    assert_eq!(
        released,
        [
            ["2026-10-05", "2.4.0", "2026-10-05", "0"],
            ["2026-10-15", "2.5.0", "2026-10-15", "0"],
            ["2026-10-15", "2.4.0", "2026-10-05", "10"],
        ]
    );
    let error_rate = rows(&report, "/pages/~1releases/error-rate/text");
    let mut rates: Vec<[&str; 3]> =
        error_rate.iter().map(|r| [r[0].as_str(), r[1].as_str(), r.last().expect("rate").as_str()]).collect();
    rates.sort();
    assert_eq!(rates, [["config.invalid", "2.5.0", "25.0%"], ["network.timeout", "2.5.0", "75.0%"]]);
    assert_eq!(
        firsts(&rows(&report, "/pages/~1releases/release-setup/rows"), 1),
        [["2.5.0"], ["2.4.0"]],
        "newest first"
    );

    // Empty and error states.
    for p in report["emptyApp"].as_array().expect("panels") {
        assert_eq!(p["state"], "empty", "an app without events: {p}");
        assert_eq!(p["text"], "No data for this range and these filters.");
    }
    for p in report["badRange"].as_array().expect("panels") {
        assert_eq!(p["state"], "error", "{p}");
        assert!(p["text"].as_str().expect("text").contains("is not a duration"), "the API's message is shown: {p}");
    }

    // A filter changes the URL and the numbers; Back and the shared URL round-trip it.
    assert!(report["filter"]["url"].as_str().expect("url").contains("env=production"), "{}", report["filter"]);
    assert_eq!(firsts(&rows(&report, "/filter/env"), 2), [["production", "5"]]);
    assert!(
        report["filter"]["srcs"]
            .as_array()
            .expect("srcs")
            .iter()
            .all(|s| s.as_str().expect("src").contains("env=production"))
    );
    assert_eq!(report["filter"]["back"]["select"], "");
    assert_eq!(rows(&report, "/filter/back/env").len(), 2);
    assert_eq!(report["filter"]["reloaded"]["select"], "production");
    assert_eq!(firsts(&rows(&report, "/filter/reloaded/env"), 2), [["production", "5"]]);

    // The comparison adds the previous period: 4 production projects on 2026-10-05, no
    // development one.
    assert_eq!(report["compare"]["env"]["derived"], 2, "{}", report["compare"]["env"]);
    let compared = rows(&report, "/compare/env/text");
    assert_eq!(compared[0][..2], ["production", "5"]);
    assert_eq!(compared[0][4..], ["4", "+25.0%"]);
    assert_eq!(compared[1][..2], ["development", "3"]);
    assert_eq!(compared[1][4..], ["—", "new"]);

    // Dropping a runtime version: Node 20 is the newest of the 4 odd projects; dropping it
    // leaves half of the projects behind. Exact versions through the panel's option, and
    // its CSV is its table.
    assert_eq!(
        rows(&report, "/pages/~1runtimes/drop-support/rows"),
        [["node", "20", "4", "4", "4", "8", "0.5"], ["node", "22", "4", "8", "0", "8", "1"]]
    );
    assert_eq!(
        rows(&report, "/pages/~1runtimes/drop-support/text")[0][6..],
        ["50.0%"],
        "shares are shown as percentages"
    );
    assert!(report["dropSupport"]["url"].as_str().expect("url").contains("runtime=runtime_version"));

    // Runtime versions against a baseline typed into the panel: in the URL and the request,
    // each version's share, the baseline's and the difference, and Node 18 (in the
    // baseline, run by no project) at 0 %.
    let baseline = &report["baseline"];
    assert!(baseline["url"].as_str().expect("url").contains("baseline=22%3A60%2C20%3A30%2C18%3A10"), "{baseline}");
    assert!(baseline["src"].as_str().expect("src").contains("baseline="), "{baseline}");
    let columns: Vec<String> = serde_json::from_value(baseline["columns"].clone()).expect("columns");
    let at = |name: &str| columns.iter().position(|c| c == name).unwrap_or_else(|| panic!("no {name} in {columns:?}"));
    let (version, share, base, diff) = (at("runtime_major"), at("share"), at("baseline_share"), at("difference"));
    let shown: Vec<Vec<String>> = rows(&report, "/baseline/text")
        .into_iter()
        .map(|r| [version, share, base, diff].iter().map(|i| r[*i].clone()).collect())
        .collect();
    assert_eq!(
        shown,
        [["22", "50.0%", "60.0%", "−10.0 pp"], ["20", "50.0%", "30.0%", "+20.0 pp"], ["18", "0%", "10.0%", "−10.0 pp"]]
    );
    let exact = rows(&report, "/dropSupport/rows");
    assert_eq!(firsts(&exact, 2), [["node", "20.10.0"], ["node", "22.11.0"]]);
    let csv = report["dropSupport"]["csv"].as_str().expect("csv");
    let expected: Vec<String> = std::iter::once(
        "runtime,runtime_version,projects_newest,projects_left,projects_kept,runtime_projects,share_left".into(),
    )
    .chain(exact.iter().map(|r| r.join(",")))
    .collect();
    assert_eq!(csv.lines().collect::<Vec<_>>(), expected);
    assert!(report["errorsByVersion"]["url"].as_str().expect("url").contains("by=app_version"));
    assert_eq!(report["errorsByVersion"]["columns"][1], "app_version");

    // CSV export is the panel's table, with the filter.
    let csv = report["csv"]["text"].as_str().expect("csv");
    let table = rows(&report, "/csv/table");
    let expected: Vec<String> = std::iter::once("plugin,projects,machines,events".to_string())
        .chain(table.iter().map(|r| r.join(",")))
        .collect();
    assert_eq!(csv.lines().collect::<Vec<_>>(), expected);
    let mut top = firsts(&table, 2);
    top.sort();
    assert_eq!(top, [["minify", "5"], ["sass", "5"]]);
    assert!(report["csv"]["name"].as_str().expect("name").contains("env-production"), "{}", report["csv"]["name"]);

    // The public page never shows a row behind fewer than k projects (in any count of
    // projects it has), and says how many it hid.
    let public = report["public"].as_object().expect("public");
    let mut checked = 0;
    for (panel, t) in public.iter().filter(|(_, t)| t.get("columns").is_some()) {
        assert_eq!(t["suppression"]["k"], K, "{panel} is a published answer");
        let columns: Vec<String> = serde_json::from_value(t["columns"].clone()).expect("columns");
        let counts: Vec<usize> = (0..columns.len()).filter(|i| columns[*i].contains("projects")).collect();
        assert!(!counts.is_empty(), "{panel} has a count of projects: {columns:?}");
        for row in rows(&report, &format!("/public/{panel}/rows")) {
            for at in &counts {
                assert!(row[*at].parse::<i64>().expect("projects") >= K, "{panel} shows {row:?}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 8, "the public page shows rows: {checked} counts checked");
    assert_eq!(firsts(&rows(&report, "/public/top-plugins/rows"), 2), [["sass", "8"], ["minify", "6"]]);
    assert_eq!(report["public"]["top-plugins"]["suppression"]["hidden_rows"], 1, "rare (2 projects) is hidden");
    assert_eq!(firsts(&rows(&report, "/public/env/rows"), 2), [["production", "5"]]);
    // Hidden: rare, development, both OSes, both runtimes and both app versions (4 projects each).
    let notes: Vec<i64> = serde_json::from_value(report["public"]["notes"].clone()).expect("notes");
    assert_eq!(notes.iter().sum::<i64>(), 8, "{notes:?}");
    assert_eq!(report["public"]["hiddenSummary"], 8, "{}", report["public"]["summaryText"]);

    // What the app collects lists exactly the events and properties of the schema the
    // collector enforces, and every field a batch carries, each with why.
    let schemas = tally_collector::builtin::load(None).expect("built-in schemas");
    let schema = schemas.get("demo").expect("demo schema");
    let listed = |key: &str| -> Vec<String> { serde_json::from_value(report["collect"][key].clone()).expect(key) };
    assert!(report["collect"]["url"].as_str().expect("url").ends_with("/collect/demo"));
    assert_eq!(listed("events"), schema.events.keys().cloned().collect::<Vec<_>>());
    assert_eq!(listed("props"), schema.props.keys().cloned().collect::<Vec<_>>());
    let mut fields = listed("fields");
    fields.sort();
    // The example's context has every context field but `ci`, which a batch sent outside CI omits.
    let mut carried: Vec<String> = ["event_id", "event", "occurred_at", "plugins", "duration_ms", "error_kind", "ci"]
        .into_iter()
        .map(String::from)
        .chain(report["collect"]["example"]["context"].as_object().expect("context").keys().cloned())
        .collect();
    carried.sort();
    carried.dedup();
    assert_eq!(fields, carried, "every field of a batch, and no other");
    let whys = listed("whys");
    assert_eq!(whys.len(), schema.events.len() + schema.props.len() + carried.len());
    assert!(whys.iter().all(|w| !w.trim().is_empty()), "{whys:?}");
    assert!(listed("panels")[0].contains("Plugins: Top plugins"), "{}", report["collect"]["panels"]);
    assert!(listed("consent")[1].contains("DEMO_TELEMETRY_DISABLED"), "{}", report["collect"]["consent"]);
    server.stop();
}
