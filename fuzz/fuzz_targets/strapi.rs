//! The Strapi routes without HTTP: a (decompressed) body is parsed, translated into a native
//! context and event, checked as a batch of one and turned into a row, as `strapi::receive`
//! does.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tally_collector::strapi::{self, InstallTimes, MAX_STRAPI_BODY_BYTES, Translation};
use tally_protocol::Batch;
use tally_protocol::limits::MAX_EVENT_AGE_MS;

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_STRAPI_BODY_BYTES {
        return;
    }
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let schema = tally_fuzz::SCHEMAS.get(strapi::APP).expect("the built-in strapi schema");
    let now = tally_fuzz::now();
    // Fresh per input, like the caps: a crash must not depend on earlier inputs.
    let installs = InstallTimes::new();
    let Ok(Translation::Keep { context, event }) =
        strapi::translate(&payload, None, now, schema, &installs, &tally_fuzz::SECRET)
    else {
        return;
    };
    let batch = Batch { sent_at: now, context: *context, events: vec![*event] };
    let bytes = serde_json::to_vec(&batch).expect("a batch serializes");
    if let Ok(checked) = tally_protocol::check_batch(&bytes, &tally_fuzz::SCHEMAS, now, MAX_EVENT_AGE_MS) {
        tally_fuzz::to_rows(checked);
    }
});
