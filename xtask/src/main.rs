//! Project chores in one place: `cargo xtask test` sets up and runs every check CI runs.
//!
//! Everything is built with the release profile, so DuckDB's C++ sources (the slowest part
//! of the build) are compiled once and shared by the tests, clippy and `cargo run --release`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("invariants") => invariants(),
        Some("bench") => bench(&args[1..]),
        Some("dashboard-bench") => dashboard_bench(),
        Some("fuzz") => fuzz_command(&args[1..]),
        Some("node") => setup("crates/tally/tests/setup-node.sh").and_then(|m| node_sdk(&m)),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n  test        fmt check, clippy -D warnings, invariants, unused dependencies, every test (what CI runs)\n  invariants  check the architecture invariants of ARCHITECTURE.md\n  fuzz [S]    seed, build and run every fuzz target for S seconds each (default 600; docs/fuzzing.md)\n  node        the Node SDK's checks and tests (sdks/node; needs the release build of tally and hostcli)\n  bench       the insight benchmark at 10M and 100M events (`tally bench insights`; extra arguments are passed on)\n  dashboard-bench  the dashboard in chromium against the 10M store (generated once, as `bench` does)"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The insight benchmark (docs/benchmarks.md): `tally bench insights --events 10M,100M` in the release
/// profile, stores kept in `$TALLY_BENCH_DIR` (default `target/bench` under the target dir).
fn bench(extra: &[String]) -> Result<(), String> {
    let dir = std::env::var_os("TALLY_BENCH_DIR").map_or_else(|| target_dir().join("bench"), PathBuf::from);
    let mut cmd = cargo();
    cmd.args(["run", "--release", "--", "bench", "insights", "--data-dir"]).arg(&dir);
    if !extra.iter().any(|a| a.starts_with("--events")) {
        cmd.arg("--events=10M,100M");
    }
    cmd.args(extra);
    run("bench", &mut cmd)
}

/// The dashboard benchmark (docs/benchmarks.md): generates the 10 M store once, as `bench`
/// does, then runs the ignored test `dashboard_at_10m_events` (tests/dashboard_bench.rs),
/// which serves it and times every page in chromium.
fn dashboard_bench() -> Result<(), String> {
    let dir = std::env::var_os("TALLY_BENCH_DIR").map_or_else(|| target_dir().join("bench"), PathBuf::from);
    run(
        "generate",
        cargo()
            .args(["run", "--release", "--", "bench", "insights", "--events=10M", "--generate-only", "--data-dir"])
            .arg(&dir),
    )?;
    let modules = setup("crates/tally-cli/tests/dashboard-browser/setup.sh")?;
    run(
        "dashboard-bench",
        cargo()
            .args(["test", "--release", "--workspace", "--all-features", "--test", "dashboard_bench", "--"])
            .args(["--ignored", "--nocapture"])
            .env("TALLY_BENCH_DIR", &dir)
            .env("TALLY_DASHBOARD_NODE_MODULES", &modules),
    )
}

