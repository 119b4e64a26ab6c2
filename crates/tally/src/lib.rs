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

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use consent::{Decision, Mode, Source};
pub use event::{Event, Value};
pub use facts::Facts;
pub use identity::{MachineId, MachineKind, node_machine_id};
pub use outbox::Outbox;
pub use project::{ManifestKind, Project};
pub use tally_protocol::Env;

use consent::{ProjectInput, UserConfig};
use event::Sanitizer;
use identity::LocalIdentity;
use transport::{Timeouts, Transport};
use vars::{Vars, app_prefix};
use worker::{Shared, Worker};

/// Default exit budget: how long shutdown waits for the sender before writing what is
/// left to the outbox.
pub const DEFAULT_EXIT_BUDGET: Duration = Duration::from_millis(2);

/// Configures a [`Telemetry`] client. Every setting has a default; `build` never fails.
#[derive(Debug, Clone)]
#[must_use]
pub struct Builder {
    app: String,
    app_version: String,
    endpoint: Option<String>,
    default_mode: Mode,
    exit_budget: Duration,
    project_dir: Option<PathBuf>,
    project_id: Option<uuid::Uuid>,
    env: Option<Env>,
    runtime: String,
    runtime_version: String,
    host_facts: bool,
    known_plugins: Option<HashSet<String>>,
    queue_capacity: usize,
    batch_size: usize,
    flush_interval: Duration,
    connect_timeout: Duration,
    total_timeout: Duration,
    config_dir: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    policy_path: Option<PathBuf>,
    notice: Option<String>,
    vars: Vars,
    #[cfg(feature = "testing")]
    sink: Option<testing::MemorySink>,
}

impl Builder {
    fn new(app: &str, app_version: &str) -> Builder {
        Builder {
            app: app.to_string(),
            app_version: app_version.to_string(),
            endpoint: None,
            default_mode: Mode::On,
            exit_budget: DEFAULT_EXIT_BUDGET,
            project_dir: None,
            project_id: None,
            env: None,
            runtime: "rust".to_string(),
            runtime_version: String::new(),
            host_facts: false,
            known_plugins: None,
            queue_capacity: 1000,
            batch_size: 100,
            flush_interval: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(3),
            total_timeout: Duration::from_secs(10),
            config_dir: None,
            data_dir: None,
            policy_path: None,
            notice: None,
            vars: Vars::process(),
            #[cfg(feature = "testing")]
            sink: None,
        }
    }

    /// The collector's base URL (`https://telemetry.example.com`) or full batch URL.
    /// Without one, nothing is uploaded (mode `on` behaves like `local`).
    pub fn endpoint(mut self, url: impl Into<String>) -> Builder {
        self.endpoint = Some(url.into());
        self
    }

    /// The author's default when no other source decides: [`Mode::On`] (default),
    /// [`Mode::Off`] (opt-in: only users who run `telemetry enable` take part) or
    /// [`Mode::Local`].
    pub fn default_mode(mut self, mode: Mode) -> Builder {
        self.default_mode = mode;
        self
    }

    /// How long shutdown waits for the sender (default [`DEFAULT_EXIT_BUDGET`]); what is
    /// unsent then goes to the outbox and is sent by a later run.
    pub fn exit_budget(mut self, budget: Duration) -> Builder {
        self.exit_budget = budget;
        self
    }

    /// Where to look for the project manifest (default: the current directory; parent
    /// directories are searched too).
    pub fn project_dir(mut self, dir: impl Into<PathBuf>) -> Builder {
        self.project_dir = Some(dir.into());
        self
    }

    /// The project id, for tools that keep it themselves; no manifest is read.
    pub fn project_id(mut self, id: uuid::Uuid) -> Builder {
        self.project_id = Some(id);
        self
    }

    /// The environment, when the tool knows it (e.g. `serve --production`). Otherwise
    /// `<APP>_ENV`, `NODE_ENV`, `APP_ENV`, `RAILS_ENV`, `ENVIRONMENT` are read.
    pub fn env(mut self, env: Env) -> Builder {
        self.env = Some(env);
        self
    }

