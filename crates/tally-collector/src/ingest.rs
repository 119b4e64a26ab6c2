//! `POST /v1/batch` and the pipeline every ingest route ends in.
//!
//! The route reads the body within limits and decompresses it within limits; then
//! [`check_and_store`], which the Strapi receiver calls too, checks the batch against the
//! protocol and the app's schema, turns accepted events into rows (keyed hashes instead of
//! ids, capped and scrubbed values, a checked context: [`crate::context`]), writes them
//! durably (through the ingest log, [`crate::durable`], or straight into the store by group
//! commit, [`crate::writer`]), and answers with one result per event.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use tally_protocol::limits::{MAX_BODY_BYTES, MAX_DECOMPRESSED_BYTES};
use tally_protocol::schema::OTHER;
use tally_protocol::scrub;
use tally_protocol::validate::{AcceptedEvent, EventCheck};
use tally_protocol::{
    AppSchema, BatchResponse, Context, EventOutcome, EventResult, PropValue, Rejection, SchemaSet, check_batch,
};
use tally_store::{
    AppendStatus, ContextField, EventRow, EventStore, KnownValues, MachineKey, ProjectKey, ServerSecret, StoreError,
};

use crate::client::ClientKey;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::{Shared, Sink, context};

/// `POST /v1/batch`.
#[utoipa::path(
    post,
    path = "/v1/batch",
    tag = "ingest",
    summary = "Ingest a batch of events",
    description = "A batch of at most 500 events sharing one context (docs/protocol.md). The body is \
        JSON, sent as is or with `Content-Encoding: gzip` or `zstd`; at most 1 MiB as sent and 8 MiB \
        decompressed. Write-only: the answer says what became of each event sent, nothing stored.",
    request_body(content = tally_protocol::Batch, content_type = "application/json"),
    params(("Content-Encoding" = Option<String>, Header, description = "identity, gzip or zstd")),
    responses(
        (status = 200, description = "every event has a result; a 2xx means the accepted ones are durable", body = tally_protocol::BatchResponse),
        (status = 422, description = "some or all events rejected (see their results), or the app is unknown", body = tally_protocol::BatchResponse),
        (status = 400, description = "not a batch (malformed JSON, too many events, a bad context)", body = tally_protocol::ErrorBody),
        (status = 408, description = "the body was not sent within the body read timeout", body = tally_protocol::ErrorBody),
        (status = 413, description = "larger than 1 MiB, or than 8 MiB decompressed", body = tally_protocol::ErrorBody),
        (status = 415, description = "an unknown Content-Encoding", body = tally_protocol::ErrorBody),
        (status = 429, description = "this client sends faster than its rate; retry after Retry-After", body = tally_protocol::ErrorBody),
        (status = 503, description = "busy, or the ingest log is full or failing; retry after Retry-After", body = tally_protocol::ErrorBody),
    )
)]
pub(crate) async fn post_batch(
    State(s): State<Arc<Shared>>,
    client: Option<Extension<ClientKey>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let response = match receive(&s, &headers, body, client.map(|Extension(c)| c)).await {
        Ok((status, body)) => (status, Json(body)).into_response(),
        Err(e) => e.into_response(),
    };
    s.metrics.batch_seconds.observe(started.elapsed().as_secs_f64());
    s.metrics.request("/v1/batch", response.status().as_u16());
    response
}

async fn receive(
    s: &Shared,
    headers: &HeaderMap,
    body: Body,
    client: Option<ClientKey>,
) -> Result<(StatusCode, BatchResponse), ApiError> {
    let raw = read_body(body).await?;
    let body = decode(headers, raw)?;
    let response = check_and_store(s, &body, s.settings.clock.now(), client).await?;
    let all_rejected =
        !response.results.is_empty() && response.results.iter().all(|r| r.status == EventOutcome::Rejected);
    Ok((if all_rejected { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK }, response))
}

/// Checks a batch (its JSON text) received at `now`, turns its accepted events into rows,
/// writes them durably and answers with one result per event. Every event is counted in
/// the metrics, whatever its outcome. Fails, storing nothing, when the whole batch is
/// rejected or the write fails.
pub(crate) async fn check_and_store(
    s: &Shared,
    batch: &[u8],
    now: DateTime<Utc>,
    client: Option<ClientKey>,
) -> Result<BatchResponse, ApiError> {
    let Prepared { outcomes, rows, dropped_props } =
        prepare(batch, &s.schemas, now, s.settings.max_event_age_ms, &s.secret, &s.caps, &s.metrics, client)
            .map_err(|r| rejected(s, r))?;
    let statuses = if rows.is_empty() {
        vec![]
    } else {
        match &s.sink {
            Sink::Store(writer) => {
                s.metrics.queue_depth.set(writer.depth() as i64 + 1);
                writer.write(rows).await?
            }
            Sink::Log(durable) => durable.write(rows, now.timestamp_millis(), &s.metrics).await?,
        }
    };
    Ok(respond(&outcomes, &statuses, dropped_props, &s.metrics))
}

