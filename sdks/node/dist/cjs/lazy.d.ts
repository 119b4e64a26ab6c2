/**
 * Built-in modules loaded on first use rather than at import: a tool that imports the SDK
 * and runs with telemetry off never pays for `node:crypto` (3-7 ms of start-up measured on
 * the benchmark machine, docs/benchmarks.md). Built-in modules resolve from any base path.
 */
/** `node:crypto`, loaded once. */
export declare function crypto(): typeof import("node:crypto");
/** `node:child_process`, for the one place that starts a process (macOS's `ioreg`). */
export declare function childProcess(): typeof import("node:child_process");
