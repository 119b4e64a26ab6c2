/**
 * Random bytes from the OS without `node:crypto`: read from `/dev/urandom`, the kernel's
 * CSPRNG that `crypto.randomFillSync` also draws from on Linux, macOS and the BSDs. Where it
 * cannot be opened (Windows, a chroot without `/dev`) `node:crypto` is loaded instead, so
 * the values are as random everywhere; only the start-up cost differs (docs/benchmarks.md).
 * Values that need to be unique but not secret use {@link uniqueRandom}, which reads no file.
 */
/** Fills `buf` with random bytes and returns it. */
export declare function randomFill<T extends Uint8Array>(buf: T): T;
/** `n` (at most 16) fresh unique-not-secret bytes, at the start of a buffer the next call overwrites. */
export declare function uniqueRandom(n: number): Buffer;
/** The two hex digits of each byte value. */
export declare const HEX: string[];
/** `n` fresh unique-not-secret bytes as hex. */
export declare function uniqueHex(n: number): string;
/** `n` random bytes. */
export declare function randomBytes(n: number): Buffer;
/** A random UUID v4 (RFC 9562), lower-case. */
export declare function randomUuid(): string;
