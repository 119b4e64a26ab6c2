"use strict";
/**
 * Built-in modules loaded on first use rather than at import: a tool that imports the SDK
 * and runs with telemetry off never pays for `node:crypto` (3-7 ms of start-up measured on
 * the benchmark machine, docs/benchmarks.md). Built-in modules resolve from any base path.
 */
Object.defineProperty(exports, "__esModule", { value: true });
exports.crypto = crypto;
exports.childProcess = childProcess;
const node_module_1 = require("node:module");
const path = require("node:path");
const load = (0, node_module_1.createRequire)(path.join(path.parse(process.cwd()).root, "index.js"));
let cryptoModule = null;
/** `node:crypto`, loaded once. */
function crypto() {
    return (cryptoModule ??= load("node:crypto"));
}
/** `node:child_process`, for the one place that starts a process (macOS's `ioreg`). */
function childProcess() {
    return load("node:child_process");
}
