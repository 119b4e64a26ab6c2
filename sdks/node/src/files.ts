import * as fs from "node:fs";

/**
 * Removes a file; a missing one is not an error. `fs.unlinkSync` rather than
 * `fs.rmSync(f, { force: true })`, which loads Node's recursive-removal module on every
 * first call: a run with telemetry on loads no built-in module that one with it off does not
 * (test/random.test.mjs).
 */
export function removeFile(file: string): void {
  try {
    fs.unlinkSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
}
