"use strict";
/**
 * Detection and removal of personal data in strings: the JavaScript form of
 * `tally_protocol::scrub`. Both scrubbers are checked against one corpus
 * (`crates/tally-protocol/scrub-corpus.json`, hostnames included), so they cannot drift apart.
 *
 * The Rust patterns are kept in the same order with the same meaning. Rust's inline
 * `(?i)` inside the secret alternation applies to the alternatives after it; JavaScript has
 * no inline flags, so that pattern is two here (case-sensitive, then case-insensitive),
 * both reporting `secret`. The hostname pattern starts with `(?i)`, which in Rust covers
 * every alternative after it (to the end of the pattern), so here the whole of it is `i`.
 */
Object.defineProperty(exports, "__esModule", { value: true });
exports.REDACTED = void 0;
exports.utf8Length = utf8Length;
exports.find = find;
exports.isSensitive = isSensitive;
exports.scrub = scrub;
/** What {@link scrub} puts in place of a removed piece. */
exports.REDACTED = "[redacted]";
const SECRET_CASED = [
    String.raw `\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*`,
    String.raw `\b(ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}`,
    String.raw `\bgithub_pat_[A-Za-z0-9_]{20,}`,
    String.raw `\bsk-[A-Za-z0-9_-]{16,}`,
    String.raw `\b[rsp]k_(live|test)_[A-Za-z0-9]{16,}`,
    String.raw `\bxox[abposr]-[A-Za-z0-9-]{10,}`,
    String.raw `\b(AKIA|ASIA)[0-9A-Z]{16}\b`,
    String.raw `\bAIza[0-9A-Za-z_-]{35}`,
    String.raw `\bnpm_[A-Za-z0-9]{30,}`,
    String.raw `\bglpat-[A-Za-z0-9_-]{20,}`,
    String.raw `\bhf_[A-Za-z0-9]{30,}`,
    String.raw `\bpypi-[A-Za-z0-9_-]{50,}`,
    String.raw `hooks\.slack\.com/services/[A-Za-z0-9/_-]+`,
    String.raw `-----BEGIN [A-Z ]*PRIVATE KEY-----`,
    String.raw `\b[0-9a-fA-F]{32,}\b`,
].join("|");
/** A machine's name: a dotted name in a private zone, or a default desktop name. */
const HOSTNAME = [
    String.raw `\b[a-z0-9][a-z0-9-]*(\.[a-z0-9-]+)*\.(local|lan|internal|intranet|corp|localdomain|home\.arpa)\b`,
    String.raw `\b(DESKTOP|LAPTOP)-[A-Z0-9]{5,}\b`,
    String.raw `\b[a-z0-9-]+-(macbook|imac|mac-mini|mbp)(-pro|-air)?\b`,
].join("|");
const SECRET_UNCASED = [
    String.raw `\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`,
    String.raw `\bbearer\s+[A-Za-z0-9._~+/-]{8,}=*`,
    String.raw `(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|client[_-]?secret|private[_-]?key)\s*(=|:\s)\s*[^\s&]+`,
].join("|");
/** Every pattern with what it finds, in the Rust order. */
const PATTERNS = [
    ["url_with_secrets", /\b[a-z][a-z0-9+.-]*:\/\/[^\s]*[?#@][^\s]*/gi],
    ["email", /[a-z0-9._%+-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}/gi],
    ["secret", new RegExp(SECRET_CASED, "g")],
    ["secret", new RegExp(SECRET_UNCASED, "gi")],
    ["hostname", new RegExp(HOSTNAME, "gi")],
    ["home_path", /(\/home\/[^/\s]+|\/Users\/[^/\s]+|\/root\b|[a-z]:[\\/]Users[\\/][^\\/\s]+|~[/\\])[^\s]*/gi],
    ["ip_address", /\b(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}\b/g],
    [
        "ip_address",
        /\b([0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b|\b([0-9a-f]{1,4}:){1,7}:([0-9a-f]{1,4}(:[0-9a-f]{1,4}){0,6})?|::(ffff:)?[0-9a-f]{1,4}(:[0-9a-f]{1,4}){0,6}\b/gi,
    ],
];
const CANDIDATE_TOKEN = /[A-Za-z0-9+/=_-]{24,}/g;
function test(re, s) {
    re.lastIndex = 0;
    return re.test(s);
}
/**
 * A cheap proof that no pattern can match: every pattern needs one of these characters, a
 * dot (IPv4, hostnames), a `-` (desktop names), or at least 15 bytes (the shortest secret
 * format, `xoxb-` and 10 more).
 */
function obviouslyClean(s) {
    if (s.length >= 15)
        return false;
    for (let i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i);
        // @ / \ : ~ = . -
        if (c === 64 || c === 47 || c === 92 || c === 58 || c === 126 || c === 61 || c === 46 || c === 45)
            return false;
    }
    return utf8Length(s) < 15;
}
/** `Buffer.byteLength(s)` (a surrogate pair 4 bytes, a lone surrogate 3), without that function's first-call cost. */
function utf8Length(s) {
    let bytes = 0;
    for (let i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (c < 0x80)
            bytes += 1;
        else if (c < 0x800)
            bytes += 2;
        else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
            bytes += 4;
            i++;
        }
        else
            bytes += 3;
    }
    return bytes;
}
function hasRandomToken(s) {
    CANDIDATE_TOKEN.lastIndex = 0;
    for (const m of s.matchAll(CANDIDATE_TOKEN))
        if (looksRandom(m[0]))
            return true;
    return false;
}
/** The first kind of personal data found in `s`, if any. */
function find(s) {
    if (obviouslyClean(s))
        return null;
    for (const [finding, re] of PATTERNS)
        if (test(re, s))
            return finding;
    return hasRandomToken(s) ? "secret" : null;
}
/** Whether `s` contains anything {@link find} reports. */
function isSensitive(s) {
    return find(s) !== null;
}
/** `s` with every finding replaced by {@link REDACTED}. */
function scrub(s) {
    if (obviouslyClean(s))
        return s;
    const matched = PATTERNS.filter(([, re]) => test(re, s));
    let out = s;
    for (const [, re] of matched) {
        re.lastIndex = 0;
        out = out.replace(re, exports.REDACTED);
    }
    if (hasRandomToken(out))
        out = out.replace(CANDIDATE_TOKEN, (m) => (looksRandom(m) ? exports.REDACTED : m));
    return out;
}
/** A long run of mixed letters and digits with high Shannon entropy: a key, not a word. */
function looksRandom(s) {
    const upper = /[A-Z]/.test(s);
    const lower = /[a-z]/.test(s);
    const digit = /[0-9]/.test(s);
    const classes = Number(upper) + Number(lower) + Number(digit);
    return classes >= 2 && digit && shannonEntropy(s) >= 3.5;
}
function shannonEntropy(s) {
    const counts = new Map();
    for (const c of s)
        counts.set(c, (counts.get(c) ?? 0) + 1);
    let h = 0;
    for (const n of counts.values()) {
        const p = n / s.length;
        h -= p * Math.log2(p);
    }
    return h;
}
