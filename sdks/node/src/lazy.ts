/**
 * Built-in modules loaded on first use rather than at import: a tool that imports the SDK
 * and runs with telemetry off never pays for `node:crypto` (3-7 ms of start-up measured on
 * the benchmark machine, docs/benchmarks.md). Built-in modules resolve from any base path.
 */

import { createRequire } from "node:module";
import * as path from "node:path";

const load = createRequire(path.join(path.parse(process.cwd()).root, "index.js"));

let cryptoModule: typeof import("node:crypto") | null = null;

/** `node:crypto`, loaded once. */
export function crypto(): typeof import("node:crypto") {
  return (cryptoModule ??= load("node:crypto") as typeof import("node:crypto"));
}

/** `node:child_process`, for the one place that starts a process (macOS's `ioreg`). */
export function childProcess(): typeof import("node:child_process") {
  return load("node:child_process") as typeof import("node:child_process");
}
