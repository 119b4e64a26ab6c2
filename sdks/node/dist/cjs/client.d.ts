/**
 * The client a tool records events with, and its sender.
 *
 * `createTelemetry` resolves consent, then (only when telemetry is local or on) loads or
 * creates the identity and starts the sender; off means no file written, no timer, no
 * socket. `record()` is synchronous and cheap: it scrubs and checks the event on the
 * caller's stack and pushes it onto a bounded queue; it never throws.
 *
 * A short command posts nothing itself: on the process's `exit` event, synchronously,
 * what is queued is filed in the outbox (one file write, whatever the outbox holds) and,
 * with consent to upload, a detached flusher process is started on it (flusher.ts), so
 * the host neither loads the HTTP stack nor waits for the network.
 *
 * A longer run (one `flushIntervalMs` and more, or a `flush()` call) sends from its own
 * event loop without ever holding it: each batch goes out on an unref'd socket after an
 * unref'd timer, so a tool whose work is done exits at once, whatever the network does;
 * an outbox left by earlier runs is sent first. What is in flight at exit is filed in the
 * outbox marked posted, so later senders wait `resendAfter` before posting it again (the
 * collector most likely has it).
 */
import { Decision, Mode } from "./consent.js";
import { Event, EventFields } from "./event.js";
import { Outbox } from "./outbox.js";
import { ManifestKind } from "./project.js";
import { TelemetryOptions } from "./options.js";
/** The SDK's version, sent in the User-Agent. */
export declare const SDK_VERSION = "0.1.0";
export { backoff } from "./flusher.js";
/** The client. Every method is safe to call in every mode and never throws. */
export declare class Telemetry {
    private readonly options;
    private recorder;
    private adopted;
    private closed;
    /** Records an event. Synchronous, cheap, never throws: off returns at once; an invalid event or a full queue drops it. */
    record(event: Event | string, fields?: EventFields): void;
    /** The consent decision of this process. */
    get decision(): Decision;
    /** The resolved mode. */
    get mode(): Mode;
    /** Whether events are recorded at all (mode local or on). */
    get enabled(): boolean;
    /** The tool's name. */
    get app(): string;
    /** The outbox, when there is a data directory. */
    outbox(): Outbox | null;
    /**
     * Creates the project id in `dir` and records for that project from now on: a tool that
     * built its client before its `new` command created the project still records
     * `project.created`. Once per client. Throws when the manifest cannot be written.
     */
    createProjectId(dir: string, kind?: ManifestKind): string;
    /**
     * Sends what is queued now (and what earlier runs left) and waits up to `timeoutMs` for
     * it to be delivered or safely stored; `true` when nothing is left in memory. This is
     * the one wait that keeps the event loop alive (at most `timeoutMs`): the host asked
     * for it. Without it, nothing the SDK does holds the host.
     */
    flush(timeoutMs?: number): Promise<boolean>;
    /** Stops the client now: what is unsent goes to the outbox for a later run. Later `record` calls are ignored. Runs by itself at process exit. */
    shutdown(): void;
}
/** Resolves consent and starts the client. Never throws: anything that goes wrong leaves telemetry off or local. */
export declare function createTelemetry(options: TelemetryOptions): Telemetry;
