//! The `telemetry` subcommand for host CLIs (feature `clap`).
//!
//! It takes the tool's [`Builder`], not a client: it works on the user's settings and
//! files through [`Builder::controls`], so it never records, never starts the sender and
//! never sends, not even the outbox the user is about to delete. Mount it in one line,
//! with clap's derive API:
//!
//! ```
//! # use clap::{Parser, Subcommand};
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(subcommand)]
//!     command: Command,
//! }
//! #[derive(Subcommand)]
//! enum Command {
//!     /// See and change what this tool's telemetry does
//!     Telemetry(tally::cli::TelemetryArgs),
//!     // ... the tool's own commands
//! }
//! # let cli = Cli::parse_from(["tool", "telemetry", "status"]);
//! let telemetry = tally::Telemetry::builder("tool", "1.0.0").endpoint("https://telemetry.example.com");
//! match cli.command {
//!     // The builder, not `telemetry.build()`: nothing is started.
//!     Command::Telemetry(args) => args.run(&telemetry).unwrap(),
//!     // other commands: `let t = telemetry.build(); t.record(…);`
//! }
//! ```
//!
//! or with clap's builder API: `.subcommand(tally::cli::command())` and
//! `tally::cli::run(&telemetry, sub_matches)`.

use std::io::{self, Write};

use clap::{ArgMatches, Args, FromArgMatches, Subcommand};

use crate::{Builder, Controls, Mode, Source};

/// Arguments of the `telemetry` subcommand; without a subcommand it shows the status.
#[derive(Debug, Clone, Args)]
#[non_exhaustive]
pub struct TelemetryArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: Option<TelemetryCommand>,
}

