/**
 * The V8 code cache of the SDK's bundle. The entry point (dist/index.cjs, built from
 * scripts/entry.cjs) registers, under the bundle's file, the cache file and what it should
 * get; a client that records calls [`saveCodeCache`] at exit, so that only a run with
 * telemetry on or local ever writes the cache (docs/sdk-node.md, "Code cache"). Without the
 * entry point (the modules of dist/cjs) nothing is registered under this file and nothing
 * is written.
 */

import * as fs from "node:fs";
import * as path from "node:path";

import { removeFile, writeAtomically } from "./files.js";

/** What the entry point registers. */
interface Pending {
  dir: string;
  file: string;
  /** The bytes for `file`, at most once per process; `null` when it is as it should be. */
  take(): Uint8Array | null;
}

/** Caches of other builds not written for this long are removed when one is written. */
const STALE_MS = 30 * 24 * 3600 * 1000;

/** Writes the cache when the entry point wants it written (none yet, or V8 refused it); never throws. */
export function saveCodeCache(): void {
  try {
    const registry = (globalThis as Record<symbol, unknown>)[Symbol.for("tally-telemetry.code-cache")];
    const pending = registry instanceof Map ? (registry.get(__filename) as Pending | undefined) : undefined;
    const bytes = pending?.take();
    if (!pending || !bytes) return;
    // Readable by its owner only: another user could otherwise plant code for this one to run.
    fs.mkdirSync(pending.dir, { recursive: true, mode: 0o700 });
    writeAtomically(pending.file, bytes, 0o600);
    const stale = Date.now() - STALE_MS;
    for (const name of fs.readdirSync(pending.dir)) {
      if (!name.startsWith("sdk-") || !name.endsWith(".v8") || name === path.basename(pending.file)) continue;
      const other = path.join(pending.dir, name);
      try {
        if (fs.statSync(other).mtimeMs < stale) removeFile(other);
      } catch {
        // another process removed it
      }
    }
  } catch {
    // a cache is never worth an error
  }
}
