/**
 * The wire protocol v1 as the client sees it: the JSON types of `POST /v1/batch`, the
 * limits of `tally_protocol::limits`, and the per-event checks of `tally_protocol::validate`
 * that a client can make without the app's schema. The protocol's test vectors
 * (`crates/tally-protocol/vectors`) are checked against these.
 */

import { isSensitive } from "./scrub.js";
import type { Env } from "./facts.js";

export const MAX_EVENTS_PER_BATCH = 500;
export const MAX_STRING_LEN = 128;
export const MAX_NAME_LEN = 64;
export const MAX_PLUGINS = 128;
export const MAX_PROPS = 32;
export const MAX_DURATION_MS = 7 * 24 * 60 * 60 * 1000;
export const BATCH_PATH = "/v1/batch";

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
export function asciiSet(chars: string): Uint8Array {
  const set = new Uint8Array(128);
  for (let i = 0; i < chars.length; i++) set[chars.charCodeAt(i)] = 1;
  return set;
}

/** Whether every character of `s` is in `set` (`true` for ""). */
export function allIn(s: string, set: Uint8Array): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 127 || set[c] === 0) return false;
  }
  return true;
}

const LOWER_DIGITS = "abcdefghijklmnopqrstuvwxyz0123456789";
/** `[a-z0-9._-]` */
const NAME_CHARS = asciiSet(`${LOWER_DIGITS}._-`);
/** `[a-z0-9@/._:-]` */
const PLUGIN_CHARS = asciiSet(`${LOWER_DIGITS}@/._:-`);
/** `[A-Za-z0-9._:+-]` */
export const TOKEN_CHARS = asciiSet(`${LOWER_DIGITS}ABCDEFGHIJKLMNOPQRSTUVWXYZ._:+-`);

/** Names of apps, events, properties and CI vendors: 1-64 bytes of `[a-z0-9._-]`. */
export function isName(s: string): boolean {
  return s.length > 0 && s.length <= MAX_NAME_LEN && allIn(s, NAME_CHARS);
}

/** Plugin names may be npm-scoped (`@scope/name`) and namespaced (`a:b`), and never personal data. */
export function isPluginName(s: string): boolean {
  return s.length > 0 && s.length <= MAX_NAME_LEN && allIn(s, PLUGIN_CHARS) && !isSensitive(s);
}

/** Versions, ids and categories: no spaces, no `@`, no `/`: 1-`max` bytes of `[A-Za-z0-9._:+-]`. */
export function isToken(s: string, max: number): boolean {
  return s.length > 0 && s.length <= max && allIn(s, TOKEN_CHARS);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const NIL = "00000000-0000-0000-0000-000000000000";

/** Why the collector would refuse a batch's context; `null` when it is valid. */
export function checkContext(c: Context): string | null {
  if (!isName(c.app)) return "invalid_context";
  if (!UUID.test(c.project) || c.project === NIL) return "invalid_context";
  if (!isToken(c.machine, MAX_STRING_LEN)) return "invalid_context";
  const fields: [string, boolean][] = [
    [c.app_version, true],
    [c.os, true],
    [c.os_version, false],
    [c.arch, true],
    [c.runtime, true],
    [c.runtime_version, false],
  ];
  for (const [v, required] of fields) {
    if (typeof v !== "string") return "malformed";
    if (v === "" ? required : !isToken(v, MAX_NAME_LEN)) return "invalid_context";
  }
  if (c.ci !== undefined && !isName(c.ci)) return "invalid_context";
  return null;
}

/**
 * Why the collector would refuse this event on grounds a client can see (not the schema,
 * not the clock); `null` when it is fine. The reasons are the protocol's wire names.
 */
export function checkEvent(e: WireEvent): string | null {
  if (typeof e !== "object" || e === null || typeof e.event !== "string" || typeof e.event_id !== "string") {
    return "malformed";
  }
  if (!UUID.test(e.event_id)) return "malformed";
  if (e.event_id === NIL) return "invalid_event_id";
  if (!isName(e.event)) return "invalid_name";
  if (typeof e.occurred_at !== "string" || Number.isNaN(Date.parse(e.occurred_at))) return "malformed";
  const plugins = e.plugins ?? [];
  if (plugins.length > MAX_PLUGINS) return "too_many_plugins";
  if (plugins.some((p) => typeof p !== "string" || !isPluginName(p))) return "invalid_plugin";
  if (e.duration_ms !== undefined) {
    if (!Number.isInteger(e.duration_ms) || e.duration_ms < 0) return "malformed";
    if (e.duration_ms > MAX_DURATION_MS) return "invalid_duration";
  }
  if (e.error_kind !== undefined && (typeof e.error_kind !== "string" || !isToken(e.error_kind, MAX_NAME_LEN))) {
    return "invalid_error_kind";
  }
  const props = Object.entries(e.props ?? {});
  if (props.length > MAX_PROPS) return "too_many_props";
  for (const [key, value] of props) {
    if (!isName(key)) return "invalid_name";
    if (typeof value === "string" && Buffer.byteLength(value) > MAX_STRING_LEN) return "string_too_long";
    if (typeof value === "number" && !Number.isFinite(value)) return "invalid_property";
    if (!["string", "number", "boolean"].includes(typeof value)) return "malformed";
  }
  return null;
}

/** Why the collector would refuse a whole batch (`malformed`, `too_many_events`, `invalid_context`); `null` when it would not. */
export function checkBatch(b: Batch): string | null {
  if (!b || typeof b !== "object" || !b.context || typeof b.context !== "object" || !Array.isArray(b.events)) return "malformed";
  if (typeof b.sent_at !== "string" || Number.isNaN(Date.parse(b.sent_at))) return "malformed";
  if (b.events.length > MAX_EVENTS_PER_BATCH) return "too_many_events";
  return checkContext(b.context);
}
