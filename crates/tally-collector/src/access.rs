//! Who may read: the admin tokens.
//!
//! Two kinds of token open the private endpoints (private insights, `/metrics`, the detail
//! of `/healthz`): the one `--admin-token` or `DATA_DIR/admin-token` gives, and named tokens
//! made by `tally token create`, kept in `DATA_DIR/tokens.json` as SHA-256 hashes only (a
//! token is 128 random bits, so a plain hash cannot be reversed by guessing; it is shown
//! once, when it is made). The collector re-reads the file when it changes, so that a
//! revoked token stops working without a restart; a file it cannot read opens nothing.
//!
//! Ingest endpoints need no token and are write-only: they answer per-event outcomes of
//! the batch sent, never anything stored.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use axum::http::{HeaderMap, header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The file of named tokens inside the data directory.
pub const TOKENS_FILE: &str = "tokens.json";

/// Longest token name, in bytes.
const MAX_NAME_LEN: usize = 64;

/// A named token as stored: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// What the token is for (`ci`, `grafana`), unique in the file.
    pub name: String,
    /// SHA-256 of the token, hex.
    pub sha256: String,
    /// When it was made, RFC 3339.
    pub created_at: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    tokens: Vec<TokenEntry>,
}

/// A failure of `tally token`.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The name is empty, too long or has characters outside `[A-Za-z0-9._-]`.
    #[error("token name {0:?} is not valid: use 1-64 characters of A-Z, a-z, 0-9, '.', '_' or '-'")]
    InvalidName(String),
    /// A token of that name exists.
    #[error("a token named {0:?} exists; revoke it first or pick another name")]
    Exists(String),
    /// No token of that name.
    #[error("no token named {0:?}; `tally token list` names them")]
    NotFound(String),
    /// The file could not be read, parsed or written.
    #[error("{path}: {message}")]
    File {
        /// The tokens file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// The named tokens of a data directory.
#[derive(Debug, Clone)]
pub struct TokenFile {
    path: PathBuf,
}

impl TokenFile {
    /// The tokens file of `data_dir` (it need not exist yet).
    pub fn in_dir(data_dir: &Path) -> TokenFile {
        TokenFile { path: data_dir.join(TOKENS_FILE) }
    }

    /// Every stored token, oldest first (none when the file does not exist).
    pub fn list(&self) -> Result<Vec<TokenEntry>, TokenError> {
        Ok(self.read()?.tokens)
    }

    /// Makes a token named `name` and returns it: the only time it is seen, since only its
    /// hash is stored.
    pub fn create(&self, name: &str) -> Result<String, TokenError> {
        let valid = !name.is_empty()
            && name.len() <= MAX_NAME_LEN
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !valid {
            return Err(TokenError::InvalidName(name.to_string()));
        }
        let mut file = self.read()?;
        if file.tokens.iter().any(|t| t.name == name) {
            return Err(TokenError::Exists(name.to_string()));
        }
        // Two v4 UUIDs: 244 random bits from the OS generator.
        let token = format!("tly_{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        file.tokens.push(TokenEntry {
            name: name.to_string(),
            sha256: hash(&token),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        self.write(&file)?;
        Ok(token)
    }

    /// Removes the token named `name`; a collector stops accepting it at its next request.
    pub fn revoke(&self, name: &str) -> Result<(), TokenError> {
        let mut file = self.read()?;
        let before = file.tokens.len();
        file.tokens.retain(|t| t.name != name);
        if file.tokens.len() == before {
            return Err(TokenError::NotFound(name.to_string()));
        }
        self.write(&file)
    }

    fn error(&self, message: impl std::fmt::Display) -> TokenError {
        TokenError::File { path: self.path.clone(), message: message.to_string() }
    }

    fn read(&self) -> Result<TokensFile, TokenError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| self.error(format!("not a tokens file: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TokensFile::default()),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Writes the whole file to a temporary file and renames it over the old one, so that
    /// a collector reading it sees the old or the new list, never half of one.
    fn write(&self, file: &TokensFile) -> Result<(), TokenError> {
        let temp = self.path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(file).map_err(|e| self.error(e))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut out = options.open(&temp).map_err(|e| self.error(e))?;
        out.write_all(&text).and_then(|()| out.sync_all()).map_err(|e| self.error(e))?;
        std::fs::rename(&temp, &self.path).map_err(|e| self.error(e))
    }

    fn modified(&self) -> Option<(SystemTime, u64)> {
        let meta = std::fs::metadata(&self.path).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    }
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// What the collector checks a request's `Authorization: Bearer` against.
pub(crate) struct Access {
    admin_token: Option<String>,
    tokens: Option<TokenFile>,
    /// The hashes of the tokens file as last read, and the file's (mtime, length) then.
    cached: Mutex<(Option<(SystemTime, u64)>, Vec<[u8; 32]>)>,
}

impl Access {
    pub(crate) fn new(admin_token: Option<String>, tokens: Option<TokenFile>) -> Access {
        Access { admin_token, tokens, cached: Mutex::new((None, Vec::new())) }
    }

    /// Whether the request carries a token that opens private endpoints.
    pub(crate) fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .filter(|g| !g.is_empty())
        else {
            return false;
        };
        if self.admin_token.as_deref().is_some_and(|t| constant_time_eq(given.as_bytes(), t.as_bytes())) {
            return true;
        }
        let Some(tokens) = &self.tokens else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        let now = tokens.modified();
        if now != cached.0 {
            let hashes = match tokens.list() {
                Ok(list) => list.iter().filter_map(|t| hex::decode(&t.sha256).ok()?.try_into().ok()).collect(),
                Err(e) => {
                    // Fail closed: a file that cannot be read opens nothing.
                    tracing::warn!(error = %e, "the tokens file could not be read; named tokens are refused");
                    Vec::new()
                }
            };
            *cached = (now, hashes);
        }
        cached.1.iter().fold(false, |found, h| found | constant_time_eq(h, &digest))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).expect("header"));
        h
    }

    #[test]
    fn created_tokens_are_stored_hashed_listed_by_name_and_revocable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = TokenFile::in_dir(dir.path());
        let access = Access::new(None, Some(file.clone()));
        let ci = file.create("ci").expect("create");
        let grafana = file.create("grafana").expect("create");
        assert!(access.allows(&bearer(&ci)) && access.allows(&bearer(&grafana)));
        let text = std::fs::read_to_string(dir.path().join(TOKENS_FILE)).expect("file");
        assert!(!text.contains(&ci) && !text.contains(&grafana), "tokens are stored hashed: {text}");
        let names: Vec<_> = file.list().expect("list").into_iter().map(|t| t.name).collect();
        assert_eq!(names, ["ci", "grafana"]);
        file.revoke("ci").expect("revoke");
        assert!(!access.allows(&bearer(&ci)), "a revoked token is refused without a restart");
        assert!(access.allows(&bearer(&grafana)));
        assert!(matches!(file.revoke("ci"), Err(TokenError::NotFound(_))));
    }

    #[test]
    fn bad_names_duplicates_and_bad_tokens_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = TokenFile::in_dir(dir.path());
        for name in ["", "with space", "a/b", &"x".repeat(65)] {
            assert!(matches!(file.create(name), Err(TokenError::InvalidName(_))), "{name:?}");
        }
        let token = file.create("ci").expect("create");
        assert!(matches!(file.create("ci"), Err(TokenError::Exists(_))));
        let access = Access::new(Some("admin".into()), Some(file));
        assert!(access.allows(&bearer("admin")));
        for wrong in ["", "admi", &token[..token.len() - 1], &hash(&token)] {
            assert!(!access.allows(&bearer(wrong)), "{wrong:?}");
        }
        assert!(!access.allows(&HeaderMap::new()));
    }

    #[test]
    fn an_unreadable_tokens_file_opens_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = TokenFile::in_dir(dir.path());
        let token = file.create("ci").expect("create");
        std::fs::write(dir.path().join(TOKENS_FILE), b"{not json").expect("write");
        let access = Access::new(None, Some(file.clone()));
        assert!(!access.allows(&bearer(&token)));
        assert!(matches!(file.create("other"), Err(TokenError::File { .. })), "a broken file is not overwritten");
    }
}
