//! Keyed pseudonyms for projects and machines.
//!
//! The collector never stores a project UUID or a client's machine id. It stores
//! `HMAC-SHA256(server secret, id)` truncated to 128 bits: without the secret, a leaked
//! database cannot be joined to repositories; with it, `tally erase --project UUID` finds
//! the rows again. The secret is created on first start in the data directory (mode 0600).

use std::fmt;
use std::io::{self, Write};
use std::path::Path;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use uuid::Uuid;

/// A 128-bit keyed hash, shown as 32 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Key16(pub [u8; 16]);

impl Key16 {
    /// The hash as a UUID value (the form columnar backends store it in).
    pub fn as_uuid(&self) -> Uuid {
        Uuid::from_bytes(self.0)
    }
}

impl fmt::Display for Key16 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Key16 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key16({self})")
    }
}

/// The stored form of a project: `HMAC(secret, "project\0" || uuid)`.
pub type ProjectKey = Key16;
/// The stored form of a machine: `HMAC(secret, "machine\0" || app || "\0" || id)`.
pub type MachineKey = Key16;

/// The collector's secret key for pseudonyms.
#[derive(Clone)]
pub struct ServerSecret([u8; 32]);

impl fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerSecret(..)")
    }
}

/// File name of the secret inside the data directory.
pub const SECRET_FILE: &str = "server-secret";

impl ServerSecret {
    /// A secret from raw bytes (tests).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        ServerSecret(bytes)
    }

    /// Reads `dir/server-secret`, creating it (random, mode 0600) when absent.
    pub fn load_or_create(dir: &Path) -> io::Result<ServerSecret> {
        let path = dir.join(SECRET_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let arr: [u8; 32] =
                    hex::decode(bytes.trim_ascii()).ok().and_then(|b| b.try_into().ok()).ok_or_else(|| {
                        io::Error::new(io::ErrorKind::InvalidData, format!("{} is not 64 hex digits", path.display()))
                    })?;
                Ok(ServerSecret(arr))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                rand::rng().fill_bytes(&mut bytes);
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(&path)?;
                file.write_all(hex::encode(bytes).as_bytes())?;
                file.sync_all()?;
                Ok(ServerSecret(bytes))
            }
            Err(e) => Err(e),
        }
    }

    fn mac(&self, parts: &[&[u8]]) -> Key16 {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("hmac takes any key length");
        for p in parts {
            mac.update(p);
            mac.update(b"\0");
        }
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        Key16(out)
    }

    /// The stored key of a project UUID.
    pub fn project_key(&self, project: &Uuid) -> ProjectKey {
        self.mac(&[b"project", project.as_bytes()])
    }

    /// The stored key of a client's machine id, per app.
    pub fn machine_key(&self, app: &str, machine: &str) -> MachineKey {
        self.mac(&[b"machine", app.as_bytes(), machine.as_bytes()])
    }

    /// The UUID that stands for a project a client names by a string of its own instead of
    /// a UUID (Strapi's `projectId` may be any string), per `source` (such as
    /// `strapi:project-id`). The project is then stored as [`Self::project_key`] of it, like
    /// any other; the string itself is never stored. Never nil.
    ///
    /// It is derived as the receiver derived it before this had a name, the
    /// [`Self::machine_key`] of `id` with `source` in place of the app, and must stay so:
    /// another derivation would give every such project a new key, cut off from its stored
    /// rows. `source` must hold a colon: no app name has one, so these never equal a machine
    /// key.
    pub fn project_uuid(&self, source: &str, id: &str) -> Uuid {
        let derived = self.machine_key(source, id).as_uuid();
        if derived.is_nil() { Uuid::from_u128(1) } else { derived }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_created_once_with_private_mode() {
        let dir = std::env::temp_dir().join(format!("tally-secret-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let a = ServerSecret::load_or_create(&dir).expect("create");
        let b = ServerSecret::load_or_create(&dir).expect("load");
        let p = Uuid::new_v4();
        assert_eq!(a.project_key(&p), b.project_key(&p));
        assert_ne!(a.project_key(&p), a.machine_key("x", &p.to_string()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(SECRET_FILE)).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Stored Strapi projects must keep their keys: the value is pinned, not recomputed.
    #[test]
    fn project_uuids_of_string_ids_keep_their_derivation() {
        let secret = ServerSecret::from_bytes([1; 32]);
        let u = secret.project_uuid("strapi:project-id", "my-project");
        assert_eq!(u.to_string(), "d0eee64b-04a2-7c57-b95f-b7fab07fb9c2");
        assert_eq!(u, secret.project_uuid("strapi:project-id", "my-project"));
        assert_ne!(u, secret.project_uuid("strapi:project-id", "my-project-2"));
        assert_ne!(u, secret.project_uuid("other:project-id", "my-project"));
        assert_ne!(u, ServerSecret::from_bytes([2; 32]).project_uuid("strapi:project-id", "my-project"));
    }
}