    /// The runtime and its version (default `rust` with no version).
    pub fn runtime(mut self, name: &str, version: &str) -> Builder {
        self.runtime = name.to_string();
        self.runtime_version = version.to_string();
        self
    }

    /// Adds the coarse hardware size to every event as the int properties `host.cpus`
    /// and `host.memory_gb` (declare them in the app's schema). Off by default.
    pub fn host_facts(mut self, on: bool) -> Builder {
        self.host_facts = on;
        self
    }

    /// The plugin and feature names that may be sent as they are; any other name is sent
    /// as a salted hash. Without a list, every well-formed name is sent as is.
    pub fn known_plugins<I, S>(mut self, names: I) -> Builder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.known_plugins = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Most events held in memory (default 1000); more are dropped with one warning.
    pub fn queue_capacity(mut self, n: usize) -> Builder {
        self.queue_capacity = n.max(1);
        self
    }

    /// Events per batch (default 100, at most the protocol's 500) and how long the first
    /// queued event waits for others (default 1 s).
    pub fn batching(mut self, size: usize, interval: Duration) -> Builder {
        self.batch_size = size.clamp(1, tally_protocol::limits::MAX_EVENTS_PER_BATCH);
        self.flush_interval = interval;
        self
    }

    /// Connect and total timeouts of one request (defaults 3 s and 10 s).
    pub fn timeouts(mut self, connect: Duration, total: Duration) -> Builder {
        self.connect_timeout = connect;
        self.total_timeout = total;
        self
    }

    /// The directory of this tool's user config and identity (default
    /// `<config dir>/tally/<app>`, e.g. `~/.config/tally/<app>`).
    pub fn config_dir(mut self, dir: impl Into<PathBuf>) -> Builder {
        self.config_dir = Some(dir.into());
        self
    }

