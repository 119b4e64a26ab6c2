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

import * as fs from "node:fs";
import * as path from "node:path";
import { removeFile, writeAtomically } from "./files.js";
import { isoTime } from "./time.js";

import { childProcess } from "./lazy.js";
import { alive, Chunk, isDue, Outbox } from "./outbox.js";
import { Context, MAX_EVENTS_PER_BATCH, WireEvent } from "./protocol.js";
import type { Delivery, Timeouts, Transport } from "./transport.js";

/** The lock file of the one flusher of an outbox. */
export const FLUSH_LOCK = "flush.lock";
/** When no flusher may start before a time (a failed post's backoff). */
export const FLUSH_BACKOFF = "flush-backoff.json";
/** Touched each time a flusher is started: its mtime is when the last one was. */
export const FLUSH_STARTED = "flush-started";
/** Default least time between two flushers of an outbox: 60 s. */
export const DEFAULT_FLUSH_GAP_MS = 60_000;
/** A lock older than this is taken over, whatever its pid (which may have been reused). */
export const LOCK_STALE_MS = 5 * 60 * 1000;
/** The environment variable the flusher reads its settings from. */
export const FLUSH_CONFIG_VAR = "TALLY_FLUSH_CONFIG";

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

const BASE_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 300_000;
const MAX_RETRY_AFTER_MS = 3_600_000;

/** Exponential backoff from 500 ms, or the collector's `Retry-After` when longer. */
export function backoff(failures: number, retryAfterMs?: number): number {
  const exp = Math.min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * 2 ** Math.min(16, Math.max(0, failures - 1)));
  return Math.max(exp, Math.min(retryAfterMs ?? 0, MAX_RETRY_AFTER_MS));
}

type Delivered = Extract<Delivery, { kind: "delivered" }>;

/**
 * Sends what the outbox holds that is due, one batch per context (of at most 500 events),
 * not one per run that wrote them. `stopped` is asked after every post: the host exited
 * meanwhile and its exit handler took over `state`.
 */
export async function drainOutbox(
  outbox: Outbox,
  transport: Transport,
  resendAfterMs: number,
  state: DrainState,
  stopped: () => boolean,
  logSent: (context: Context, events: WireEvent[], d: Delivered) => void,
): Promise<Drained> {
  state.claimed = outbox.claim();
  if (state.claimed.length === 0) return { retry: null, posted: 0 };
  // The chunks as stored (bounded), which keep their posted marks.
  const all = outbox.bound(outbox.read(state.claimed));
  const now = Date.now();
  const due: Chunk[] = [];
  for (const c of all.filter((x) => isDue(x, now, resendAfterMs))) {
    const last = due[due.length - 1];
    if (last && JSON.stringify(last.context) === JSON.stringify(c.context)) last.events.push(...c.events);
    else due.push({ context: c.context, events: [...c.events] });
  }
  const done = new Set<string>();
  const left = () => all.map((c) => ({ ...c, events: c.events.filter((e) => !done.has(e.event_id)) }));
  let retry: number | undefined | null = null;
  let posted = 0;
  for (const chunk of due) {
    for (let i = 0; i < chunk.events.length && retry === null; i += MAX_EVENTS_PER_BATCH) {
      const piece = chunk.events.slice(i, i + MAX_EVENTS_PER_BATCH);
      state.postingOld = piece.map((e) => e.event_id);
      posted++;
      const outcome = await transport.send({ sent_at: isoTime(Date.now()), context: chunk.context, events: piece });
      if (stopped()) return { retry: null, posted };
      state.postingOld = [];
      if (outcome.kind === "retry") {
        retry = outcome.afterMs;
        break;
      }
      // Delivered, or refused for good: either way never sent again.
      for (const e of piece) done.add(e.event_id);
      if (outcome.kind === "delivered") logSent(chunk.context, piece, outcome);
      state.claimed = outbox.reclaim(state.claimed, left());
    }
    if (retry !== null) break;
  }
  const claimed = state.claimed;
  state.claimed = [];
  outbox.release(claimed, left());
  return { retry, posted };
}