/// A checked batch, ready to be written: what each event became and the rows to store.
pub struct Prepared {
    /// Per event, in order: its id when readable and whether it gave a row, was a repeat
    /// in the batch or was rejected.
    pub outcomes: Vec<EventCheck<()>>,
    /// One row per accepted event, in order.
    pub rows: Vec<EventRow>,
    /// Properties dropped because their event does not declare them.
    pub dropped_props: usize,
}

/// The part of [`check_and_store`] before the write: checks the batch, sanitizes its
/// context and builds the rows (`client`: whose share of the caps it takes). No I/O, so the fuzz targets in `fuzz/` run it as it is.
// The inputs are the request's (batch, time, client) and the collector's state; a struct of
// them would only be unpacked again.
#[allow(clippy::too_many_arguments)]
pub fn prepare(
    batch: &[u8],
    schemas: &SchemaSet,
    now: DateTime<Utc>,
    max_age_ms: i64,
    secret: &ServerSecret,
    caps: &Caps,
    metrics: &Metrics,
    client: Option<ClientKey>,
) -> Result<Prepared, Rejection> {
    let checked = check_batch(batch, schemas, now, max_age_ms)?;
    let schema = schemas.get(&checked.context.app).expect("check_batch found the schema");
    metrics.dropped_props.inc_by(checked.dropped_props as u64);
    let now_ms = now.timestamp_millis();
    let mut accepted = Vec::new();
    let mut outcomes = Vec::with_capacity(checked.events.len());
    for (id, result) in checked.events {
        outcomes.push((id, result.map(|maybe| maybe.map(|event| accepted.push(event)))));
    }
    let rows = if accepted.is_empty() {
        vec![]
    } else {
        // Only a context that will be stored takes places under the caps.
        let mut ctx = checked.context;
        context::sanitize(&mut ctx, caps, metrics, client);
        // The keyed hashes are the batch's, not each event's.
        let keys = (secret.project_key(&ctx.project), secret.machine_key(&ctx.app, &ctx.machine));
        accepted.into_iter().map(|a| to_row(&ctx, keys, a, now_ms, schema, caps, metrics, client)).collect()
    };
    Ok(Prepared { outcomes, rows, dropped_props: checked.dropped_props })
}

/// A whole request rejected: counted, then answered.
pub(crate) fn rejected(s: &Shared, r: Rejection) -> ApiError {
    s.metrics.event("rejected", r.reason.as_str());
    ApiError::from_rejection(r)
}

/// Reads a request body, refusing more than [`MAX_BODY_BYTES`] (413) and a body not complete
/// within the body read timeout of [`crate::serve`] (408).
async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|e| {
        if timed_out(&e) {
            return body_timeout();
        }
        // A body over the limit and a broken connection both land here; the limit is by far
        // the common case and the only one a client can act on.
        ApiError::too_large(format!(
            "request body is larger than {MAX_BODY_BYTES} bytes, or could not be read ({e}); send smaller batches"
        ))
    })
}

/// 408 for a body past the serving loop's deadline.
pub(crate) fn body_timeout() -> ApiError {
    ApiError::body_timeout(
        "the request body did not arrive within the body read timeout; send it faster or send smaller batches",
    )
}

/// Whether reading a body failed on the serving loop's deadline.
pub(crate) fn timed_out(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// Undoes `Content-Encoding`, stopping at [`MAX_DECOMPRESSED_BYTES`] so that a compression
/// bomb costs at most that much memory.
pub fn decode(headers: &HeaderMap, body: Bytes) -> Result<Bytes, ApiError> {
    let encoding = headers
        .get(axum::http::header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("(not text)").trim().to_ascii_lowercase());
    let reader: Box<dyn Read + '_> = match encoding.as_deref() {
        None | Some("") | Some("identity") => return Ok(body),
        Some("gzip") | Some("x-gzip") => Box::new(flate2::read::GzDecoder::new(&body[..])),
        Some("zstd") => {
            let mut d = zstd::stream::read::Decoder::new(&body[..])
                .map_err(|e| ApiError::bad_request("malformed", format!("invalid zstd body: {e}")))?;
            // Refuse frames that would need a window (memory) larger than the output limit.
            d.window_log_max(23).map_err(|e| ApiError::internal(format!("zstd setup: {e}")))?;
            Box::new(d)
        }
        Some(other) => return Err(ApiError::unsupported_encoding(other)),
    };
    let mut out = Vec::with_capacity(body.len() * 4);
    reader
        .take(MAX_DECOMPRESSED_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::bad_request("malformed", format!("the body could not be decompressed: {e}")))?;
    if out.len() > MAX_DECOMPRESSED_BYTES {
        return Err(ApiError::too_large(format!(
            "the decompressed body is larger than {MAX_DECOMPRESSED_BYTES} bytes; send smaller batches"
        )));
    }
    Ok(Bytes::from(out))
}

