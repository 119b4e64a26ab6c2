"use strict";
/**
 * The detached flusher (dist/flush.cjs): run by a host at exit (flusher.ts), it sends the
 * outbox of one tool and exits. Its settings come from the host in `TALLY_FLUSH_CONFIG`;
 * the host started it only with consent to upload (mode on, not a notice run, not debug).
 *
 * It drains until nothing due is left (files that hosts add meanwhile included), at most
 * a few rounds, and stops at the first failure, leaving the backoff for the next hosts.
 * A ref'd watchdog keeps it alive while its unref'd requests run, and bounds its life.
 */
Object.defineProperty(exports, "__esModule", { value: true });
const flusher_js_1 = require("./flusher.js");
const outbox_js_1 = require("./outbox.js");
const time_js_1 = require("./time.js");
const transport_js_1 = require("./transport.js");
const MAX_ROUNDS = 8;
async function main(config) {
    const outbox = new outbox_js_1.Outbox(config.dir);
    const transport = new transport_js_1.HttpTransport(config.endpoint, config.userAgent, config.timeouts, config.vars);
    const watchdog = setTimeout(() => process.exit(0), MAX_ROUNDS * (config.timeouts.totalMs + 1000));
    try {
        for (let round = 0; round < MAX_ROUNDS && outbox.hasWaiting(); round++) {
            if (outbox.needsCompaction())
                outbox.compact();
            const state = { claimed: [], postingOld: [] };
            const drained = await (0, flusher_js_1.drainOutbox)(outbox, transport, config.resendAfterMs, state, () => false, (context, events, d) => {
                try {
                    outbox.logSent({ sent_at: (0, time_js_1.isoTime)(Date.now()), context, events, ...pick(d) });
                }
                catch {
                    // the sent-log is for the user's eyes; losing a line loses no event
                }
            });
            if (drained.retry !== null) {
                const failures = ((0, flusher_js_1.readBackoff)(config.dir)?.failures ?? 0) + 1;
                (0, flusher_js_1.writeBackoff)(config.dir, { until: Date.now() + (0, flusher_js_1.backoff)(failures, drained.retry), failures });
                break;
            }
            (0, flusher_js_1.writeBackoff)(config.dir, null);
            if (drained.posted === 0)
                break; // what is left is not due yet
        }
    }
    finally {
        clearTimeout(watchdog);
        (0, flusher_js_1.releaseLock)(config.dir, process.pid);
    }
}
function pick(d) {
    return { accepted: d.accepted, duplicate: d.duplicate, rejected: d.rejected, dropped_props: d.dropped_props };
}
let config = null;
try {
    config = JSON.parse(process.env[flusher_js_1.FLUSH_CONFIG_VAR] ?? "");
}
catch {
    config = null;
}
if (config)
    void main(config).catch(() => (0, flusher_js_1.releaseLock)(config.dir, process.pid));
