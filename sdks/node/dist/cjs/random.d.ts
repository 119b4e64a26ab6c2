/**
 * Random bytes from the OS without `node:crypto`: read from `/dev/urandom`, the kernel's
 * CSPRNG that `crypto.randomFillSync` also draws from on Linux, macOS and the BSDs. Where it
 * cannot be opened (Windows, a chroot without `/dev`) `node:crypto` is loaded instead, so
 * the values are as random everywhere; only the start-up cost differs (docs/benchmarks.md).
 */
/** Fills `buf` with random bytes and returns it. */
export declare function randomFill<T extends Uint8Array>(buf: T): T;
/** `n` random bytes. */
export declare function randomBytes(n: number): Buffer;
/** A random UUID v4 (RFC 9562), lower-case. */
export declare function randomUuid(): string;
