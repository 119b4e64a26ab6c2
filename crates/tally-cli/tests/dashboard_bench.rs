//! The dashboard's speed at 10 M events (docs/benchmarks.md): `tally serve` on the 10 M
//! store `tally bench` generates (the demo's distributions, 90 days), with its clock fixed
//! at noon of the data's last day, and Debian's chromium loading every page cold
//! (`tests/dashboard-browser/measure.js`). Prints the figures as Markdown tables and
//! writes them next to the store; it asserts no timing, only that every panel loaded.
//!
//! A benchmark, so ignored by `cargo test`: `cargo xtask dashboard-bench` generates the
//! store once (about 25 minutes on the project's 2-core VM), then runs this with
//! `--ignored`, `TALLY_BENCH_DIR` and `TALLY_DASHBOARD_NODE_MODULES` set.

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use chrono::DateTime;
use common::Server;
use serde_json::Value;

const TOKEN: &str = "dashboard-bench-token";

fn env_path(name: &str) -> PathBuf {
    PathBuf::from(
        std::env::var_os(name).unwrap_or_else(|| panic!("{name} is not set: run `cargo xtask dashboard-bench`")),
    )
}

fn ms(v: &Value) -> String {
    v.as_f64().map_or_else(|| "—".into(), |x| format!("{x:.0}"))
}

#[test]
#[ignore = "a benchmark at 10 M events: run `cargo xtask dashboard-bench`"]
fn dashboard_at_10m_events() {
    let bench_dir = env_path("TALLY_BENCH_DIR");
    let modules = env_path("TALLY_DASHBOARD_NODE_MODULES");
    let store = bench_dir.join("events-10M");
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(store.join("bench.json")).unwrap_or_else(|e| {
        panic!(
            "no 10 M store in {} ({e}): run `tally bench insights --events 10M --generate-only` first",
            store.display()
        )
    }))
    .expect("bench.json");
    let end_ms = meta["end_ms"].as_i64().expect("end_ms");
    let now = DateTime::from_timestamp_millis(end_ms - 12 * 3_600_000).expect("time").to_rfc3339();

    let opening = Instant::now();
    let server = Server::start(&store, &["--admin-token", TOKEN, "--fixed-now", &now]);
    let open_secs = opening.elapsed().as_secs_f64();
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard-browser/measure.js");
    let out = Command::new("node")
        .arg(&script)
        .env("TALLY_URL", &server.url)
        .env("TALLY_TOKEN", TOKEN)
        .env("TALLY_APP", "demo")
        .env("TALLY_NOW", &now)
        .env("TALLY_RUNS", "3")
        .env("TALLY_SCREENSHOTS", &shots)
        .env("TALLY_DASHBOARD_NODE_MODULES", &modules)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "measure.js failed\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("JSON report");
    server.stop();
    assert_eq!(report["errors"], serde_json::json!([]), "every panel of every page loaded, without errors");

    let mut md = String::new();
    let _ = writeln!(
        md,
        "{} events, {} projects; the collector opened the store (rollup built) in {open_secs:.1} s; clock fixed at {now}.\n",
        meta["events"], meta["projects"]
    );
    md.push_str("| page | range | panels | first contentful paint ms | all panels drawn ms | slowest panel data ms |\n|---|---|---:|---:|---:|---:|\n");
    for p in report["pages"].as_array().expect("pages") {
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} | {} | {} |",
            p["page"].as_str().expect("page"),
            p["since"].as_str().expect("since"),
            p["panels"],
            ms(&p["fcp"]),
            ms(&p["complete"]),
            ms(&p["slowestFirstByte"])
        );
    }
    md.push_str("\n| range | request | data (first byte) ms | complete ms |\n|---|---|---:|---:|\n");
    let mut insights: Vec<(&String, &Value)> = report["insights"].as_object().expect("insights").iter().collect();
    insights.sort_by(|a, b| b.1["firstByte"].as_f64().partial_cmp(&a.1["firstByte"].as_f64()).expect("numbers"));
    for (key, v) in insights {
        let (since, url) = key.split_once(' ').expect("since and url");
        let _ = writeln!(md, "| {since} | `{url}` | {} | {} |", ms(&v["firstByte"]), ms(&v["total"]));
    }
    let w = &report["weight"];
    let _ = writeln!(
        md,
        "\nPage weight: {} assets, {} bytes as served, {} bytes gzipped (-9).",
        w["assets"].as_array().expect("assets").len(),
        w["raw"],
        w["gzip"]
    );
    println!("{md}");
    let file = bench_dir.join("dashboard-10M.md");
    std::fs::write(&file, &md).expect("write results");
    eprintln!("dashboard bench: results in {}, screenshots in {}", file.display(), shots.display());
}
