//! Test kit for tool authors (feature `testing`).
//!
//! - [`MemorySink`]: a transport that keeps batches in memory, to assert what was recorded;
//! - [`Sandbox`]: fresh config and data directories and an empty environment, so a test's
//!   outcome does not depend on the developer's `DO_NOT_TRACK` or CI variables, and an
//!   assertion that a disabled client created no file;
//! - [`ConnectionTrap`]: a loopback listener that counts connection attempts, to assert
//!   that a disabled client opened no socket.
//!
//! ```
//! use tally::testing::{MemorySink, Sandbox};
//! use tally::{Event, Mode};
//!
//! let sandbox = Sandbox::new();
//! let sink = MemorySink::new();
//! let t = sandbox.builder("mytool", "1.0.0").sink(sink.clone()).build();
//! t.record(Event::command_run("build"));
//! t.shutdown();
//! sink.assert_recorded("command.run");
//!
//! let off = sandbox.builder("mytool", "1.0.0").default_mode(Mode::Off).build();
//! off.record(Event::command_run("build"));
//! off.shutdown();
//! ```

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tally_protocol::Batch;

use crate::transport::Delivery;
use crate::{Builder, Telemetry};

/// Batches delivered in memory. Clones share the same storage.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    batches: Arc<Mutex<Vec<Batch>>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> MemorySink {
        MemorySink::default()
    }

    pub(crate) fn deliver(&self, batch: &Batch) -> Delivery {
        self.batches.lock().unwrap_or_else(PoisonError::into_inner).push(batch.clone());
        Delivery::Delivered { accepted: batch.events.len(), duplicate: 0, rejected: 0, dropped_props: 0 }
    }

    /// Every batch delivered so far.
    pub fn batches(&self) -> Vec<Batch> {
        self.batches.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Every event delivered so far, in order.
    pub fn events(&self) -> Vec<tally_protocol::Event> {
        self.batches().into_iter().flat_map(|b| b.events).collect()
    }

    /// The names of the events delivered so far.
    pub fn names(&self) -> Vec<String> {
        self.events().into_iter().map(|e| e.event).collect()
    }

    /// The first delivered event named `name`; panics with the list of names otherwise.
    pub fn assert_recorded(&self, name: &str) -> tally_protocol::Event {
        self.events()
            .into_iter()
            .find(|e| e.event == name)
            .unwrap_or_else(|| panic!("no {name:?} event was delivered; got {:?}", self.names()))
    }

    /// Panics when an event named `name` was delivered.
    pub fn assert_not_recorded(&self, name: &str) {
        assert!(!self.names().iter().any(|n| n == name), "{name:?} was delivered");
    }

    /// Panics when anything was delivered.
    pub fn assert_empty(&self) {
        assert!(self.batches().is_empty(), "delivered: {:?}", self.names());
    }
}

/// Fresh, private config and data directories plus an empty environment, removed on drop.
#[derive(Debug)]
pub struct Sandbox {
    root: PathBuf,
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}

impl Sandbox {
    /// A new sandbox under the system's temporary directory.
    pub fn new() -> Sandbox {
        let root = std::env::temp_dir().join(format!("tally-sandbox-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&root).expect("create sandbox directory");
        Sandbox { root }
    }

    /// The sandbox directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A builder confined to the sandbox: its config and data directories, its own
    /// policy file (allowing telemetry), an empty environment (set variables with [`Builder::vars`]), a fixed project
    /// id, and the first-run notice already seen so the first run delivers.
    pub fn builder(&self, app: &str, version: &str) -> Builder {
        let config = self.root.join("config");
        let policy = self.root.join("policy.toml");
        let _ = std::fs::write(&policy, format!("{SEED_MARK}\ntelemetry = \"allow\"\n"));
        let b = Telemetry::builder(app, version)
            .config_dir(&config)
            .data_dir(self.root.join("data"))
            .policy_path(policy)
            .project_id(uuid::Uuid::from_u128(0x7b58_1c0d_89b7_479e_b379_a76a_b90b_8754))
            .vars(std::iter::empty::<(String, String)>())
            .exit_budget(Duration::from_secs(5));
        b.notice_seen()
    }

    /// Every file under the sandbox, except the two the sandbox itself writes (an
    /// allow-all policy file and the notice marker).
    pub fn files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push(p);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out.retain(|p| !self.seeded(p));
        out
    }

    fn seeded(&self, p: &Path) -> bool {
        std::fs::read_to_string(p).is_ok_and(|t| t.contains(SEED_MARK))
    }

    /// Panics when the sandbox holds any file besides the ones it seeded.
    pub fn assert_no_files(&self) {
        let files = self.files();
        assert!(files.is_empty(), "files were created: {files:?}");
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

const SEED_MARK: &str = "# seeded by tally::testing::Sandbox";

impl Builder {
    /// Marks the first-run notice as seen in this builder's config directory (sandboxes).
    fn notice_seen(self) -> Builder {
        if let Some(dir) = &self.config_dir {
            let _ = std::fs::create_dir_all(dir);
            let _ = std::fs::write(dir.join("config.toml"), format!("{SEED_MARK}\nnotice_shown = true\n"));
        }
        self
    }
}

/// A loopback listener that accepts nothing and counts connection attempts.
#[derive(Debug)]
pub struct ConnectionTrap {
    listener: TcpListener,
}

impl ConnectionTrap {
    /// Binds `127.0.0.1:0`.
    pub fn new() -> std::io::Result<ConnectionTrap> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        Ok(ConnectionTrap { listener })
    }

    /// `http://127.0.0.1:<port>`, to use as the endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.listener.local_addr().expect("bound listener"))
    }

    /// How many connections were attempted so far (each is accepted and closed).
    pub fn connections(&self) -> usize {
        let mut n = 0;
        while let Ok((stream, _)) = self.listener.accept() {
            drop::<TcpStream>(stream);
            n += 1;
        }
        n
    }
}
