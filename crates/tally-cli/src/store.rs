//! Which backend a command opens: `--store` (`TALLY_STORE`) is `duckdb` (the default, a
//! file in the data dir) or a `clickhouse://host:port/db` URL (docs/deploy.md).
//!
//! The data dir always holds the server secret, the admin token and the ingest log. With
//! DuckDB, the database file's lock keeps a second process out of the data dir; with
//! ClickHouse nothing in the data dir is locked by the store, so the data dir gets its own
//! lock file, and the collector's ingest-log position is recorded under a writer name kept
//! in the data dir, so that several collectors (each with its own data dir) can share one
//! database.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use tally_store::{EventStore, ServerSecret};
use tally_store_clickhouse::{ClickHouseStore, Config};
use tally_store_duckdb::DuckDbStore;

/// The file in the data dir naming this data dir's writer in a shared ClickHouse database.
pub const WRITER_FILE: &str = "clickhouse-writer";
/// The lock file of a data dir whose store is not DuckDB.
pub const LOCK_FILE: &str = "collector.lock";

/// A parsed `--store` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// DuckDB in the data dir.
    DuckDb,
    /// A ClickHouse database.
    ClickHouse(Config),
}

impl std::str::FromStr for StoreUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<StoreUrl, String> {
        if s == "duckdb" {
            Ok(StoreUrl::DuckDb)
        } else if s.starts_with("clickhouse://") {
            Config::from_url(s).map(StoreUrl::ClickHouse)
        } else {
            Err(format!("{s:?} is neither duckdb nor a clickhouse://host:port/database URL"))
        }
    }
}

/// An open store, and what the composition root needs to know about it.
pub struct Opened {
    /// The store the collector uses.
    pub store: Arc<dyn EventStore>,
    /// The DuckDB store, when that is the backend (its checkpoint runs at shutdown).
    pub duckdb: Option<Arc<DuckDbStore>>,
    /// Held while the process runs (ClickHouse: the data dir's lock).
    _lock: Option<std::fs::File>,
}

/// Opens the store `url` names for the data dir `data_dir` (created already, holding the
/// server secret `secret`).
pub fn open(url: &StoreUrl, data_dir: &Path, secret: &ServerSecret) -> anyhow::Result<Opened> {
    match url {
        StoreUrl::DuckDb => {
            let duckdb = Arc::new(DuckDbStore::open(data_dir)?);
            Ok(Opened { store: duckdb.clone(), duckdb: Some(duckdb), _lock: None })
        }
        StoreUrl::ClickHouse(config) => {
            let lock = lock_data_dir(data_dir)?;
            let mut config = config.clone();
            if config.writer == "default" {
                config.writer = writer_name(data_dir)?;
            }
            let servers = config.servers.join(",");
            let store = ClickHouseStore::open(config)
                .with_context(|| format!("while opening the clickhouse store at {servers}"))?;
            // A keyed hash of the nil UUID names the secret without revealing it.
            store.claim_secret(&secret.project_key(&uuid::Uuid::nil()).as_uuid().to_string())?;
            Ok(Opened { store: Arc::new(store), duckdb: None, _lock: Some(lock) })
        }
    }
}

fn lock_data_dir(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = data_dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("while opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "the data dir {} is in use by another tally process; stop it, or give this one its own --data-dir",
            data_dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("while locking {}", path.display())),
    }
}

/// This data dir's writer name, created on first use.
fn writer_name(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(WRITER_FILE);
    match std::fs::read_to_string(&path) {
        Ok(name) if !name.trim().is_empty() => Ok(name.trim().to_string()),
        Ok(_) => bail!("{} is empty; delete it only together with the data dir's log", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let name = uuid::Uuid::new_v4().to_string();
            std::fs::write(&path, &name).with_context(|| format!("while writing {}", path.display()))?;
            Ok(name)
        }
        Err(e) => Err(e).with_context(|| format!("while reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::StoreUrl;

    #[test]
    fn store_urls_pick_the_backend() {
        assert_eq!("duckdb".parse::<StoreUrl>(), Ok(StoreUrl::DuckDb));
        assert!(matches!("clickhouse://localhost:8123/tally".parse::<StoreUrl>(), Ok(StoreUrl::ClickHouse(_))));
        let e = "postgres://x/y".parse::<StoreUrl>().expect_err("not a backend");
        assert!(e.contains("neither duckdb nor"), "{e}");
    }
}
