//! Facts about the environment: OS, architecture, coarse hardware size, CI, container,
//! and the deployment environment (development, staging, production, test).
//!
//! Everything here is read from environment variables and files; nothing spawns a process.
//! Values are coarse on purpose: an OS major version, CPU count and memory rounded down to
//! a power of two.

use std::fs;
use std::path::Path;

use tally_protocol::Env;

use crate::vars::Vars;

/// Environment facts sent with every batch.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Facts {
    /// OS family: `linux`, `macos`, `windows`, `freebsd`, ...
    pub os: String,
    /// OS major version (Linux: kernel `major.minor`); empty when unknown.
    pub os_version: String,
    /// CPU architecture, e.g. `x86_64`.
    pub arch: String,
    /// Logical CPUs, rounded down to a power of two.
    pub cpus: Option<u32>,
    /// Memory in GiB, rounded to the nearest GiB and then down to a power of two.
    pub memory_gb: Option<u32>,
    /// The CI vendor, when running in CI.
    pub ci: Option<String>,
    /// Running inside a container.
    pub container: bool,
}

impl Facts {
    /// Gathers the facts (a few small file reads); CPU count and memory only with
    /// `hardware`, since reading them costs more than all the rest.
    pub(crate) fn gather(vars: &Vars, hardware: bool) -> Facts {
        Facts {
            os: std::env::consts::OS.to_string(),
            os_version: os_version().unwrap_or_default(),
            arch: std::env::consts::ARCH.to_string(),
            cpus: hardware
                .then(std::thread::available_parallelism)
                .and_then(Result::ok)
                .map(|n| floor_pow2(n.get() as u64) as u32),
            memory_gb: hardware.then(memory_bytes).flatten().map(|b| {
                let gib = (b as f64 / (1u64 << 30) as f64).round().max(1.0) as u64;
                floor_pow2(gib) as u32
            }),
            ci: ci_vendor(vars).map(str::to_string),
            container: in_container(vars),
        }
    }
}

fn floor_pow2(n: u64) -> u64 {
    if n == 0 { 0 } else { 1 << (63 - n.leading_zeros()) }
}

/// CI vendors by the variable each sets, most specific first.
const CI_VENDORS: &[(&str, &str)] = &[
    ("GITHUB_ACTIONS", "github_actions"),
    ("GITLAB_CI", "gitlab"),
    ("CIRCLECI", "circleci"),
    ("TRAVIS", "travis"),
    ("BUILDKITE", "buildkite"),
    ("TF_BUILD", "azure_pipelines"),
    ("BITBUCKET_BUILD_NUMBER", "bitbucket"),
    ("CODEBUILD_BUILD_ID", "aws_codebuild"),
    ("TEAMCITY_VERSION", "teamcity"),
    ("JENKINS_URL", "jenkins"),
    ("DRONE", "drone"),
    ("WOODPECKER", "woodpecker"),
    ("APPVEYOR", "appveyor"),
    ("SEMAPHORE", "semaphore"),
    ("BUDDY", "buddy"),
    ("CF_PAGES", "cloudflare_pages"),
    ("NETLIFY", "netlify"),
    ("VERCEL", "vercel"),
    ("RENDER", "render"),
    ("CODESPACES", "codespaces"),
    ("GOOGLE_CLOUD_BUILD", "google_cloud_build"),
];

/// The CI vendor, from the variables CI systems set; `generic` for an unknown system that
/// sets `CI` (or `CONTINUOUS_INTEGRATION`).
pub(crate) fn ci_vendor(vars: &Vars) -> Option<&'static str> {
    let set = |name: &str| vars.get(name).is_some_and(|v| !v.is_empty() && v != "false");
    CI_VENDORS
        .iter()
        .find(|(var, _)| set(var))
        .map(|(_, vendor)| *vendor)
        .or_else(|| (set("CI") || set("CONTINUOUS_INTEGRATION")).then_some("generic"))
}

fn in_container(vars: &Vars) -> bool {
    if Path::new("/.dockerenv").exists() || Path::new("/run/.containerenv").exists() {
        return true;
    }
    if vars.get("container").is_some() || vars.get("KUBERNETES_SERVICE_HOST").is_some() {
        return true;
    }
    fs::read_to_string("/proc/1/cgroup")
        .is_ok_and(|c| ["docker", "kubepods", "containerd", "lxc", "podman", "libpod"].iter().any(|k| c.contains(k)))
}

