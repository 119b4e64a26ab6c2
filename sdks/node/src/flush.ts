/**
 * The detached flusher (dist/flush.cjs): run by a host at exit (flusher.ts), it sends the
 * outbox of one tool and exits. Its settings come from the host in `TALLY_FLUSH_CONFIG`;
 * the host started it only with consent to upload (mode on, not a notice run, not debug).
 *
 * It drains until nothing due is left (files that hosts add meanwhile included), at most
 * a few rounds, and stops at the first failure, leaving the backoff for the next hosts.
 * A ref'd watchdog keeps it alive while its unref'd requests run, and bounds its life.
 */

import { backoff, drainOutbox, FLUSH_CONFIG_VAR, FlushConfig, readBackoff, releaseLock, writeBackoff } from "./flusher.js";
import { Outbox } from "./outbox.js";
import { isoTime } from "./time.js";
import { HttpTransport } from "./transport.js";

const MAX_ROUNDS = 8;

async function main(config: FlushConfig): Promise<void> {
  const outbox = new Outbox(config.dir);
  const transport = new HttpTransport(config.endpoint, config.userAgent, config.timeouts, config.vars);
  const watchdog = setTimeout(() => process.exit(0), MAX_ROUNDS * (config.timeouts.totalMs + 1000));
  try {
    for (let round = 0; round < MAX_ROUNDS && outbox.hasWaiting(); round++) {
      if (outbox.needsCompaction()) outbox.compact();
      const state = { claimed: [], postingOld: [] };
      const drained = await drainOutbox(outbox, transport, config.resendAfterMs, state, () => false, (context, events, d) => {
        try {
          outbox.logSent({ sent_at: isoTime(Date.now()), context, events, ...pick(d) });
        } catch {
          // the sent-log is for the user's eyes; losing a line loses no event
        }
      });
      if (drained.retry !== null) {
        const failures = (readBackoff(config.dir)?.failures ?? 0) + 1;
        writeBackoff(config.dir, { until: Date.now() + backoff(failures, drained.retry), failures });
        break;
      }
      writeBackoff(config.dir, null);
      if (drained.posted === 0) break; // what is left is not due yet
    }
  } finally {
    clearTimeout(watchdog);
    releaseLock(config.dir, process.pid);
  }
}

function pick(d: { accepted: number; duplicate: number; rejected: number; dropped_props: number }) {
  return { accepted: d.accepted, duplicate: d.duplicate, rejected: d.rejected, dropped_props: d.dropped_props };
}

let config: FlushConfig | null = null;
try {
  config = JSON.parse(process.env[FLUSH_CONFIG_VAR] ?? "") as FlushConfig;
} catch {
  config = null;
}
if (config) void main(config).catch(() => releaseLock(config.dir, process.pid));
