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
//! - [`Controls`] (from [`Builder::controls`]) shows and changes the user's side: status,
//!   choice, outbox, reset, without building a client. With the `clap` feature, `cli` is
//!   the `telemetry` subcommand a tool mounts on top of it; with `testing`, `testing`
//!   holds an in-memory sink and assertions.

#![deny(missing_docs)]

mod builder;
pub mod consent;
mod controls;
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
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub use builder::Builder;
pub use consent::{Decision, Mode, Source};
pub use controls::{Choice, Controls, Status};
pub use event::{Event, Value};
pub use facts::Facts;
pub use identity::{MachineId, MachineKind, node_machine_id};
pub use outbox::Outbox;
pub use project::{ManifestKind, Project};
pub use tally_protocol::Env;

use builder::{Paths, Resolved};
use event::Sanitizer;
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
    /// How this client was built, to build the client of a project it creates.
    builder: Option<Builder>,
    /// The client of the project created through [`Telemetry::create_project_id`]: it
    /// records from then on.
    adopted: OnceLock<Telemetry>,
}

/// What a client that records (mode local or on) holds.
struct Recorder {
    sanitizer: Sanitizer,
    host_props: Vec<(String, tally_protocol::PropValue)>,
    shared: Arc<Shared>,
    worker_started: bool,
}

impl Inner {
    fn shutdown(&self) {
        if let Some(t) = self.adopted.get() {
            t.shutdown();
        }
        if self.shut_down.swap(true, Ordering::SeqCst) {
            return;
        }
        let Some(recorder) = &self.recorder else {
            return;
        };
        // One budget for the whole shutdown: waiting for the sender and taking the lock.
        let deadline = Instant::now() + self.exit_budget;
        let shared = &recorder.shared;
        if self.resolved.debug {
            self.print_debug(recorder, shared.take_all());
            shared.warn_dropped();
            return;
        }
        let left = if recorder.worker_started {
            shared.shutdown(self.exit_budget)
        } else {
            worker::Left { queued: shared.take_all(), ..Default::default() }
        };
        let any = !(left.queued.is_empty() && left.posted.is_empty() && left.posted_old.is_empty());
        if any && let Some(data) = &self.resolved.paths.data {
            // Appends only, and waits for the lock no longer than what is left of the
            // budget (a spent budget tries once, then writes a spill file): the exit cost
            // does not depend on what the outbox holds.
            let _ = Outbox::new(data).append_at_exit(
                shared.context(),
                &left.queued,
                &left.posted,
                &left.posted_old,
                deadline.saturating_duration_since(Instant::now()),
            );
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
                    command: String::new(),
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
                builder: None,
                adopted: OnceLock::new(),
            }),
        }
    }

    /// Records an event. Never blocks on I/O, never fails, never panics: when telemetry
    /// is off this returns at once; an invalid event or a full queue drops the event.
    pub fn record(&self, event: Event) {
        if let Some(t) = self.inner.adopted.get() {
            return t.record(event);
        }
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
        match self.inner.adopted.get() {
            Some(t) => t.decision(),
            None => &self.inner.resolved.decision,
        }
    }

    /// The resolved mode.
    pub fn mode(&self) -> Mode {
        self.decision().mode
    }

    /// Whether events are recorded at all (mode local or on).
    pub fn is_enabled(&self) -> bool {
        self.inner.adopted.get().map_or(self.inner.recorder.is_some(), Telemetry::is_enabled)
    }

    /// Creates the project id in `dir` (see [`project::create`]) and records for that
    /// project from now on: a tool that builds its client at the top of `main`, before its
    /// `new` command creates the project, still records `project.created` (the client was
    /// off, or recording for another project, until then). Once per client: a second call
    /// writes the id but leaves the client as it is.
    pub fn create_project_id(&self, dir: &Path, kind: ManifestKind) -> io::Result<uuid::Uuid> {
        let id = project::create(dir, &self.inner.resolved.app, kind)?;
        if let Some(builder) = &self.inner.builder
            && self.inner.resolved.project_id != Some(id)
            && !self.inner.shut_down.load(Ordering::SeqCst)
            && self.inner.adopted.get().is_none()
        {
            let _ = self.inner.adopted.set(builder.clone().project_dir(dir).project_id(id).build());
        }
        Ok(id)
    }

    /// Sends what is queued now and waits up to `timeout` for it to be delivered or safely
    /// stored; `true` when nothing is left in memory. In debug mode, prints the payloads.
    pub fn flush(&self, timeout: Duration) -> bool {
        if let Some(t) = self.inner.adopted.get() {
            return t.flush(timeout);
        }
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

    /// The tool's name.
    pub fn app(&self) -> &str {
        &self.inner.resolved.app
    }

    /// The command users type ([`Builder::command`]).
    pub fn command(&self) -> &str {
        &self.inner.resolved.command
    }
}

/// Creates the project id for a tool that creates projects; see [`project::create`]. A
/// client built before this call does not see the new project: use
/// [`Telemetry::create_project_id`] when the tool already has a client.
pub fn create_project_id(dir: &Path, app: &str, kind: ManifestKind) -> io::Result<uuid::Uuid> {
    project::create(dir, app, kind)
}
