//! tally's ClickHouse backend: the [`EventStore`] over ClickHouse's HTTP interface, on one
//! server or on a cluster through a `Distributed` table.
//!
//! Where the contract's guarantees come from, without transactions (ClickHouse 18.16 and
//! later have none for MergeTree tables):
//! - **idempotence by `event_id`**: an append first asks which of its ids are stored and
//!   inserts only the others (`write.rs`); a `ReplacingMergeTree` read with `FINAL`
//!   collapses copies two writers inserted at the same moment.
//! - **`apply`'s position**: the rows are inserted first, then the position (one row per
//!   writer and apply in `log_position`). A crash between the two leaves rows whose
//!   position was not recorded; the applier then applies the same log records again, and
//!   the id check finds their rows stored and reports them duplicates, so nothing is
//!   counted twice and nothing is skipped.
//! - **durability**: an insert returns once the server has written its part (in cluster
//!   mode, once every shard has: `insert_distributed_sync`). Where the server has them
//!   (current releases), the events table `fsync`s each part and its directory first
//!   (`fsync_after_insert`, set at every open); on 18.16 a power loss of the ClickHouse
//!   machine can lose the last seconds of inserts, a restart of the process loses nothing
//!   (docs/deploy.md).
//! - **erasure and retention**: `ALTER TABLE … DELETE` on every server, waited for in
//!   `system.mutations` (18.16 has no `mutations_sync`); retention first drops whole
//!   month partitions.
//!
//! Several collectors may write to one database: each has its own ingest log, so each
//! records its position under its own writer name ([`Config::writer`]).

mod http;
mod schema;
mod sql;
#[cfg(feature = "testing")]
pub mod testing;
mod write;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tally_store::{
    AppendStatus, ContextField, EventRow, EventStore, KnownValues, ProjectKey, Query, StoreError, Table,
};
use uuid::Uuid;

use crate::http::{Node, quote};

/// Longest wait for a mutation (erasure, retention) to finish on a server.
const MUTATION_TIMEOUT: Duration = Duration::from_secs(600);

/// Where the store is: parsed from `clickhouse://[user[:password]@]host:port[,host:port…]/database[?cluster=NAME&writer=NAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The HTTP addresses (`host:port`) of the servers. The first is asked every query and
    /// receives every insert (through the `Distributed` table in cluster mode) and holds
    /// the metadata; every one gets the event tables and runs erasures.
    pub servers: Vec<String>,
    /// The database (created if missing): letters, digits and `_`.
    pub database: String,
    /// The cluster (`remote_servers` in the servers' configuration) the `Distributed`
    /// table spans; `None` for one server.
    pub cluster: Option<String>,
    /// The name under which this writer records its ingest-log position; collectors that
    /// share a database need different names.
    pub writer: String,
    /// User and password, sent as headers (`X-ClickHouse-User`/`X-ClickHouse-Key`).
    pub user: Option<(String, String)>,
}

impl Config {
    /// Parses a `clickhouse://` URL; the error says what is wrong.
    pub fn from_url(url: &str) -> Result<Config, String> {
        let rest =
            url.strip_prefix("clickhouse://").ok_or_else(|| format!("{url:?} does not start with clickhouse://"))?;
        let (rest, params) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, database) = rest
            .split_once('/')
            .ok_or_else(|| format!("{url:?} names no database: use clickhouse://host:port/database"))?;
        let (user, hosts) = match authority.rsplit_once('@') {
            Some((user, hosts)) => {
                let (name, password) = user.split_once(':').unwrap_or((user, ""));
                (Some((name.to_string(), password.to_string())), hosts)
            }
            None => (None, authority),
        };
        let servers: Vec<String> = hosts.split(',').map(str::to_string).collect();
        if let Some(bad) =
            servers.iter().find(|s| s.rsplit_once(':').is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err()))
        {
            return Err(format!("{bad:?} in {url:?} is not host:port (the HTTP port, 8123 by default)"));
        }
        check_name("database", database)?;
        let mut config =
            Config { servers, database: database.to_string(), cluster: None, writer: "default".into(), user };
        for pair in params.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("cluster", name)) => {
                    check_name("cluster", name)?;
                    config.cluster = Some(name.to_string());
                }
                Some(("writer", name)) => {
                    check_name("writer", name)?;
                    config.writer = name.to_string();
                }
                _ => return Err(format!("{pair:?} in {url:?} is not one of cluster=NAME, writer=NAME")),
            }
        }
        if config.cluster.is_none() && config.servers.len() > 1 {
            return Err(format!("{url:?} names several servers but no cluster: add ?cluster=NAME"));
        }
        Ok(config)
    }
}

fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let ok = ok && (what != "database" || !name.contains('-'));
    if ok { Ok(()) } else { Err(format!("{what} name {name:?} must be letters, digits and _")) }
}

/// The store on ClickHouse.
pub struct ClickHouseStore {
    /// `servers[0]` first.
    nodes: Vec<Node>,
    config: Config,
    /// Serializes this process's writes, so that its own appends never race in the id
    /// check.
    write: Mutex<()>,
}

impl ClickHouseStore {
    /// Connects, creates the database and tables where missing and migrates them.
    pub fn open(config: Config) -> Result<ClickHouseStore, StoreError> {
        let nodes: Vec<Node> =
            config.servers.iter().map(|a| Node::new(a, &config.database, config.user.clone())).collect();
        schema::migrate(&nodes, config.cluster.as_deref())?;
        Ok(ClickHouseStore { nodes, config, write: Mutex::new(()) })
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Inserts rows known to be new (distinct ids, none stored: an empty database being
    /// filled from another store or by the benchmark) without the id check; an id stored
    /// twice anyway still counts once (`FINAL`). Returns how many rows were sent.
    pub fn load_new(&self, rows: &[EventRow]) -> Result<u64, StoreError> {
        let _guard = self.write_lock();
        let status = write::insert(self.meta(), rows, &Default::default(), self.insert_settings())?;
        Ok(status.iter().filter(|s| **s == AppendStatus::Inserted).count() as u64)
    }

    /// Records the fingerprint of the server secret the collector hashes project and
    /// machine ids with, or refuses a different one: collectors sharing a database must
    /// share the secret, or one project would count as several.
    pub fn claim_secret(&self, fingerprint: &str) -> Result<(), StoreError> {
        let stored: Vec<String> = self
            .meta()
            .rows("SELECT DISTINCT fingerprint FROM secret_fingerprint")?
            .iter()
            .filter_map(|r| r[0].as_str().map(str::to_string))
            .collect();
        if stored.is_empty() {
            let line = serde_json::json!({ "fingerprint": fingerprint }).to_string();
            return self.meta().insert("secret_fingerprint", line.as_bytes(), &[]);
        }
        if stored.iter().all(|s| s == fingerprint) {
            Ok(())
        } else {
            Err(StoreError::Backend(format!(
                "the clickhouse database {} holds events keyed with another server secret; collectors sharing a \
                 database must share it: copy the first collector's server-secret file into this data dir",
                self.config.database
            )))
        }
    }

    fn meta(&self) -> &Node {
        &self.nodes[0]
    }

    fn local(&self) -> &'static str {
        schema::local_table(self.config.cluster.as_deref())
    }

    fn insert_settings(&self) -> &'static [(&'static str, &'static str)] {
        if self.config.cluster.is_some() { &[("insert_distributed_sync", "1")] } else { &[] }
    }

    fn count(&self, sql: &str) -> Result<u64, StoreError> {
        let rows = self.meta().rows(sql)?;
        rows.first()
            .and_then(|r| r.first())
            .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
            .ok_or_else(|| StoreError::Backend(format!("clickhouse returned no count for {sql}")))
    }

    fn write_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // The guard protects no data, only the order of requests.
        self.write.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn append_locked(&self, rows: &[EventRow]) -> Result<Vec<AppendStatus>, StoreError> {
        if rows.is_empty() {
            return Ok(vec![]);
        }
        let stored = write::stored_ids(self.meta(), rows)?;
        write::insert(self.meta(), rows, &stored, self.insert_settings())
    }