    /// The directory of this tool's outbox and sent-log (default
    /// `<local data dir>/tally/<app>`, e.g. `~/.local/share/tally/<app>`).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Builder {
        self.data_dir = Some(dir.into());
        self
    }

    /// The organisation policy file (default: `TALLY_POLICY`, else
    /// `/etc/tally/policy.toml`). A named file that is missing means off.
    pub fn policy_path(mut self, path: impl Into<PathBuf>) -> Builder {
        self.policy_path = Some(path.into());
        self
    }

    /// The first-run notice text, replacing the default one.
    pub fn notice(mut self, text: impl Into<String>) -> Builder {
        self.notice = Some(text.into());
        self
    }

    /// Reads environment variables from this list instead of the process environment
    /// (tests: a developer's `DO_NOT_TRACK` or CI variables must not change the outcome).
    #[cfg(feature = "testing")]
    pub fn vars<I, K, V>(mut self, vars: I) -> Builder
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.vars = Vars::fixed(vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect());
        self
    }

    /// Delivers to an in-memory sink instead of the network.
    #[cfg(feature = "testing")]
    pub fn sink(mut self, sink: testing::MemorySink) -> Builder {
        self.sink = Some(sink);
        self
    }

    fn paths(&self) -> Paths {
        let base = |d: Option<PathBuf>| d.map(|d| d.join("tally").join(&self.app));
        let config = self.config_dir.clone().or_else(|| base(dirs::config_dir()));
        let data = self.data_dir.clone().or_else(|| base(dirs::data_local_dir()));
        Paths {
            user_config: config.as_ref().map(|c| c.join("config.toml")),
            identity: config.map(|c| c.join("identity.toml")),
            data,
        }
    }

    /// Resolves consent and starts the client. Never fails: anything that goes wrong
    /// leaves telemetry off or local.
    pub fn build(self) -> Telemetry {
        let paths = self.paths();
        let valid_app = tally_protocol::validate::is_name(&self.app);
        let project = match self.project_id {
            Some(_) => None,
            None => {
                let start = self.project_dir.clone().or_else(|| std::env::current_dir().ok()).unwrap_or_default();
                project::find(&start, &self.app)
            }
        };
        let decision = if valid_app {
            consent::resolve(&consent::Inputs {
                app: &self.app,
                vars: &self.vars,
                policy_path: self.policy_path.as_deref(),
                project: match (&self.project_id, &project) {
                    (Some(_), _) => ProjectInput::Given,
                    (None, Some(p)) => ProjectInput::Found(p),
                    (None, None) => ProjectInput::Missing,
                },
                user_config: paths.user_config.as_deref(),
                default: self.default_mode,
            })
        } else {
            Decision { mode: Mode::Off, source: Source::AuthorDefault }
        };
        let project_id = self.project_id.or(project.as_ref().and_then(|p| p.id));
        let debug = self.vars.flag(&format!("{}_TELEMETRY_DEBUG", app_prefix(&self.app)));
        let ci = facts::ci_vendor(&self.vars);
        let mut inner = Inner {
            app: self.app.clone(),
            decision,
            debug,
            notice_this_run: false,
            endpoint: self.endpoint.clone(),
            project,
            project_id,
            paths,
            exit_budget: self.exit_budget,
            sanitizer: Sanitizer::default(),
            shared: None,
            host_props: Vec::new(),
            worker_started: false,
            shut_down: AtomicBool::new(false),
            ci,
        };
        let (Some(project_id), true) = (project_id, inner.decision.mode != Mode::Off) else {
            if debug {
                eprintln!("[{} telemetry] off (decided by {}); nothing is recorded", self.app, inner.decision.source);
            }
            return Telemetry { inner: Arc::new(inner) };
        };

        // From here on telemetry is local or on: files may be written.
        let identity = inner
            .paths
            .identity
            .as_deref()
            .and_then(|p| if debug { LocalIdentity::load(p).ok() } else { LocalIdentity::load_or_create(p).ok() });
        inner.sanitizer = Sanitizer {
            salt: identity
                .as_ref()
                .map(LocalIdentity::salt_bytes)
                .unwrap_or_else(|| LocalIdentity::random(false).salt_bytes()),
            known_plugins: self.known_plugins.clone(),
        };
        let facts = Facts::gather(&self.vars, self.host_facts);
        if self.host_facts {
            inner.host_props = [("host.cpus", facts.cpus), ("host.memory_gb", facts.memory_gb)]
                .into_iter()
                .filter_map(|(k, v)| Some((k.to_string(), tally_protocol::PropValue::Int(v? as i64))))
                .collect();
        }
        let env = self.env.unwrap_or_else(|| facts::detect_env(&self.vars, &self.app));
        let parts = ContextParts {
            app: self.app.clone(),
            app_version: self.app_version.clone(),
            project: project_id,
            env,
            facts,
            runtime: self.runtime.clone(),
            runtime_version: self.runtime_version.clone(),
            identity,
        };
        let mut upload = inner.decision.mode == Mode::On;
        if upload && !debug && inner.decision.source == Source::AuthorDefault && ci.is_none() {
            upload = !inner.show_notice(self.notice.as_deref());
        }
        let outbox = inner.paths.data.clone().map(Outbox::new);
        let transport = if !upload || debug {
            None
        } else {
            #[cfg(feature = "testing")]
            let sink = self.sink.clone().map(Transport::Memory);
            #[cfg(not(feature = "testing"))]
            let sink: Option<Transport> = None;
            sink.or_else(|| {
                self.endpoint.as_deref().map(|e| {
                    Transport::http(
                        e,
                        &format!(
                            "tally/{} {}/{}",
                            env!("CARGO_PKG_VERSION"),
                            self.app,
                            token(&self.app_version, "unknown")
                        ),
                        Timeouts { connect: self.connect_timeout, total: self.total_timeout },
                    )
                })
            })
        };
        let drain = transport.is_some() && outbox.as_ref().is_some_and(|o| o.dir().join("outbox.jsonl").exists());
        let shared = Arc::new(Shared::new(
            &self.app,
            self.queue_capacity,
            self.batch_size,
            drain,
            Box::new(move || parts.context()),
        ));
        if !debug {
            let worker = Worker {
                shared: shared.clone(),
                transport,
                outbox,
                flush_interval: self.flush_interval,
                drain_outbox: drain,
            };
            inner.worker_started = worker.spawn(&self.app);
        }
        inner.shared = Some(shared);
        Telemetry { inner: Arc::new(inner) }
    }
}

