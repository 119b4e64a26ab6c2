//! The builder: every setting of a client, and `build`, which turns them into a running
//! client in three steps: consent (which files, which project, who decides), identity (the
//! salt and machine id, created only when telemetry is local or on) and the worker (the
//! first-run notice, the transport and the sender thread).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tally_protocol::{Env, PropValue};

use crate::consent::{self, Decision, Mode, ProjectInput, Source, UserConfig};
use crate::event::Sanitizer;
use crate::facts::{self, Facts};
use crate::identity::{self, LocalIdentity};
use crate::outbox::Outbox;
use crate::project::{self, Project};
#[cfg(feature = "testing")]
use crate::testing;
use crate::transport::{Timeouts, Transport};
use crate::vars::{Vars, app_prefix};
use crate::worker::{Shared, Worker};
use crate::{DEFAULT_EXIT_BUDGET, Inner, Recorder, Telemetry};

/// Configures a [`Telemetry`] client. Every setting has a default; `build` never fails.
#[derive(Debug, Clone)]
#[must_use]
pub struct Builder {
    app: String,
    command: Option<String>,
    env_prefix: Option<String>,
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
    resend_after: Duration,
    connect_timeout: Duration,
    total_timeout: Duration,
    pub(crate) config_dir: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    policy_path: Option<PathBuf>,
    notice: Option<String>,
    vars: Vars,
    #[cfg(feature = "testing")]
    sink: Option<testing::MemorySink>,
}