/// The workspace root. Read at run time (`cargo run` sets `CARGO_MANIFEST_DIR`): clones
/// that share a target directory also share the `xtask` binary, so a path compiled in
/// could name another clone.
fn root() -> PathBuf {
    let dir =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    Path::new(&dir).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn run(step: &str, cmd: &mut Command) -> Result<(), String> {
    let started = Instant::now();
    eprintln!("xtask: {step}: {cmd:?}");
    let status = cmd.current_dir(root()).status().map_err(|e| format!("{step}: cannot start: {e}"))?;
    eprintln!(
        "xtask: {step}: {} in {:.0} s",
        if status.success() { "ok" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    if status.success() { Ok(()) } else { Err(format!("{step} failed ({status})")) }
}

/// A `cargo` command with the environment the user's shell had: `cargo xtask` runs us
/// through `cargo run`, which adds variables (`CARGO_*`, `RUSTUP_TOOLCHAIN`,
/// `LD_LIBRARY_PATH`, ...). Passing those on would make the nested builds look different
/// from the user's own `cargo` commands and could rebuild DuckDB's C++ sources.
fn cargo() -> Command {
    let mut cmd = Command::new("cargo");
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let added_by_cargo_run = key.starts_with("CARGO_PKG_")
            || matches!(
                key.as_ref(),
                "CARGO"
                    | "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "LD_LIBRARY_PATH"
                    | "RUSTUP_TOOLCHAIN"
                    | "RUSTUP_TOOLCHAIN_SOURCE"
                    | "RUST_RECURSION_COUNT"
            );
        if added_by_cargo_run {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd
}

fn output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.current_dir(root()).output().map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a setup script that installs what tests need (npm packages, a Python venv) and
/// prints the path the tests read (a node_modules directory, an executable) on its last line.
fn setup(script: &str) -> Result<PathBuf, String> {
    let script = root().join(script);
    if !script.exists() {
        return Err(format!("{} is missing", script.display()));
    }
    let out = output(Command::new("bash").arg(&script))?;
    let dir = out.lines().last().unwrap_or_default().trim().to_string();
    if dir.is_empty() || !Path::new(&dir).exists() {
        return Err(format!("{} printed no existing path on its last line (got {out:?})", script.display()));
    }
    Ok(PathBuf::from(dir))
}

fn test(extra: &[String]) -> Result<(), String> {
    let started = Instant::now();
    run("fmt", cargo().args(["fmt", "--all", "--check"]))?;
    run(
        "clippy",
        cargo().args(["clippy", "--release", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"]),
    )?;
    invariants()?;
    unused_dependencies()?;
    fuzz(CI_FUZZ_SECONDS)?;
    // node-machine-id, against which the SDK's `node_machine_id()` is checked.
    let node_modules = setup("crates/tally/tests/setup-node.sh")?;
    eprintln!("xtask: node-machine-id installed in {}", node_modules.display());
    // Strapi's own published telemetry sender, pointed at the collector.
    let strapi_modules = setup("crates/tally-collector/tests/strapi-node/setup.sh")?;
    eprintln!("xtask: strapi packages installed in {}", strapi_modules.display());
    // Debian's chromium and playwright-core, which drive the dashboard in a real browser.
    let dashboard_modules = setup("crates/tally-cli/tests/dashboard-browser/setup.sh")?;
    eprintln!("xtask: playwright-core installed in {}", dashboard_modules.display());
    // Debian's clickhouse-server (18.16), which the ClickHouse backend's tests start on
    // loopback with their own config and data dir (crates/tally-store-clickhouse/src/testing.rs).
    run("clickhouse-server", Command::new("sh").arg(root().join("crates/tally-store-clickhouse/tests/setup.sh")))?;
    // A current ClickHouse release (chDB: ClickHouse 26.9's engine, PyPI, pinned) in a venv
    // under ~/.cache/tally, which the conformance suite also runs on behind
    // tests/current/server.py (25 s and 890 MB to install, 37 s to run).
    let clickhouse_current = setup("crates/tally-store-clickhouse/tests/current/setup.sh")?;
    eprintln!("xtask: chdb installed for {}", clickhouse_current.display());
    // schemathesis (PyPI, pinned in requirements.txt) in a venv under ~/.cache/tally, which
    // tests/api.rs runs against a live collector (about 50 s to install, 40 s to run).
    let schemathesis = setup("crates/tally-cli/tests/api-schemathesis/setup.sh")?;
    eprintln!("xtask: schemathesis installed at {}", schemathesis.display());
    run(
        "tests",
        cargo()
            .args(["test", "--release", "--workspace", "--all-features", "--no-fail-fast"])
            .args(extra)
            .env("TALLY_NODE_MODULES", &node_modules)
            .env("TALLY_STRAPI_NODE_MODULES", &strapi_modules)
            .env("TALLY_DASHBOARD_NODE_MODULES", &dashboard_modules)
            .env("TALLY_SCHEMATHESIS", &schemathesis)
            .env("TALLY_CLICKHOUSE_CURRENT_PYTHON", &clickhouse_current),
    )?;
    // After the workspace's tests, which built the `tally` binary and the `hostcli` example.
    node_sdk(&node_modules)?;
    eprintln!("xtask: all checks passed in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The Node SDK (`sdks/node`): its devDependencies (TypeScript, Node's types, commander;
/// `npm ci` from the lockfile, about 25 MB, only when missing), the check that the committed
/// `dist/` is what the sources compile to, and its tests with Node's own runner against the
/// release `tally` binary and the Rust SDK's `hostcli` example.
fn node_sdk(node_modules: &Path) -> Result<(), String> {
    let sdk = root().join("sdks/node");
    if !sdk.join("node_modules/typescript/package.json").exists() {
        run("node sdk: npm ci", Command::new("npm").args(["ci", "--no-audit", "--no-fund", "--prefix"]).arg(&sdk))?;
    }
    run("node sdk: dist up to date", Command::new("node").arg(sdk.join("scripts/build.mjs")).arg("--check"))?;
    let release = target_dir().join("release");
    for built in [release.join("tally"), release.join("examples/hostcli")] {
        if !built.exists() {
            return Err(format!(
                "{} is missing: build it first (`cargo build --release --workspace --all-features --examples`)",
                built.display()
            ));
        }
    }
    // The files by name: `node --test DIR` means different things across Node versions.
    let mut tests: Vec<PathBuf> = std::fs::read_dir(sdk.join("test"))
        .map_err(|e| format!("node sdk: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".test.mjs"))
        .collect();
    tests.sort();
    run(
        "node sdk: tests",
        Command::new("node")
            .arg("--test")
            .args(&tests)
            .env("TALLY_BIN", release.join("tally"))
            .env("TALLY_HOSTCLI", release.join("examples/hostcli"))
            .env("TALLY_NODE_MODULES", node_modules),
    )
}

/// Seconds each fuzz target runs in `cargo xtask test`.
const CI_FUZZ_SECONDS: u32 = 20;

/// The cargo-fuzz version `cargo xtask fuzz` and `test` install; pinned like cargo-machete.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// `cargo xtask fuzz [SECONDS]`: the longer run of docs/fuzzing.md.
fn fuzz_command(args: &[String]) -> Result<(), String> {
    let seconds = match args.first() {
        None => 600,
        Some(s) => s.parse().map_err(|_| format!("fuzz: {s:?} is not a number of seconds"))?,
    };
    fuzz(seconds)
}

/// The fuzz targets of `fuzz/`, run one after the other.
const FUZZ_TARGETS: &[&str] = &["batch", "schema", "strapi"];

/// Seeds the corpora, builds the fuzz targets and runs each for `seconds`; fails on a crash,
/// a panic or an input that takes more than 10 s. cargo-fuzz is installed under the target
/// dir on first use (about 1.5 minutes); the targets need the nightly toolchain and are
/// built into `fuzz-target` next to the target dir, so that nightly builds never touch the
/// release ones.
fn fuzz(seconds: u32) -> Result<(), String> {
    let target = target_dir();
    let tools = target.join("tools");
    let cargo_fuzz = tools.join("bin").join("cargo-fuzz");
    if output(Command::new("rustup").args(["run", "nightly", "rustc", "--version"])).is_err() {
        return Err("fuzz: the nightly toolchain is missing; install it with `rustup toolchain install nightly`".into());
    }
    let installed = output(Command::new(&cargo_fuzz).arg("--version")).is_ok_and(|v| v.contains(CARGO_FUZZ_VERSION));
    if !installed {
        run(
            "install cargo-fuzz",
            cargo()
                .args(["install", "--locked", "--quiet", "--version", CARGO_FUZZ_VERSION, "cargo-fuzz", "--root"])
                .arg(&tools),
        )?;
    }
    run("fuzz fmt", cargo().args(["fmt", "--check", "--manifest-path", "fuzz/Cargo.toml"]))?;
    run("fuzz seeds", Command::new("bash").arg(root().join("fuzz/seed.sh")))?;
    let fuzz_target = target.with_file_name("fuzz-target");
    // cargo-fuzz is found by cargo as the `fuzz` subcommand through PATH.
    let path = std::env::join_paths(
        std::iter::once(tools.join("bin")).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .map_err(|e| format!("fuzz: PATH: {e}"))?;
    let cargo_fuzz = |args: &[&str]| {
        let mut cmd = cargo();
        cmd.arg("+nightly").arg("fuzz").args(args).env("PATH", &path).env("CARGO_TARGET_DIR", &fuzz_target);
        cmd
    };
    // No AddressSanitizer: the workspace forbids unsafe code, so it would watch only
    // dependencies, for a longer build and a fifth of the executions (docs/fuzzing.md).
    run("fuzz build", &mut cargo_fuzz(&["build", "--sanitizer=none"]))?;
    let total_time = format!("-max_total_time={seconds}");
    for name in FUZZ_TARGETS {
        run(
            &format!("fuzz {name}"),
            &mut cargo_fuzz(&[
                "run",
                "--sanitizer=none",
                name,
                "--",
                &total_time,
                "-timeout=10",
                "-print_final_stats=1",
            ]),
        )?;
    }
    Ok(())
}

/// The target dir every build of the workspace shares.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

/// The cargo-machete version `cargo xtask test` installs; pinned so that a check that passed
/// keeps passing.
const MACHETE_VERSION: &str = "0.9.2";

/// Fails when a crate declares a dependency its sources never name (cargo-machete, installed
/// under the target dir on first use, about 2 minutes on 2 cores).
fn unused_dependencies() -> Result<(), String> {
    let tools = target_dir().join("tools");
    let machete = tools.join("bin").join("cargo-machete");
    let installed = output(Command::new(&machete).arg("--version")).is_ok_and(|v| v.contains(MACHETE_VERSION));
    if !installed {
        run(
            "install cargo-machete",
            cargo()
                .args(["install", "--locked", "--quiet", "--version", MACHETE_VERSION, "cargo-machete", "--root"])
                .arg(&tools),
        )?;
    }
    run("unused dependencies", &mut Command::new(&machete))
}

/// The invariants of ARCHITECTURE.md that a command can check.
fn invariants() -> Result<(), String> {
    let tree = |package: &str, edges: &str| -> Result<String, String> {
        output(cargo().args(["tree", "-p", package, "-e", edges, "--prefix", "none", "--format", "{p}"]))
    };
    let names = |text: &str| -> Vec<String> {
        text.lines().filter_map(|l| l.split_whitespace().next()).map(str::to_string).collect()
    };
    let mut problems = Vec::new();
    // 1. The SDK depends on no tokio and on no tally crate but tally-protocol.
    let sdk = names(&tree("tally", "normal")?);
    if sdk.iter().any(|n| n == "tokio") {
        problems.push("the SDK (tally) depends on tokio".to_string());
    }
    for n in sdk.iter().filter(|n| n.starts_with("tally-") && *n != "tally-protocol") {
        problems.push(format!("the SDK (tally) depends on {n}"));
    }
    // 2. Only the composition root names a concrete backend.
    for package in ["tally-protocol", "tally-store", "tally-insights", "tally-collector", "tally"] {
        let deps = names(&tree(package, "normal,dev")?);
        for backend in deps.iter().filter(|n| n.starts_with("tally-store-")) {
            problems.push(format!("{package} depends on the backend {backend}; only tally-cli may"));
        }
    }
    // 3. The protocol crate does no I/O: no HTTP, no async runtime, no database.
    let protocol = names(&tree("tally-protocol", "normal")?);
    for banned in ["tokio", "ureq", "axum", "duckdb"] {
        if protocol.iter().any(|n| n == banned) {
            problems.push(format!("tally-protocol depends on {banned}"));
        }
    }
    // 4. The ingest log stands alone: no tally crate, no async runtime, no database.
    for n in names(&tree("tally-log", "normal")?) {
        if n.starts_with("tally-") && n != "tally-log" || ["tokio", "duckdb"].contains(&n.as_str()) {
            problems.push(format!("tally-log depends on {n}"));
        }
    }
    // 5. No SQL outside backend crates.
    for dir in ["crates/tally-insights/src", "crates/tally-collector/src", "crates/tally-cli/src"] {
        for file in rust_files(&root().join(dir)) {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            if text.contains("SELECT ") || text.contains("INSERT INTO") {
                problems.push(format!("{} contains SQL; queries go through EventStore", file.display()));
            }
        }
    }
    if problems.is_empty() {
        eprintln!("xtask: invariants: ok");
        Ok(())
    } else {
        Err(format!("invariants violated:\n  {}", problems.join("\n  ")))
    }
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(rust_files(&p));
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out
}
