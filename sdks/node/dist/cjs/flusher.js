"use strict";
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
Object.defineProperty(exports, "__esModule", { value: true });
exports.FLUSH_CONFIG_VAR = exports.LOCK_STALE_MS = exports.DEFAULT_FLUSH_GAP_MS = exports.FLUSH_STARTED = exports.FLUSH_BACKOFF = exports.FLUSH_LOCK = void 0;
exports.backoff = backoff;
exports.drainOutbox = drainOutbox;
exports.readBackoff = readBackoff;
exports.writeBackoff = writeBackoff;
exports.takeLock = takeLock;
exports.releaseLock = releaseLock;
exports.spawnFlusher = spawnFlusher;
const fs = require("node:fs");
const path = require("node:path");
const files_js_1 = require("./files.js");
const time_js_1 = require("./time.js");
const lazy_js_1 = require("./lazy.js");
const outbox_js_1 = require("./outbox.js");
const protocol_js_1 = require("./protocol.js");
/** The lock file of the one flusher of an outbox. */
exports.FLUSH_LOCK = "flush.lock";
/** When no flusher may start before a time (a failed post's backoff). */
exports.FLUSH_BACKOFF = "flush-backoff.json";
/** Touched each time a flusher is started: its mtime is when the last one was. */
exports.FLUSH_STARTED = "flush-started";
/** Default least time between two flushers of an outbox: 60 s. */
exports.DEFAULT_FLUSH_GAP_MS = 60_000;
/** A lock older than this is taken over, whatever its pid (which may have been reused). */
exports.LOCK_STALE_MS = 5 * 60 * 1000;
/** The environment variable the flusher reads its settings from. */
exports.FLUSH_CONFIG_VAR = "TALLY_FLUSH_CONFIG";
const BASE_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 300_000;
const MAX_RETRY_AFTER_MS = 3_600_000;
/** Exponential backoff from 500 ms, or the collector's `Retry-After` when longer. */
function backoff(failures, retryAfterMs) {
    const exp = Math.min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * 2 ** Math.min(16, Math.max(0, failures - 1)));
    return Math.max(exp, Math.min(retryAfterMs ?? 0, MAX_RETRY_AFTER_MS));
}
/**
 * Sends what the outbox holds that is due, one batch per context (of at most 500 events),
 * not one per run that wrote them. `stopped` is asked after every post: the host exited
 * meanwhile and its exit handler took over `state`.
 */
