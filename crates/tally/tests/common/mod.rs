//! Helpers shared by the integration tests: the example host tool run as a real process
//! in a private home directory, and a collector on loopback written with `std::net`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tally_protocol::{Batch, BatchResponse};
use uuid::Uuid;

/// The example host tool, built by `cargo test` next to the test binaries.
pub fn hostcli() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join("examples").join(format!("hostcli{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test -p tally` (which builds the examples), \
         or `cargo build -p tally --example hostcli` first",
        path.display()
    );
    path
}

/// A private home directory with a project, and the environment a run gets.
pub struct Home {
    pub dir: tempfile::TempDir,
    pub vars: BTreeMap<String, String>,
}

impl Home {
    /// A home with a project (`project/package.json` with a hostcli uuid) and a policy
    /// file that allows telemetry (so a real `/etc/tally/policy.toml` cannot interfere).
    pub fn new() -> Home {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home { dir, vars: BTreeMap::new() };
        std::fs::create_dir_all(home.project()).unwrap();
        std::fs::create_dir_all(home.home()).unwrap();
        std::fs::write(
            home.project().join("package.json"),
            format!("{{\"name\":\"site\",\"hostcli\":{{\"uuid\":\"{}\"}}}}\n", Uuid::new_v4()),
        )
        .unwrap();
        std::fs::write(home.policy(), "telemetry = \"allow\"\n").unwrap();
        home
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn project(&self) -> PathBuf {
        self.dir.path().join("project")
    }

    pub fn policy(&self) -> PathBuf {
        self.dir.path().join("policy.toml")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.home().join(".local/share/tally/hostcli")
    }

    pub fn config_dir(&self) -> PathBuf {
        self.home().join(".config/tally/hostcli")
    }

    pub fn outbox(&self) -> tally::Outbox {
        tally::Outbox::new(self.data_dir())
    }

    pub fn outbox_ids(&self) -> Vec<Uuid> {
        self.outbox().chunks().unwrap().into_iter().flat_map(|c| c.events).map(|e| e.event_id).collect()
    }

    pub fn set(&mut self, k: &str, v: &str) -> &mut Home {
        self.vars.insert(k.to_string(), v.to_string());
        self
    }

    /// Runs hostcli in the project with a cleared environment: only `PATH`, `HOME`,
    /// `TALLY_POLICY` and the variables set on this home. Panics if it has not exited after
    /// a minute (a hang, not a timing assertion).
    pub fn run(&self, args: &[&str], extra: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(hostcli());
        cmd.args(args)
            .current_dir(self.project())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .env("TALLY_POLICY", self.policy())
            .envs(&self.vars)
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn hostcli");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if child.try_wait().expect("wait").is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("hostcli {args:?} did not exit within a minute");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        child.wait_with_output().expect("output")
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str], extra: &[(&str, &str)]) -> String {
        let out = self.run(args, extra);
        assert!(
            out.status.success(),
            "hostcli {args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `telemetry status --json`, parsed.
    pub fn status(&self, extra: &[(&str, &str)]) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["telemetry", "status", "--json"], extra)).expect("status JSON")
    }

    /// Every file under the temp dir with its contents.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.insert(p.clone(), std::fs::read(&p).unwrap_or_default());
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(self.dir.path(), &mut out);
        out
    }
}

/// How the loopback collector answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Behaviour {
    /// 200 with a `BatchResponse`.
    Accept,
    /// Reads the request, stores its events, answers after this long.
    Slow(Duration),
    /// Accepts the connection and never reads or answers.
    Silent,
    /// Answers this status (with `Retry-After: 1` for 429/503), storing nothing.
    Status(u16),
    /// Answers this status once (as `Status`), then behaves as `Accept`.
    StatusOnce(u16),
}

struct CollectorState {
    behaviour: Mutex<Behaviour>,
    ids: Mutex<Vec<Uuid>>,
    batches: Mutex<Vec<Batch>>,
    headers: Mutex<Vec<BTreeMap<String, String>>>,
    connections: Mutex<usize>,
    proxied: Mutex<usize>,
    requests: Mutex<Vec<std::time::Instant>>,
    /// `dropped_props` in every answer.
    dropped_props: Mutex<usize>,
}

