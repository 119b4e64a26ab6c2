"use strict";
/**
 * The on-disk outbox: events not sent yet, and the sent-log: what was sent recently.
 *
 * The lines are the Rust SDK's (a chunk `{context, events, posted_at?, posts?}` or a mark
 * `{posted_at, ids}`), and so are the rules: bounded in bytes (oldest events go first),
 * events older than 14 days dropped, events unique by id, and a batch posted without an
 * answer seen before exit not posted again until `resendAfter` has passed (twice that
 * after a second unanswered post, and so on).
 *
 * The layout differs, because Node has no file lock that the OS releases when a process
 * dies (the Rust SDK's `File::lock`). Nothing here is ever rewritten in place:
 *
 * - every writer (the host at exit, the sender on a failed post) adds a new file
 *   `outbox-<time>-<pid>-<random>.jsonl`, written under a temporary name and renamed, so a
 *   reader sees all of it or none of it;
 * - a sender takes files by renaming them to `claimed-<pid>-<name>`: a rename succeeds for
 *   one process only, so two senders never post or delete the same file. When done, it
 *   writes what is left as a new file, then deletes the claimed ones (a crash in between
 *   leaves duplicates, which are dropped by id, never a loss);
 * - after each delivered batch the sender replaces its claim with one holding only what is
 *   still unsent, so a host that exits mid-send renames back (one rename each: the exit
 *   cost does not depend on what the outbox holds) only what the collector has not
 *   answered, and adds a mark for what was in flight;
 * - claimed files of a process that no longer runs are taken over by the next sender.
 */
