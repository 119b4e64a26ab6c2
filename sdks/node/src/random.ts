/**
 * Random bytes from the OS without `node:crypto`: read from `/dev/urandom`, the kernel's
 * CSPRNG that `crypto.randomFillSync` also draws from on Linux, macOS and the BSDs. Where it
 * cannot be opened (Windows, a chroot without `/dev`) `node:crypto` is loaded instead, so
 * the values are as random everywhere; only the start-up cost differs (docs/benchmarks.md).
 * Values that need to be unique but not secret use {@link uniqueRandom}, which reads no file.
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

/**
 * Bytes for the values that must be unique but are not secret: event ids and outbox file
 * names. They come from `Math.random` (V8's xorshift128+, seeded per process from the OS's
 * entropy), which needs no file: a run that records opens no `/dev/urandom`, whose first
 * open and read cost about 0.3 ms (docs/benchmarks.md). 74 such bits per id within one
 * millisecond make a collision as unlikely as with OS randomness. Secrets (the salt, the
 * install id) always come from {@link randomFill}.
 */
const scratch = Buffer.alloc(16);

/** `n` (at most 16) fresh unique-not-secret bytes, at the start of a buffer the next call overwrites. */
export function uniqueRandom(n: number): Buffer {
  for (let i = 0; i < n; i += 4) {
    const r = (Math.random() * 0x100000000) >>> 0;
    scratch[i] = r;
    scratch[i + 1] = r >>> 8;
    scratch[i + 2] = r >>> 16;
    scratch[i + 3] = r >>> 24;
  }
  return scratch;
}

/** The two hex digits of each byte value. */
export const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** `n` fresh unique-not-secret bytes as hex. */
export function uniqueHex(n: number): string {
  const b = uniqueRandom(n);
  let out = "";
  for (let i = 0; i < n; i++) out += HEX[b[i]];
  return out;
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
