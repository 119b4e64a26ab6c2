//! Throwaway `clickhouse-server` processes for tests: each on loopback, on free ports,
//! with its own configuration and data directory in a temporary folder, stopped when
//! dropped. [`Cluster`] starts several as the shards of one cluster. [`CurrentServer`] is a
//! current ClickHouse release (the engine of chDB) behind the same HTTP interface.
//!
//! The server binary is `$TALLY_CLICKHOUSE_SERVER`, else `clickhouse-server` on `PATH` or
//! in `/usr/sbin`; `crates/tally-store-clickhouse/tests/setup.sh` installs Debian's
//! package when it is missing (`cargo xtask test` runs it).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The cluster name [`Cluster`] configures.
pub const CLUSTER: &str = "tally_test";

/// One running server.
pub struct Server {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// `127.0.0.1:<port>` of the HTTP interface.
    pub http: String,
    /// The native protocol port (shards talk to each other over it).
    pub tcp: u16,
    shards: Vec<u16>,
}

/// Several servers, the shards of [`CLUSTER`].
pub struct Cluster {
    /// The servers, first one first.
    pub servers: Vec<Server>,
}

fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("TALLY_CLICKHOUSE_SERVER") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join("clickhouse-server"))
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| {
        panic!(
            "clickhouse-server is not installed: run crates/tally-store-clickhouse/tests/setup.sh (or cargo xtask test)"
        )
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

impl Server {
    /// Starts one server and waits until it answers.
    pub fn start() -> Server {
        Server::with_shards(free_port(), Vec::new())
    }

    fn with_shards(tcp: u16, shards: Vec<u16>) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = Server { child: None, dir, http: format!("127.0.0.1:{}", free_port()), tcp, shards };
        server.launch();
        server
    }

    /// A `clickhouse://` URL of a fresh database on this server.
    pub fn url(&self) -> String {
        format!("clickhouse://{}/{}", self.http, fresh_database())
    }

    /// The folder holding its configuration, data and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the server with SIGKILL and starts it again on the same data and ports.
    pub fn restart(&mut self) {
        self.stop(true);
        self.launch();
    }

    /// Kills the server (SIGKILL) and waits for it to exit; its data is kept for
    /// [`Server::launch`].
    pub fn kill(&mut self) {
        self.stop(true);
    }

    /// The server runs under a shell that waits on its stdin: a line `keep` (from
    /// [`Server::kill`]) kills it and keeps its data; end of input, also when the test
    /// process dies without dropping the server (a `static` one, a panic), kills it and
    /// deletes its folder. So no server outlives the tests that started it.
    fn stop(&mut self, keep: bool) {
        stop_watched(&mut self.child, if keep { b"keep\n" } else { b"\n" });
    }

    /// Starts the process on this server's folder and ports, and waits until `/ping`
    /// answers (at most a minute).
    pub fn launch(&mut self) {
        let config = self.write_config();
        let child = Command::new("sh")
            .arg("-c")
            .arg(r#""$0" --config-file="$1" & pid=$!; read cmd; kill -9 $pid; wait $pid; [ "$cmd" = keep ] || rm -rf "$2""#)
            .arg(binary())
            .arg(&config)
            .arg(self.dir.path())
            .current_dir(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start clickhouse-server");
        self.child = Some(child);
        if !answers_ping(&self.http) {
            panic!(
                "clickhouse-server did not answer within a minute; see {}",
                self.dir.path().join("err.log").display()
            );
        }
    }

    fn write_config(&self) -> PathBuf {
        let d = self.dir.path().display();
        let http_port = self.http.rsplit_once(':').map(|(_, p)| p).expect("host:port");
        let shards: String = self
            .shards
            .iter()
            .map(|p| format!("<shard><replica><host>127.0.0.1</host><port>{p}</port></replica></shard>"))
            .collect();
        let remote = if shards.is_empty() {
            String::new()
        } else {
            format!("<remote_servers><{CLUSTER}>{shards}</{CLUSTER}></remote_servers>")
        };
        let config = format!(
            r#"<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/err.log</errorlog><console>0</console></logger>
  <http_port>{http_port}</http_port>
  <tcp_port>{tcp}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>{d}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>268435456</mark_cache_size>
  <max_concurrent_queries>200</max_concurrent_queries>
  {remote}
</yandex>
"#,
            tcp = self.tcp
        );
        let users = r#"<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
"#;
        let path = self.dir.path().join("config.xml");
        std::fs::write(&path, config).expect("write config.xml");
        std::fs::write(self.dir.path().join("users.xml"), users).expect("write users.xml");
        path
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop(false);
    }
}

impl Cluster {
    /// Starts `n` servers, each configured with all of them as the shards of [`CLUSTER`].
    pub fn start(n: usize) -> Cluster {
        let tcp: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let servers = tcp.iter().map(|port| Server::with_shards(*port, tcp.clone())).collect();
        Cluster { servers }
    }

    /// A `clickhouse://` URL of a fresh database on every shard.
    pub fn url(&self) -> String {
        let hosts: Vec<&str> = self.servers.iter().map(|s| s.http.as_str()).collect();
        format!("clickhouse://{}/{}?cluster={CLUSTER}", hosts.join(","), fresh_database())
    }
}

/// A database name not used before by this process.
fn fresh_database() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("tally_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A current ClickHouse release for tests: chDB (PyPI `chdb-core`, ClickHouse 26.9's engine
/// as a library) behind the part of ClickHouse's HTTP interface tally uses
/// (`tests/current/server.py`), on a free loopback port with its data in a temporary
/// folder, stopped when dropped. The Python is `$TALLY_CLICKHOUSE_CURRENT_PYTHON`, which
/// `crates/tally-store-clickhouse/tests/current/setup.sh` installs and prints (`cargo xtask
/// test` runs it). One server, no cluster: chDB has no `Distributed` tables over servers.
pub struct CurrentServer {
    child: Option<Child>,
    _dir: tempfile::TempDir,
    /// `127.0.0.1:<port>`.
    pub http: String,
}

impl CurrentServer {
    /// Starts it and waits until it answers (at most a minute).
    pub fn start() -> CurrentServer {
        let python = std::env::var_os("TALLY_CLICKHOUSE_CURRENT_PYTHON").unwrap_or_else(|| {
            panic!(
                "TALLY_CLICKHOUSE_CURRENT_PYTHON is not set: run \
                 crates/tally-store-clickhouse/tests/current/setup.sh and set it to the python it prints \
                 (cargo xtask test does both)"
            )
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/current/server.py");
        // Under a shell that waits on its stdin, as `Server` is: the end of input (the test
        // process exiting, even without dropping it) kills the server.
        let child = Command::new("sh")
            .arg("-c")
            .arg(r#""$0" "$1" --port "$2" --path "$3/data" & pid=$!; read cmd; kill -9 $pid; wait $pid"#)
            .arg(&python)
            .arg(&script)
            .arg(port.to_string())
            .arg(dir.path())
            // chDB reads a config.xml from its working directory, as clickhouse-local does.
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("err.log")).expect("err.log"))
            .spawn()
            .expect("start the current ClickHouse (python)");
        let server = CurrentServer { child: Some(child), http: format!("127.0.0.1:{port}"), _dir: dir };
        if !answers_ping(&server.http) {
            panic!(
                "the current ClickHouse did not answer within a minute; see {}",
                server._dir.path().join("err.log").display()
            );
        }
        server
    }

    /// A `clickhouse://` URL of a fresh database on it.
    pub fn url(&self) -> String {
        format!("clickhouse://{}/{}", self.http, fresh_database())
    }
}

impl Drop for CurrentServer {
    fn drop(&mut self) {
        stop_watched(&mut self.child, b"\n");
    }
}

/// Stops a server running under a shell that waits on its stdin: writes `line` to it and
/// waits for the shell to exit.
fn stop_watched(child: &mut Option<Child>, line: &[u8]) {
    if let Some(mut child) = child.take() {
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            let _ = stdin.write_all(line);
        }
        let _ = child.wait();
    }
}

/// Whether `http://<address>/ping` answers within a minute.
fn answers_ping(address: &str) -> bool {
    let started = Instant::now();
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(2))).build().into();
    while started.elapsed() < Duration::from_secs(60) {
        if agent.get(format!("http://{address}/ping")).call().is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
