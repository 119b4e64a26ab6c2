//! Appending, reading, releasing and bounding the log, on real files in temporary
//! directories.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use tally_log::{ErrorKind, Log, LogError, Options, Record};

fn options(segment_bytes: u64) -> Options {
    let mut o = Options::default();
    o.segment_bytes = segment_bytes;
    o
}

/// A record whose bytes say which one it is, so that a mix-up cannot pass.
fn record(tag: u64, len: usize) -> Vec<u8> {
    let seed = tag.to_le_bytes();
    (0..len).map(|i| seed[i % 8] ^ (i as u8).wrapping_mul(31)).collect()
}

fn read_all(log: &Log, from: u64) -> Vec<Record> {
    let mut reader = log.read_from(from).unwrap();
    let mut out = Vec::new();
    while let Some(r) = reader.next_record().unwrap() {
        out.push(r);
    }
    out
}

fn segment_files(log: &Log) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(log.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    names.sort();
    names
}

/// Appends `n` records tagged `first_tag..`, waits for all, returns their positions.
fn append_all(log: &Log, first_tag: u64, n: u64, len: impl Fn(u64) -> usize) -> Vec<u64> {
    let tickets: Vec<_> = (first_tag..first_tag + n).map(|t| log.append(&record(t, len(t))).unwrap()).collect();
    tickets.into_iter().map(|t| t.wait().unwrap()).collect()
}

#[test]
fn records_round_trip_across_segment_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), options(4096)).unwrap();
    let positions = append_all(&log, 0, 1000, |t| (t as usize * 7) % 300);
    assert!(segment_files(&log).len() > 10, "{:?}", segment_files(&log));

    let all = read_all(&log, log.start());
    assert_eq!(all.len(), 1000);
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.position, positions[i]);
        assert_eq!(r.payload, record(i as u64, (i * 7) % 300), "record {i}");
        if let Some(next) = all.get(i + 1) {
            assert_eq!(r.next_position(), next.position, "positions are contiguous across segments");
        }
    }
    let suffix = read_all(&log, positions[637]);
    assert_eq!(suffix, all[637..]);
    assert_eq!(log.durable_end(), all[999].next_position());
    assert_eq!(log.next_position(), log.durable_end());
}

#[test]
fn concurrent_appenders_are_all_durable_in_order_with_few_fsyncs() {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path(), options(1 << 20)).unwrap());
    let fsyncs_before = log.fsyncs();
    let handles: Vec<_> = (0..THREADS)
        .map(|thread| {
            let log = log.clone();
            std::thread::spawn(move || {
                // Each thread keeps up to 64 records waiting, as 64 requests of one
                // connection pool would.
                let mut waiting = std::collections::VecDeque::new();
                let mut acked = Vec::new();
                for i in 0..PER_THREAD {
                    let tag = thread * PER_THREAD + i;
                    waiting.push_back((tag, log.append(&record(tag, 100)).unwrap()));
                    if waiting.len() == 64 {
                        let (tag, ticket) = waiting.pop_front().unwrap();
                        acked.push((ticket.wait().unwrap(), tag));
                    }
                }
                acked.extend(waiting.into_iter().map(|(tag, t)| (t.wait().unwrap(), tag)));
                acked
            })
        })
        .collect();
    let mut acked = Vec::new();
    for h in handles {
        let mine = h.join().unwrap();
        assert!(mine.windows(2).all(|w| w[0].0 < w[1].0), "one thread's positions increase");
        acked.extend(mine);
    }
    let appends = THREADS * PER_THREAD;
    let fsyncs = log.fsyncs() - fsyncs_before;
    assert!(fsyncs * 20 < appends, "{fsyncs} fsyncs for {appends} appends");
    assert_eq!(acked.iter().map(|a| a.0).collect::<HashSet<_>>().len(), appends as usize, "positions are unique");

    acked.sort_unstable();
    let all = read_all(&log, log.start());
    assert_eq!(all.len(), acked.len());
    for (r, (position, tag)) in all.iter().zip(&acked) {
        assert_eq!(r.position, *position);
        assert_eq!(r.payload, record(*tag, 100));
    }
}

