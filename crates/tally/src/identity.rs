//! Machine identity: the per-tool machine hash, the random install id and the secret salt.
//!
//! The machine hash is HMAC-SHA256 keyed by the tool's name over the OS machine id, so two
//! tools on one machine send unrelated ids and neither can be joined to the raw id. The OS
//! id is read from files (Linux `/etc/machine-id`, `/var/lib/dbus/machine-id`; FreeBSD
//! `/etc/hostid`) or the OS's own interface (macOS `IOPlatformUUID` through `ioreg`, run
//! directly without a shell and only on the sender thread; Windows `MachineGuid` is not
//! read, see below). Where none is readable (distroless containers, Windows) a random
//! install id, kept in the user's config directory, takes its place. In CI every run of a
//! vendor shares one id, so ephemeral runners do not look like thousands of machines. The
//! hostname is never used.
//!
//! Windows: reading `HKLM\SOFTWARE\Microsoft\Cryptography\MachineGuid` needs the registry
//! API, which this crate cannot call without `unsafe` or a new dependency; Windows machines
//! use the install id.

use std::fs;
use std::io;
use std::path::Path;

use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::outbox::at_path;

type HmacSha256 = Hmac<Sha256>;

/// Where the machine hash comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MachineKind {
    /// The OS machine id.
    Os,
    /// The random install id in the user's config directory.
    InstallId,
    /// The CI vendor's shared id.
    Ci {
        /// The vendor, e.g. `github_actions`.
        vendor: String,
    },
    /// Not stored anywhere: debug runs before any id was created.
    Ephemeral,
}

impl MachineKind {
    /// `os`, `install_id`, `ci` or `ephemeral`.
    pub fn key(&self) -> &'static str {
        match self {
            MachineKind::Os => "os",
            MachineKind::InstallId => "install_id",
            MachineKind::Ci { .. } => "ci",
            MachineKind::Ephemeral => "ephemeral",
        }
    }
}

/// The machine id a tool sends: a 64-hex-digit keyed hash, and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MachineId {
    /// HMAC-SHA256 (key: the tool's name) of the underlying id, hex.
    pub hash: String,
    /// What was hashed.
    pub kind: MachineKind,
}

/// The random values this SDK keeps per user and tool (`identity.toml` in the config dir).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LocalIdentity {
    /// Stands in for the machine id where the OS has none.
    pub(crate) install_id: Uuid,
    /// Keys the hashes of sensitive values; never leaves the machine.
    pub(crate) salt: String,
    /// Set by `telemetry reset`: mixed into the machine hash so the reset changes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reset: Option<Uuid>,
}

impl LocalIdentity {
    pub(crate) fn random(reset: bool) -> LocalIdentity {
        let mut salt = [0u8; 32];
        rand::rng().fill_bytes(&mut salt);
        LocalIdentity { install_id: Uuid::new_v4(), salt: hex::encode(salt), reset: reset.then(Uuid::new_v4) }
    }

    /// Reads the identity file.
    pub(crate) fn load(path: &Path) -> io::Result<LocalIdentity> {
        let text = fs::read_to_string(path).map_err(|e| at_path(e, path))?;
        toml::from_str(&text).map_err(|e| at_path(io::Error::new(io::ErrorKind::InvalidData, e), path))
    }

    /// Reads the identity file, creating it when missing. Two processes creating it at
    /// once agree on one: the file appears complete or not at all (hard link of a written
    /// temporary file), and the loser reads the winner's.
    pub(crate) fn load_or_create(path: &Path) -> io::Result<LocalIdentity> {
        match LocalIdentity::load(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => return other,
        }
        let fresh = LocalIdentity::random(false);
        match fresh.write(path, false) {
            Ok(()) => Ok(fresh),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => LocalIdentity::load(path),
            Err(e) => Err(e),
        }
    }

