//! Consent: whether telemetry is off, local or on for this process, and who decided.
//!
//! Resolved once per process; the first source that has an opinion wins:
//!
//! 1. the organisation policy file (`/etc/tally/policy.toml`, or the file named by
//!    `TALLY_POLICY`), which can restrict telemetry (`off`, `local`) but never force it on;
//! 2. `DO_NOT_TRACK`, then the tool's own `<APP>_TELEMETRY_DISABLED` (see
//!    [`crate::vars`]' rule: any value but empty, `0`, `false`, `no`, `off` or `n` means yes);
//! 3. the project manifest: no project id means off, `telemetryDisabled = true` means off;
//! 4. the user's choice (`telemetry enable|disable|local`), kept in the user config file;
//! 5. the tool author's default.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::outbox::at_path;
use crate::project::Project;
use crate::vars::Vars;

/// The default organisation policy file.
pub const DEFAULT_POLICY_PATH: &str = "/etc/tally/policy.toml";

/// What telemetry does in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Mode {
    /// Nothing is recorded, written or sent; no thread is started.
    Off,
    /// Events are kept in the local outbox, where the user can read them; nothing is sent.
    Local,
    /// Events are sent to the tool's collector.
    On,
}

impl Mode {
    /// `off`, `local` or `on`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Local => "local",
            Mode::On => "on",
        }
    }

    /// Parses `off`, `local` or `on` (also `disabled`/`enabled`, any case).
    pub fn parse(s: &str) -> Option<Mode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" | "disabled" | "disable" => Some(Mode::Off),
            "local" => Some(Mode::Local),
            "on" | "enabled" | "enable" => Some(Mode::On),
            _ => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which source decided the [`Mode`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// The organisation policy file (also when it exists but cannot be read: that fails
    /// closed, to `off`).
    Policy {
        /// The file.
        path: PathBuf,
    },
    /// `DO_NOT_TRACK`.
    DoNotTrack,
    /// The tool's `<APP>_TELEMETRY_DISABLED`.
    AppVariable {
        /// The variable's name.
        name: String,
    },
    /// No project id was found: the project does not take part.
    NoProjectId,
    /// The project manifest says `telemetryDisabled = true`.
    ProjectManifest {
        /// The manifest.
        path: PathBuf,
    },
    /// The user's own choice.
    UserConfig {
        /// The user config file.
        path: PathBuf,
    },
    /// The user config file exists but cannot be read or parsed: it may hold a
    /// `disable`, so telemetry stays off until it is fixed (or `telemetry reset`).
    UnreadableUserConfig {
        /// The user config file.
        path: PathBuf,
    },
    /// The tool author's default.
    AuthorDefault,
}

impl Source {
    /// A stable short name: `policy`, `do_not_track`, `app_variable`, `no_project_id`,
    /// `project_manifest`, `user_config` or `author_default`.
    pub fn key(&self) -> &'static str {
        match self {
            Source::Policy { .. } => "policy",
            Source::DoNotTrack => "do_not_track",
            Source::AppVariable { .. } => "app_variable",
            Source::NoProjectId => "no_project_id",
            Source::ProjectManifest { .. } => "project_manifest",
            Source::UserConfig { .. } => "user_config",
            Source::UnreadableUserConfig { .. } => "user_config_unreadable",
            Source::AuthorDefault => "author_default",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Policy { path } => write!(f, "organisation policy {}", path.display()),
            Source::DoNotTrack => f.write_str("DO_NOT_TRACK"),
            Source::AppVariable { name } => f.write_str(name),
            Source::NoProjectId => f.write_str("no project id in the project's manifest"),
            Source::ProjectManifest { path } => {
                write!(f, "telemetryDisabled in {}", path.display())
            }
            Source::UserConfig { path } => write!(f, "your choice in {}", path.display()),
            Source::UnreadableUserConfig { path } => {
                write!(f, "{} cannot be read (fix or delete it; until then telemetry is off)", path.display())
            }
            Source::AuthorDefault => f.write_str("the tool's default"),
        }
    }
}

/// The resolved consent: the mode and the source that decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Decision {
    /// What telemetry does.
    pub mode: Mode,
    /// Who decided.
    pub source: Source,
}

impl Decision {
    fn new(mode: Mode, source: Source) -> Decision {
        Decision { mode, source }
    }
}

/// The organisation policy file.
///
/// ```toml
/// telemetry = "off"          # every tool using tally: "off", "local" or "allow"
/// [apps.some-tool]
/// telemetry = "local"        # one tool; overrides the line above
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    telemetry: Option<String>,
    #[serde(default)]
    apps: std::collections::BTreeMap<String, PolicyApp>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyApp {
    telemetry: Option<String>,
}

