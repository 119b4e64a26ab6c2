/**
 * Sending the outbox: the drain both senders share (the in-process sender of a long run,
 * and the detached flusher a short run hands its events to at exit), and the handing over.
 *
 * Why a detached process: a short command that sent its events itself would load
 * `node:http` and `node:zlib` and make a request before exiting, 70-90 ms and 4-8 MB more
 * than the same command with telemetry off (docs/benchmarks.md). Instead, at exit, the host
 * files its events in the outbox (as it did already) and starts `node flush.cjs` detached,
 * with no stdio, unref'd (Next.js's `flushDetached` does the same): the host neither loads
 * the HTTP stack nor waits for the network, and the flusher posts the outbox by its usual
 * rules (claims, bounds, expiry, posted marks, the sent-log).
 *
 * One flusher at a time per outbox: the host takes `flush.lock` (created exclusively,
 * holding the flusher's pid) before it spawns; a lock whose process is gone, or older than
 * {@link LOCK_STALE_MS}, is taken over. A host that finds the lock held spawns nothing: the
 * running flusher sends the new file too (it drains until nothing new is due), or the next
 * run does. A failed post (refused, timed out, 5xx, 429) leaves `flush-backoff.json`
 * with the time before which no host spawns again: exponential from 500 ms, or the
 * collector's `Retry-After` when longer, the same rule as the in-process sender's.
 *
 * And at most one flusher per `flushGapMs` (default 60 s, `flush-started`'s mtime): starting
 * one costs the host 5-15 ms and 2.5 MB (loading `node:child_process`, forking), which a
 * burst of commands pays once, not per command. What a run leaves within the gap waits in
 * the outbox for the running flusher (it drains until nothing new is due) or for the first
 * run after the gap.
 */
import { Outbox } from "./outbox.js";
import { Context, WireEvent } from "./protocol.js";
import type { Delivery, Timeouts, Transport } from "./transport.js";
/** The lock file of the one flusher of an outbox. */
export declare const FLUSH_LOCK = "flush.lock";
/** When no flusher may start before a time (a failed post's backoff). */
export declare const FLUSH_BACKOFF = "flush-backoff.json";
/** Touched each time a flusher is started: its mtime is when the last one was. */
export declare const FLUSH_STARTED = "flush-started";
/** Default least time between two flushers of an outbox: 60 s. */
export declare const DEFAULT_FLUSH_GAP_MS = 60000;
/** A lock older than this is taken over, whatever its pid (which may have been reused). */
export declare const LOCK_STALE_MS: number;
/** The environment variable the flusher reads its settings from. */
export declare const FLUSH_CONFIG_VAR = "TALLY_FLUSH_CONFIG";
/** What the flusher needs, passed from the host in {@link FLUSH_CONFIG_VAR}. */
export interface FlushConfig {
    dir: string;
    endpoint: string;
    userAgent: string;
    timeouts: Timeouts;
    resendAfterMs: number;
    /** The proxy variables the host resolved its transport with. */
    vars: Record<string, string>;
}
/** The files a drain holds while it sends: what the host's exit handler hands back. */
export interface DrainState {
    /** Outbox files claimed by this process. */
    claimed: string[];
    /** Ids of the outbox being posted now. */
    postingOld: string[];
}
/** What a drain did: `retry` is `null` when nothing failed, else the failure's Retry-After (ms). */
export interface Drained {
    retry: number | undefined | null;
    posted: number;
}
/** Exponential backoff from 500 ms, or the collector's `Retry-After` when longer. */
export declare function backoff(failures: number, retryAfterMs?: number): number;
type Delivered = Extract<Delivery, {
    kind: "delivered";
}>;
/**
 * Sends what the outbox holds that is due, one batch per context (of at most 500 events),
 * not one per run that wrote them. `stopped` is asked after every post: the host exited
 * meanwhile and its exit handler took over `state`.
 */
export declare function drainOutbox(outbox: Outbox, transport: Transport, resendAfterMs: number, state: DrainState, stopped: () => boolean, logSent: (context: Context, events: WireEvent[], d: Delivered) => void): Promise<Drained>;
interface Backoff {
    until: number;
    failures: number;
}
/** The backoff a failed flush left, if any. */
export declare function readBackoff(dir: string): Backoff | null;
/** Records a failed flush (`failures` in a row, waiting `waitMs`), or clears it (`null`). */
export declare function writeBackoff(dir: string, b: Backoff | null): void;
/** Takes `flush.lock` for `pid` (exclusive create); a stale lock is taken over once. */
export declare function takeLock(dir: string, pid: number): boolean;
/** Removes `flush.lock` when `pid` holds it. */
export declare function releaseLock(dir: string, pid: number): void;
/**
 * Starts the detached flusher of `dir` (its config built by `configOf` only when it starts)
 * unless one started within `gapMs`, one runs, or a failed flush asked to wait.
 * Synchronous (it runs in the `exit` event); never throws. Returns the flusher's pid.
 */
export declare function spawnFlusher(dir: string, configOf: () => FlushConfig, gapMs?: number): number | null;
export {};