    /// Writes the file; with `replace` an existing one is replaced.
    pub(crate) fn write(&self, path: &Path, replace: bool) -> io::Result<()> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| at_path(e, dir))?;
        }
        let text = format!(
            "# Random values for this tool's telemetry. The salt never leaves this machine.\n{}",
            toml::to_string(self).map_err(io::Error::other)?
        );
        let tmp = path.with_extension(format!("{}.{}.tmp", std::process::id(), Uuid::new_v4()));
        fs::write(&tmp, text).map_err(|e| at_path(e, &tmp))?;
        let result = if replace { fs::rename(&tmp, path) } else { fs::hard_link(&tmp, path) };
        let _ = fs::remove_file(&tmp);
        result.map_err(|e| at_path(e, path))
    }

    /// The salt's bytes.
    pub(crate) fn salt_bytes(&self) -> Vec<u8> {
        hex::decode(&self.salt).unwrap_or_else(|_| self.salt.as_bytes().to_vec())
    }
}

/// HMAC-SHA256 of `message` keyed with `key`, hex.
pub(crate) fn hmac_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// The machine id for `app`: the CI vendor's shared id, else the OS id, else the install
/// id, else (no identity could be stored) an ephemeral one.
pub(crate) fn machine_id(app: &str, ci: Option<&str>, identity: Option<&LocalIdentity>) -> MachineId {
    let key = app.as_bytes();
    if let Some(vendor) = ci {
        return MachineId {
            hash: hmac_hex(key, format!("ci:{vendor}").as_bytes()),
            kind: MachineKind::Ci { vendor: vendor.to_string() },
        };
    }
    let reset = identity.and_then(|i| i.reset).map(|r| format!("\nreset:{r}")).unwrap_or_default();
    if let Some(os) = os_machine_id() {
        return MachineId { hash: hmac_hex(key, format!("{os}{reset}").as_bytes()), kind: MachineKind::Os };
    }
    match identity {
        Some(i) => MachineId {
            hash: hmac_hex(key, format!("install:{}", i.install_id).as_bytes()),
            kind: MachineKind::InstallId,
        },
        None => MachineId { hash: hmac_hex(key, Uuid::new_v4().as_bytes()), kind: MachineKind::Ephemeral },
    }
}

/// The raw OS machine id, trimmed; `None` when there is none (or only a blank/zero one).
pub(crate) fn os_machine_id() -> Option<String> {
    let usable = |s: String| {
        let s = s.trim().to_string();
        (!s.is_empty() && s.chars().any(|c| c.is_ascii_alphanumeric() && c != '0')).then_some(s)
    };
    #[cfg(target_os = "macos")]
    {
        if let Some(id) = macos_platform_uuid() {
            return usable(id);
        }
    }
    let files: &[&str] = if cfg!(target_os = "freebsd") {
        &["/etc/hostid"]
    } else if cfg!(unix) {
        &["/etc/machine-id", "/var/lib/dbus/machine-id"]
    } else {
        &[]
    };
    files
        .iter()
        .filter_map(|f| fs::read_to_string(f).ok())
        .find_map(|t| usable(t.lines().next().unwrap_or("").to_string()))
}

