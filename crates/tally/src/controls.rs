//! What the `telemetry` subcommand shows and changes: the consent decision and who made
//! it, the ids, the outbox and sent-log, the user's choice.
//!
//! [`Builder::controls`] resolves consent as `build` does and stops there: nothing is
//! recorded, no thread is started, no socket opened, no first-run notice shown, no identity
//! created. Each operation touches only the files it names. The subcommand takes a builder
//! for this reason: when it took a running client, building that client for
//! `mytool telemetry disable` started the sender, which uploaded the very events the user
//! was opting out of.

use std::io;
use std::path::PathBuf;

use crate::Builder;
use crate::builder::Resolved;
use crate::consent::{Decision, Mode, UserConfig};
use crate::identity::{self, LocalIdentity, MachineId};
use crate::outbox::Outbox;

/// The user's controls over one tool's telemetry, from [`Builder::controls`].
#[derive(Debug)]
pub struct Controls {
    resolved: Resolved,
}

/// What `telemetry status` shows.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Status {
    /// The tool.
    pub app: String,
    /// The command users type.
    pub command: String,
    /// The resolved mode and who decided it.
    pub decision: Decision,
    /// `<APP>_TELEMETRY_DEBUG` is set: payloads are printed, nothing is sent.
    pub debug: bool,
    /// The collector.
    pub endpoint: Option<String>,
    /// The project id and the manifest it was read from.
    pub project: Option<(uuid::Uuid, Option<PathBuf>)>,
    /// The machine id that is (or would be) sent; `None` while no identity exists yet
    /// and none can be derived (status creates nothing).
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

/// What [`Controls::set_choice`] did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Choice {
    /// The user config file the choice was saved in.
    pub config_file: PathBuf,
    /// Choosing off: the unsent events deleted with the outbox (they are never sent).
    pub deleted_events: usize,
    /// Choosing off: the identity file (install id and salt) that was deleted.
    pub deleted_identity: Option<PathBuf>,
}

impl Builder {
    /// The user's controls over this tool's telemetry, for the `telemetry` subcommand or
    /// a tool's own settings screen. Resolves consent and starts nothing: no thread, no
    /// socket, no notice, no file written.
    pub fn controls(&self) -> Controls {
        Controls { resolved: self.resolve() }
    }
}

impl Controls {
    /// The tool's name.
    pub fn app(&self) -> &str {
        &self.resolved.app
    }

    /// The command users type ([`Builder::command`]).
    pub fn command(&self) -> &str {
        &self.resolved.command
    }

    /// The consent decision a client built now would have.
    pub fn decision(&self) -> &Decision {
        &self.resolved.decision
    }

    /// The outbox (events waiting, and the sent-log), when there is a data directory.
    pub fn outbox(&self) -> Option<Outbox> {
        self.resolved.paths.data.clone().map(Outbox::new)
    }

    /// What `telemetry status` shows. Reads files, creates none.
    pub fn status(&self) -> Status {
        let r = &self.resolved;
        let identity = r.paths.identity.as_deref().and_then(|p| LocalIdentity::load(p).ok());
        let machine = (identity.is_some() || r.ci.is_some() || identity::os_machine_id().is_some())
            .then(|| identity::machine_id(&r.app, r.ci, identity.as_ref()));
        let outbox = self.outbox();
        Status {
            app: r.app.clone(),
            command: r.command.clone(),
            decision: r.decision.clone(),
            debug: r.debug,
            endpoint: r.endpoint.clone(),
            project: r.project_id.map(|id| (id, r.project.as_ref().map(|p| p.manifest.clone()))),
            machine,
            outbox_events: outbox.as_ref().and_then(|o| o.len().ok()).unwrap_or(0),
            sent_batches: outbox.as_ref().and_then(|o| o.sent().ok()).map_or(0, |s| s.len()),
            config_file: r.paths.user_config.clone(),
            data_dir: r.paths.data.clone(),
        }
    }

    /// Saves the user's choice (`telemetry enable|disable|local`) and marks the notice as
    /// seen. Choosing off also deletes what would otherwise be kept: the outbox (its
    /// events are never sent), the sent-log and the identity file. The choice applies from
    /// the next run, and only where no earlier consent source (policy, `DO_NOT_TRACK`, the
    /// project) decides.
    pub fn set_choice(&self, mode: Mode) -> io::Result<Choice> {
        let path = self.resolved.paths.user_config.clone().ok_or_else(no_home)?;
        let mut config = UserConfig::load(&path).unwrap_or_default();
        config.telemetry = Some(mode);
        config.notice_shown = true;
        config.save(&path, &self.resolved.command)?;
        let mut choice = Choice { config_file: path, deleted_events: 0, deleted_identity: None };
        if mode != Mode::Off {
            return Ok(choice);
        }
        if let Some(o) = self.outbox()
            && o.dir().exists()
        {
            choice.deleted_events = o.len().unwrap_or(0);
            o.clear()?;
        }
        if let Some(p) = &self.resolved.paths.identity {
            match std::fs::remove_file(p) {
                Ok(()) => choice.deleted_identity = Some(p.clone()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            remove_machine_cache(p);
        }
        Ok(choice)
    }

    /// A new identity: new install id, new salt, a new machine hash, and the outbox and
    /// sent-log emptied.
    pub fn reset(&self) -> io::Result<()> {
        let path = self.resolved.paths.identity.clone().ok_or_else(no_home)?;
        LocalIdentity::random(true).write(&path, true)?;
        remove_machine_cache(&path);
        if let Some(o) = self.outbox()
            && o.dir().exists()
        {
            o.clear()?;
        }
        Ok(())
    }
}

/// The Node.js SDK keeps the machine hash it sends in `machine.cache` beside the identity
/// file (the directory is shared when a Rust and a Node tool have the same name): it goes
/// with the identity. A missing file is the usual case; a failure leaves only a copy of a
/// hash that was already sent.
fn remove_machine_cache(identity: &std::path::Path) {
    let _ = std::fs::remove_file(identity.with_file_name("machine.cache"));
}

fn no_home() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "no home directory: set HOME (or XDG_CONFIG_HOME)")
}
