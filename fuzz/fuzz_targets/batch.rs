//! `POST /v1/batch` without HTTP: the first byte picks the `Content-Encoding`, the rest is
//! the body, which is decompressed within the limits, parsed, validated, checked against the
//! app's schema and turned into rows (context sanitized, values scrubbed and capped).

#![no_main]

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use tally_collector::ingest;

fuzz_target!(|data: &[u8]| {
    let Some((&encoding, body)) = data.split_first() else { return };
    let mut headers = HeaderMap::new();
    let encoding = match encoding % 4 {
        0 => None,
        1 => Some("gzip"),
        2 => Some("zstd"),
        _ => Some("br"),
    };
    if let Some(e) = encoding {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(e));
    }
    if let Ok(body) = ingest::decode(&headers, Bytes::copy_from_slice(body)) {
        let _ = tally_fuzz::prepare(&body);
    }
});