    /// Runs `ALTER TABLE <local> DELETE WHERE <condition>` on every server and waits until
    /// every server has finished it.
    fn delete_where(&self, condition: &str) -> Result<(), StoreError> {
        let (db, local) = (&self.config.database, self.local());
        for node in &self.nodes {
            node.execute(&format!("ALTER TABLE {db}.{local} DELETE WHERE {condition}"))?;
        }
        let started = Instant::now();
        for node in &self.nodes {
            loop {
                let pending = node.rows(&format!(
                    "SELECT count() FROM system.mutations WHERE database = {} AND table = {} AND is_done = 0",
                    quote(db),
                    quote(local)
                ))?;
                if pending.first().and_then(|r| r.first()).and_then(serde_json::Value::as_u64) == Some(0) {
                    break;
                }
                if started.elapsed() > MUTATION_TIMEOUT {
                    return Err(StoreError::Unavailable(format!(
                        "a delete on clickhouse at {} did not finish within {MUTATION_TIMEOUT:?}",
                        node.address
                    )));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }
}

impl EventStore for ClickHouseStore {
    fn append(&self, rows: &[EventRow]) -> Result<Vec<AppendStatus>, StoreError> {
        let _guard = self.write_lock();
        self.append_locked(rows)
    }

    fn apply(&self, rows: &[EventRow], through: u64) -> Result<Vec<AppendStatus>, StoreError> {
        let _guard = self.write_lock();
        let status = self.append_locked(rows)?;
        let line = serde_json::json!({ "writer": self.config.writer, "position": through }).to_string();
        self.meta().insert("log_position", line.as_bytes(), &[])?;
        Ok(status)
    }

    fn applied_position(&self) -> Result<Option<u64>, StoreError> {
        let rows = self.meta().rows(&format!(
            "SELECT count(), max(position) FROM log_position WHERE writer = {}",
            quote(&self.config.writer)
        ))?;
        let row = rows.first().ok_or_else(|| StoreError::Backend("clickhouse returned no log position row".into()))?;
        match (row[0].as_u64(), row[1].as_u64()) {
            (Some(0), _) => Ok(None),
            (Some(_), Some(p)) => Ok(Some(p)),
            _ => Err(StoreError::Backend(format!("unexpected log position answer {row:?}"))),
        }
    }

    fn event_ids_since(&self, since_ms: i64) -> Result<Vec<(Uuid, i64)>, StoreError> {
        let rows = self.meta().rows(&format!(
            "SELECT DISTINCT toString(event_id), occurred_at FROM events WHERE occurred_at >= {since_ms} AND day >= toDate('{}')",
            write::day(since_ms)
        ))?;
        rows.iter()
            .map(|r| {
                let id = r[0].as_str().and_then(|s| Uuid::parse_str(s).ok());
                match (id, r[1].as_i64()) {
                    (Some(id), Some(at)) => Ok((id, at)),
                    _ => Err(StoreError::Backend(format!("unexpected event id row {r:?}"))),
                }
            })
            .collect()
    }

    fn query(&self, query: &Query) -> Result<Table, StoreError> {
        sql::run(self.meta(), query)
    }

    fn erase_project(&self, project: &ProjectKey) -> Result<u64, StoreError> {
        let _guard = self.write_lock();
        let condition = format!("project = toUUID('{}')", project.as_uuid());
        let n = self.count(&format!("SELECT count() FROM events FINAL WHERE {condition}"))?;
        if n > 0 {
            self.delete_where(&condition)?;
        }
        Ok(n)
    }

    fn apply_retention(&self, app: &str, before_ms: i64) -> Result<u64, StoreError> {
        let _guard = self.write_lock();
        let app_is = format!("app = {}", quote(app));
        let n =
            self.count(&format!("SELECT count() FROM events FINAL WHERE {app_is} AND occurred_at < {before_ms}"))?;
        if n == 0 {
            return Ok(0);
        }
        // Months whose every day is before the cut and that hold only this app's events go
        // whole: no rewrite of their parts.
        let (db, local) = (&self.config.database, self.local());
        let cut_day = write::day(before_ms);
        for node in &self.nodes {
            let partitions = node.rows(&format!(
                "SELECT partition FROM system.parts WHERE database = {} AND table = {} AND active \
                 GROUP BY partition HAVING max(max_date) < toDate('{cut_day}')",
                quote(db),
                quote(local)
            ))?;
            for p in partitions.iter().filter_map(|r| r[0].as_str()) {
                if !p.chars().all(|c| c.is_ascii_digit()) {
                    continue;
                }
                let others = node
                    .rows(&format!("SELECT count() FROM {db}.{local} WHERE toYYYYMM(day) = {p} AND NOT ({app_is})"))?;
                let others = others
                    .first()
                    .and_then(|r| r.first())
                    .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())));
                if others == Some(0) {
                    node.execute(&format!("ALTER TABLE {db}.{local} DROP PARTITION {p}"))?;
                }
            }
        }
        let left = self.count(&format!("SELECT count() FROM events WHERE {app_is} AND occurred_at < {before_ms}"))?;
        if left > 0 {
            self.delete_where(&format!("{app_is} AND occurred_at < {before_ms}"))?;
        }
        Ok(n)
    }