#[test]
fn a_reopened_log_replays_everything_from_any_position() {
    let dir = tempfile::tempdir().unwrap();
    let (positions, end) = {
        let log = Log::open(dir.path(), options(2048)).unwrap();
        let p = append_all(&log, 0, 300, |t| 10 + (t as usize % 90));
        (p, log.durable_end())
    };
    let log = Log::open(dir.path(), options(2048)).unwrap();
    assert_eq!(log.recovery().records, 300);
    assert!(log.recovery().problems.is_empty(), "{:?}", log.recovery().problems);
    assert_eq!(log.next_position(), end);
    for from in [0, 1, 57, 150, 299] {
        let got = read_all(&log, positions[from]);
        assert_eq!(got.len(), 300 - from);
        for (k, r) in got.iter().enumerate() {
            let tag = (from + k) as u64;
            assert_eq!((r.position, &r.payload), (positions[from + k], &record(tag, 10 + (tag as usize % 90))));
        }
    }
    assert!(read_all(&log, end).is_empty());
    let more = append_all(&log, 300, 10, |_| 40);
    assert_eq!(more[0], end, "appends continue where the log ended");
    assert_eq!(read_all(&log, positions[299]).len(), 11);
}

#[test]
fn release_deletes_only_fully_applied_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), options(1000)).unwrap();
    // 100-byte records, frames of 108: nine per segment.
    let positions = append_all(&log, 0, 90, |_| 100);
    assert_eq!(segment_files(&log).len(), 10);
    let records = read_all(&log, 0);

    // Records 0..=22 applied: segments 0 and 1 (records 0..18) go, segment 2 stays.
    let applied = records[22].next_position();
    log.release(applied).unwrap();
    assert_eq!(segment_files(&log).len(), 8);
    assert_eq!(log.start(), positions[18]);
    assert_eq!(read_all(&log, applied), records[23..]);
    let err = log.read_from(positions[5]).err().expect("released");
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert_eq!(log.lag().records, 90 - 23);
    assert_eq!(log.lag().bytes, 108 * (90 - 23));

    // Releasing less does nothing; releasing mid-record is refused.
    log.release(positions[3]).unwrap();
    assert_eq!(log.lag().records, 67);
    assert!(log.release(positions[40] + 1).is_err());

    // Everything applied: the last segment stays and carries the end across a restart.
    let end = log.durable_end();
    log.release(end).unwrap();
    assert_eq!(segment_files(&log).len(), 1);
    assert_eq!((log.lag().records, log.lag().bytes, log.lag().oldest), (0, 0, None));
    drop(log);
    let log = Log::open(dir.path(), options(1000)).unwrap();
    assert_eq!(log.next_position(), end);
    let next = append_all(&log, 90, 1, |_| 100);
    assert_eq!(next, [end], "no position is given twice");
}

#[test]
fn appends_past_the_bound_are_full_until_the_applier_releases() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(1 << 20);
    o.max_unapplied_bytes = 10_000;
    let log = Log::open(dir.path(), o).unwrap();
    let mut tickets = Vec::new();
    let full = loop {
        match log.append(&record(tickets.len() as u64, 92)) {
            Ok(t) => tickets.push(t),
            Err(e) => break e,
        }
    };
    assert_eq!(tickets.len(), 10_000 / 100);
    assert!(matches!(full, LogError::Full { limit: 10_000, .. }), "{full}");
    assert_eq!(full.kind(), ErrorKind::Full);
    assert!(full.is_retryable());
    assert!(full.to_string().starts_with("the ingest log is full"), "{full}");
    for t in tickets {
        t.wait().unwrap();
    }
    let lag = log.lag();
    assert_eq!((lag.records, lag.bytes), (100, 10_000));
    assert!(lag.oldest.is_some());
    assert!(log.append(b"x").is_err(), "still full while nothing is released");

    let records = read_all(&log, 0);
    log.release(records[49].next_position()).unwrap();
    assert_eq!(log.lag().records, 50);
    let pos = log.append(&record(1000, 92)).unwrap().wait().unwrap();
    assert_eq!(pos, records[99].next_position());
}

