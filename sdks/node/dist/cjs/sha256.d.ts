/**
 * SHA-256 and HMAC-SHA256 (FIPS 180-4, RFC 2104) in plain JavaScript, for the values a run
 * hashes: the machine id and the salted hashes of sensitive values, a few short messages.
 *
 * Written here rather than taken from `node:crypto` because loading that module is the
 * largest single cost the SDK added to a short command's start (8-12 ms and 0.8 MB on the
 * benchmark machine, docs/benchmarks.md), and the SDK has no runtime dependencies. The
 * tests compare both functions with `node:crypto` over random keys and messages of every
 * length around the block boundaries.
 */
/** The SHA-256 digest of `data` (a string is hashed as its UTF-8 bytes). */
export declare function sha256(data: Uint8Array | string): Uint8Array;
/** HMAC-SHA256 of `message` keyed with `key` (strings as their UTF-8 bytes). */
export declare function hmacSha256(key: Uint8Array | string, message: Uint8Array | string): Uint8Array;
/** Lower-case hex of `data`, from the byte table (a process's first `Buffer` hex encoding costs about 0.2 ms). */
export declare function hex(data: Uint8Array): string;
