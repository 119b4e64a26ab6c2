//! The Strapi routes without HTTP: a (decompressed) body is parsed, translated into a native
//! context and event, and run through the ingest pipeline as a batch of one, as
//! `strapi::receive` does.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tally_collector::strapi::{self, InstallTimes, MAX_STRAPI_BODY_BYTES, Translation};
use tally_protocol::Batch;

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
    // What translate keeps is a well-formed batch of one for a known app: the pipeline may
    // reject the event, never the batch (Strapi would get a 400 for its own payload).
    match tally_fuzz::prepare(&serde_json::to_vec(&batch).expect("a batch serializes")) {
        Ok(prepared) => assert_eq!(prepared.outcomes.len(), 1, "one result for a batch of one"),
        Err(r) => panic!("a translated Strapi event was rejected as a batch: {r:?}"),
    }
});
