/**
 * Events as a tool author writes them, and their conversion to the wire format.
 *
 * {@link Event} is a plain builder with no I/O. `record()` turns it into a wire event on
 * the caller's stack: it scrubs every string, hashes values marked sensitive with the
 * per-machine salt, and brings everything inside the protocol's limits (dropping what
 * cannot be fixed), so what is queued is already what would be sent.
 */
import { WireEvent } from "./protocol.js";
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
export declare class Event {
    readonly name: string;
    readonly plugins: string[];
    durationMs?: number;
    errorKind?: string;
    readonly props: [string, Value, boolean][];
    constructor(name: string, fields?: EventFields);
    /** `command.run` with property `command`. */
    static commandRun(command: string): Event;
    /** `project.created`, timed (e.g. the dependency install). */
    static projectCreated(durationMs: number): Event;
    /** `build.finished`, timed. */
    static buildFinished(durationMs: number): Event;
    /** `error` with a bounded category such as `EACCES` or `config.invalid`. */
    static error(kind: string): Event;
    /** How long the event took, in milliseconds. */
    duration(ms: number): this;
    /** A plugin or feature in use. */
    plugin(name: string): this;
    /** A typed property. */
    prop(key: string, value: Value): this;
    /** A free-form value that may identify someone (a project name, a path): sent only as a salted hash. */
    sensitive(key: string, value: string): this;
}
/** What turns an {@link Event} into a wire event: the salt and the plugin allowlist. */
export declare class Sanitizer {
    private readonly saltOf;
    readonly knownPlugins: ReadonlySet<string> | null;
    private saltValue;
    /** `salt` is called once, when a first value is hashed: most runs hash none. */
    constructor(saltOf: () => Buffer, knownPlugins: ReadonlySet<string> | null);
    /** The key of the salted hashes. */
    get salt(): Buffer;
    /** The wire event, or `null` when the event's name is invalid. Never throws on any input. */
    wire(e: Event): WireEvent | null;
}
/** Scrubbed and cut to {@link MAX_STRING_LEN} bytes on a character boundary. */
export declare function clean(s: string): string;
/** A UUID v7 from the timestamp and 74 random bits (built from a hex table: this runs on every record()). */
export declare function uuidV7(ms: number): string;
