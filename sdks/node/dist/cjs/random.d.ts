/**
 * Random bytes from the OS without `node:crypto`: read from `/dev/urandom`, the kernel's
 * CSPRNG that `crypto.randomFillSync` also draws from on Linux, macOS and the BSDs. Where it
 * cannot be opened (Windows, a chroot without `/dev`) `node:crypto` is loaded instead, so
 * the values are as random everywhere; only the start-up cost differs (docs/benchmarks.md).
 * Values that need to be unique but not secret use {@link pooledRandom}, which reads no file.
 */
/** Fills `buf` with random bytes and returns it. */
export declare function randomFill<T extends Uint8Array>(buf: T): T;
/**
 * Bytes for the values that must be unique but are not secret: event ids and outbox file
 * names. They come from `Math.random` (V8's xorshift128+, seeded per process from the OS's
 * entropy), which needs no file: a run that records opens no `/dev/urandom`, whose first
 * open and read cost about 0.3 ms (docs/benchmarks.md). 74 such bits per id within one
 * millisecond make a collision as unlikely as with OS randomness. Secrets (the salt, the
 * install id) always come from {@link randomFill}.
 */
export declare const RANDOM_POOL: Buffer<ArrayBuffer>;
/** Puts `n` (at most 16) fresh unique-not-secret bytes in {@link RANDOM_POOL}; returns where they start (0). */
export declare function pooledRandom(n: number): number;
/** The two hex digits of each byte value. */
export declare const HEX: string[];
/** `n` fresh pooled random bytes as hex. */
export declare function pooledHex(n: number): string;
/** `n` random bytes. */
export declare function randomBytes(n: number): Buffer;
/** A random UUID v4 (RFC 9562), lower-case. */
export declare function randomUuid(): string;
