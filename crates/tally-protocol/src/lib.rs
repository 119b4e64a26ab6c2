//! The tally wire protocol, version 1.
//!
//! This crate owns everything a client and the collector must agree on: the JSON types of
//! `POST /v1/batch` ([`wire`]), the limits both sides enforce ([`limits`]), the per-event
//! validation that turns a parsed batch into accepted events and rejections with
//! machine-readable reasons ([`validate`]), and the TOML format in which an app declares
//! its events and properties ([`schema`]).
//!
//! It performs no I/O and depends on no other tally crate; every other tally crate depends
//! on it, the SDK included, so it stays small.

pub mod limits;
pub mod schema;
pub mod scrub;
pub mod validate;
pub mod wire;

pub use schema::{AppSchema, EventSpec, PropSpec, PropType, SchemaChange, SchemaError, SchemaSet};
pub use validate::{
    AcceptedEvent, CheckedBatch, CheckedEvent, EventOutcome, EventResult, RejectReason, Rejection, check_batch,
    validate_batch,
};
pub use wire::{Batch, BatchResponse, Context, Env, ErrorBody, Event, PropValue, RawBatch, RawEvents};

/// The protocol version this crate speaks; it is the `v1` in `/v1/batch`.
pub const PROTOCOL_VERSION: u32 = 1;

/// The path a client posts batches to.
pub const BATCH_PATH: &str = "/v1/batch";
