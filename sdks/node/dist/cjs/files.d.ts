/**
 * Removes a file; a missing one is not an error. `fs.unlinkSync` rather than
 * `fs.rmSync(f, { force: true })`, which loads Node's recursive-removal module on every
 * first call: a run with telemetry on loads no built-in module that one with it off does not
 * (test/random.test.mjs).
 */
export declare function removeFile(file: string): void;
/** Writes `file` whole or not at all: a temporary file beside it, renamed over it (removed when that fails). */
export declare function writeAtomically(file: string, data: string | Uint8Array, mode?: number): void;
