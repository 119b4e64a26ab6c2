/**
 * Test kit for tool authors (`tally-telemetry/testing`):
 *
 * - {@link MemorySink}: a transport that keeps batches in memory, to assert what was recorded;
 * - {@link Sandbox}: fresh config and data directories, an allow-all policy and an empty
 *   environment, so a test's outcome does not depend on the developer's `DO_NOT_TRACK` or
 *   CI variables, and an assertion that a client created no file;
 * - {@link ConnectionTrap}: a loopback listener that counts connection attempts, to assert
 *   that a disabled client opened no socket;
 * - {@link assertLeavesNoTrace}: all of it at once, and that no process was started (a
 *   client that uploads hands its events to a detached flusher process at exit).
 *
 * ```js
 * const sandbox = new Sandbox();
 * const sink = new MemorySink();
 * const t = createTelemetry({ ...sandbox.options("mytool", "1.0.0"), transport: sink });
 * t.record(Event.commandRun("build"));
 * await t.flush();
 * sink.assertRecorded("command.run");
 * ```
 */
import type { TelemetryOptions } from "./options.js";
import type { Batch, WireEvent } from "./protocol.js";
import type { Delivery, Transport } from "./transport.js";
/** Batches delivered in memory. */
export declare class MemorySink implements Transport {
    readonly batches: Batch[];
    send(batch: Batch): Promise<Delivery>;
    /** Every event delivered so far, in order. */
    events(): WireEvent[];
    /** The names of the events delivered so far. */
    names(): string[];
    /** The first delivered event named `name`; throws with the list of names otherwise. */
    assertRecorded(name: string): WireEvent;
    /** Throws when an event named `name` was delivered. */
    assertNotRecorded(name: string): void;
    /** Throws when anything was delivered. */
    assertEmpty(): void;
}
/** Fresh, private config and data directories; `remove()` deletes them. */
export declare class Sandbox {
    readonly root: string;
    constructor();
    /**
     * Options confined to the sandbox: its config and data directories, its own policy file
     * (allowing telemetry), an empty environment (pass `vars` to set some), a fixed project
     * id, and the first-run notice already seen so the first run delivers.
     */
    options(app: string, version: string, vars?: Record<string, string>): TelemetryOptions;
    /** Every file under the sandbox, except the ones the sandbox seeded itself. */
    files(): string[];
    /** Throws when the sandbox holds any file besides the ones it seeded. */
    assertNoFiles(): void;
    /** Deletes the sandbox. */
    remove(): void;
}
/** A loopback listener that counts connection attempts (each is closed at once). */
export declare class ConnectionTrap {
    private count;
    private readonly server;
    private constructor();
    /** Binds `127.0.0.1:0`. */
    static open(): Promise<ConnectionTrap>;
    /** `http://127.0.0.1:<port>`, to use as the endpoint. */
    get endpoint(): string;
    /** How many connections were attempted so far. */
    get connections(): number;
    close(): Promise<void>;
}
/**
 * Runs `use` with a client built from the sandbox's options pointed at a connection trap,
 * lets every timer and socket it might start run, and throws when it created a file,
 * opened a socket or started a process: what a disabled client must never do. Processes
 * are counted by wrapping `child_process`'s functions while `use` and the settling run
 * (then they are restored); the SDK's own calls go through them.
 */
export declare function assertLeavesNoTrace(sandbox: Sandbox, use: (endpoint: string) => void | Promise<void>, settleMs?: number): Promise<void>;