/// `IOPlatformUUID` from `ioreg`, started directly (no shell) and waited for.
#[cfg(target_os = "macos")]
fn macos_platform_uuid() -> Option<String> {
    let out = std::process::Command::new("/usr/sbin/ioreg")
        .args(["-rd1", "-c", "IOPlatformExpertDevice"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("IOPlatformUUID"))?;
    let value = line.split('=').nth(1)?;
    Some(value.replace(['"', ' '], ""))
}

/// Exactly what npm's `node-machine-id` (1.1.12) returns from `machineIdSync()`: the hex
/// SHA-256 of the machine id as that package reads it, for tools that must match an
/// existing Node client. On Linux that is the first line of `/var/lib/dbus/machine-id`,
/// or of `/etc/machine-id` when the first is missing, or else the hostname; all
/// whitespace removed and lower-cased. On FreeBSD the `/etc/hostid` UUID; on macOS the
/// `IOPlatformUUID`. `None` where this crate cannot read the value without a shell
/// (Windows, and any system where nothing is readable).
///
/// Unlike [`MachineId`] this value is not keyed: it is the same for every tool on the
/// machine (node-machine-id issue #46) and, where the hostname is the fallback, derived
/// from it. Use it only for compatibility.
pub fn node_machine_id() -> Option<String> {
    node_machine_id_original().map(|raw| hex::encode(Sha256::digest(raw.as_bytes())))
}

/// The value `node-machine-id` hashes (`machineIdSync(true)`).
pub(crate) fn node_machine_id_original() -> Option<String> {
    let raw = if cfg!(target_os = "linux") {
        // `( cat /var/lib/dbus/machine-id /etc/machine-id 2> /dev/null || hostname ) | head -n 1`
        let cat: String =
            ["/var/lib/dbus/machine-id", "/etc/machine-id"].iter().filter_map(|f| fs::read_to_string(f).ok()).collect();
        if cat.is_empty() { fs::read_to_string("/proc/sys/kernel/hostname").ok()? } else { cat }
    } else if cfg!(target_os = "freebsd") {
        fs::read_to_string("/etc/hostid").ok()?
    } else {
        #[cfg(target_os = "macos")]
        {
            macos_platform_uuid()?
        }
        #[cfg(not(target_os = "macos"))]
        return None;
    };
    let first = raw.lines().next().unwrap_or("");
    let cleaned: String = first.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_lowercase();
    Some(cleaned)
}

/// The hash a sensitive value is replaced with: 16 hex digits of HMAC(salt, value).
pub(crate) fn hash_sensitive(salt: &[u8], value: &str) -> String {
    let mut h = hmac_hex(salt, value.as_bytes());
    h.truncate(16);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_ids_are_keyed_by_app() {
        let id = LocalIdentity::random(false);
        let a = machine_id("a", None, Some(&id));
        let b = machine_id("b", None, Some(&id));
        assert_ne!(a.hash, b.hash);
        assert_eq!(a.hash.len(), 64);
        assert_eq!(a, machine_id("a", None, Some(&id)), "stable");
        let ci = machine_id("a", Some("github_actions"), Some(&id));
        assert_eq!(ci.kind.key(), "ci");
        assert_eq!(ci, machine_id("a", Some("github_actions"), None));
        if let Some(os) = os_machine_id() {
            assert_eq!(a.kind, MachineKind::Os);
            assert!(!a.hash.contains(&os));
            let reset = LocalIdentity::random(true);
            assert_ne!(machine_id("a", None, Some(&reset)).hash, a.hash);
        }
    }

    #[test]
    fn identity_file_is_created_once() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("x/identity.toml");
        let first = LocalIdentity::load_or_create(&path).unwrap();
        assert_eq!(LocalIdentity::load_or_create(&path).unwrap(), first);
        assert_eq!(first.salt_bytes().len(), 32);
        let next = LocalIdentity::random(true);
        next.write(&path, true).unwrap();
        assert_eq!(LocalIdentity::load(&path).unwrap(), next);
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn sensitive_hashes_depend_on_the_salt() {
        assert_eq!(hash_sensitive(b"s", "v"), hash_sensitive(b"s", "v"));
        assert_ne!(hash_sensitive(b"s", "v"), hash_sensitive(b"t", "v"));
        assert_eq!(hash_sensitive(b"s", "v").len(), 16);
    }

    /// Issue 12 item 6: an unwritable HOME gave `Os { code: 2, kind: NotFound }`.
    #[test]
    fn errors_name_the_identity_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("home"), "a file, not a directory").unwrap();
        let path = d.path().join("home/tally/demo/identity.toml");
        let err = LocalIdentity::random(false).write(&path, true).unwrap_err();
        assert!(err.to_string().contains(&d.path().join("home").display().to_string()), "{err}");
        let err = LocalIdentity::load(&path).unwrap_err();
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    }
}