/// The user config file (`<config dir>/tally/<app>/config.toml`), written by the
/// `telemetry` subcommand and the first-run notice.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct UserConfig {
    /// The user's choice, when they made one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) telemetry: Option<Mode>,
    /// The first-run notice was shown on this machine.
    #[serde(default)]
    pub(crate) notice_shown: bool,
}

impl UserConfig {
    pub(crate) fn load(path: &Path) -> io::Result<UserConfig> {
        let text = fs::read_to_string(path)?;
        toml::from_str(&text)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))
    }

    /// Writes the file; `command` is the tool's command, named in the comment. Errors name
    /// the file or directory that could not be written.
    pub(crate) fn save(&self, path: &Path, command: &str) -> io::Result<()> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| at_path(e, dir))?;
        }
        let text = format!(
            "# Telemetry settings for {command}; change them with `{command} telemetry enable|disable|local`.\n{}",
            toml::to_string(self).map_err(io::Error::other)?
        );
        let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
        fs::write(&tmp, text).map_err(|e| at_path(e, &tmp))?;
        fs::rename(&tmp, path).map_err(|e| at_path(e, path))
    }
}

/// Everything consent looks at, gathered by the builder.
pub(crate) struct Inputs<'a> {
    pub(crate) app: &'a str,
    /// The prefix of the tool's own variables (`<PREFIX>_TELEMETRY_DISABLED`).
    pub(crate) env_prefix: &'a str,
    pub(crate) vars: &'a Vars,
    /// The policy file; `None` means the default rule (`TALLY_POLICY` or the default path).
    pub(crate) policy_path: Option<&'a Path>,
    pub(crate) project: ProjectInput<'a>,
    pub(crate) user_config: Option<&'a Path>,
    pub(crate) default: Mode,
}

/// What the builder knows about the project.
pub(crate) enum ProjectInput<'a> {
    /// The tool gave the project id itself.
    Given,
    /// A manifest with a section for the app.
    Found(&'a Project),
    /// No manifest has a section for the app.
    Missing,
}

