"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.removeFile = removeFile;
exports.writeAtomically = writeAtomically;
const fs = require("node:fs");
/**
 * Removes a file; a missing one is not an error. `fs.unlinkSync` rather than
 * `fs.rmSync(f, { force: true })`, which loads Node's recursive-removal module on every
 * first call: a run with telemetry on loads no built-in module that one with it off does not
 * (test/random.test.mjs).
 */
function removeFile(file) {
    try {
        fs.unlinkSync(file);
    }
    catch (e) {
        if (e.code !== "ENOENT")
            throw e;
    }
}
/** Writes `file` whole or not at all: a temporary file beside it, renamed over it (removed when that fails). */
function writeAtomically(file, data, mode) {
    const tmp = `${file}.${process.pid}.tmp`;
    try {
        fs.writeFileSync(tmp, data, mode === undefined ? undefined : { mode });
        fs.renameSync(tmp, file);
    }
    catch (e) {
        removeFile(tmp);
        throw e;
    }
}
