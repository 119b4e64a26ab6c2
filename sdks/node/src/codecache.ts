/**
 * The V8 code cache of the SDK's bundle: dist/index.cjs (scripts/entry.cjs) compiles the
 * bundle with it and hands the bundle a saver under the name `tally:code-cache`. A client
 * that records calls [`saveCodeCache`] at exit, so that only a run with telemetry on or
 * local ever writes the cache (docs/sdk-node.md, "Code cache"). Without the entry point
 * (the modules of dist/cjs, a test) there is no saver and nothing is written.
 */

let saver: (() => void) | null | undefined;

/** Writes the cache when the entry point found none (or V8 refused it); never throws. */
export function saveCodeCache(): void {
  if (saver === undefined) {
    try {
      const found: unknown = require("tally:code-cache");
      saver = typeof found === "function" ? (found as () => void) : null;
    } catch {
      saver = null;
    }
  }
  try {
    saver?.();
  } catch {
    // a cache is never worth an error
  }
}
