//! Durable append throughput of the ingest log, against writing the same frames to a file
//! without any fsync, in the same run.
//!
//! `cargo bench -p tally-log --bench append` (release profile). For each record size
//! (100 B, 10 KB) and number of concurrent appenders (1, 16, 64), every appender loops
//! "append one record, wait until it is durable" for a few seconds (`TALLY_LOG_BENCH_SECS`,
//! default 3), as that many waiting requests would. A releaser thread plays the applier and
//! releases the durable end every 100 ms so old segments are deleted. The baseline then
//! writes as many records with the same threads to one file, one `write` per record under
//! a mutex, never syncing. Segment files go to `TALLY_LOG_BENCH_DIR` (default: the system
//! temporary directory), which should be on the disk the collector would use.

use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tally_log::{Log, Options};

struct Run {
    records: u64,
    seconds: f64,
    fsyncs: u64,
    latencies_us: Vec<u32>,
}

fn payload(len: usize, seed: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) ^ seed) as u8).collect()
}

fn run_log(dir: &std::path::Path, appenders: usize, size: usize, duration: Duration) -> Run {
    let mut options = Options::default();
    options.max_unapplied_bytes = u64::MAX / 2;
    let log = Arc::new(Log::open(dir, options).unwrap());
    let fsyncs_before = log.fsyncs();
    let stop = Arc::new(AtomicBool::new(false));
    let releaser = {
        let (log, stop) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                log.release(log.durable_end()).unwrap();
            }
        })
    };
    let started = Instant::now();
    let threads: Vec<_> = (0..appenders)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                let record = payload(size, t);
                let mut latencies = Vec::new();
                while started.elapsed() < duration {
                    let at = Instant::now();
                    log.append(&record).unwrap().wait().unwrap();
                    latencies.push(at.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                }
                latencies
            })
        })
        .collect();
    let mut latencies_us = Vec::new();
    for t in threads {
        latencies_us.extend(t.join().unwrap());
    }
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    releaser.join().unwrap();
    latencies_us.sort_unstable();
    Run { records: latencies_us.len() as u64, seconds, fsyncs: log.fsyncs() - fsyncs_before, latencies_us }
}

/// Writes `records` frames of `size` bytes with `appenders` threads to one file, no fsync.
fn run_baseline(dir: &std::path::Path, appenders: usize, size: usize, records: u64) -> f64 {
    let file = Arc::new(Mutex::new(File::create(dir.join("baseline")).unwrap()));
    let per_thread = records.div_ceil(appenders as u64);
    let started = Instant::now();
    let threads: Vec<_> = (0..appenders)
        .map(|t| {
            let file = file.clone();
            std::thread::spawn(move || {
                let record = payload(size, t);
                let mut frame = Vec::with_capacity(size + 8);
                for i in 0..per_thread {
                    frame.clear();
                    frame.extend_from_slice(&(size as u32).to_le_bytes());
                    let mut crc = crc32fast::Hasher::new();
                    crc.update(&i.to_le_bytes());
                    crc.update(&record);
                    frame.extend_from_slice(&crc.finalize().to_le_bytes());
                    frame.extend_from_slice(&record);
                    file.lock().unwrap().write_all(&frame).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    std::fs::remove_file(dir.join("baseline")).unwrap();
    (per_thread * appenders as u64) as f64 / seconds
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .map_or(0.0, |&us| us as f64 / 1000.0)
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let secs: f64 = std::env::var("TALLY_LOG_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let root = std::env::var_os("TALLY_LOG_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    println!(
        "| record | appenders | records/s | MB/s | records per fsync | ack p50 ms | ack p99 ms | no-fsync baseline records/s | ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for size in [100usize, 10_000] {
        for appenders in [1usize, 16, 64] {
            let dir = tempfile::tempdir_in(&root).unwrap();
            let run = run_log(dir.path(), appenders, size, Duration::from_secs_f64(secs));
            let rate = run.records as f64 / run.seconds;
            let baseline = run_baseline(dir.path(), appenders, size, run.records);
            println!(
                "| {size} B | {appenders} | {rate:.0} | {:.1} | {:.1} | {:.2} | {:.2} | {baseline:.0} | {:.3} |",
                rate * (size + 8) as f64 / 1e6,
                run.records as f64 / run.fsyncs.max(1) as f64,
                percentile(&run.latencies_us, 0.50),
                percentile(&run.latencies_us, 0.99),
                rate / baseline,
            );
        }
    }
}
