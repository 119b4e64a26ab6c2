/**
 * Events as a tool author writes them, and their conversion to the wire format.
 *
 * {@link Event} is a plain builder with no I/O. `record()` turns it into a wire event on
 * the caller's stack: it scrubs every string, hashes values marked sensitive with the
 * per-machine salt, and brings everything inside the protocol's limits (dropping what
 * cannot be fixed), so what is queued is already what would be sent.
 */

import { HEX, uniqueRandom } from "./random.js";
import { isoTime } from "./time.js";

import { hashSensitive } from "./identity.js";
import {
  isName,
  isPluginName,
  isToken,
  MAX_DURATION_MS,
  MAX_NAME_LEN,
  MAX_PLUGINS,
  MAX_PROPS,
  MAX_STRING_LEN,
  PropValue,
  WireEvent,
} from "./protocol.js";
import { isSensitive, scrub } from "./scrub.js";

export { isoTime } from "./time.js";

/** A property value as a tool gives it. */
export type Value = string | number | bigint | boolean;

/** The fields of an event besides its name, for `record(name, fields)`. */
export interface EventFields {
  /** Plugins or features in use; names outside the allowlist are sent as salted hashes. */
  plugins?: Iterable<string>;
  /** How long the event took, in milliseconds. */
  durationMs?: number;
  /** A bounded error category such as `EACCES`; anything else is sent as `other`. */
  errorKind?: string;
  /** Typed properties; strings are scrubbed and cut to 128 bytes. */
  props?: Record<string, Value>;
  /** Free-form values that may identify someone: sent only as 16-hex-digit salted hashes. */
  sensitive?: Record<string, string>;
}

/** One event to record, e.g. `new Event("build.finished").duration(ms).prop("files", 412)`. */
export class Event {
  readonly name: string;
  readonly plugins: string[] = [];
  durationMs?: number;
  errorKind?: string;
  readonly props: [string, Value, boolean][] = [];

  constructor(name: string, fields?: EventFields) {
    this.name = name;
    if (fields) {
      if (fields.plugins) this.plugins.push(...fields.plugins);
      if (fields.durationMs !== undefined) this.duration(fields.durationMs);
      if (fields.errorKind !== undefined) this.errorKind = fields.errorKind;
      for (const [k, v] of Object.entries(fields.props ?? {})) this.prop(k, v);
      for (const [k, v] of Object.entries(fields.sensitive ?? {})) this.sensitive(k, v);
    }
  }

  /** `command.run` with property `command`. */
  static commandRun(command: string): Event {
    return new Event("command.run").prop("command", command);
  }

  /** `project.created`, timed (e.g. the dependency install). */
  static projectCreated(durationMs: number): Event {
    return new Event("project.created").duration(durationMs);
  }

  /** `build.finished`, timed. */
  static buildFinished(durationMs: number): Event {
    return new Event("build.finished").duration(durationMs);
  }

  /** `error` with a bounded category such as `EACCES` or `config.invalid`. */
  static error(kind: string): Event {
    const e = new Event("error");
    e.errorKind = kind;
    return e;
  }

  /** How long the event took, in milliseconds. */
  duration(ms: number): this {
    this.durationMs = ms;
    return this;
  }

  /** A plugin or feature in use. */
  plugin(name: string): this {
    this.plugins.push(name);
    return this;
  }

  /** A typed property. */
  prop(key: string, value: Value): this {
    this.props.push([key, value, false]);
    return this;
  }

  /** A free-form value that may identify someone (a project name, a path): sent only as a salted hash. */
  sensitive(key: string, value: string): this {
    this.props.push([key, String(value), true]);
    return this;
  }
}

/** What turns an {@link Event} into a wire event: the salt and the plugin allowlist. */
export class Sanitizer {
  private saltValue: Buffer | null = null;

  /** `salt` is called once, when a first value is hashed: most runs hash none. */
  constructor(
    private readonly saltOf: () => Buffer,
    readonly knownPlugins: ReadonlySet<string> | null,
  ) {}

  /** The key of the salted hashes. */
  get salt(): Buffer {
    if (!this.saltValue) this.saltValue = this.saltOf();
    return this.saltValue;
  }

  /** The wire event, or `null` when the event's name is invalid. Never throws on any input. */
  wire(e: Event): WireEvent | null {
    if (typeof e.name !== "string" || !isName(e.name)) return null;
    const now = Date.now();
    const w: WireEvent = { event_id: uuidV7(now), event: e.name, occurred_at: isoTime(now) };
    const plugins: string[] = [];
    for (const raw of e.plugins) {
      if (plugins.length === MAX_PLUGINS) break;
      const p = String(raw);
      const known = this.knownPlugins === null || this.knownPlugins.has(p);
      // Unknown or unusual names may be private: keep only a salted hash.
      const name = known && isPluginName(p) ? p : `h:${hashSensitive(this.salt, p)}`;
      if (!plugins.includes(name)) plugins.push(name);
    }
    if (plugins.length > 0) w.plugins = plugins;
    if (typeof e.durationMs === "number" && Number.isFinite(e.durationMs)) {
      w.duration_ms = Math.min(MAX_DURATION_MS, Math.max(0, Math.round(e.durationMs)));
    }
    if (e.errorKind !== undefined) {
      const k = String(e.errorKind);
      w.error_kind = isToken(k, MAX_NAME_LEN) && !isSensitive(k) ? k : "other";
    }
    const props: Record<string, PropValue> = {};
    let n = 0;
    for (const [key, value, sensitive] of e.props) {
      // Like the Rust SDK's map: a repeated key keeps its last value.
      const fresh = !(key in props);
      if ((fresh && n === MAX_PROPS) || !isName(key)) continue;
      let v: PropValue;
      if (sensitive) v = hashSensitive(this.salt, String(value));
      else if (typeof value === "string") v = clean(value);
      else if (typeof value === "bigint") v = Number(BigInt.asIntN(64, value));
      else if (typeof value === "number") {
        if (!Number.isFinite(value)) continue;
        v = value;
      } else if (typeof value === "boolean") v = value;
      else continue;
      props[key] = v;
      if (fresh) n++;
    }
    if (n > 0) w.props = props;
    return w;
  }
}

/** Scrubbed and cut to {@link MAX_STRING_LEN} bytes on a character boundary. */
export function clean(s: string): string {
  const out = scrub(s);
  if (out.length <= MAX_STRING_LEN / 3) return out;
  const bytes = Buffer.from(out, "utf8");
  if (bytes.length <= MAX_STRING_LEN) return out;
  let end = MAX_STRING_LEN;
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString("utf8");
}

/** The time part of the last event id, reused within a millisecond. */
let uuidMs = -1;
let uuidTime = "";

/** A UUID v7 from the timestamp and 74 random bits (built from a hex table: this runs on every record()). */
export function uuidV7(ms: number): string {
  const t = Math.floor(ms);
  if (t !== uuidMs) {
    uuidMs = t;
    const hex = t.toString(16).padStart(12, "0").slice(-12);
    uuidTime = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-`;
  }
  const p = uniqueRandom(10);
  return (
    uuidTime +
    `7${HEX[p[0] & 0x0f][1]}${HEX[p[1]]}-` +
    `${HEX[0x80 | (p[2] & 0x3f)]}${HEX[p[3]]}-` +
    `${HEX[p[4]]}${HEX[p[5]]}${HEX[p[6]]}${HEX[p[7]]}${HEX[p[8]]}${HEX[p[9]]}`
  );
}
