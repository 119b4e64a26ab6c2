//! Crashes and failing disks, with real processes: this test binary runs itself as the
//! appending child (`child_*` tests do nothing unless `TALLY_LOG_CHILD_DIR` is set).
//!
//! - `kill -9` at a random moment, several rounds on the same log: every record the child
//!   was told is durable is there, intact, after a reopen.
//! - A file-size limit (`ulimit -f`, with SIGXFSZ ignored so writes fail with `EFBIG`)
//!   stands in for a full disk: appends of the failing group get an I/O error, later
//!   appends succeed in a fresh segment, and every acknowledged record reads back.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tally_log::{ErrorKind, Log, Options};

const CHILD_DIR: &str = "TALLY_LOG_CHILD_DIR";
const CHILD_ROUND: &str = "TALLY_LOG_CHILD_ROUND";

fn record(round: u64, thread: u64, i: u64) -> Vec<u8> {
    let len = 20 + ((i * 37 + thread * 11) % 700) as usize;
    let seed = (round << 40 | thread << 32 | i).to_le_bytes();
    (0..len).map(|k| seed[k % 8] ^ (k as u8).wrapping_mul(29)).collect()
}

fn child_options() -> Options {
    let mut o = Options::default();
    o.segment_bytes = 256 << 10;
    o
}

/// The child of `kill_9_loses_no_acknowledged_record`: four threads append until killed
/// and print `ack <position> <thread> <i>` once each record is durable.
#[test]
fn child_appends_until_killed() {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return };
    let round: u64 = std::env::var(CHILD_ROUND).unwrap().parse().unwrap();
    let log = Arc::new(Log::open(Path::new(&dir), child_options()).unwrap());
    // libtest has printed "test <name> ... " without a newline; end it.
    println!();
    let threads: Vec<_> = (0..4)
        .map(|thread| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0.. {
                    let position = log.append(&record(round, thread, i)).unwrap().wait().unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {position} {thread} {i}").unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// A small xorshift generator seeded from the clock: each run kills at other moments.
fn random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn kill_9_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut seed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    let mut expected: HashMap<u64, Vec<u8>> = HashMap::new();
    for round in 0..6u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_appends_until_killed", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_ROUND, round.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (first_ack, got_first) = std::sync::mpsc::channel();
        let lines = std::thread::spawn(move || {
            let mut acks = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Some(rest) = line.strip_prefix("ack ") else { continue };
                let f: Vec<u64> = rest.split(' ').map(|x| x.parse().unwrap()).collect();
                if acks.is_empty() {
                    let _ = first_ack.send(());
                }
                acks.push((f[0], f[1], f[2]));
            }
            acks
        });
        got_first.recv_timeout(Duration::from_secs(60)).expect("the child acknowledges something");
        std::thread::sleep(Duration::from_millis(random(&mut seed) % 400));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let acks = lines.join().unwrap();
        for (position, thread, i) in &acks {
            let before = expected.insert(*position, record(round, *thread, *i));
            assert!(before.is_none(), "round {round}: position {position} acknowledged twice");
        }

        let log = Log::open(dir.path(), child_options()).unwrap();
        let mut found = HashMap::new();
        let mut reader = log.read_from(log.start()).unwrap();
        while let Some(r) = reader.next_record().unwrap() {
            found.insert(r.position, r.payload);
        }
        for (position, payload) in &expected {
            assert_eq!(found.get(position), Some(payload), "round {round}: acknowledged record at {position}");
        }
        eprintln!(
            "round {round}: {} acknowledged this round, {} records found, problems: {:?}",
            acks.len(),
            found.len(),
            log.recovery().problems
        );
        assert!(log.recovery().problems.iter().all(|p| p.kind == tally_log::ProblemKind::TornTail));
    }
}

/// The child of `a_full_disk_fails_the_group_and_the_log_recovers`.
#[test]
fn child_appends_on_a_small_disk() {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return };
    let mut o = Options::default();
    o.segment_bytes = 8 << 20;
    let log = Log::open(Path::new(&dir), o).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out).unwrap();
    for i in 0..4000u64 {
        match log.append(&record(0, 0, i)).unwrap().wait() {
            Ok(position) => writeln!(out, "ack {position} {i}").unwrap(),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Io, "{e}");
                assert!(e.to_string().starts_with("cannot write ") && e.to_string().contains(".seg"), "{e}");
                writeln!(out, "fail {i}").unwrap();
            }
        }
    }
    out.flush().unwrap();
}

#[test]
fn a_full_disk_fails_the_group_and_the_log_recovers() {
    let dir = tempfile::tempdir().unwrap();
    // 1024 blocks: 512 KiB or 1 MiB depending on the shell's unit; segments are 8 MiB, so
    // every segment hits the limit.
    let output = Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 1024 && exec \"$0\" \"$@\"")
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "child_appends_on_a_small_disk", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let mut acked = Vec::new();
    let mut failed = Vec::new();
    for line in stdout.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        match f[0] {
            "ack" => acked.push((f[1].parse::<u64>().unwrap(), f[2].parse::<u64>().unwrap())),
            "fail" => failed.push(f[1].parse::<u64>().unwrap()),
            _ => {}
        }
    }
    assert!(!failed.is_empty(), "the limit was never hit");
    assert!(acked.iter().any(|a| a.1 > failed[0]), "appends succeed again after a failure");
    assert_eq!(acked.len() + failed.len(), 4000);

    let log = Log::open(dir.path(), Options::default()).unwrap();
    assert!(log.recovery().problems.is_empty(), "{:?}", log.recovery().problems);
    let mut found = HashMap::new();
    let mut reader = log.read_from(log.start()).unwrap();
    while let Some(r) = reader.next_record().unwrap() {
        found.insert(r.position, r.payload);
    }
    for (position, i) in &acked {
        assert_eq!(found.get(position), Some(&record(0, 0, *i)), "acknowledged record {i} at {position}");
    }
    eprintln!("{} acknowledged, {} failed, {} found", acked.len(), failed.len(), found.len());
}
