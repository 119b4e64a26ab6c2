//! The bytes on disk: segment names, the segment header and record frames.
//!
//! A segment is `<first position, 20 digits>.seg`: a 32-byte header, then frames back to
//! back. The header is `magic "TALLYLOG" | version: u32 | first position: u64 | created,
//! unix ms: u64 | CRC-32 of the 28 bytes before it: u32`, little-endian. A frame is
//! `len: u32 | crc: u32 | payload (len bytes)`; the CRC-32 covers the record's position
//! (u64), `len` and the payload, so a frame read at the wrong offset, or left over from an
//! earlier life of the file, does not pass. A record's position is its segment's first
//! position plus the frame's offset after the header.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

const MAGIC: [u8; 8] = *b"TALLYLOG";
const VERSION: u32 = 1;
pub(crate) const HEADER_LEN: u64 = 32;
pub(crate) const FRAME_HEADER_LEN: u64 = 8;

/// The file of the segment whose first record is at `first`.
pub(crate) fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.seg"))
}

/// The first position a segment file name stands for; `None` for other files.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

pub(crate) struct Header {
    pub first: u64,
    pub created_ms: u64,
}

pub(crate) enum HeaderError {
    /// Shorter than a header, or not this format.
    Damaged(&'static str),
    /// A valid header of a format version this build does not know.
    Version(u32),
}

pub(crate) fn encode_header(first: u64, created_ms: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&first.to_le_bytes());
    h[20..28].copy_from_slice(&created_ms.to_le_bytes());
    let crc = crc32fast::hash(&h[0..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

pub(crate) fn decode_header(h: &[u8]) -> Result<Header, HeaderError> {
    if h.len() < HEADER_LEN as usize {
        return Err(HeaderError::Damaged("the segment header is torn"));
    }
    if crc32fast::hash(&h[0..28]) != u32::from_le_bytes(h[28..32].try_into().expect("4 bytes")) {
        return Err(HeaderError::Damaged("the segment header's checksum does not match"));
    }
    if h[0..8] != MAGIC {
        return Err(HeaderError::Damaged("not a tally log segment"));
    }
    let version = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(HeaderError::Version(version));
    }
    Ok(Header {
        first: u64::from_le_bytes(h[12..20].try_into().expect("8 bytes")),
        created_ms: u64::from_le_bytes(h[20..28].try_into().expect("8 bytes")),
    })
}

fn frame_crc(position: u64, len: u32, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&position.to_le_bytes());
    h.update(&len.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Appends the frame of the record at `position` to `buf`. The caller checked that the
/// payload fits in a u32.
pub(crate) fn encode_frame(buf: &mut Vec<u8>, position: u64, payload: &[u8]) {
    let len = payload.len() as u32;
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&frame_crc(position, len, payload).to_le_bytes());
    buf.extend_from_slice(payload);
}

/// The frame length stored at the start of `frame`.
pub(crate) fn frame_len(frame: &[u8]) -> u64 {
    FRAME_HEADER_LEN + u64::from(u32::from_le_bytes(frame[0..4].try_into().expect("4 bytes")))
}

/// What the next frame of a segment turned out to be.
pub(crate) enum Frame {
    /// A valid record; the reader moved past it.
    Record,
    /// No bytes left before the end given.
    End,
    /// Not a valid frame (torn or damaged); the reader did not move.
    Bad(&'static str),
}

/// Sequential reading of one segment's frames, from a position on.
pub(crate) struct SegmentFile {
    pub first: u64,
    /// The position of the next frame to read.
    pub position: u64,
    reader: BufReader<File>,
}

impl SegmentFile {
    /// Opens the segment file whose first position is `first`, at `position`.
    pub fn open(path: &Path, first: u64, position: u64) -> io::Result<SegmentFile> {
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(HEADER_LEN + (position - first)))?;
        Ok(SegmentFile { first, position, reader: BufReader::with_capacity(256 * 1024, file) })
    }

    /// Reads the next frame, which must end at or before position `end`, into `payload`.
    pub fn read(&mut self, end: u64, payload: &mut Vec<u8>) -> io::Result<Frame> {
        let (len, crc) = match self.frame_header(end)? {
            Ok(h) => h,
            Err(frame) => return Ok(frame),
        };
        payload.resize(len as usize, 0);
        self.reader.read_exact(payload)?;
        if frame_crc(self.position, len, payload) != crc {
            self.reader.seek_relative(-i64::from(len) - FRAME_HEADER_LEN as i64)?;
            return Ok(Frame::Bad("checksum mismatch"));
        }
        self.position += FRAME_HEADER_LEN + u64::from(len);
        Ok(Frame::Record)
    }

    /// Moves past the next frame without reading or checking its payload (used to count
    /// records that were checked when they were written or when the log opened).
    pub fn skip(&mut self, end: u64) -> io::Result<Frame> {
        let (len, _) = match self.frame_header(end)? {
            Ok(h) => h,
            Err(frame) => return Ok(frame),
        };
        self.reader.seek_relative(i64::from(len))?;
        self.position += FRAME_HEADER_LEN + u64::from(len);
        Ok(Frame::Record)
    }

    fn frame_header(&mut self, end: u64) -> io::Result<Result<(u32, u32), Frame>> {
        let left = end.saturating_sub(self.position);
        if left == 0 {
            return Ok(Err(Frame::End));
        }
        if left < FRAME_HEADER_LEN {
            return Ok(Err(Frame::Bad("the frame header is torn")));
        }
        let mut h = [0u8; FRAME_HEADER_LEN as usize];
        self.reader.read_exact(&mut h)?;
        let len = u32::from_le_bytes(h[0..4].try_into().expect("4 bytes"));
        if u64::from(len) > left - FRAME_HEADER_LEN {
            self.reader.seek_relative(-(FRAME_HEADER_LEN as i64))?;
            return Ok(Err(Frame::Bad("the frame runs past the end of the segment")));
        }
        Ok(Ok((len, u32::from_le_bytes(h[4..8].try_into().expect("4 bytes")))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let h = encode_header(123_456, 42);
        let back = decode_header(&h).ok().expect("valid header");
        assert_eq!((back.first, back.created_ms), (123_456, 42));
        for i in 0..h.len() {
            let mut bad = h;
            bad[i] ^= 0x10;
            assert!(decode_header(&bad).is_err(), "flipped byte {i} passed");
        }
        assert!(decode_header(&h[..31]).is_err());
    }

    #[test]
    fn segment_names_round_trip() {
        let path = segment_path(Path::new("/d"), 64);
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(name, "00000000000000000064.seg");
        assert_eq!(parse_segment_name(name), Some(64));
        for other in ["64.seg", "0000000000000000006x.seg", "00000000000000000064.tmp"] {
            assert_eq!(parse_segment_name(other), None, "{other}");
        }
    }

    #[test]
    fn the_crc_binds_a_frame_to_its_position() {
        let mut a = Vec::new();
        encode_frame(&mut a, 100, b"payload");
        let mut b = Vec::new();
        encode_frame(&mut b, 101, b"payload");
        assert_ne!(a, b);
        assert_eq!(frame_len(&a), 8 + 7);
    }
}
