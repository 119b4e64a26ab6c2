//! tally: privacy-first usage telemetry for developer tools.
//!
//! A tool (CLI, framework, build tool) embeds this crate to learn which of its features
//! are used, where, and how well — while its users keep control: nothing personal leaves
//! the machine, everything sent can be seen, one obvious switch turns it off, and the
//! tool never gets slower or crashes because of it.
//!
//! ```no_run
//! use std::time::Duration;
//! use tally::{Event, Mode, Telemetry};
//!
//! let telemetry = Telemetry::builder("mytool", env!("CARGO_PKG_VERSION"))
//!     .endpoint("https://telemetry.example.com")
//!     .default_mode(Mode::On)
//!     .runtime("rust", "1.95.0")
//!     .build();
//! telemetry.record(Event::command_run("build").plugins(["sass", "minify"]));
//! telemetry.record(Event::build_finished(Duration::from_millis(1234)).prop("files", 412));
//! telemetry.shutdown(); // or let it drop: waits at most the exit budget (2 ms)
//! ```
//!
//! How it fits together:
//!
//! - [`consent`] decides once per process whether telemetry is `off`, `local` or `on`
//!   and which source decided (policy, `DO_NOT_TRACK`, the project manifest, the user's
//!   choice, the author's default). Off means no file written, no thread, no socket.
//! - [`project`] reads and creates the project id; [`identity`] derives the machine id.
//! - [`Event`] is what the tool records; [`Telemetry::record`] scrubs and checks it on
//!   the caller's thread and queues it without waiting for I/O.
//! - a background thread sends batches to the collector (`POST /v1/batch`), or keeps them
//!   in the [`outbox`] when offline, in local mode, or at exit.
//! - with the `clap` feature, `cli` is the `telemetry` subcommand a tool mounts; with
//!   `testing`, `testing` holds an in-memory sink and assertions.

#![deny(missing_docs)]

mod builder;
pub mod consent;
mod event;
pub mod facts;
pub mod identity;
pub mod outbox;
pub mod project;
mod transport;
mod vars;
mod worker;

#[cfg(feature = "clap")]
pub mod cli;
#[cfg(feature = "testing")]
pub mod testing;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use builder::Builder;
pub use consent::{Decision, Mode, Source};
pub use event::{Event, Value};
pub use facts::Facts;
pub use identity::{MachineId, MachineKind, node_machine_id};
pub use outbox::Outbox;
pub use project::{ManifestKind, Project};
pub use tally_protocol::Env;

use builder::{Paths, Resolved};
use consent::UserConfig;
use event::Sanitizer;
use identity::LocalIdentity;
use worker::Shared;

/// Default exit budget: how long shutdown waits for the sender before writing what is
/// left to the outbox.
pub const DEFAULT_EXIT_BUDGET: Duration = Duration::from_millis(2);

/// The client a tool records events with. Cheap to clone (all clones share one queue);
/// when the last clone is dropped it shuts down as [`Telemetry::shutdown`] does.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("app", &self.inner.resolved.app)
            .field("decision", &self.inner.resolved.decision)
            .field("debug", &self.inner.resolved.debug)
            .finish()
    }
}

struct Inner {
    resolved: Resolved,
    exit_budget: Duration,
    /// `None` when off: nothing is recorded.
    recorder: Option<Recorder>,
    shut_down: AtomicBool,
}

/// What a client that records (mode local or on) holds.
struct Recorder {
    sanitizer: Sanitizer,
    host_props: Vec<(String, tally_protocol::PropValue)>,
    shared: Arc<Shared>,
    worker_started: bool,
    /// This run showed the first-run notice, so it uploads nothing.
    notice_this_run: bool,
}

