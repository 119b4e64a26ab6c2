//! Limits enforced by the collector and respected by clients.
//!
//! A client that stays inside these never has a batch refused for size; the collector
//! checks every one of them and answers with a reason when one is crossed.

/// Most events one batch may carry; more is a `400` for the whole batch.
pub const MAX_EVENTS_PER_BATCH: usize = 500;

/// Largest request body accepted on the wire (after any transfer encoding), in bytes.
/// Larger bodies are answered `413`.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Largest body after `gzip`/`zstd` decompression, in bytes. Decompression stops at this
/// size and the request is answered `413`, so a compression bomb costs at most this much.
pub const MAX_DECOMPRESSED_BYTES: usize = 8 * 1024 * 1024;

/// Longest string value (context fields, property values, error kinds), in bytes.
pub const MAX_STRING_LEN: usize = 128;

/// Longest name (event names, property keys, plugin names, app names), in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Most plugin or feature names on one event.
pub const MAX_PLUGINS: usize = 128;

/// Most properties on one event.
pub const MAX_PROPS: usize = 32;

/// A client clock that differs from the collector's by more than this is corrected: every
/// event's `occurred_at` is shifted by `received_at - sent_at`.
pub const MAX_CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;

/// Events that (after clock correction) lie further in the future than this are rejected.
pub const MAX_FUTURE_MS: i64 = 5 * 60 * 1000;

/// Events older than this are rejected (the SDK's outbox expires events after 14 days).
pub const MAX_EVENT_AGE_MS: i64 = 31 * 24 * 60 * 60 * 1000;

/// Largest `duration_ms` accepted: one week.
pub const MAX_DURATION_MS: u64 = 7 * 24 * 60 * 60 * 1000;
