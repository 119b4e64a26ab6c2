/**
 * Random bytes from the OS without `node:crypto`: read from `/dev/urandom`, the kernel's
 * CSPRNG that `crypto.randomFillSync` also draws from on Linux, macOS and the BSDs. Where it
 * cannot be opened (Windows, a chroot without `/dev`) `node:crypto` is loaded instead, so
 * the values are as random everywhere; only the start-up cost differs (docs/benchmarks.md).
 */

import * as fs from "node:fs";

import { crypto } from "./lazy.js";

/** Fills `buf` with random bytes and returns it. */
export function randomFill<T extends Uint8Array>(buf: T): T {
  if (process.platform !== "win32") {
    let fd: number | null = null;
    try {
      fd = fs.openSync("/dev/urandom", "r");
      let at = 0;
      while (at < buf.length) {
        const n = fs.readSync(fd, buf, at, buf.length - at, null);
        if (n <= 0) throw new Error("/dev/urandom: short read");
        at += n;
      }
      return buf;
    } catch {
      // Fall through to node:crypto.
    } finally {
      if (fd !== null) fs.closeSync(fd);
    }
  }
  return crypto().randomFillSync(buf);
}

/** `n` random bytes. */
export function randomBytes(n: number): Buffer {
  return randomFill(Buffer.alloc(n));
}

/** A random UUID v4 (RFC 9562), lower-case. */
export function randomUuid(): string {
  const b = randomBytes(16);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
