/**
 * The V8 code cache of the SDK's bundle. The entry point (dist/index.cjs, built from
 * scripts/entry.cjs) registers, under the bundle's file, the cache file and what it should
 * get; a client that records calls [`saveCodeCache`] at exit, so that only a run with
 * telemetry on or local ever writes the cache (docs/sdk-node.md, "Code cache"). Without the
 * entry point (the modules of dist/cjs) nothing is registered under this file and nothing
 * is written.
 */
/** Writes the cache when the entry point wants it written (none yet, or V8 refused it); never throws. */
export declare function saveCodeCache(): void;