/// Resolves consent, first match wins (see the module docs).
pub(crate) fn resolve(i: &Inputs<'_>) -> Decision {
    if let Some(d) = policy(i) {
        return d;
    }
    if i.vars.flag("DO_NOT_TRACK") {
        return Decision::new(Mode::Off, Source::DoNotTrack);
    }
    let name = format!("{}_TELEMETRY_DISABLED", i.env_prefix);
    if i.vars.flag(&name) {
        return Decision::new(Mode::Off, Source::AppVariable { name });
    }
    match i.project {
        ProjectInput::Missing => return Decision::new(Mode::Off, Source::NoProjectId),
        ProjectInput::Found(p) if p.disabled => {
            return Decision::new(Mode::Off, Source::ProjectManifest { path: p.manifest.clone() });
        }
        ProjectInput::Found(p) if p.id.is_none() => {
            return Decision::new(Mode::Off, Source::NoProjectId);
        }
        _ => {}
    }
    if let Some(path) = i.user_config {
        match UserConfig::load(path) {
            Ok(UserConfig { telemetry: Some(mode), .. }) => {
                return Decision::new(mode, Source::UserConfig { path: path.to_path_buf() });
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            // A config file we cannot read may hold a "disable": fail closed.
            Err(_) => {
                return Decision::new(Mode::Off, Source::UnreadableUserConfig { path: path.to_path_buf() });
            }
        }
    }
    Decision::new(i.default, Source::AuthorDefault)
}

/// The policy's decision, if it has one. A policy file named by `TALLY_POLICY` that is
/// missing, and any policy file that cannot be read or parsed, means `off`.
fn policy(i: &Inputs<'_>) -> Option<Decision> {
    let (path, named) = match (i.policy_path, i.vars.get("TALLY_POLICY")) {
        (Some(p), _) => (p.to_path_buf(), true),
        (None, Some(p)) if !p.trim().is_empty() => (PathBuf::from(p.trim()), true),
        _ => (PathBuf::from(DEFAULT_POLICY_PATH), false),
    };
    let off = |path: PathBuf| Some(Decision::new(Mode::Off, Source::Policy { path }));
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound && !named => return None,
        Err(_) => return off(path),
    };
    let Ok(file) = toml::from_str::<PolicyFile>(&text) else {
        return off(path);
    };
    let value = file.apps.get(i.app).and_then(|a| a.telemetry.clone()).or(file.telemetry);
    match value.as_deref().map(|v| v.trim().to_ascii_lowercase()) {
        None => None,
        Some(v) if v == "allow" || v == "on" || v == "default" => None,
        Some(v) if v == "local" => Some(Decision::new(Mode::Local, Source::Policy { path })),
        // "off" and anything the policy's author mistyped.
        Some(_) => off(path),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::project::ManifestKind;

    struct Case {
        vars: Vec<(&'static str, &'static str)>,
        policy: Option<&'static str>,
        project: Option<Project>,
        user: Option<&'static str>,
        default: Mode,
    }

    fn project(id: bool, disabled: bool) -> Project {
        Project {
            id: id.then(uuid::Uuid::new_v4),
            disabled,
            manifest: PathBuf::from("/p/package.json"),
            kind: ManifestKind::PackageJson,
        }
    }

    fn base() -> Case {
        Case { vars: vec![], policy: None, project: Some(project(true, false)), user: None, default: Mode::On }
    }

    fn check(c: Case) -> (Mode, &'static str) {
        let d = tempfile::tempdir().unwrap();
        let policy = d.path().join("policy.toml");
        if let Some(p) = c.policy {
            fs::write(&policy, p).unwrap();
        }
        let user = d.path().join("config.toml");
        if let Some(u) = c.user {
            fs::write(&user, u).unwrap();
        }
        let vars = Vars::fixed(c.vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>());
        let decision = resolve(&Inputs {
            app: "demo",
            env_prefix: "DEMO",
            vars: &vars,
            policy_path: c.policy.map(|_| policy.as_path()).or(Some(&d.path().join("none"))),
            project: c.project.as_ref().map_or(ProjectInput::Missing, ProjectInput::Found),
            user_config: Some(&user),
            default: c.default,
        });
        (decision.mode, decision.source.key())
    }

    #[test]
    fn first_match_wins() {
        use Mode::*;
        // An explicit policy path that is missing fails closed.
        assert_eq!(check(Case { policy: None, ..base() }), (Off, "policy"));
    }

    fn with_policy(policy: &'static str) -> Case {
        Case { policy: Some(policy), ..base() }
    }

    #[test]
    fn each_source() {
        use Mode::*;
        let table: Vec<(Case, (Mode, &str))> = vec![
            (with_policy("telemetry = 'off'"), (Off, "policy")),
            (with_policy("telemetry = 'local'"), (Local, "policy")),
            (with_policy("telemetry = 'allow'"), (On, "author_default")),
            (with_policy("telemetry = 'bogus'"), (Off, "policy")),
            (with_policy("not toml ["), (Off, "policy")),
            (with_policy("[apps.demo]\ntelemetry = 'off'"), (Off, "policy")),
            (with_policy("[apps.other]\ntelemetry = 'off'"), (On, "author_default")),
            (with_policy("telemetry = 'off'\n[apps.demo]\ntelemetry = 'allow'"), (On, "author_default")),
            (Case { vars: vec![("DO_NOT_TRACK", "1")], ..with_policy("") }, (Off, "do_not_track")),
            (Case { vars: vec![("DO_NOT_TRACK", "0")], ..with_policy("") }, (On, "author_default")),
            (Case { vars: vec![("DEMO_TELEMETRY_DISABLED", "true")], ..with_policy("") }, (Off, "app_variable")),
            (Case { project: None, ..with_policy("") }, (Off, "no_project_id")),
            (Case { project: Some(project(false, false)), ..with_policy("") }, (Off, "no_project_id")),
            (Case { project: Some(project(true, true)), ..with_policy("") }, (Off, "project_manifest")),
            (Case { user: Some("telemetry = 'local'"), ..with_policy("") }, (Local, "user_config")),
            (Case { user: Some("telemetry = 'off'"), ..with_policy("") }, (Off, "user_config")),
            (Case { user: Some("notice_shown = true"), ..with_policy("") }, (On, "author_default")),
            (Case { user: Some("garbage = ["), ..with_policy("") }, (Off, "user_config_unreadable")),
            (Case { default: Off, ..with_policy("") }, (Off, "author_default")),
            (Case { default: Off, user: Some("telemetry = 'on'"), ..with_policy("") }, (On, "user_config")),
        ];
        for (i, (case, expected)) in table.into_iter().enumerate() {
            assert_eq!(check(case), expected, "case {i}");
        }
    }

    #[test]
    fn user_config_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("a/b/config.toml");
        let c = UserConfig { telemetry: Some(Mode::Local), notice_shown: true };
        c.save(&path, "demo").unwrap();
        assert_eq!(UserConfig::load(&path).unwrap(), c);
        assert_eq!(UserConfig::load(&d.path().join("x")).unwrap_err().kind(), io::ErrorKind::NotFound);
        let defaults: UserConfig = toml::from_str("").unwrap();
        assert_eq!(defaults, UserConfig::default());
    }
}