/// Distinct values already admitted per app, enforcing the cardinality caps (the schema's
/// on plugins and string props, [`crate::context`]'s on context fields) across restarts
/// (seeded from the store).
///
/// Caps are first come, first served, so one client could fill one with junk and keep
/// every later value out. Hence the share: within a salt period of its [`ClientKey`] (a
/// day), one client may admit at most `share_percent` % of a cap's places (at least one);
/// its further new values become `other` while others' still get in. Filling a cap of 40
/// takes 10 clients, or one client 10 days (and the values stay only as long as the store
/// keeps their events: caps are seeded from what is stored). Requests without a key
/// (in-process, fuzzing) and a share of 0 are not limited.
#[derive(Default)]
pub struct Caps {
    state: Mutex<CapState>,
    share_percent: usize,
}

#[derive(Default)]
struct CapState {
    apps: HashMap<String, KnownValues>,
    /// The salt period the counts below belong to.
    period: u64,
    /// New values admitted per client, app and cap in this period.
    admitted: HashMap<(u64, String, CapSlot), usize>,
}

/// One cardinality cap of an app.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum CapSlot {
    Plugins,
    Prop(String),
    Context(ContextField),
}

impl CapState {
    /// Whether `client` may admit one more new value to `slot` (of `max` places) under
    /// `share_percent`; counts it when it may.
    fn client_may_admit(
        &mut self,
        client: Option<ClientKey>,
        app: &str,
        slot: CapSlot,
        max: usize,
        share_percent: usize,
    ) -> bool {
        let Some(client) = client.filter(|_| share_percent > 0) else {
            return true;
        };
        if client.period != self.period {
            self.admitted.clear();
            self.period = client.period;
        }
        let share = (max * share_percent / 100).max(1);
        let count = self.admitted.entry((client.hash, app.to_string(), slot)).or_default();
        if *count >= share {
            return false;
        }
        *count += 1;
        true
    }
}

impl Caps {
    /// Seeds the caps of every schema's app from what the store holds; one client may fill
    /// at most `share_percent` % of any cap per salt period (0: no share limit).
    pub fn load(store: &dyn EventStore, schemas: &SchemaSet, share_percent: usize) -> Result<Caps, StoreError> {
        let mut apps = HashMap::new();
        for schema in schemas.iter() {
            apps.insert(schema.app.clone(), store.known_values(&schema.app)?);
        }
        Ok(Caps { state: Mutex::new(CapState { apps, ..CapState::default() }), share_percent })
    }

