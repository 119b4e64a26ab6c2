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
import type { Context, WireEvent } from "./protocol.js";
/** Default bound of the outbox, in bytes. */
export declare const DEFAULT_MAX_BYTES: number;
/** Default age after which unsent events are dropped: 14 days. */
export declare const DEFAULT_MAX_AGE_MS: number;
/** Default time after which a posted, unanswered batch is posted again: 10 minutes. */
export declare const DEFAULT_RESEND_AFTER_MS: number;
/** Events that share a context, as stored in the outbox. */
export interface Chunk {
    context: Context;
    events: WireEvent[];
    /** When they were last posted without an answer seen (the process exited first). */
    posted_at?: string;
    /** How many posts went unanswered. */
    posts?: number;
}
/** One delivered batch, as kept in the sent-log. */
export interface SentRecord {
    sent_at: string;
    context: Context;
    events: WireEvent[];
    accepted: number;
    duplicate: number;
    rejected: number;
    dropped_props: number;
}
/** Whether a sender may post these events now (see the module docs). */
export declare function isDue(c: Chunk, nowMs: number, resendAfterMs: number): boolean;
/** Whether process `pid` runs (or exists under another user). */
export declare function alive(pid: number): boolean;
/** The outbox and sent-log of one tool, in one directory. Nothing is touched until it is used. */
export declare class Outbox {
    readonly dir: string;
    readonly maxBytes: number;
    readonly maxAgeMs: number;
    readonly sentMaxBytes: number;
    constructor(dir: string, maxBytes?: number, maxAgeMs?: number, sentMaxBytes?: number);
    private names;
    /** Files waiting (not claimed), oldest first. */
    private waitingFiles;
    /** Every file holding events, claimed or not, in the order they were written. */
    private allFiles;
    /** Whether any file holds events. */
    hasWaiting(): boolean;
    /** A new file name, unique across processes, sorting in the order this process wrote them. */
    private freshName;
    /** Writes `text` as a new outbox file, whole or not at all. Synchronous: the exit handler uses it. */
    private addFile;
    /** Adds events never posted. Returns how many were written (expired ones are not). */
    append(context: Context, events: WireEvent[], nowMs?: number): number;
    /**
     * What a host leaves at exit: `queued` (never posted) and `posted` (posted, no answer
     * seen) events of this run, `postedOld` ids of the outbox that were being posted, and the
     * files this process had claimed, handed back. One file written, one rename per claim.
     */
    leaveAtExit(context: Context | null, queued: WireEvent[], posted: WireEvent[], postedOld: string[], claimed: string[]): void;
    /**
     * Takes every waiting file, and the claims of processes that no longer run, for this
     * process: renamed to `claimed-<pid>-…`. Returns the claimed paths, oldest first.
     */
    claim(): string[];
    /**
     * Replaces claimed files with one claimed file holding `left` (none when it is empty):
     * after each delivered batch the sender's claim holds only what is still unsent, so a
     * host that exits mid-send hands back no event the collector already has.
     */
    reclaim(claimed: string[], left: Chunk[]): string[];
    /** Ends a claim: what is left is written as a new file, then the claimed files are deleted. */
    release(claimed: string[], left: Chunk[]): void;
    /**
     * Reads files: chunks in order, marks applied, repeated ids and expired events dropped.
     * Lines that do not parse are skipped (a newer or damaged file must not stop the tool).
     */
    read(files: string[], nowMs?: number): Chunk[];
    /** The events waiting, oldest first, without expired ones (claimed files included). */
    chunks(): Chunk[];
    /** How many events are waiting. */
    len(): number;
    /** Total bytes of the outbox files. */
    bytes(): number;
    /** Whether the next sender should merge the files: over the bound, or many files. */
    needsCompaction(): boolean;
    /**
     * Merges the waiting files into one: marks applied, expired events and repeated ids
     * dropped, then the oldest events until the outbox fits its bound. Sender side only.
     */
    compact(): void;
    /** Drops the oldest events until the chunks' lines fit in `maxBytes` (the Rust algorithm). */
    bound(chunks: Chunk[]): Chunk[];
    private expired;
    /** Deletes every waiting event and the sent-log. */
    clear(): void;
    /** Adds a delivered batch to the sent-log, keeping it under its bound (newest kept). */
    logSent(record: SentRecord): void;
    /** The sent-log, oldest first. */
    sent(): SentRecord[];
}