fn os_version() -> Option<String> {
    if cfg!(target_os = "linux") {
        let release = fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
        Some(major_minor(&release))
    } else if cfg!(target_os = "macos") {
        let plist = fs::read_to_string("/System/Library/CoreServices/SystemVersion.plist").ok()?;
        let after = plist.split("<key>ProductVersion</key>").nth(1)?;
        let v = after.split("<string>").nth(1)?.split("</string>").next()?;
        Some(v.split('.').next()?.to_string())
    } else {
        None
    }
}

/// `6.8.0-45-generic` -> `6.8`.
fn major_minor(release: &str) -> String {
    release
        .trim()
        .split(|c: char| !c.is_ascii_digit() && c != '.')
        .next()
        .unwrap_or("")
        .split('.')
        .take(2)
        .collect::<Vec<_>>()
        .join(".")
}

fn memory_bytes() -> Option<u64> {
    let info = fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The environment: the tool's own `<PREFIX>_ENV`, then `NODE_ENV`, `APP_ENV`, `RAILS_ENV`,
/// `ENVIRONMENT`; values mapped by [`parse_env`]; development when none says otherwise.
pub(crate) fn detect_env(vars: &Vars, env_prefix: &str) -> Env {
    let own = format!("{env_prefix}_ENV");
    [own.as_str(), "NODE_ENV", "APP_ENV", "RAILS_ENV", "ENVIRONMENT"]
        .iter()
        .find_map(|v| vars.get(v).and_then(|s| parse_env(&s)))
        .unwrap_or(Env::Development)
}

/// Maps the usual spellings: `dev`/`development`/`local`, `staging`/`stage`/`preview`,
/// `prod`/`production`, `test`/`testing`.
pub fn parse_env(s: &str) -> Option<Env> {
    match s.trim().to_ascii_lowercase().as_str() {
        "development" | "dev" | "local" => Some(Env::Development),
        "staging" | "stage" | "preview" | "qa" | "uat" => Some(Env::Staging),
        "production" | "prod" => Some(Env::Production),
        "test" | "testing" => Some(Env::Test),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        Vars::fixed(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>())
    }

    #[test]
    fn ci_vendors() {
        assert_eq!(ci_vendor(&vars(&[])), None);
        assert_eq!(ci_vendor(&vars(&[("GITHUB_ACTIONS", "true"), ("CI", "true")])), Some("github_actions"));
        assert_eq!(ci_vendor(&vars(&[("GITLAB_CI", "true")])), Some("gitlab"));
        assert_eq!(ci_vendor(&vars(&[("CI", "1")])), Some("generic"));
        assert_eq!(ci_vendor(&vars(&[("CI", "false")])), None);
        for (_, v) in CI_VENDORS {
            assert!(tally_protocol::validate::is_name(v));
        }
    }

    #[test]
    fn environments() {
        assert_eq!(detect_env(&vars(&[]), "DEMO"), Env::Development);
        assert_eq!(detect_env(&vars(&[("NODE_ENV", "production")]), "DEMO"), Env::Production);
        assert_eq!(detect_env(&vars(&[("DEMO_ENV", "staging"), ("NODE_ENV", "production")]), "DEMO"), Env::Staging);
        assert_eq!(detect_env(&vars(&[("NODE_ENV", "weird")]), "DEMO"), Env::Development);
        assert_eq!(parse_env("TEST"), Some(Env::Test));
    }

    #[test]
    fn coarse_values() {
        assert_eq!(major_minor("6.8.0-45-generic\n"), "6.8");
        assert_eq!(major_minor("14"), "14");
        assert_eq!(floor_pow2(1), 1);
        assert_eq!(floor_pow2(6), 4);
        assert_eq!(floor_pow2(24), 16);
        let f = Facts::gather(&vars(&[]), true);
        assert!(!f.os.is_empty() && !f.arch.is_empty());
        assert!(f.cpus.is_some_and(|c| c.is_power_of_two()));
    }
}