    /// Applies caps to one event's plugins and string props in place; returns how many
    /// values were replaced by `other`.
    fn apply(
        &self,
        schema: &AppSchema,
        plugins: &mut [String],
        props: &mut std::collections::BTreeMap<String, PropValue>,
        client: Option<ClientKey>,
    ) -> usize {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let state = &mut *state;
        if !state.apps.contains_key(&schema.app) {
            state.apps.insert(schema.app.clone(), KnownValues::default());
        }
        // Values already admitted (the common case) are looked up without allocating.
        fn known<'s>(state: &'s CapState, app: &str) -> &'s KnownValues {
            state.apps.get(app).expect("inserted above")
        }
        let mut replaced = 0;
        for p in plugins.iter_mut() {
            let admitted = &known(state, &schema.app).plugins;
            if admitted.contains(p.as_str()) {
                continue;
            }
            let room = admitted.len() < schema.max_plugins;
            if room
                && state.client_may_admit(client, &schema.app, CapSlot::Plugins, schema.max_plugins, self.share_percent)
            {
                state.apps.get_mut(&schema.app).expect("inserted above").plugins.insert(p.clone());
            } else {
                *p = OTHER.to_string();
                replaced += 1;
            }
        }
        for (key, value) in props.iter_mut() {
            let PropValue::Str(s) = value else { continue };
            let Some(spec) = schema.props.get(key) else {
                continue;
            };
            let seen = known(state, &schema.app).props.get(key);
            if seen.is_some_and(|seen| seen.contains(s.as_str())) {
                continue;
            }
            let room = seen.map_or(0, |seen| seen.len()) < spec.max_distinct;
            if room
                && state.client_may_admit(
                    client,
                    &schema.app,
                    CapSlot::Prop(key.clone()),
                    spec.max_distinct,
                    self.share_percent,
                )
            {
                let known = state.apps.get_mut(&schema.app).expect("inserted above");
                known.props.entry(key.clone()).or_default().insert(s.clone());
            } else {
                *s = OTHER.to_string();
                replaced += 1;
            }
        }
        replaced
    }

    /// Caps one context field of `app` at `max` distinct values: a new value beyond it, or
    /// beyond `client`'s share, becomes `other`. Returns whether `value` was replaced.
    pub fn cap_context(
        &self,
        app: &str,
        field: ContextField,
        value: &mut String,
        max: usize,
        client: Option<ClientKey>,
    ) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let seen = state.apps.entry(app.to_string()).or_default().context.entry(field).or_default();
        if seen.contains(value.as_str()) {
            return false;
        }
        let room = seen.len() < max;
        if room && state.client_may_admit(client, app, CapSlot::Context(field), max, self.share_percent) {
            state.apps.get_mut(app).expect("entry made above").context.entry(field).or_default().insert(value.clone());
            return false;
        }
        *value = OTHER.to_string();
        true
    }
}

/// Turns an accepted event into a stored row: ids become keyed hashes, values are capped
/// and scrubbed.
#[allow(clippy::too_many_arguments)]
fn to_row(
    ctx: &Context,
    (project, machine): (ProjectKey, MachineKey),
    accepted: AcceptedEvent,
    received_at_ms: i64,
    schema: &AppSchema,
    caps: &Caps,
    metrics: &Metrics,
    client: Option<ClientKey>,
) -> EventRow {
    let AcceptedEvent { mut event, occurred_at_ms } = accepted;
    // Every stored string: props, plugin names and the error kind (a hostname fits the
    // shape of a plugin name and of an error kind; issue 11).
    let strings = event
        .props
        .values_mut()
        .filter_map(|v| match v {
            PropValue::Str(s) => Some(s),
            _ => None,
        })
        .chain(event.plugins.iter_mut())
        .chain(event.error_kind.as_mut());
    for s in strings {
        if scrub::is_sensitive(s) {
            *s = scrub::REDACTED.to_string();
            metrics.replaced("redacted");
        }
    }
    // check_batch already removed repeated plugins.
    let capped = caps.apply(schema, &mut event.plugins, &mut event.props, client);
    for _ in 0..capped {
        metrics.replaced("cap");
    }
    if capped > 0 {
        // Capping can map several plugins to `other`: keep one.
        let mut seen = HashSet::new();
        event.plugins.retain(|p| seen.insert(p.clone()));
    }
    EventRow::new(ctx, event, occurred_at_ms, received_at_ms, project, machine)
}

/// Builds the response from per-event check results and the store's statuses (one per
/// row, in the order the rows were built).
fn respond(
    checked: &[EventCheck<()>],
    statuses: &[AppendStatus],
    dropped_props: usize,
    metrics: &Metrics,
) -> BatchResponse {
    let mut statuses = statuses.iter();
    let mut response = BatchResponse {
        accepted: 0,
        duplicate: 0,
        rejected: 0,
        dropped_props,
        results: Vec::with_capacity(checked.len()),
    };
    for (index, (event_id, result)) in checked.iter().enumerate() {
        let (status, reason, detail) = match result {
            Ok(Some(())) => match statuses.next() {
                Some(AppendStatus::Inserted) => (EventOutcome::Accepted, None, None),
                _ => (EventOutcome::Duplicate, None, None),
            },
            Ok(None) => (EventOutcome::Duplicate, None, None),
            Err(r) => (EventOutcome::Rejected, Some(r.reason), Some(r.detail.clone())),
        };
        match status {
            EventOutcome::Accepted => response.accepted += 1,
            EventOutcome::Duplicate => response.duplicate += 1,
            EventOutcome::Rejected => {
                response.rejected += 1;
                metrics.event("rejected", reason.map_or("", |r| r.as_str()));
            }
        }
        response.results.push(EventResult { index, event_id: *event_id, status, reason, detail });
    }
    metrics.events_n("accepted", "", response.accepted as u64);
    metrics.events_n("duplicate", "", response.duplicate as u64);
    response
}