#[test]
fn a_record_over_the_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(1 << 20);
    o.max_record_bytes = 1000;
    let log = Log::open(dir.path(), o).unwrap();
    let err = log.append(&[0; 1001]).err().expect("too large");
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert_eq!(log.append(&[0; 1000]).unwrap().wait().unwrap(), 0);
}

#[test]
fn a_record_larger_than_a_segment_gets_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), options(1000)).unwrap();
    append_all(&log, 0, 3, |t| if t == 1 { 5000 } else { 10 });
    assert_eq!(segment_files(&log).len(), 3);
    let all = read_all(&log, 0);
    assert_eq!(all[1].payload, record(1, 5000));
    assert_eq!(all[2].payload, record(2, 10));
}

#[test]
fn a_tailing_reader_sees_records_appended_after_it_was_made() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path(), options(4096)).unwrap());
    let mut reader = log.read_from(0).unwrap();
    assert!(reader.next_record().unwrap().is_none());
    assert!(!reader.wait(Duration::from_millis(20)), "nothing to wait for");

    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            for tag in 0..200 {
                log.append(&record(tag, 50)).unwrap().wait().unwrap();
            }
        })
    };
    let mut seen = 0;
    while seen < 200 {
        assert!(reader.wait(Duration::from_secs(10)), "a record arrives");
        while let Some(r) = reader.next_record().unwrap() {
            assert_eq!(r.payload, record(seen, 50));
            seen += 1;
        }
    }
    writer.join().unwrap();
    assert_eq!(reader.position(), log.durable_end());
}

#[test]
fn lag_counts_what_is_not_released() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), options(500)).unwrap();
    append_all(&log, 0, 40, |t| t as usize);
    let records = read_all(&log, 0);
    let bytes = |from: usize| records[from..].iter().map(|r| r.next_position() - r.position).sum::<u64>();
    for applied in [0, 1, 7, 8, 25, 39] {
        log.release(records[applied].next_position()).unwrap();
        let lag = log.lag();
        assert_eq!((lag.records, lag.bytes), (39 - applied as u64, bytes(applied + 1)), "after {applied}");
    }
    drop(log);
    // On reopen, records before the applier's first release count as unapplied.
    let log = Log::open(dir.path(), options(500)).unwrap();
    assert_eq!(log.lag().records, log.recovery().records);
    log.release(records[39].position).unwrap();
    assert_eq!(log.lag().records, 1);
}

/// A one-future executor: parks the thread until the waker fires.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

#[test]
fn a_ticket_can_be_awaited() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), Options::default()).unwrap();
    let positions = block_on(async {
        let mut out = Vec::new();
        for tag in 0..50 {
            out.push(log.append(&record(tag, 30)).unwrap().await.unwrap());
        }
        out
    });
    assert_eq!(positions.len(), 50);
    let all = read_all(&log, 0);
    assert_eq!(all.iter().map(|r| r.position).collect::<Vec<_>>(), positions);
}

#[test]
fn io_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("log"), b"not a directory").unwrap();
    let err = Log::open(dir.path(), Options::default()).err().expect("log is a file");
    assert_eq!(err.kind(), ErrorKind::Io);
    let text = err.to_string();
    assert!(text.starts_with("cannot create ") && text.contains(&Path::new("log").display().to_string()), "{text}");
}

#[test]
fn handles_can_cross_threads_and_tasks() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Log>();
    send_sync::<tally_log::Ticket>();
    send::<tally_log::Reader>();
    send_sync::<LogError>();
}