interface Backoff {
  until: number;
  failures: number;
}

/** The backoff a failed flush left, if any. */
export function readBackoff(dir: string): Backoff | null {
  try {
    const b = JSON.parse(fs.readFileSync(path.join(dir, FLUSH_BACKOFF), "utf8")) as Backoff;
    return typeof b.until === "number" && typeof b.failures === "number" ? b : null;
  } catch {
    return null;
  }
}

/** Records a failed flush (`failures` in a row, waiting `waitMs`), or clears it (`null`). */
export function writeBackoff(dir: string, b: Backoff | null): void {
  const file = path.join(dir, FLUSH_BACKOFF);
  if (!b) {
    removeFile(file);
    return;
  }
  writeAtomically(file, JSON.stringify(b));
}

/** Takes `flush.lock` for `pid` (exclusive create); a stale lock is taken over once. */
export function takeLock(dir: string, pid: number): boolean {
  const file = path.join(dir, FLUSH_LOCK);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, String(pid), { flag: "wx" });
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") return false;
    }
    let holder = NaN;
    let age = 0;
    try {
      holder = Number(fs.readFileSync(file, "utf8"));
      age = Date.now() - fs.statSync(file).mtimeMs;
    } catch {
      continue; // released meanwhile: try again
    }
    if (Number.isInteger(holder) && holder > 0 && alive(holder) && age < LOCK_STALE_MS) return false;
    removeFile(file);
  }
  return false;
}

/** Removes `flush.lock` when `pid` holds it. */
export function releaseLock(dir: string, pid: number): void {
  const file = path.join(dir, FLUSH_LOCK);
  try {
    if (Number(fs.readFileSync(file, "utf8")) === pid) removeFile(file);
  } catch {
    // gone already
  }
}

/** The flusher script next to this module: dist/flush.cjs, from the bundle or from dist/cjs. */
function flushScript(): string | null {
  for (const p of [path.join(__dirname, "flush.cjs"), path.join(__dirname, "..", "flush.cjs")]) {
    if (fs.existsSync(p)) return p;
  }
  return null;
}

/**
 * Starts the detached flusher of `dir` (its config built by `configOf` only when it starts)
 * unless one started within `gapMs`, one runs, or a failed flush asked to wait.
 * Synchronous (it runs in the `exit` event); never throws. Returns the flusher's pid.
 */
export function spawnFlusher(dir: string, configOf: () => FlushConfig, gapMs = DEFAULT_FLUSH_GAP_MS): number | null {
  try {
    // The gap first: within it (most runs of a busy tool) nothing else is read.
    const started = path.join(dir, FLUSH_STARTED);
    if (gapMs > 0) {
      try {
        if (Date.now() - fs.statSync(started).mtimeMs < gapMs) return null;
      } catch {
        // never started: start one
      }
    }
    const backoff = readBackoff(dir);
    if (backoff && Date.now() < backoff.until) return null;
    const config = configOf();
    const script = flushScript();
    if (!script || !takeLock(config.dir, process.pid)) return null;
    let pid: number | undefined;
    try {
      const env: NodeJS.ProcessEnv = { ...process.env, [FLUSH_CONFIG_VAR]: JSON.stringify(config) };
      // An Electron host's execPath is the app: run it as plain Node.
      if (process.versions.electron) env.ELECTRON_RUN_AS_NODE = "1";
      const child = childProcess().spawn(process.execPath, [script], {
        detached: true,
        stdio: "ignore",
        windowsHide: true,
        env,
      });
      child.on("error", () => {}); // a spawn that failed later: the events stay in the outbox
      child.unref();
      pid = child.pid;
    } finally {
      // The lock now names the flusher (or is dropped when none started).
      if (pid) {
        fs.writeFileSync(path.join(config.dir, FLUSH_LOCK), String(pid));
        fs.writeFileSync(started, "");
      } else releaseLock(config.dir, process.pid);
    }
    return pid ?? null;
  } catch {
    return null;
  }
}
