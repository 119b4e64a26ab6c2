"use strict";
/**
 * The V8 code cache of the SDK's bundle. The entry point (dist/index.cjs, built from
 * scripts/entry.cjs) registers a saver under the bundle's path; a client that records calls
 * [`saveCodeCache`] at exit, so that only a run with telemetry on or local ever writes the
 * cache (docs/sdk-node.md, "Code cache"). Without the entry point (the modules of dist/cjs)
 * there is no saver under this file's path and nothing is written.
 */
Object.defineProperty(exports, "__esModule", { value: true });
exports.saveCodeCache = saveCodeCache;
/** Writes the cache when the entry point wants it written (none yet, or V8 refused it); never throws. */
function saveCodeCache() {
    try {
        const savers = globalThis[Symbol.for("tally-telemetry.code-cache")];
        const save = savers instanceof Map ? savers.get(__filename) : undefined;
        if (typeof save === "function")
            save();
    }
    catch {
        // a cache is never worth an error
    }
}