/// The `telemetry` subcommands.
#[derive(Debug, Clone, Subcommand)]
#[non_exhaustive]
pub enum TelemetryCommand {
    /// Show whether telemetry is on, who decided, the ids sent and the outbox
    Status {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Send anonymous usage data (from the next run)
    Enable,
    /// Send nothing and keep nothing; deletes the unsent events, the sent-log and the install id
    Disable,
    /// Keep events on this machine only, where `show` lists them; send nothing
    Local,
    /// Show the events waiting to be sent and those sent recently
    Show {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Start over with a new install id and salt; empties the outbox
    Reset,
}

/// The subcommand for clap's builder API, named `telemetry`.
pub fn command() -> clap::Command {
    TelemetryArgs::augment_args(clap::Command::new("telemetry").about("See and change what this tool's telemetry does"))
}

/// Runs the subcommand from its matches (clap's builder API).
pub fn run(telemetry: &Builder, matches: &ArgMatches) -> io::Result<()> {
    let args = TelemetryArgs::from_arg_matches(matches)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    args.run(telemetry)
}

impl TelemetryArgs {
    /// Runs the subcommand for the tool `telemetry` configures, printing to stdout. Builds
    /// no client: nothing is recorded or sent.
    pub fn run(&self, telemetry: &Builder) -> io::Result<()> {
        self.run_to(telemetry, &mut io::stdout().lock())
    }

    /// Runs the subcommand, printing to `out`.
    pub fn run_to(&self, telemetry: &Builder, out: &mut dyn Write) -> io::Result<()> {
        let t = &telemetry.controls();
        match self.command.clone().unwrap_or(TelemetryCommand::Status { json: false }) {
            TelemetryCommand::Status { json } => status(t, json, out),
            TelemetryCommand::Enable => choose(t, Mode::On, out),
            TelemetryCommand::Disable => choose(t, Mode::Off, out),
            TelemetryCommand::Local => choose(t, Mode::Local, out),
            TelemetryCommand::Show { json } => show(t, json, out),
            TelemetryCommand::Reset => {
                t.reset()?;
                writeln!(out, "{}: new install id and salt created; outbox and sent-log emptied", t.command())
            }
        }
    }
}

fn status(t: &Controls, json: bool, out: &mut dyn Write) -> io::Result<()> {
    let s = t.status();
    if json {
        let v = serde_json::json!({
            "app": s.app,
            "mode": s.decision.mode.as_str(),
            "source": s.decision.source.key(),
            "source_detail": s.decision.source.to_string(),
            "debug": s.debug,
            "endpoint": s.endpoint,
            "project": s.project.as_ref().map(|(id, _)| id.to_string()),
            "manifest": s.project.as_ref().and_then(|(_, m)| m.as_ref()).map(|m| m.display().to_string()),
            "machine": s.machine.as_ref().map(|m| m.hash.clone()),
            "machine_kind": s.machine.as_ref().map(|m| m.kind.key()),
            "outbox_events": s.outbox_events,
            "sent_batches": s.sent_batches,
            "config_file": s.config_file.as_ref().map(|p| p.display().to_string()),
            "data_dir": s.data_dir.as_ref().map(|p| p.display().to_string()),
        });
        return writeln!(out, "{}", serde_json::to_string_pretty(&v)?);
    }
    writeln!(out, "telemetry: {} (decided by {})", s.decision.mode, s.decision.source)?;
    if s.debug {
        writeln!(out, "  debug: payloads are printed, nothing is sent")?;
    }
    if let Some(e) = &s.endpoint {
        writeln!(out, "endpoint: {e}")?;
    }
    match &s.project {
        Some((id, Some(m))) => writeln!(out, "project: {id} (from {})", m.display())?,
        Some((id, None)) => writeln!(out, "project: {id} (set by the tool)")?,
        None => writeln!(out, "project: none (no uuid in the project's manifest)")?,
    }
    if let Some(m) = &s.machine {
        let from = match &m.kind {
            crate::MachineKind::Os => "keyed hash of the OS machine id".to_string(),
            crate::MachineKind::InstallId => "keyed hash of a random install id".to_string(),
            crate::MachineKind::Ci { vendor } => format!("shared by every {vendor} CI run"),
            _ => "not stored".to_string(),
        };
        writeln!(out, "machine: {} ({from})", m.hash)?;
    }
    writeln!(
        out,
        "outbox: {} waiting, {} sent recently (see `{} telemetry show`)",
        plural(s.outbox_events, "event", "events"),
        plural(s.sent_batches, "batch", "batches"),
        s.command
    )?;
    if let Some(c) = &s.config_file {
        writeln!(out, "config: {}", c.display())?;
    }
    Ok(())
}

fn choose(t: &Controls, mode: Mode, out: &mut dyn Write) -> io::Result<()> {
    let choice = t.set_choice(mode)?;
    let what = match mode {
        Mode::Off => "disabled: nothing is recorded, kept or sent",
        Mode::Local => "local: events are kept on this machine only",
        _ => "enabled: anonymous usage data is sent",
    };
    writeln!(out, "{} telemetry {what} (saved in {})", t.command(), choice.config_file.display())?;
    if mode == Mode::Off {
        match choice.deleted_events {
            0 => writeln!(out, "no unsent events were waiting")?,
            n => writeln!(
                out,
                "deleted the outbox: {}, which will never be sent",
                plural(n, "unsent event", "unsent events")
            )?,
        }
        if let Some(p) = &choice.deleted_identity {
            writeln!(out, "deleted the install id and salt ({})", p.display())?;
        }
    }
    let d = t.decision();
    let overridden = matches!(
        d.source,
        Source::Policy { .. }
            | Source::DoNotTrack
            | Source::AppVariable { .. }
            | Source::NoProjectId
            | Source::ProjectManifest { .. }
    );
    if overridden && d.mode != mode {
        writeln!(out, "note: {} decides before your choice here, so telemetry stays {}", d.source, d.mode)?;
    }
    Ok(())
}

fn show(t: &Controls, json: bool, out: &mut dyn Write) -> io::Result<()> {
    let Some(outbox) = t.outbox() else {
        return writeln!(out, "no data directory (HOME is not set): nothing is kept");
    };
    let queued = outbox.chunks()?;
    let sent = outbox.sent()?;
    if json {
        let v = serde_json::json!({ "queued": queued, "sent": sent });
        return writeln!(out, "{}", serde_json::to_string_pretty(&v)?);
    }
    let n: usize = queued.iter().map(|c| c.events.len()).sum();
    writeln!(out, "{} waiting in {}", plural(n, "event", "events"), outbox.dir().join("outbox.jsonl").display())?;
    for c in &queued {
        writeln!(out, "  with {}", serde_json::to_string(&c.context)?)?;
        for e in &c.events {
            writeln!(out, "    {}", serde_json::to_string(e)?)?;
        }
    }
    writeln!(out, "{} sent recently:", plural(sent.len(), "batch", "batches"))?;
    for r in &sent {
        let dropped = match r.dropped_props {
            0 => String::new(),
            n => format!("; {} dropped by the collector: not in the app's schema", plural(n, "property", "properties")),
        };
        writeln!(
            out,
            "  {} — {} (accepted {}, duplicate {}, rejected {}{dropped})",
            r.sent_at.to_rfc3339(),
            plural(r.events.len(), "event", "events"),
            r.accepted,
            r.duplicate,
            r.rejected
        )?;
        for e in &r.events {
            writeln!(out, "    {}", serde_json::to_string(e)?)?;
        }
    }
    Ok(())
}

/// `1 batch`, `2 batches`.
fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