impl Builder {
    pub(crate) fn new(app: &str, app_version: &str) -> Builder {
        Builder {
            app: app.to_string(),
            command: None,
            env_prefix: None,
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
            resend_after: crate::outbox::DEFAULT_RESEND_AFTER,
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

    /// The command users type (default: the app id), named by the first-run notice,
    /// `telemetry status` and the config file's comment, e.g. `demo-cli` for app `demo`.
    pub fn command(mut self, name: impl Into<String>) -> Builder {
        self.command = Some(name.into());
        self
    }

    /// The prefix of the tool's own variables: `<PREFIX>_TELEMETRY_DISABLED`,
    /// `<PREFIX>_TELEMETRY_DEBUG`, `<PREFIX>_ENV` (default: the app id upper-cased, with
    /// `-` and `.` as `_`).
    pub fn env_prefix(mut self, prefix: impl Into<String>) -> Builder {
        self.env_prefix = Some(prefix.into());
        self
    }

    fn command_name(&self) -> String {
        self.command.clone().unwrap_or_else(|| self.app.clone())
    }

    fn prefix(&self) -> String {
        self.env_prefix.clone().unwrap_or_else(|| app_prefix(&self.app))
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

    /// The longest shutdown takes (default [`DEFAULT_EXIT_BUDGET`]): waiting for the sender,
    /// then for the outbox lock with what is left; what is unsent goes to the outbox and is
    /// sent by a later run. Under 100 ms shutdown posts nothing (a post would rarely be
    /// answered in time).
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

    /// How long a batch that a run posted but exited before the answer stays unposted
    /// (default 10 minutes): the collector most likely has it, and a command shorter than
    /// one round trip would otherwise post it again on every run. Each further unanswered
    /// post doubles the wait.
    pub fn resend_after(mut self, after: Duration) -> Builder {
        self.resend_after = after;
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
        let resolved = self.resolve();
        let builder = self.clone();
        let recorder = match resolved.project_id {
            Some(project_id) if resolved.decision.mode != Mode::Off => Some(self.start(&resolved, project_id)),
            _ => {
                if resolved.debug {
                    eprintln!(
                        "[{} telemetry] off (decided by {}); nothing is recorded",
                        self.app, resolved.decision.source
                    );
                }
                None
            }
        };
        Telemetry {
            inner: Arc::new(Inner {
                resolved,
                exit_budget: self.exit_budget,
                recorder,
                shut_down: AtomicBool::new(false),
                builder: Some(builder),
                adopted: OnceLock::new(),
            }),
        }
    }

    /// Step 1, consent: the files, the project and the decision. Reads files, writes none.
    pub(crate) fn resolve(&self) -> Resolved {
        let paths = self.paths();
        let project = match self.project_id {
            Some(_) => None,
            None => {
                let start = self.project_dir.clone().or_else(|| std::env::current_dir().ok()).unwrap_or_default();
                project::find(&start, &self.app)
            }
        };
        let decision = if tally_protocol::validate::is_name(&self.app) {
            consent::resolve(&consent::Inputs {
                app: &self.app,
                env_prefix: &self.prefix(),
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
        Resolved {
            app: self.app.clone(),
            command: self.command_name(),
            decision,
            debug: self.vars.flag(&format!("{}_TELEMETRY_DEBUG", self.prefix())),
            endpoint: self.endpoint.clone(),
            project_id: self.project_id.or(project.as_ref().and_then(|p| p.id)),
            project,
            paths,
            ci: facts::ci_vendor(&self.vars),
        }
    }

    /// Telemetry is local or on: from here on files may be written. Identity first (the
    /// salt every recorded event is hashed with), then the worker.
    fn start(&self, r: &Resolved, project_id: uuid::Uuid) -> Recorder {
        let identity = self.identity(&r.paths, r.debug);
        let sanitizer = Sanitizer {
            salt: identity
                .as_ref()
                .map(LocalIdentity::salt_bytes)
                .unwrap_or_else(|| LocalIdentity::random(false).salt_bytes()),
            known_plugins: self.known_plugins.clone(),
        };
        let facts = Facts::gather(&self.vars, self.host_facts);
        let host_props = if self.host_facts { host_props(&facts) } else { Vec::new() };
        let parts = ContextParts {
            app: self.app.clone(),
            app_version: self.app_version.clone(),
            project: project_id,
            env: self.env.unwrap_or_else(|| facts::detect_env(&self.vars, &self.prefix())),
            facts,
            runtime: self.runtime.clone(),
            runtime_version: self.runtime_version.clone(),
            identity,
        };
        let notice_this_run = r.decision.mode == Mode::On
            && !r.debug
            && r.decision.source == Source::AuthorDefault
            && r.ci.is_none()
            && notice_run(&r.command, r.paths.user_config.as_deref(), self.notice.as_deref());
        let upload = r.decision.mode == Mode::On && !notice_this_run && !r.debug;
        let (shared, worker_started) = self.start_worker(r, upload, parts);
        Recorder { sanitizer, host_props, shared, worker_started }
    }

    /// Step 2, identity: loaded, or created on first use (a debug run creates nothing).
    fn identity(&self, paths: &Paths, debug: bool) -> Option<LocalIdentity> {
        paths
            .identity
            .as_deref()
            .and_then(|p| if debug { LocalIdentity::load(p).ok() } else { LocalIdentity::load_or_create(p).ok() })
    }

    /// Step 3, the worker: the queue, and the sender thread (none in debug mode, which
    /// prints instead). Without `upload` the thread only writes to the outbox.
    fn start_worker(&self, r: &Resolved, upload: bool, parts: ContextParts) -> (Arc<Shared>, bool) {
        let outbox = r.paths.data.clone().map(Outbox::new);
        let transport = if upload { self.transport() } else { None };
        let drain = transport.is_some() && outbox.as_ref().is_some_and(Outbox::has_waiting);
        let shared =
            Arc::new(Shared::new(&self.app, self.queue_capacity, self.batch_size, Box::new(move || parts.context())));
        if r.debug {
            return (shared, false);
        }
        let worker = Worker {
            shared: shared.clone(),
            transport,
            outbox,
            flush_interval: self.flush_interval,
            drain_outbox: drain,
            resend_after: self.resend_after,
            post_at_exit: self.exit_budget >= crate::worker::POST_AT_EXIT_MIN_BUDGET,
        };
        let started = worker.spawn(&self.app);
        (shared, started)
    }

    /// The test sink if there is one, else HTTP to the endpoint if there is one.
    fn transport(&self) -> Option<Transport> {
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
    }
}

/// The files of one tool; `None` without a home directory.
#[derive(Debug)]
pub(crate) struct Paths {
    pub(crate) user_config: Option<PathBuf>,
    pub(crate) identity: Option<PathBuf>,
    pub(crate) data: Option<PathBuf>,
}

/// What a process knows about its tool's telemetry before anything is started.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub(crate) app: String,
    /// The command users type.
    pub(crate) command: String,
    pub(crate) decision: Decision,
    /// `<APP>_TELEMETRY_DEBUG` is set.
    pub(crate) debug: bool,
    pub(crate) endpoint: Option<String>,
    pub(crate) project: Option<Project>,
    pub(crate) project_id: Option<uuid::Uuid>,
    pub(crate) paths: Paths,
    pub(crate) ci: Option<&'static str>,
}

/// `host.cpus` and `host.memory_gb`, the ones that are known.
fn host_props(facts: &Facts) -> Vec<(String, PropValue)> {
    [("host.cpus", facts.cpus), ("host.memory_gb", facts.memory_gb)]
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_string(), PropValue::Int(v? as i64))))
        .collect()
}

/// Whether this run is a notice run (records, uploads nothing): the first run on this
/// machine prints the notice. The notice is printed only once it is remembered: when the
/// config file cannot be written (no `HOME`, a read-only one) no notice is printed and no
/// run uploads, instead of a notice on every run.
fn notice_run(command: &str, user_config: Option<&Path>, custom: Option<&str>) -> bool {
    let Some(path) = user_config else {
        return true;
    };
    let mut config = UserConfig::load(path).unwrap_or_default();
    if config.notice_shown {
        return false;
    }
    config.notice_shown = true;
    if config.save(path, command).is_err() {
        return true;
    }
    let app = command;
    let text = custom.map(str::to_string).unwrap_or_else(|| {
        format!(
            "Attention: {app} collects anonymous usage data (commands, features, versions, \
             OS) to improve the tool. Nothing personal is collected and nothing is sent \
             during this run.\n  See what is kept:  {app} telemetry show\n  Opt out:           \
             {app} telemetry disable   (or DO_NOT_TRACK=1)"
        )
    });
    eprintln!("{text}");
    true
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
