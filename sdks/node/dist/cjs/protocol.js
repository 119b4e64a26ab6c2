"use strict";
/**
 * The wire protocol v1 as the client sees it: the JSON types of `POST /v1/batch`, the
 * limits of `tally_protocol::limits`, and the per-event checks of `tally_protocol::validate`
 * that a client can make without the app's schema. The protocol's test vectors
 * (`crates/tally-protocol/vectors`) are checked against these.
 */
Object.defineProperty(exports, "__esModule", { value: true });
exports.TOKEN_CHARS = exports.BATCH_PATH = exports.MAX_DURATION_MS = exports.MAX_PROPS = exports.MAX_PLUGINS = exports.MAX_NAME_LEN = exports.MAX_STRING_LEN = exports.MAX_EVENTS_PER_BATCH = void 0;
exports.asciiSet = asciiSet;
exports.allIn = allIn;
exports.isName = isName;
exports.isPluginName = isPluginName;
exports.isToken = isToken;
exports.checkContext = checkContext;
exports.checkEvent = checkEvent;
exports.checkBatch = checkBatch;
const scrub_js_1 = require("./scrub.js");
exports.MAX_EVENTS_PER_BATCH = 500;
exports.MAX_STRING_LEN = 128;
exports.MAX_NAME_LEN = 64;
exports.MAX_PLUGINS = 128;
exports.MAX_PROPS = 32;
exports.MAX_DURATION_MS = 7 * 24 * 60 * 60 * 1000;
exports.BATCH_PATH = "/v1/batch";
/**
 * A set of ASCII characters as a table of the 128 codes. The checks below loop over a
 * string with it instead of testing a regex: a process compiles each regex on its first
 * use, about 0.1 ms apiece, and a short command's first `record()` would pay that for
 * every class it checks (docs/benchmarks.md).
 */
function asciiSet(chars) {
    const set = new Uint8Array(128);
    for (let i = 0; i < chars.length; i++)
        set[chars.charCodeAt(i)] = 1;
    return set;
}
/** Whether every character of `s` is in `set` (`true` for ""). */
function allIn(s, set) {
    for (let i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (c > 127 || set[c] === 0)
            return false;
    }
    return true;
}
const LOWER_DIGITS = "abcdefghijklmnopqrstuvwxyz0123456789";
/** `[a-z0-9._-]` */
const NAME_CHARS = asciiSet(`${LOWER_DIGITS}._-`);
/** `[a-z0-9@/._:-]` */
const PLUGIN_CHARS = asciiSet(`${LOWER_DIGITS}@/._:-`);
/** `[A-Za-z0-9._:+-]` */
exports.TOKEN_CHARS = asciiSet(`${LOWER_DIGITS}ABCDEFGHIJKLMNOPQRSTUVWXYZ._:+-`);
/** Names of apps, events, properties and CI vendors: 1-64 bytes of `[a-z0-9._-]`. */
function isName(s) {
    return s.length > 0 && s.length <= exports.MAX_NAME_LEN && allIn(s, NAME_CHARS);
}
/** Plugin names may be npm-scoped (`@scope/name`) and namespaced (`a:b`), and never personal data. */
function isPluginName(s) {
    return s.length > 0 && s.length <= exports.MAX_NAME_LEN && allIn(s, PLUGIN_CHARS) && !(0, scrub_js_1.isSensitive)(s);
}
/** Versions, ids and categories: no spaces, no `@`, no `/`: 1-`max` bytes of `[A-Za-z0-9._:+-]`. */
function isToken(s, max) {
    return s.length > 0 && s.length <= max && allIn(s, exports.TOKEN_CHARS);
}
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const NIL = "00000000-0000-0000-0000-000000000000";
/** Why the collector would refuse a batch's context; `null` when it is valid. */
function checkContext(c) {
    if (!isName(c.app))
        return "invalid_context";
    if (!UUID.test(c.project) || c.project === NIL)
        return "invalid_context";
    if (!isToken(c.machine, exports.MAX_STRING_LEN))
        return "invalid_context";
    const fields = [
        [c.app_version, true],
        [c.os, true],
        [c.os_version, false],
        [c.arch, true],
        [c.runtime, true],
        [c.runtime_version, false],
    ];
    for (const [v, required] of fields) {
        if (typeof v !== "string")
            return "malformed";
        if (v === "" ? required : !isToken(v, exports.MAX_NAME_LEN))
            return "invalid_context";
    }
    if (c.ci !== undefined && !isName(c.ci))
        return "invalid_context";
    return null;
}
/**
 * Why the collector would refuse this event on grounds a client can see (not the schema,
 * not the clock); `null` when it is fine. The reasons are the protocol's wire names.
 */
function checkEvent(e) {
    if (typeof e !== "object" || e === null || typeof e.event !== "string" || typeof e.event_id !== "string") {
        return "malformed";
    }
    if (!UUID.test(e.event_id))
        return "malformed";
    if (e.event_id === NIL)
        return "invalid_event_id";
    if (!isName(e.event))
        return "invalid_name";
    if (typeof e.occurred_at !== "string" || Number.isNaN(Date.parse(e.occurred_at)))
        return "malformed";
    const plugins = e.plugins ?? [];
    if (plugins.length > exports.MAX_PLUGINS)
        return "too_many_plugins";
    if (plugins.some((p) => typeof p !== "string" || !isPluginName(p)))
        return "invalid_plugin";
    if (e.duration_ms !== undefined) {
        if (!Number.isInteger(e.duration_ms) || e.duration_ms < 0)
            return "malformed";
        if (e.duration_ms > exports.MAX_DURATION_MS)
            return "invalid_duration";
    }
    if (e.error_kind !== undefined && (typeof e.error_kind !== "string" || !isToken(e.error_kind, exports.MAX_NAME_LEN))) {
        return "invalid_error_kind";
    }
    const props = Object.entries(e.props ?? {});
    if (props.length > exports.MAX_PROPS)
        return "too_many_props";
    for (const [key, value] of props) {
        if (!isName(key))
            return "invalid_name";
        if (typeof value === "string" && Buffer.byteLength(value) > exports.MAX_STRING_LEN)
            return "string_too_long";
        if (typeof value === "number" && !Number.isFinite(value))
            return "invalid_property";
        if (!["string", "number", "boolean"].includes(typeof value))
            return "malformed";
    }
    return null;
}
/** Why the collector would refuse a whole batch (`malformed`, `too_many_events`, `invalid_context`); `null` when it would not. */
function checkBatch(b) {
    if (!b || typeof b !== "object" || !b.context || typeof b.context !== "object" || !Array.isArray(b.events))
        return "malformed";
    if (typeof b.sent_at !== "string" || Number.isNaN(Date.parse(b.sent_at)))
        return "malformed";
    if (b.events.length > exports.MAX_EVENTS_PER_BATCH)
        return "too_many_events";
    return checkContext(b.context);
}
