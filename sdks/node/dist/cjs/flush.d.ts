/**
 * The detached flusher (dist/flush.cjs): run by a host at exit (flusher.ts), it sends the
 * outbox of one tool and exits. Its settings come from the host in `TALLY_FLUSH_CONFIG`;
 * the host started it only with consent to upload (mode on, not a notice run, not debug).
 *
 * It drains until nothing due is left (files that hosts add meanwhile included), at most
 * a few rounds, and stops at the first failure, leaving the backoff for the next hosts.
 * A ref'd watchdog keeps it alive while its unref'd requests run, and bounds its life.
 */
export {};