/// The client a tool records events with. Cheap to clone (all clones share one queue);
/// when the last clone is dropped it shuts down as [`Telemetry::shutdown`] does.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("app", &self.inner.app)
            .field("decision", &self.inner.decision)
            .field("debug", &self.inner.debug)
            .finish()
    }
}

struct Paths {
    user_config: Option<PathBuf>,
    identity: Option<PathBuf>,
    data: Option<PathBuf>,
}

struct Inner {
    app: String,
    decision: Decision,
    debug: bool,
    notice_this_run: bool,
    endpoint: Option<String>,
    project: Option<Project>,
    project_id: Option<uuid::Uuid>,
    paths: Paths,
    exit_budget: Duration,
    sanitizer: Sanitizer,
    /// `None` when off: nothing is queued.
    shared: Option<Arc<Shared>>,
    host_props: Vec<(String, tally_protocol::PropValue)>,
    worker_started: bool,
    shut_down: AtomicBool,
    ci: Option<&'static str>,
}

struct ContextParts {
    app: String,
    app_version: String,
    project: uuid::Uuid,
    env: Env,
    facts: Facts,
    runtime: String,
    runtime_version: String,
    identity: Option<LocalIdentity>,
}

impl ContextParts {
    fn context(&self) -> tally_protocol::Context {
        let machine = identity::machine_id(&self.app, self.facts.ci.as_deref(), self.identity.as_ref());
        tally_protocol::Context {
            app: self.app.clone(),
            app_version: token(&self.app_version, "unknown"),
            project: self.project,
            machine: machine.hash,
            env: self.env,
            os: token(&self.facts.os, "unknown"),
            os_version: token(&self.facts.os_version, ""),
            arch: token(&self.facts.arch, "unknown"),
            runtime: token(&self.runtime, "unknown"),
            runtime_version: token(&self.runtime_version, ""),
            ci: self.facts.ci.clone(),
            container: self.facts.container,
        }
    }
}

/// `s` cut to what the protocol accepts in versions and names: `[A-Za-z0-9._:+-]`, 64 bytes.
fn token(s: &str, empty: &str) -> String {
    let t: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "._:+-".contains(*c))
        .take(tally_protocol::limits::MAX_NAME_LEN)
        .collect();
    if t.is_empty() { empty.to_string() } else { t }
}

impl Inner {
    /// Prints the first-run notice unless this machine has seen it; `true` when printed.
    /// Without a config directory (no `HOME`) the notice cannot be remembered, so every
    /// run shows it and none uploads.
    fn show_notice(&mut self, custom: Option<&str>) -> bool {
        let path = self.paths.user_config.clone();
        let mut config = path.as_deref().and_then(|p| UserConfig::load(p).ok()).unwrap_or_default();
        if config.notice_shown {
            return false;
        }
        let app = &self.app;
        let text = custom.map(str::to_string).unwrap_or_else(|| {
            format!(
                "Attention: {app} collects anonymous usage data (commands, features, versions, \
                 OS) to improve the tool. Nothing personal is collected and nothing is sent \
                 during this run.\n  See what is kept:  {app} telemetry show\n  Opt out:           \
                 {app} telemetry disable   (or DO_NOT_TRACK=1)"
            )
        });
        eprintln!("{text}");
        config.notice_shown = true;
        if let Some(path) = path {
            let _ = config.save(&path);
        }
        self.notice_this_run = true;
        true
    }

    fn shutdown(&self) {
        if self.shut_down.swap(true, Ordering::SeqCst) {
            return;
        }
        let Some(shared) = &self.shared else {
            return;
        };
        if self.debug {
            self.print_debug(shared.take_all());
            shared.warn_dropped();
            return;
        }
        let left = if self.worker_started { shared.shutdown(self.exit_budget) } else { shared.take_all() };
        if !left.is_empty()
            && let Some(data) = &self.paths.data
        {
            let _ = Outbox::new(data).append(shared.context(), &left);
        }
        shared.warn_dropped();
    }

