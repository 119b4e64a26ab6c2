//! Opening a damaged log: torn tails, flipped bytes, torn segment creation, newer formats.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use tally_log::{ErrorKind, Log, Options, ProblemKind, Record};

const HEADER: u64 = 32;

fn options(segment_bytes: u64) -> Options {
    let mut o = Options::default();
    o.segment_bytes = segment_bytes;
    o
}

fn record(tag: u64, len: usize) -> Vec<u8> {
    let seed = tag.to_le_bytes();
    (0..len).map(|i| seed[i % 8] ^ (i as u8).wrapping_mul(31)).collect()
}

fn read_all(log: &Log) -> Vec<Record> {
    let mut reader = log.read_from(log.start()).unwrap();
    let mut out = Vec::new();
    while let Some(r) = reader.next_record().unwrap() {
        out.push(r);
    }
    out
}

fn segments(data_dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(data_dir.join("log")).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths
}

/// A log of `n` records of 50 bytes (frames of 58) in one segment; returns the records.
fn write_log(data_dir: &Path, n: u64, segment_bytes: u64) -> Vec<Record> {
    let log = Log::open(data_dir, options(segment_bytes)).unwrap();
    let tickets: Vec<_> = (0..n).map(|t| log.append(&record(t, 50)).unwrap()).collect();
    for t in tickets {
        t.wait().unwrap();
    }
    read_all(&log)
}

/// Reopens, checks that exactly `records[..kept]` are there, appends two more and reads
/// everything back; returns the problems found.
fn check_reopen(data_dir: &Path, records: &[Record], kept: usize, old_end: u64) -> Vec<tally_log::Problem> {
    let log = Log::open(data_dir, options(1 << 20)).unwrap();
    let problems = log.recovery().problems.clone();
    let found = read_all(&log);
    assert_eq!(found, records[..kept], "valid prefix kept");
    let a = log.append(b"after one").unwrap().wait().unwrap();
    let b = log.append(b"after two").unwrap().wait().unwrap();
    assert!(a >= old_end, "position {a} reuses bytes the old file held (up to {old_end})");
    let found = read_all(&log);
    assert_eq!(found.len(), kept + 2);
    assert_eq!((found[kept].position, &found[kept].payload[..]), (a, &b"after one"[..]));
    assert_eq!((found[kept + 1].position, &found[kept + 1].payload[..]), (b, &b"after two"[..]));
    drop(log);
    // And the repaired log opens cleanly.
    let log = Log::open(data_dir, options(1 << 20)).unwrap();
    assert!(log.recovery().problems.is_empty(), "{:?}", log.recovery().problems);
    assert_eq!(read_all(&log).len(), kept + 2);
    problems
}

#[test]
fn a_torn_tail_keeps_the_valid_prefix_at_any_cut() {
    let frame = 58;
    // Cut inside the last frame's header, inside its payload, one byte short, and at frame
    // boundaries (nothing torn).
    for (cut_from_end, kept, torn) in [
        (1, 19, true),
        (20, 19, true),
        (frame - 3, 19, true),
        (frame, 19, false),
        (frame + 4, 18, true),
        (frame * 20, 0, false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let records = write_log(dir.path(), 20, 1 << 20);
        let path = &segments(dir.path())[0];
        let len = fs::metadata(path).unwrap().len();
        assert_eq!(len, HEADER + 20 * frame);
        OpenOptions::new().write(true).open(path).unwrap().set_len(len - cut_from_end).unwrap();
        let problems = check_reopen(dir.path(), &records, kept, len - cut_from_end - HEADER);
        assert_eq!(problems.len(), usize::from(torn), "cut {cut_from_end}: {problems:?}");
        if torn {
            assert_eq!(problems[0].kind, ProblemKind::TornTail);
            assert_eq!(problems[0].offset, HEADER + kept as u64 * frame);
            assert_eq!(problems[0].path, *path);
            assert!(problems[0].to_string().starts_with("torn tail in "), "{}", problems[0]);
        }
    }
}

#[test]
fn a_flipped_byte_in_the_tail_is_caught_by_the_checksum() {
    // In the length, the checksum and the payload of record 15 of 20.
    for offset_in_frame in [1, 5, 8, 40] {
        let dir = tempfile::tempdir().unwrap();
        let records = write_log(dir.path(), 20, 1 << 20);
        let path = &segments(dir.path())[0];
        let mut bytes = fs::read(path).unwrap();
        let old_end = bytes.len() as u64 - HEADER;
        bytes[(HEADER + 15 * 58 + offset_in_frame) as usize] ^= 0x04;
        fs::write(path, &bytes).unwrap();
        let problems = check_reopen(dir.path(), &records, 15, old_end);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].kind, ProblemKind::TornTail);
        assert_eq!(problems[0].dropped_bytes, 5 * 58);
    }
}

#[test]
fn corruption_in_an_older_segment_skips_its_rest_and_keeps_the_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    // Ten frames of 58 per 600-byte segment: records 0..10, 10..20, 20..30.
    let records = write_log(dir.path(), 30, 600);
    let paths = segments(dir.path());
    assert_eq!(paths.len(), 3);
    let mut bytes = fs::read(&paths[0]).unwrap();
    bytes[(HEADER + 3 * 58 + 20) as usize] ^= 0xff;
    fs::write(&paths[0], &bytes).unwrap();

    let log = Log::open(dir.path(), options(600)).unwrap();
    let problems = &log.recovery().problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!((problems[0].kind, &problems[0].path), (ProblemKind::Corrupt, &paths[0]));
    assert_eq!((problems[0].offset, problems[0].dropped_bytes), (HEADER + 3 * 58, 7 * 58));
    assert!(problems[0].to_string().contains("may hold acknowledged records"), "{}", problems[0]);
    let found = read_all(&log);
    let expected: Vec<Record> = records[..3].iter().chain(&records[10..]).cloned().collect();
    assert_eq!(found, expected);
    assert_eq!(fs::read(&paths[0]).unwrap(), bytes, "the damaged file is left for inspection");

    let next = log.append(b"new").unwrap().wait().unwrap();
    assert_eq!(next, records[29].next_position());
    // Releasing past the damage deletes the damaged segment.
    log.release(records[10].position).unwrap();
    assert!(!paths[0].exists());
    assert_eq!(read_all(&log).len(), 21);
}

#[test]
fn a_segment_torn_while_being_created_is_made_again() {
    let dir = tempfile::tempdir().unwrap();
    let records = write_log(dir.path(), 5, 1 << 20);
    let end = records[4].next_position();
    fs::write(dir.path().join("log").join(format!("{end:020}.seg")), b"TALLY").unwrap();
    let log = Log::open(dir.path(), options(1 << 20)).unwrap();
    assert_eq!(log.recovery().problems.len(), 1);
    assert_eq!(read_all(&log), records);
    assert_eq!(log.append(b"x").unwrap().wait().unwrap(), end);
}

#[test]
fn a_segment_of_a_newer_format_refuses_the_open() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 5, 1 << 20);
    let path = &segments(dir.path())[0];
    let mut bytes = fs::read(path).unwrap();
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    let crc = crc32fast::hash(&bytes[0..28]);
    bytes[28..32].copy_from_slice(&crc.to_le_bytes());
    fs::write(path, &bytes).unwrap();
    let err = Log::open(dir.path(), Options::default()).err().expect("newer version");
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(err.to_string().contains("format version 2"), "{err}");
}