    fn known_values(&self, app: &str) -> Result<KnownValues, StoreError> {
        let app = quote(app);
        let mut known = KnownValues::default();
        let fields: Vec<String> = ContextField::ALL.iter().map(|f| format!("groupUniqArray({})", f.name())).collect();
        let rows = self.meta().rows(&format!(
            "SELECT groupUniqArrayArray(plugins), {} FROM events WHERE app = {app}",
            fields.join(", ")
        ))?;
        let strings = |v: &serde_json::Value| -> BTreeSet<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        if let Some(row) = rows.first() {
            known.plugins = strings(&row[0]);
            for (field, values) in ContextField::ALL.iter().zip(&row[1..]) {
                let values = strings(values);
                if !values.is_empty() {
                    known.context.insert(*field, values);
                }
            }
        }
        let mut props: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for r in self.meta().rows(&format!(
            "SELECT DISTINCT k, v FROM events ARRAY JOIN prop_keys AS k, prop_values AS v WHERE app = {app} AND startsWith(v, '\"')"
        ))? {
            let (Some(k), Some(v)) = (r[0].as_str(), r[1].as_str()) else { continue };
            if let Ok(serde_json::Value::String(s)) = serde_json::from_str(v) {
                props.entry(k.to_string()).or_default().insert(s);
            }
        }
        known.props = props;
        Ok(known)
    }

    fn count_events(&self) -> Result<u64, StoreError> {
        self.count("SELECT count() FROM events FINAL")
    }
}

#[cfg(test)]
mod tests {
    use super::Config;

    #[test]
    fn urls_name_servers_database_cluster_and_writer() {
        let c = Config::from_url("clickhouse://a:8123,b:8124/tally?cluster=two&writer=c1").expect("valid");
        assert_eq!(c.servers, ["a:8123", "b:8124"]);
        assert_eq!((c.database.as_str(), c.cluster.as_deref(), c.writer.as_str()), ("tally", Some("two"), "c1"));
        let c = Config::from_url("clickhouse://me:secret@localhost:8123/db").expect("valid");
        assert_eq!(c.user, Some(("me".into(), "secret".into())));
        assert_eq!(c.writer, "default");
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        let check = |url: &str, says: &str| {
            let e = Config::from_url(url).expect_err(url);
            assert!(e.contains(says), "{url}: {e}");
        };
        check("http://localhost:8123/db", "does not start with clickhouse://");
        check("clickhouse://localhost:8123", "names no database");
        check("clickhouse://localhost/db", "is not host:port");
        check("clickhouse://localhost:8123/my-db", "must be letters, digits and _");
        check("clickhouse://a:1,b:2/db", "no cluster");
        check("clickhouse://a:1/db?shards=2", "is not one of");
    }
}