Object.defineProperty(exports, "__esModule", { value: true });
exports.Outbox = exports.DEFAULT_RESEND_AFTER_MS = exports.DEFAULT_MAX_AGE_MS = exports.DEFAULT_MAX_BYTES = void 0;
exports.isDue = isDue;
exports.alive = alive;
const fs = require("node:fs");
const path = require("node:path");
const files_js_1 = require("./files.js");
const random_js_1 = require("./random.js");
const time_js_1 = require("./time.js");
/** Default bound of the outbox, in bytes. */
exports.DEFAULT_MAX_BYTES = 512 * 1024;
/** Default age after which unsent events are dropped: 14 days. */
exports.DEFAULT_MAX_AGE_MS = 14 * 24 * 60 * 60 * 1000;
/** Default time after which a posted, unanswered batch is posted again: 10 minutes. */
exports.DEFAULT_RESEND_AFTER_MS = 10 * 60 * 1000;
const SENT_LOG_MAX_BYTES = 256 * 1024;
/** More files than this are merged into one by the next sender. */
const MAX_FILES = 16;
/** Whether a sender may post these events now (see the module docs). */
function isDue(c, nowMs, resendAfterMs) {
    if (!c.posted_at)
        return true;
    const wait = resendAfterMs * 2 ** Math.min(16, Math.max(0, (c.posts ?? 0) - 1));
    return nowMs - Date.parse(c.posted_at) >= wait;
}
/** Orders the files one process writes within a millisecond. */
let sequence = 0;
/** Whether process `pid` runs (or exists under another user). */
function alive(pid) {
    if (pid === process.pid)
        return true;
    try {
        process.kill(pid, 0);
        return true;
    }
    catch (e) {
        return e.code === "EPERM";
    }
}
function lineOf(item) {
    return `${JSON.stringify(item)}\n`;
}
/** The outbox and sent-log of one tool, in one directory. Nothing is touched until it is used. */
class Outbox {
    dir;
    maxBytes;
    maxAgeMs;
    sentMaxBytes;
    constructor(dir, maxBytes = exports.DEFAULT_MAX_BYTES, maxAgeMs = exports.DEFAULT_MAX_AGE_MS, sentMaxBytes = SENT_LOG_MAX_BYTES) {
        this.dir = dir;
        this.maxBytes = maxBytes;
        this.maxAgeMs = maxAgeMs;
        this.sentMaxBytes = sentMaxBytes;
    }
    names() {
        try {
            return fs.readdirSync(this.dir);
        }
        catch {
            return [];
        }
    }
    /** Files waiting (not claimed), oldest first. */
    waitingFiles() {
        return this.names()
            .filter((n) => n.startsWith("outbox-") && n.endsWith(".jsonl"))
            .sort();
    }
    /** Every file holding events, claimed or not, in the order they were written. */
    allFiles() {
        const key = (n) => (n.startsWith("claimed-") ? n.slice(n.indexOf("-", 8) + 1) : n);
        return this.names()
            .filter((n) => (n.startsWith("outbox-") || n.startsWith("claimed-")) && n.endsWith(".jsonl"))
            .sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
    }
    /** Whether any file holds events. */
    hasWaiting() {
        return this.names().some((n) => (n.startsWith("outbox-") || n.startsWith("claimed-")) && n.endsWith(".jsonl"));
    }
    /** A new file name, unique across processes, sorting in the order this process wrote them. */
    freshName() {
        const stamp = `${String(Date.now()).padStart(15, "0")}-${String(sequence++).padStart(6, "0")}`;
        return `outbox-${stamp}-${process.pid}-${(0, random_js_1.uniqueHex)(4)}.jsonl`;
    }
    /** Writes `text` as a new outbox file, whole or not at all. Synchronous: the exit handler uses it. */
    addFile(text) {
        const name = this.freshName();
        const tmp = path.join(this.dir, `${name}.tmp`);
        try {
            fs.writeFileSync(tmp, text);
        }
        catch (e) {
            // The directory is made on the first write that needs it, not checked on every one.
            if (e.code !== "ENOENT")
                throw e;
            fs.mkdirSync(this.dir, { recursive: true });
            fs.writeFileSync(tmp, text);
        }
        fs.renameSync(tmp, path.join(this.dir, name));
    }
    /** Adds events never posted. Returns how many were written (expired ones are not). */
    append(context, events, nowMs = Date.now()) {
        const fresh = events.filter((e) => !this.expired(e, nowMs));
        if (fresh.length === 0)
            return 0;
        this.addFile(lineOf({ context, events: fresh }));
        return fresh.length;
    }
    /**
     * What a host leaves at exit: `queued` (never posted) and `posted` (posted, no answer
     * seen) events of this run, `postedOld` ids of the outbox that were being posted, and the
     * files this process had claimed, handed back. One file written, one rename per claim.
     */
    leaveAtExit(context, queued, posted, postedOld, claimed) {
        const now = posted.length + postedOld.length > 0 ? (0, time_js_1.isoTime)(Date.now()) : "";
        let text = "";
        if (context && queued.length > 0)
            text += lineOf({ context, events: queued });
        if (context && posted.length > 0)
            text += lineOf({ context, events: posted, posted_at: now, posts: 1 });
        if (postedOld.length > 0)
            text += lineOf({ posted_at: now, ids: postedOld });
        if (text !== "")
            this.addFile(text);
        for (const file of claimed) {
            const base = path.basename(file);
            const original = base.slice(base.indexOf("-", 8) + 1);
            try {
                fs.renameSync(file, path.join(this.dir, original));
            }
            catch {
                // already released or taken over
            }
        }
    }
    /**
     * Takes every waiting file, and the claims of processes that no longer run, for this
     * process: renamed to `claimed-<pid>-…`. Returns the claimed paths, oldest first.
     */
    claim() {
        const out = [];
        for (const n of this.allFiles()) {
            let original = n;
            if (n.startsWith("claimed-")) {
                const pid = Number(n.slice(8, n.indexOf("-", 8)));
                if (alive(pid))
                    continue;
                original = n.slice(n.indexOf("-", 8) + 1);
            }
            const to = path.join(this.dir, `claimed-${process.pid}-${original}`);
            try {
                fs.renameSync(path.join(this.dir, n), to);
                out.push(to);
            }
            catch {
                // another process took it first
            }
        }
        return out;
    }
    /**
     * Replaces claimed files with one claimed file holding `left` (none when it is empty):
     * after each delivered batch the sender's claim holds only what is still unsent, so a
     * host that exits mid-send hands back no event the collector already has.
     */
    reclaim(claimed, left) {
        const text = left.filter((c) => c.events.length > 0).map(lineOf).join("");
        let fresh = [];
        if (text !== "") {
            const file = path.join(this.dir, `claimed-${process.pid}-${this.freshName()}`);
            fs.writeFileSync(`${file}.tmp`, text);
            fs.renameSync(`${file}.tmp`, file);
            fresh = [file];
        }
        for (const f of claimed)
            (0, files_js_1.removeFile)(f);
        return fresh;
    }
    /** Ends a claim: what is left is written as a new file, then the claimed files are deleted. */
    release(claimed, left) {
        const text = left.filter((c) => c.events.length > 0).map(lineOf).join("");
        if (text !== "")
            this.addFile(text);
        for (const f of claimed)
            (0, files_js_1.removeFile)(f);
    }
    /**
     * Reads files: chunks in order, marks applied, repeated ids and expired events dropped.
     * Lines that do not parse are skipped (a newer or damaged file must not stop the tool).
     */
    read(files, nowMs = Date.now()) {
        let chunks = [];
        const marks = [];
        for (const f of files) {
            let text;
            try {
                text = fs.readFileSync(path.isAbsolute(f) ? f : path.join(this.dir, f), "utf8");
            }
            catch {
                continue;
            }
            for (const line of text.split("\n")) {
                if (line === "")
                    continue;
                let v;
                try {
                    v = JSON.parse(line);
                }
                catch {
                    continue;
                }
                if (!v || typeof v !== "object")
                    continue;
                const o = v;
                if (Array.isArray(o.events) && o.context && typeof o.context === "object") {
                    const events = o.events.filter((e) => e && typeof e.event_id === "string" && !this.expired(e, nowMs));
                    if (events.length > 0)
                        chunks.push({ ...o, events });
                }
                else if (Array.isArray(o.ids) && typeof o.posted_at === "string") {
                    marks.push({ posted_at: o.posted_at, ids: o.ids });
                }
            }
        }
        chunks = dedupe(chunks);
        for (const m of marks) {
            const ids = new Set(m.ids);
            const next = [];
            for (const c of chunks) {
                const hit = c.events.filter((e) => ids.has(e.event_id));
                const rest = c.events.filter((e) => !ids.has(e.event_id));
                if (rest.length > 0)
                    next.push({ ...c, events: rest });
                if (hit.length > 0)
                    next.push({ context: c.context, events: hit, posted_at: m.posted_at, posts: (c.posts ?? 0) + 1 });
            }
            chunks = next;
        }
        return chunks;
    }
    /** The events waiting, oldest first, without expired ones (claimed files included). */
    chunks() {
        return this.read(this.allFiles());
    }
    /** How many events are waiting. */
    len() {
        return this.chunks().reduce((n, c) => n + c.events.length, 0);
    }
    /** Total bytes of the outbox files. */
    bytes() {
        let n = 0;
        for (const f of this.allFiles()) {
            try {
                n += fs.statSync(path.join(this.dir, f)).size;
            }
            catch {
                // gone meanwhile
            }
        }
        return n;
    }
    /** Whether the next sender should merge the files: over the bound, or many files. */
    needsCompaction() {
        const files = this.waitingFiles();
        return files.length > MAX_FILES || (files.length > 1 && this.bytes() > this.maxBytes);
    }
    /**
     * Merges the waiting files into one: marks applied, expired events and repeated ids
     * dropped, then the oldest events until the outbox fits its bound. Sender side only.
     */
    compact() {
        const claimed = this.claim();
        if (claimed.length === 0)
            return;
        this.release(claimed, this.bound(this.read(claimed)));
    }
    /** Drops the oldest events until the chunks' lines fit in `maxBytes` (the Rust algorithm). */
    bound(chunks) {
        const sizes = chunks.map((c) => ({
            empty: Buffer.byteLength(lineOf({ ...c, events: [] })),
            events: c.events.map((e) => Buffer.byteLength(JSON.stringify(e))),
        }));
        let size = sizes.reduce((n, s) => n + s.empty + s.events.reduce((a, b) => a + b, 0) + Math.max(0, s.events.length - 1), 0);
        const drop = chunks.map(() => 0);
        outer: for (let i = 0; i < sizes.length; i++) {
            const { empty, events } = sizes[i];
            for (let j = 0; j < events.length; j++) {
                if (size <= this.maxBytes)
                    break outer;
                size -= events[j] + (j + 1 === events.length ? empty : 1);
                drop[i]++;
            }
        }
        return chunks.map((c, i) => ({ ...c, events: c.events.slice(drop[i]) })).filter((c) => c.events.length > 0);
    }
    expired(e, nowMs) {
        const at = Date.parse(e.occurred_at);
        return Number.isNaN(at) || nowMs - at > this.maxAgeMs;
    }
    /** Deletes every waiting event and the sent-log. */
    clear() {
        for (const n of this.names()) {
            if (n.startsWith("outbox-") || n.startsWith("claimed-") || n === "sent.jsonl") {
                (0, files_js_1.removeFile)(path.join(this.dir, n));
            }
        }
    }
    /** Adds a delivered batch to the sent-log, keeping it under its bound (newest kept). */
    logSent(record) {
        fs.mkdirSync(this.dir, { recursive: true });
        const file = path.join(this.dir, "sent.jsonl");
        fs.appendFileSync(file, lineOf(record));
        let size = 0;
        try {
            size = fs.statSync(file).size;
        }
        catch {
            return;
        }
        if (size <= this.sentMaxBytes)
            return;
        const lines = fs.readFileSync(file, "utf8").split("\n").filter((l) => l !== "");
        let total = 0;
        const kept = [];
        for (let i = lines.length - 1; i >= 0; i--) {
            const len = Buffer.byteLength(lines[i]) + 1;
            if (total + len > this.sentMaxBytes)
                break;
            total += len;
            kept.unshift(lines[i]);
        }
        const tmp = `${file}.${process.pid}.tmp`;
        fs.writeFileSync(tmp, kept.map((l) => `${l}\n`).join(""));
        fs.renameSync(tmp, file);
    }
    /** The sent-log, oldest first. */
    sent() {
        let text;
        try {
            text = fs.readFileSync(path.join(this.dir, "sent.jsonl"), "utf8");
        }
        catch {
            return [];
        }
        const out = [];
        for (const line of text.split("\n")) {
            try {
                if (line !== "")
                    out.push(JSON.parse(line));
            }
            catch {
                // skipped, as in the outbox
            }
        }
        return out;
    }
}
exports.Outbox = Outbox;
/** Keeps the first occurrence of each event id; drops empty chunks. */
function dedupe(chunks) {
    const seen = new Set();
    return chunks
        .map((c) => ({ ...c, events: c.events.filter((e) => !seen.has(e.event_id) && (seen.add(e.event_id), true)) }))
        .filter((c) => c.events.length > 0);
}
