/**
 * Events as a tool author writes them, and their conversion to the wire format.
 *
 * {@link Event} is a plain builder with no I/O. `record()` turns it into a wire event on
 * the caller's stack: it scrubs every string, hashes values marked sensitive with the
 * per-machine salt, and brings everything inside the protocol's limits (dropping what
 * cannot be fixed), so what is queued is already what would be sent.
 */
import { randomFillSync } from "node:crypto";
import { hashSensitive } from "./identity.js";
import { isName, isPluginName, isToken, MAX_DURATION_MS, MAX_NAME_LEN, MAX_PLUGINS, MAX_PROPS, MAX_STRING_LEN, } from "./protocol.js";
import { isSensitive, scrub } from "./scrub.js";
/** One event to record, e.g. `new Event("build.finished").duration(ms).prop("files", 412)`. */
export class Event {
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
/** What turns an {@link Event} into a wire event: the salt and the plugin allowlist. */
export class Sanitizer {
    salt;
    knownPlugins;
    constructor(salt, knownPlugins) {
        this.salt = salt;
        this.knownPlugins = knownPlugins;
    }
    /** The wire event, or `null` when the event's name is invalid. Never throws on any input. */
    wire(e) {
        if (typeof e.name !== "string" || !isName(e.name))
            return null;
        const now = Date.now();
        const w = { event_id: uuidV7(now), event: e.name, occurred_at: new Date(now).toISOString() };
        const plugins = [];
        for (const raw of e.plugins) {
            if (plugins.length === MAX_PLUGINS)
                break;
            const p = String(raw);
            const known = this.knownPlugins === null || this.knownPlugins.has(p);
            // Unknown or unusual names may be private: keep only a salted hash.
            const name = known && isPluginName(p) ? p : `h:${hashSensitive(this.salt, p)}`;
            if (!plugins.includes(name))
                plugins.push(name);
        }
        if (plugins.length > 0)
            w.plugins = plugins;
        if (typeof e.durationMs === "number" && Number.isFinite(e.durationMs)) {
            w.duration_ms = Math.min(MAX_DURATION_MS, Math.max(0, Math.round(e.durationMs)));
        }
        if (e.errorKind !== undefined) {
            const k = String(e.errorKind);
            w.error_kind = isToken(k, MAX_NAME_LEN) && !isSensitive(k) ? k : "other";
        }
        const props = {};
        let n = 0;
        for (const [key, value, sensitive] of e.props) {
            // Like the Rust SDK's map: a repeated key keeps its last value.
            const fresh = !(key in props);
            if ((fresh && n === MAX_PROPS) || !isName(key))
                continue;
            let v;
            if (sensitive)
                v = hashSensitive(this.salt, String(value));
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
/** Scrubbed and cut to {@link MAX_STRING_LEN} bytes on a character boundary. */
export function clean(s) {
    const out = scrub(s);
    if (out.length <= MAX_STRING_LEN / 3)
        return out;
    const bytes = Buffer.from(out, "utf8");
    if (bytes.length <= MAX_STRING_LEN)
        return out;
    let end = MAX_STRING_LEN;
    while (end > 0 && (bytes[end] & 0xc0) === 0x80)
        end--;
    return bytes.subarray(0, end).toString("utf8");
}
/** Random bytes for event ids, drawn from a pool: one OS call per 256 ids, not per id. */
const pool = Buffer.alloc(10 * 256);
let poolAt = pool.length;
/** A UUID v7 from the timestamp and 74 random bits. */
export function uuidV7(ms) {
    if (poolAt === pool.length) {
        randomFillSync(pool);
        poolAt = 0;
    }
    const r = pool.subarray(poolAt, poolAt + 10);
    poolAt += 10;
    const b = Buffer.alloc(16);
    b.writeUIntBE(ms, 0, 6);
    r.copy(b, 6);
    b[6] = 0x70 | (b[6] & 0x0f);
    b[8] = 0x80 | (b[8] & 0x3f);
    const h = b.toString("hex");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