async function drainOutbox(outbox, transport, resendAfterMs, state, stopped, logSent) {
    state.claimed = outbox.claim();
    if (state.claimed.length === 0)
        return { retry: null, posted: 0 };
    // The chunks as stored (bounded), which keep their posted marks.
    const all = outbox.bound(outbox.read(state.claimed));
    const now = Date.now();
    const due = [];
    for (const c of all.filter((x) => (0, outbox_js_1.isDue)(x, now, resendAfterMs))) {
        const last = due[due.length - 1];
        if (last && JSON.stringify(last.context) === JSON.stringify(c.context))
            last.events.push(...c.events);
        else
            due.push({ context: c.context, events: [...c.events] });
    }
    const done = new Set();
    const left = () => all.map((c) => ({ ...c, events: c.events.filter((e) => !done.has(e.event_id)) }));
    let retry = null;
    let posted = 0;
    for (const chunk of due) {
        for (let i = 0; i < chunk.events.length && retry === null; i += protocol_js_1.MAX_EVENTS_PER_BATCH) {
            const piece = chunk.events.slice(i, i + protocol_js_1.MAX_EVENTS_PER_BATCH);
            state.postingOld = piece.map((e) => e.event_id);
            posted++;
            const outcome = await transport.send({ sent_at: (0, time_js_1.isoTime)(Date.now()), context: chunk.context, events: piece });
            if (stopped())
                return { retry: null, posted };
            state.postingOld = [];
            if (outcome.kind === "retry") {
                retry = outcome.afterMs;
                break;
            }
            // Delivered, or refused for good: either way never sent again.
            for (const e of piece)
                done.add(e.event_id);
            if (outcome.kind === "delivered")
                logSent(chunk.context, piece, outcome);
            state.claimed = outbox.reclaim(state.claimed, left());
        }
        if (retry !== null)
            break;
    }
    const claimed = state.claimed;
    state.claimed = [];
    outbox.release(claimed, left());
    return { retry, posted };
}
/** The backoff a failed flush left, if any. */
function readBackoff(dir) {
    try {
        const b = JSON.parse(fs.readFileSync(path.join(dir, exports.FLUSH_BACKOFF), "utf8"));
        return typeof b.until === "number" && typeof b.failures === "number" ? b : null;
    }
    catch {
        return null;
    }
}
/** Records a failed flush (`failures` in a row, waiting `waitMs`), or clears it (`null`). */
function writeBackoff(dir, b) {
    const file = path.join(dir, exports.FLUSH_BACKOFF);
    if (!b) {
        (0, files_js_1.removeFile)(file);
        return;
    }
    (0, files_js_1.writeAtomically)(file, JSON.stringify(b));
}
/** Takes `flush.lock` for `pid` (exclusive create); a stale lock is taken over once. */
function takeLock(dir, pid) {
    const file = path.join(dir, exports.FLUSH_LOCK);
    for (let attempt = 0; attempt < 2; attempt++) {
        try {
            fs.writeFileSync(file, String(pid), { flag: "wx" });
            return true;
        }
        catch (e) {
            if (e.code !== "EEXIST")
                return false;
        }
        let holder = NaN;
        let age = 0;
        try {
            holder = Number(fs.readFileSync(file, "utf8"));
            age = Date.now() - fs.statSync(file).mtimeMs;
        }
        catch {
            continue; // released meanwhile: try again
        }
        if (Number.isInteger(holder) && holder > 0 && (0, outbox_js_1.alive)(holder) && age < exports.LOCK_STALE_MS)
            return false;
        (0, files_js_1.removeFile)(file);
    }
    return false;
}
/** Removes `flush.lock` when `pid` holds it. */
function releaseLock(dir, pid) {
    const file = path.join(dir, exports.FLUSH_LOCK);
    try {
        if (Number(fs.readFileSync(file, "utf8")) === pid)
            (0, files_js_1.removeFile)(file);
    }
    catch {
        // gone already
    }
}
/** The flusher script next to this module: dist/flush.cjs, from the bundle or from dist/cjs. */
function flushScript() {
    for (const p of [path.join(__dirname, "flush.cjs"), path.join(__dirname, "..", "flush.cjs")]) {
        if (fs.existsSync(p))
            return p;
    }
    return null;
}
/**
 * Starts the detached flusher of `dir` (its config built by `configOf` only when it starts)
 * unless one started within `gapMs`, one runs, or a failed flush asked to wait.
 * Synchronous (it runs in the `exit` event); never throws. Returns the flusher's pid.
 */
function spawnFlusher(dir, configOf, gapMs = exports.DEFAULT_FLUSH_GAP_MS) {
    try {
        // The gap first: within it (most runs of a busy tool) nothing else is read.
        const started = path.join(dir, exports.FLUSH_STARTED);
        if (gapMs > 0) {
            try {
                if (Date.now() - fs.statSync(started).mtimeMs < gapMs)
                    return null;
            }
            catch {
                // never started: start one
            }
        }
        const backoff = readBackoff(dir);
        if (backoff && Date.now() < backoff.until)
            return null;
        const config = configOf();
        const script = flushScript();
        if (!script || !takeLock(config.dir, process.pid))
            return null;
        let pid;
        try {
            const env = { ...process.env, [exports.FLUSH_CONFIG_VAR]: JSON.stringify(config) };
            // An Electron host's execPath is the app: run it as plain Node.
            if (process.versions.electron)
                env.ELECTRON_RUN_AS_NODE = "1";
            const child = (0, lazy_js_1.childProcess)().spawn(process.execPath, [script], {
                detached: true,
                stdio: "ignore",
                windowsHide: true,
                env,
            });
            child.on("error", () => { }); // a spawn that failed later: the events stay in the outbox
            child.unref();
            pid = child.pid;
        }
        finally {
            // The lock now names the flusher (or is dropped when none started).
            if (pid) {
                fs.writeFileSync(path.join(config.dir, exports.FLUSH_LOCK), String(pid));
                fs.writeFileSync(started, "");
            }
            else
                releaseLock(config.dir, process.pid);
        }
        return pid ?? null;
    }
    catch {
        return null;
    }
}
