/**
 * The wire protocol v1 as the client sees it: the JSON types of `POST /v1/batch`, the
 * limits of `tally_protocol::limits`, and the per-event checks of `tally_protocol::validate`
 * that a client can make without the app's schema. The protocol's test vectors
 * (`crates/tally-protocol/vectors`) are checked against these.
 */
import type { Env } from "./facts.js";
export declare const MAX_EVENTS_PER_BATCH = 500;
export declare const MAX_STRING_LEN = 128;
export declare const MAX_NAME_LEN = 64;
export declare const MAX_PLUGINS = 128;
export declare const MAX_PROPS = 32;
export declare const MAX_DURATION_MS: number;
export declare const BATCH_PATH = "/v1/batch";
/** A typed property value. */
export type PropValue = string | number | boolean;
/** Facts shared by all events of a batch. */
export interface Context {
    app: string;
    app_version: string;
    project: string;
    machine: string;
    env: Env;
    os: string;
    os_version: string;
    arch: string;
    runtime: string;
    runtime_version: string;
    ci?: string;
    container: boolean;
}
/** One event on the wire. */
export interface WireEvent {
    event_id: string;
    event: string;
    occurred_at: string;
    plugins?: string[];
    duration_ms?: number;
    error_kind?: string;
    props?: Record<string, PropValue>;
}
export interface Batch {
    sent_at: string;
    context: Context;
    events: WireEvent[];
}
/** What the collector answers to a batch it parsed (200 or 422). */
export interface BatchResponse {
    accepted: number;
    duplicate: number;
    rejected: number;
    dropped_props?: number;
}
/**
 * A set of ASCII characters as a table of the 128 codes. The checks below loop over a
 * string with it instead of testing a regex: a process compiles each regex on its first
 * use, about 0.1 ms apiece, and a short command's first `record()` would pay that for
 * every class it checks (docs/benchmarks.md).
 */
export declare function asciiSet(chars: string): Uint8Array;
/** Whether every character of `s` is in `set` (`true` for ""). */
export declare function allIn(s: string, set: Uint8Array): boolean;
/** `[A-Za-z0-9._:+-]` */
export declare const TOKEN_CHARS: Uint8Array<ArrayBufferLike>;
/** Names of apps, events, properties and CI vendors: 1-64 bytes of `[a-z0-9._-]`. */
export declare function isName(s: string): boolean;
/** Plugin names may be npm-scoped (`@scope/name`) and namespaced (`a:b`), and never personal data. */
export declare function isPluginName(s: string): boolean;
/** Versions, ids and categories: no spaces, no `@`, no `/`: 1-`max` bytes of `[A-Za-z0-9._:+-]`. */
export declare function isToken(s: string, max: number): boolean;
/** Why the collector would refuse a batch's context; `null` when it is valid. */
export declare function checkContext(c: Context): string | null;
/**
 * Why the collector would refuse this event on grounds a client can see (not the schema,
 * not the clock); `null` when it is fine. The reasons are the protocol's wire names.
 */
export declare function checkEvent(e: WireEvent): string | null;
/** Why the collector would refuse a whole batch (`malformed`, `too_many_events`, `invalid_context`); `null` when it would not. */
export declare function checkBatch(b: Batch): string | null;
