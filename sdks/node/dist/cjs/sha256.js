"use strict";
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
Object.defineProperty(exports, "__esModule", { value: true });
exports.sha256 = sha256;
exports.hmacSha256 = hmacSha256;
exports.hex = hex;
const random_js_1 = require("./random.js");
const K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
    0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
    0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
    0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
]);
function bytes(data) {
    return typeof data === "string" ? Buffer.from(data, "utf8") : data;
}
/** The SHA-256 digest of `data` (a string is hashed as its UTF-8 bytes). */
function sha256(data) {
    const input = bytes(data);
    const n = input.length;
    // The message, a 1 bit, zeros, and its length in bits (big-endian, 64 bits): whole blocks.
    const padded = new Uint8Array((((n + 8) >> 6) + 1) << 6);
    padded.set(input);
    padded[n] = 0x80;
    const view = new DataView(padded.buffer);
    view.setUint32(padded.length - 8, Math.floor(n / 0x20000000));
    view.setUint32(padded.length - 4, (n << 3) >>> 0);
    const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
    const w = new Uint32Array(64);
    for (let at = 0; at < padded.length; at += 64) {
        for (let i = 0; i < 16; i++)
            w[i] = view.getUint32(at + 4 * i);
        for (let i = 16; i < 64; i++) {
            const x = w[i - 15];
            const y = w[i - 2];
            const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
            const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        let a = h[0];
        let b = h[1];
        let c = h[2];
        let d = h[3];
        let e = h[4];
        let f = h[5];
        let g = h[6];
        let k = h[7];
        for (let i = 0; i < 64; i++) {
            const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
            const t1 = (k + s1 + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
            const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
            const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
            k = g;
            g = f;
            f = e;
            e = (d + t1) | 0;
            d = c;
            c = b;
            b = a;
            a = (t1 + t2) | 0;
        }
        h[0] += a;
        h[1] += b;
        h[2] += c;
        h[3] += d;
        h[4] += e;
        h[5] += f;
        h[6] += g;
        h[7] += k;
    }
    const out = new Uint8Array(32);
    const o = new DataView(out.buffer);
    for (let i = 0; i < 8; i++)
        o.setUint32(4 * i, h[i]);
    return out;
}
/** HMAC-SHA256 of `message` keyed with `key` (strings as their UTF-8 bytes). */
function hmacSha256(key, message) {
    let k = bytes(key);
    if (k.length > 64)
        k = sha256(k);
    const msg = bytes(message);
    const inner = new Uint8Array(64 + msg.length);
    const outer = new Uint8Array(64 + 32);
    for (let i = 0; i < 64; i++) {
        const b = i < k.length ? k[i] : 0;
        inner[i] = b ^ 0x36;
        outer[i] = b ^ 0x5c;
    }
    inner.set(msg, 64);
    outer.set(sha256(inner), 64);
    return sha256(outer);
}
/** Lower-case hex of `data`, from the byte table (a process's first `Buffer` hex encoding costs about 0.2 ms). */
function hex(data) {
    let out = "";
    for (let i = 0; i < data.length; i++)
        out += random_js_1.HEX[data[i]];
    return out;
}
