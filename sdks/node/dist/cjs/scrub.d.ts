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
/** What {@link scrub} puts in place of a removed piece. */
export declare const REDACTED = "[redacted]";
/** The kinds of personal data the scrubber finds (the Rust `Finding`, snake_case). */
export type Finding = "email" | "ip_address" | "home_path" | "url_with_secrets" | "secret" | "hostname";
/** `Buffer.byteLength(s)` (a surrogate pair 4 bytes, a lone surrogate 3), without that function's first-call cost. */
export declare function utf8Length(s: string): number;
/** The first kind of personal data found in `s`, if any. */
export declare function find(s: string): Finding | null;
/** Whether `s` contains anything {@link find} reports. */
export declare function isSensitive(s: string): boolean;
/** `s` with every finding replaced by {@link REDACTED}. */
export declare function scrub(s: string): string;
