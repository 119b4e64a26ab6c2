//! A small host tool that embeds the tally SDK the way a real CLI would.
//!
//! ```text
//! hostcli new <dir>            create a project (writes its telemetry id), record project.created
//! hostcli build [--events N] [--work-ms T]
//!                              pretend to build, record build.finished (+ N command.run)
//! hostcli fail                 record an error with a bounded kind
//! hostcli serve                a long-running command: record command.run, then flush
//! hostcli telemetry …          status | enable | disable | local | show | reset
//! ```
//!
//! Environment: `HOSTCLI_ENDPOINT` (collector URL), `HOSTCLI_EXIT_BUDGET_MS` (exit budget),
//! `HOSTCLI_RESEND_AFTER_MS` (when a posted, unanswered batch is posted again),
//! `HOSTCLI_DEFAULT` (`on`, `off` for opt-in, `local`); and the SDK's own variables
//! (`DO_NOT_TRACK`, `HOSTCLI_TELEMETRY_DISABLED`, `HOSTCLI_TELEMETRY_DEBUG`, `HOSTCLI_ENV`,
//! `TALLY_POLICY`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use tally::{Builder, Event, ManifestKind, Mode, Telemetry};

#[derive(Parser)]
#[command(name = "hostcli", version, about = "a host tool embedding tally")]
struct Cli {
    /// Run as if started in this directory
    #[arg(short = 'C', long, global = true)]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a project
    New {
        /// Where
        path: PathBuf,
        /// Which manifest holds the telemetry id
        #[arg(long, default_value = "package-json")]
        manifest: String,
    },
    /// Build the project
    Build {
        /// Also record this many command.run events
        #[arg(long, default_value_t = 0)]
        events: usize,
        /// Pretend the build takes this long
        #[arg(long, default_value_t = 0)]
        work_ms: u64,
    },
    /// Fail with an error
    Fail,
    /// Serve the project (runs long enough to flush)
    Serve,
    /// See and change what hostcli's telemetry does
    Telemetry(tally::cli::TelemetryArgs),
}

/// The client's settings. The `telemetry` subcommand gets these, other commands build a
/// client from them.
fn telemetry(project_dir: PathBuf) -> Builder {
    // This is all a tool author writes to set telemetry up.
    let mut builder = Telemetry::builder("hostcli", env!("CARGO_PKG_VERSION"))
        .project_dir(project_dir)
        .runtime("rust", "1.95.0")
        .host_facts(true)
        .known_plugins(["sass", "minify", "i18n"]);
    if let Ok(url) = std::env::var("HOSTCLI_ENDPOINT") {
        builder = builder.endpoint(url);
    }
    if let Some(ms) = std::env::var("HOSTCLI_EXIT_BUDGET_MS").ok().and_then(|v| v.parse().ok()) {
        builder = builder.exit_budget(Duration::from_millis(ms));
    }
    if let Some(ms) = std::env::var("HOSTCLI_RESEND_AFTER_MS").ok().and_then(|v| v.parse().ok()) {
        builder = builder.resend_after(Duration::from_millis(ms));
    }
    if let Some(mode) = std::env::var("HOSTCLI_DEFAULT").ok().and_then(|v| Mode::parse(&v)) {
        builder = builder.default_mode(mode);
    }
    builder
}

fn main() {
    let cli = Cli::parse();
    let cwd = cli.dir.clone().unwrap_or_else(|| std::env::current_dir().expect("current directory"));
    match cli.command {
        Command::New { path, manifest } => {
            let started = Instant::now();
            // Built first, as at the top of `main`: the client picks up the project it creates.
            let t = telemetry(cwd.clone()).build();
            let dir = cwd.join(path);
            std::fs::create_dir_all(&dir).expect("create project directory");
            let kind = match manifest.as_str() {
                "cargo" => ManifestKind::CargoToml,
                "toml" => ManifestKind::TelemetryToml,
                _ => ManifestKind::PackageJson,
            };
            let manifest = kind.path_in(&dir, "hostcli");
            if !manifest.exists() && kind == ManifestKind::PackageJson {
                std::fs::write(&manifest, "{\n  \"name\": \"site\"\n}\n").expect("write package.json");
            }
            if !manifest.exists() && kind == ManifestKind::CargoToml {
                std::fs::write(&manifest, "[package]\nname = \"site\"\nversion = \"0.1.0\"\n")
                    .expect("write Cargo.toml");
            }
            let id = t.create_project_id(&dir, kind).expect("write project id");
            println!("created project {id} in {}", dir.display());
            t.record(
                Event::project_created(started.elapsed())
                    .plugins(["sass", "i18n"])
                    .prop("template", "blog")
                    .prop("typescript", true),
            );
        }
        Command::Build { events, work_ms } => {
            let t = telemetry(cwd.clone()).build();
            t.record(Event::command_run("build"));
            std::thread::sleep(Duration::from_millis(work_ms));
            for i in 0..events {
                t.record(Event::command_run("build").prop("step", i));
            }
            t.record(
                Event::build_finished(Duration::from_millis(1234))
                    .plugins(["sass", "minify", "acme-private-plugin"])
                    .prop("files", 412)
                    .prop("ratio", 0.82)
                    .sensitive("project_name", cwd.display().to_string()),
            );
            println!("built");
            // Dropping `t` at the end of main waits at most the exit budget.
        }
        Command::Fail => {
            let t = telemetry(cwd).build();
            t.record(Event::error("EACCES").prop("phase", "install"));
            eprintln!("error: permission denied");
            t.shutdown();
            std::process::exit(1);
        }
        Command::Serve => {
            let t = telemetry(cwd).build();
            t.record(Event::command_run("serve"));
            // A long-running command need not rely on the exit budget: it flushes as it
            // goes, which also sends what earlier runs left in the outbox.
            t.flush(Duration::from_secs(30));
            println!("served");
        }
        Command::Telemetry(args) => {
            // The builder, not a client: this command records and sends nothing.
            if let Err(e) = args.run(&telemetry(cwd)) {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
    }
}
