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
    fn server() -> &'static super::Server {
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
    fn server() -> &'static super::CurrentServer {
        static SERVER: super::OnceLock<super::CurrentServer> = super::OnceLock::new();
        SERVER.get_or_init(super::CurrentServer::start)
    }
    tally_store::conformance_tests!(super::open(server().url()));
}