    fn print_debug(&self, events: Vec<tally_protocol::Event>) {
        let Some(shared) = &self.shared else {
            return;
        };
        let app = &self.app;
        if events.is_empty() {
            return;
        }
        let upload = self.decision.mode == Mode::On;
        for chunk in events.chunks(tally_protocol::limits::MAX_EVENTS_PER_BATCH) {
            let batch = tally_protocol::Batch {
                sent_at: chrono::Utc::now(),
                context: shared.context().clone(),
                events: chunk.to_vec(),
            };
            let json = serde_json::to_string_pretty(&batch).unwrap_or_default();
            eprintln!(
                "[{app} telemetry debug] mode {} ({}); this payload would be {}; nothing was sent:\n{json}",
                self.decision.mode,
                self.decision.source,
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
                app: String::new(),
                decision: Decision { mode: Mode::Off, source: Source::AuthorDefault },
                debug: false,
                notice_this_run: false,
                endpoint: None,
                project: None,
                project_id: None,
                paths: Paths { user_config: None, identity: None, data: None },
                exit_budget: Duration::ZERO,
                sanitizer: Sanitizer::default(),
                shared: None,
                host_props: Vec::new(),
                worker_started: false,
                shut_down: AtomicBool::new(true),
                ci: None,
            }),
        }
    }

    /// Records an event. Never blocks on I/O, never fails, never panics: when telemetry
    /// is off this returns at once; an invalid event or a full queue drops the event.
    pub fn record(&self, event: Event) {
        let Some(shared) = &self.inner.shared else {
            return;
        };
        let Some(mut wire) = self.inner.sanitizer.wire(event) else {
            return;
        };
        for (k, v) in &self.inner.host_props {
            if wire.props.len() < tally_protocol::limits::MAX_PROPS {
                wire.props.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        shared.push(wire);
    }

    /// The consent decision of this process.
    pub fn decision(&self) -> &Decision {
        &self.inner.decision
    }

    /// The resolved mode.
    pub fn mode(&self) -> Mode {
        self.inner.decision.mode
    }

    /// Whether events are recorded at all (mode local or on).
    pub fn is_enabled(&self) -> bool {
        self.inner.shared.is_some()
    }

    /// Sends what is queued now and waits up to `timeout` for it to be delivered or safely
    /// stored; `true` when nothing is left in memory. In debug mode, prints the payloads.
    pub fn flush(&self, timeout: Duration) -> bool {
        let Some(shared) = &self.inner.shared else {
            return true;
        };
        if self.inner.debug {
            self.inner.print_debug(shared.take_all());
            return true;
        }
        if !self.inner.worker_started {
            return false;
        }
        shared.flush(timeout)
    }

    /// Stops the client: waits at most the exit budget for the sender, then writes what is
    /// unsent to the outbox for a later run. Later `record` calls are ignored. Called
    /// automatically when the last clone is dropped (but not by `std::process::exit`).
    pub fn shutdown(&self) {
        self.inner.shutdown();
    }

    /// The outbox (events waiting, and the sent-log), when there is a data directory.
    pub fn outbox(&self) -> Option<Outbox> {
        self.inner.paths.data.clone().map(Outbox::new)
    }

    /// What `telemetry status` shows. Reads files, creates none.
    pub fn status(&self) -> Status {
        let i = &self.inner;
        let identity = i.paths.identity.as_deref().and_then(|p| LocalIdentity::load(p).ok());
        let ci = i.ci;
        let machine = (identity.is_some() || ci.is_some() || identity::os_machine_id().is_some())
            .then(|| identity::machine_id(&i.app, ci, identity.as_ref()));
        let outbox = self.outbox();
        Status {
            app: i.app.clone(),
            decision: i.decision.clone(),
            debug: i.debug,
            notice_this_run: i.notice_this_run,
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
        let path = self.inner.paths.user_config.clone().ok_or_else(no_home)?;
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
        let path = self.inner.paths.identity.clone().ok_or_else(no_home)?;
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
        &self.inner.app
    }
}

fn no_home() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "no home directory: set HOME (or XDG_CONFIG_HOME)")
}

/// Creates the project id for a tool that creates projects; see [`project::create`].
pub fn create_project_id(dir: &Path, app: &str, kind: ManifestKind) -> io::Result<uuid::Uuid> {
    project::create(dir, app, kind)
}
