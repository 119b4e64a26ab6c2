//! `POST /v1/batch` without HTTP: the first byte picks the `Content-Encoding`, the rest is
//! the body, which is decompressed within the limits, parsed, validated, checked against the
//! app's schema and turned into rows.

#![no_main]

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use tally_collector::ingest;
use tally_protocol::limits::MAX_EVENT_AGE_MS;

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
    let Ok(body) = ingest::decode(&headers, Bytes::copy_from_slice(body)) else { return };
    if let Ok(checked) = tally_protocol::check_batch(&body, &tally_fuzz::SCHEMAS, tally_fuzz::now(), MAX_EVENT_AGE_MS) {
        tally_fuzz::to_rows(checked);
    }
});