impl Inner {
    fn shutdown(&self) {
        if self.shut_down.swap(true, Ordering::SeqCst) {
            return;
        }
        let Some(recorder) = &self.recorder else {
            return;
        };
        let shared = &recorder.shared;
        if self.resolved.debug {
            self.print_debug(recorder, shared.take_all());
            shared.warn_dropped();
            return;
        }
        let left = if recorder.worker_started { shared.shutdown(self.exit_budget) } else { shared.take_all() };
        if !left.is_empty()
            && let Some(data) = &self.resolved.paths.data
        {
            let _ = Outbox::new(data).append(shared.context(), &left);
        }
        shared.warn_dropped();
    }

    fn print_debug(&self, recorder: &Recorder, events: Vec<tally_protocol::Event>) {
        let Resolved { app, decision, .. } = &self.resolved;
        if events.is_empty() {
            return;
        }
        let upload = decision.mode == Mode::On;
        for chunk in events.chunks(tally_protocol::limits::MAX_EVENTS_PER_BATCH) {
            let batch = tally_protocol::Batch {
                sent_at: chrono::Utc::now(),
                context: recorder.shared.context().clone(),
                events: chunk.to_vec(),
            };
            let json = serde_json::to_string_pretty(&batch).unwrap_or_default();
            eprintln!(
                "[{app} telemetry debug] mode {} ({}); this payload would be {}; nothing was sent:\n{json}",
                decision.mode,
                decision.source,
                if upload { "sent" } else { "kept locally" }
            );
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What `telemetry status` shows.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Status {
    /// The tool.
    pub app: String,
    /// The resolved mode and who decided it.
    pub decision: Decision,
    /// `<APP>_TELEMETRY_DEBUG` is set: payloads are printed, nothing is sent.
    pub debug: bool,
    /// This run showed the first-run notice, so it uploads nothing.
    pub notice_this_run: bool,
    /// The collector.
    pub endpoint: Option<String>,
    /// The project id and the manifest it was read from.
    pub project: Option<(uuid::Uuid, Option<PathBuf>)>,
    /// The machine id that is (or would be) sent; `None` while telemetry is off and no
    /// identity exists yet (status creates nothing).
    pub machine: Option<MachineId>,
    /// Events waiting in the outbox.
    pub outbox_events: usize,
    /// Batches in the sent-log.
    pub sent_batches: usize,
    /// The user config file.
    pub config_file: Option<PathBuf>,
    /// The outbox directory.
    pub data_dir: Option<PathBuf>,
}

impl Telemetry {
    /// Starts configuring a client for the tool `app` (1-64 characters of `[a-z0-9._-]`,
    /// the name its schema is registered under) at version `version`.
    pub fn builder(app: &str, version: &str) -> Builder {
        Builder::new(app, version)
    }

    /// A client that records nothing.
    pub fn disabled() -> Telemetry {
        Telemetry {
            inner: Arc::new(Inner {
                resolved: Resolved {
                    app: String::new(),
                    decision: Decision { mode: Mode::Off, source: Source::AuthorDefault },
                    debug: false,
                    endpoint: None,
                    project: None,
                    project_id: None,
                    paths: Paths { user_config: None, identity: None, data: None },
                    ci: None,
                },
                exit_budget: Duration::ZERO,
                recorder: None,
                shut_down: AtomicBool::new(true),
            }),
        }
    }

    /// Records an event. Never blocks on I/O, never fails, never panics: when telemetry
    /// is off this returns at once; an invalid event or a full queue drops the event.
    pub fn record(&self, event: Event) {
        let Some(recorder) = &self.inner.recorder else {
            return;
        };
        let Some(mut wire) = recorder.sanitizer.wire(event) else {
            return;
        };
        for (k, v) in &recorder.host_props {
            if wire.props.len() < tally_protocol::limits::MAX_PROPS {
                wire.props.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        recorder.shared.push(wire);
    }

    /// The consent decision of this process.
    pub fn decision(&self) -> &Decision {
        &self.inner.resolved.decision
    }

    /// The resolved mode.
    pub fn mode(&self) -> Mode {
        self.inner.resolved.decision.mode
    }

    /// Whether events are recorded at all (mode local or on).
    pub fn is_enabled(&self) -> bool {
        self.inner.recorder.is_some()
    }

    /// Sends what is queued now and waits up to `timeout` for it to be delivered or safely
    /// stored; `true` when nothing is left in memory. In debug mode, prints the payloads.
    pub fn flush(&self, timeout: Duration) -> bool {
        let Some(recorder) = &self.inner.recorder else {
            return true;
        };
        if self.inner.resolved.debug {
            self.inner.print_debug(recorder, recorder.shared.take_all());
            return true;
        }
        if !recorder.worker_started {
            return false;
        }
        recorder.shared.flush(timeout)
    }

    /// Stops the client: waits at most the exit budget for the sender, then writes what is
    /// unsent to the outbox for a later run. Later `record` calls are ignored. Called
    /// automatically when the last clone is dropped (but not by `std::process::exit`).
    pub fn shutdown(&self) {
        self.inner.shutdown();
    }

    /// The outbox (events waiting, and the sent-log), when there is a data directory.
    pub fn outbox(&self) -> Option<Outbox> {
        self.inner.resolved.paths.data.clone().map(Outbox::new)
    }

    /// What `telemetry status` shows. Reads files, creates none.
    pub fn status(&self) -> Status {
        let i = &self.inner.resolved;
        let identity = i.paths.identity.as_deref().and_then(|p| LocalIdentity::load(p).ok());
        let ci = i.ci;
        let machine = (identity.is_some() || ci.is_some() || identity::os_machine_id().is_some())
            .then(|| identity::machine_id(&i.app, ci, identity.as_ref()));
        let outbox = self.outbox();
        Status {
            app: i.app.clone(),
            decision: i.decision.clone(),
            debug: i.debug,
            notice_this_run: self.inner.recorder.as_ref().is_some_and(|r| r.notice_this_run),
            endpoint: i.endpoint.clone(),
            project: i.project_id.map(|id| (id, i.project.as_ref().map(|p| p.manifest.clone()))),
            machine,
            outbox_events: outbox.as_ref().and_then(|o| o.len().ok()).unwrap_or(0),
            sent_batches: outbox.as_ref().and_then(|o| o.sent().ok()).map_or(0, |s| s.len()),
            config_file: i.paths.user_config.clone(),
            data_dir: i.paths.data.clone(),
        }
    }

    /// Saves the user's choice (`telemetry enable|disable|local`) and marks the notice as
    /// seen. Choosing off also deletes the outbox and sent-log. Returns the config file.
    /// The choice applies from the next run, and only where no earlier consent source
    /// (policy, `DO_NOT_TRACK`, the project) decides.
    pub fn set_choice(&self, mode: Mode) -> io::Result<PathBuf> {
        let path = self.inner.resolved.paths.user_config.clone().ok_or_else(no_home)?;
        let mut config = UserConfig::load(&path).unwrap_or_default();
        config.telemetry = Some(mode);
        config.notice_shown = true;
        config.save(&path)?;
        if mode == Mode::Off
            && let Some(o) = self.outbox()
            && o.dir().exists()
        {
            o.clear()?;
        }
        Ok(path)
    }

    /// A new identity: new install id, new salt, a new machine hash, and the outbox and
    /// sent-log emptied.
    pub fn reset(&self) -> io::Result<()> {
        let path = self.inner.resolved.paths.identity.clone().ok_or_else(no_home)?;
        LocalIdentity::random(true).write(&path, true)?;
        if let Some(o) = self.outbox()
            && o.dir().exists()
        {
            o.clear()?;
        }
        Ok(())
    }

    /// The tool's name.
    pub fn app(&self) -> &str {
        &self.inner.resolved.app
    }
}

fn no_home() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "no home directory: set HOME (or XDG_CONFIG_HOME)")
}

/// Creates the project id for a tool that creates projects; see [`project::create`].
pub fn create_project_id(dir: &Path, app: &str, kind: ManifestKind) -> io::Result<uuid::Uuid> {
    project::create(dir, app, kind)
}
