"use strict";
/**
 * Events as a tool author writes them, and their conversion to the wire format.
 *
 * {@link Event} is a plain builder with no I/O. `record()` turns it into a wire event on
 * the caller's stack: it scrubs every string, hashes values marked sensitive with the
 * per-machine salt, and brings everything inside the protocol's limits (dropping what
 * cannot be fixed), so what is queued is already what would be sent.
 */
Object.defineProperty(exports, "__esModule", { value: true });
exports.Sanitizer = exports.Event = exports.isoTime = void 0;
exports.clean = clean;
exports.uuidV7 = uuidV7;
const random_js_1 = require("./random.js");
const time_js_1 = require("./time.js");
const identity_js_1 = require("./identity.js");
const protocol_js_1 = require("./protocol.js");
const scrub_js_1 = require("./scrub.js");
var time_js_2 = require("./time.js");
Object.defineProperty(exports, "isoTime", { enumerable: true, get: function () { return time_js_2.isoTime; } });
/** One event to record, e.g. `new Event("build.finished").duration(ms).prop("files", 412)`. */
class Event {
    name;
    plugins = [];
    durationMs;
    errorKind;
    props = [];
    constructor(name, fields) {
        this.name = name;
        if (fields) {
            if (fields.plugins)
                this.plugins.push(...fields.plugins);
            if (fields.durationMs !== undefined)
                this.duration(fields.durationMs);
            if (fields.errorKind !== undefined)
                this.errorKind = fields.errorKind;
            for (const [k, v] of Object.entries(fields.props ?? {}))
                this.prop(k, v);
            for (const [k, v] of Object.entries(fields.sensitive ?? {}))
                this.sensitive(k, v);
        }
    }
    /** `command.run` with property `command`. */
    static commandRun(command) {
        return new Event("command.run").prop("command", command);
    }
    /** `project.created`, timed (e.g. the dependency install). */
    static projectCreated(durationMs) {
        return new Event("project.created").duration(durationMs);
    }
    /** `build.finished`, timed. */
    static buildFinished(durationMs) {
        return new Event("build.finished").duration(durationMs);
    }
    /** `error` with a bounded category such as `EACCES` or `config.invalid`. */
    static error(kind) {
        const e = new Event("error");
        e.errorKind = kind;
        return e;
    }
    /** How long the event took, in milliseconds. */
    duration(ms) {
        this.durationMs = ms;
        return this;
    }
    /** A plugin or feature in use. */
    plugin(name) {
        this.plugins.push(name);
        return this;
    }
    /** A typed property. */
    prop(key, value) {
        this.props.push([key, value, false]);
        return this;
    }
    /** A free-form value that may identify someone (a project name, a path): sent only as a salted hash. */
    sensitive(key, value) {
        this.props.push([key, String(value), true]);
        return this;
    }
}
exports.Event = Event;
/** What turns an {@link Event} into a wire event: the salt and the plugin allowlist. */
class Sanitizer {
    saltOf;
    knownPlugins;
    saltValue = null;
    /** `salt` is called once, when a first value is hashed: most runs hash none. */
    constructor(saltOf, knownPlugins) {
        this.saltOf = saltOf;
        this.knownPlugins = knownPlugins;
    }
    /** The key of the salted hashes. */
    get salt() {
        if (!this.saltValue)
            this.saltValue = this.saltOf();
        return this.saltValue;
    }
    /** The wire event, or `null` when the event's name is invalid. Never throws on any input. */
    wire(e) {
        if (typeof e.name !== "string" || !(0, protocol_js_1.isName)(e.name))
            return null;
        const now = Date.now();
        const w = { event_id: uuidV7(now), event: e.name, occurred_at: (0, time_js_1.isoTime)(now) };
        const plugins = [];
        for (const raw of e.plugins) {
            if (plugins.length === protocol_js_1.MAX_PLUGINS)
                break;
            const p = String(raw);
            const known = this.knownPlugins === null || this.knownPlugins.has(p);
            // Unknown or unusual names may be private: keep only a salted hash.
            const name = known && (0, protocol_js_1.isPluginName)(p) ? p : `h:${(0, identity_js_1.hashSensitive)(this.salt, p)}`;
            if (!plugins.includes(name))
                plugins.push(name);
        }
        if (plugins.length > 0)
            w.plugins = plugins;
        if (typeof e.durationMs === "number" && Number.isFinite(e.durationMs)) {
            w.duration_ms = Math.min(protocol_js_1.MAX_DURATION_MS, Math.max(0, Math.round(e.durationMs)));
        }
        if (e.errorKind !== undefined) {
            const k = String(e.errorKind);
            w.error_kind = (0, protocol_js_1.isToken)(k, protocol_js_1.MAX_NAME_LEN) && !(0, scrub_js_1.isSensitive)(k) ? k : "other";
        }
        const props = {};
        let n = 0;
        for (const [key, value, sensitive] of e.props) {
            // Like the Rust SDK's map: a repeated key keeps its last value.
            const fresh = !(key in props);
            if ((fresh && n === protocol_js_1.MAX_PROPS) || !(0, protocol_js_1.isName)(key))
                continue;
            let v;
            if (sensitive)
                v = (0, identity_js_1.hashSensitive)(this.salt, String(value));
            else if (typeof value === "string")
                v = clean(value);
            else if (typeof value === "bigint")
                v = Number(BigInt.asIntN(64, value));
            else if (typeof value === "number") {
                if (!Number.isFinite(value))
                    continue;
                v = value;
            }
            else if (typeof value === "boolean")
                v = value;
            else
                continue;
            props[key] = v;
            if (fresh)
                n++;
        }
        if (n > 0)
            w.props = props;
        return w;
    }
}
exports.Sanitizer = Sanitizer;
/** Scrubbed and cut to {@link MAX_STRING_LEN} bytes on a character boundary. */
function clean(s) {
    const out = (0, scrub_js_1.scrub)(s);
    if (out.length <= protocol_js_1.MAX_STRING_LEN / 3)
        return out;
    const bytes = Buffer.from(out, "utf8");
    if (bytes.length <= protocol_js_1.MAX_STRING_LEN)
        return out;
    let end = protocol_js_1.MAX_STRING_LEN;
    while (end > 0 && (bytes[end] & 0xc0) === 0x80)
        end--;
    return bytes.subarray(0, end).toString("utf8");
}
/** The time part of the last event id, reused within a millisecond. */
let uuidMs = -1;
let uuidTime = "";
/** A UUID v7 from the timestamp and 74 random bits (built from a hex table: this runs on every record()). */
function uuidV7(ms) {
    const t = Math.floor(ms);
    if (t !== uuidMs) {
        uuidMs = t;
        const hex = t.toString(16).padStart(12, "0").slice(-12);
        uuidTime = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-`;
    }
    const p = (0, random_js_1.uniqueRandom)(10);
    return (uuidTime +
        `7${random_js_1.HEX[p[0] & 0x0f][1]}${random_js_1.HEX[p[1]]}-` +
        `${random_js_1.HEX[0x80 | (p[2] & 0x3f)]}${random_js_1.HEX[p[3]]}-` +
        `${random_js_1.HEX[p[4]]}${random_js_1.HEX[p[5]]}${random_js_1.HEX[p[6]]}${random_js_1.HEX[p[7]]}${random_js_1.HEX[p[8]]}${random_js_1.HEX[p[9]]}`);
}
