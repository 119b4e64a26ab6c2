//! The shared conformance suite on a real ClickHouse server (one database per test), and
//! on two servers as the shards of one cluster behind a `Distributed` table, and on a current
//! release (ClickHouse 26.9's engine, `testing::CurrentServer`).

use std::sync::OnceLock;

use tally_store_clickhouse::testing::{Cluster, CurrentServer, Server};
use tally_store_clickhouse::{ClickHouseStore, Config};

fn open(url: String) -> Box<ClickHouseStore> {
    Box::new(ClickHouseStore::open(Config::from_url(&url).expect("url")).expect("open"))
}

mod one_server {
    pub(super) fn server() -> &'static super::Server {
        static SERVER: super::OnceLock<super::Server> = super::OnceLock::new();
        SERVER.get_or_init(super::Server::start)
    }
    tally_store::conformance_tests!(super::open(server().url()));
}

mod two_shards {
    fn cluster() -> &'static super::Cluster {
        static CLUSTER: super::OnceLock<super::Cluster> = super::OnceLock::new();
        CLUSTER.get_or_init(|| super::Cluster::start(2))
    }
    tally_store::conformance_tests!(super::open(cluster().url()));
}

mod current_release {
    pub(super) fn server() -> &'static super::CurrentServer {
        static SERVER: super::OnceLock<super::CurrentServer> = super::OnceLock::new();
        SERVER.get_or_init(super::CurrentServer::start)
    }
    tally_store::conformance_tests!(super::open(server().url()));
}

/// The events table's definition as the server at `http` holds it after opening a fresh
/// database there, and its URL.
fn opened_definition(http: &str, fresh_url: String) -> (String, String) {
    drop(open(fresh_url.clone()));
    (engine_full(http, &fresh_url), fresh_url)
}

/// The events table's definition as the server holds it.
fn engine_full(http: &str, url: &str) -> String {
    let database = url.rsplit('/').next().expect("a database");
    let sql = format!("SELECT engine_full FROM system.tables WHERE database = '{database}' AND name = 'events'");
    let mut answer = ureq::post(format!("http://{http}/")).send(sql.as_bytes()).expect("query system.tables");
    answer.body_mut().read_to_string().expect("an answer")
}

/// On a current release the events table `fsync`s every inserted part and its directory,
/// also when the database was made before (every open sets it).
#[test]
fn a_current_release_fsyncs_inserted_parts() {
    let server = current_release::server();
    let (definition, url) = opened_definition(&server.http, server.url());
    assert!(definition.contains("fsync_after_insert = 1"), "{definition}");
    assert!(definition.contains("fsync_part_directory = 1"), "{definition}");
    drop(open(url.clone()));
    assert_eq!(engine_full(&server.http, &url), definition, "opening again changes nothing");
}

/// 18.16 has neither setting: the store opens without them.
#[test]
fn an_old_release_opens_without_the_fsync_settings() {
    let server = one_server::server();
    let (definition, _) = opened_definition(&server.http, server.url());
    assert!(definition.contains("ReplacingMergeTree"), "{definition}");
    assert!(!definition.contains("fsync_after_insert"), "{definition}");
}