/// A minimal collector on `127.0.0.1`, one thread per connection, keep-alive aware.
pub struct Collector {
    pub addr: SocketAddr,
    state: Arc<CollectorState>,
}

impl Collector {
    pub fn start(behaviour: Behaviour) -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(CollectorState {
            behaviour: Mutex::new(behaviour),
            ids: Mutex::new(Vec::new()),
            batches: Mutex::new(Vec::new()),
            headers: Mutex::new(Vec::new()),
            connections: Mutex::new(0),
            proxied: Mutex::new(0),
            requests: Mutex::new(Vec::new()),
            dropped_props: Mutex::new(0),
        });
        let s = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                *s.connections.lock().unwrap() += 1;
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &s);
                });
            }
        });
        Collector { addr, state }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers that this many properties were dropped (not in the app's schema).
    pub fn drop_props(&self, n: usize) {
        *self.state.dropped_props.lock().unwrap() = n;
    }

    pub fn set(&self, b: Behaviour) {
        *self.state.behaviour.lock().unwrap() = b;
    }

    /// Every event id received, in order, duplicates included.
    pub fn ids(&self) -> Vec<Uuid> {
        self.state.ids.lock().unwrap().clone()
    }

    pub fn batches(&self) -> Vec<Batch> {
        self.state.batches.lock().unwrap().clone()
    }

    pub fn headers(&self) -> Vec<BTreeMap<String, String>> {
        self.state.headers.lock().unwrap().clone()
    }

    /// When each request (its body fully read) arrived.
    pub fn request_times(&self) -> Vec<std::time::Instant> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Tunnels opened through this server acting as a proxy (`CONNECT`).
    pub fn proxied(&self) -> usize {
        *self.state.proxied.lock().unwrap()
    }

    pub fn connections(&self) -> usize {
        *self.state.connections.lock().unwrap()
    }
}

fn serve(stream: TcpStream, s: &CollectorState) -> std::io::Result<()> {
    if *s.behaviour.lock().unwrap() == Behaviour::Silent {
        // Hold the connection open and say nothing until the client gives up.
        let mut buf = [0u8; 1024];
        let mut stream = stream;
        while stream.read(&mut buf)? > 0 {}
        return Ok(());
    }
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let connect = line.starts_with("CONNECT ");
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        if connect {
            // Acting as the HTTP proxy: open the "tunnel" to ourselves.
            *s.proxied.lock().unwrap() += 1;
            write!(out, "HTTP/1.1 200 Connection established\r\n\r\n")?;
            continue;
        }
        let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body)?;
        s.requests.lock().unwrap().push(Instant::now());
        let behaviour = {
            let mut b = s.behaviour.lock().unwrap();
            let now = *b;
            if let Behaviour::StatusOnce(code) = now {
                *b = Behaviour::Accept;
                Behaviour::Status(code)
            } else {
                now
            }
        };
        if let Behaviour::Status(code) = behaviour {
            let extra = if code == 429 || code == 503 { "Retry-After: 1\r\n" } else { "" };
            write!(out, "HTTP/1.1 {code} Status\r\n{extra}Content-Length: 0\r\n\r\n")?;
            continue;
        }
        let json = if headers.get("content-encoding").map(String::as_str) == Some("gzip") {
            let mut d = flate2::read::GzDecoder::new(&body[..]);
            let mut v = Vec::new();
            d.read_to_end(&mut v)?;
            v
        } else {
            body
        };
        let batch: Batch = serde_json::from_slice(&json).expect("a valid batch");
        s.ids.lock().unwrap().extend(batch.events.iter().map(|e| e.event_id));
        let n = batch.events.len();
        s.batches.lock().unwrap().push(batch);
        s.headers.lock().unwrap().push(headers);
        if let Behaviour::Slow(d) = behaviour {
            std::thread::sleep(d);
        }
        let response = serde_json::to_string(&BatchResponse {
            accepted: n,
            duplicate: 0,
            rejected: 0,
            dropped_props: *s.dropped_props.lock().unwrap(),
            results: vec![],
        })
        .unwrap();
        write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{response}",
            response.len()
        )?;
    }
}

/// A port nothing listens on.
pub fn refused_endpoint() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}
