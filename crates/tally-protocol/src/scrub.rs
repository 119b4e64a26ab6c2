//! Detection and removal of personal data in strings.
//!
//! Both sides use it: the SDK scrubs every string before an event is queued, and the
//! collector scrubs again before anything is stored. It finds e-mail addresses, IPv4 and
//! IPv6 addresses, home-directory paths, URLs with query strings or credentials, and
//! secrets (well-known token formats, JWTs, long high-entropy strings).

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Regex, RegexSet};

/// What [`scrub`] puts in place of a removed piece.
pub const REDACTED: &str = "[redacted]";

/// The kinds of personal data the scrubber finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    /// An e-mail address.
    Email,
    /// An IPv4 or IPv6 address.
    IpAddress,
    /// A path inside a user's home directory.
    HomePath,
    /// A URL carrying a query string, a fragment or credentials.
    UrlWithSecrets,
    /// An API key, token, JWT or other secret-looking string.
    Secret,
    /// A machine's name: a dotted name in a private zone (`alice-macbook.local`,
    /// `db.internal`, `build-7.corp.example.com`) or a default desktop name
    /// (`DESKTOP-4F2K9QX`, `Alices-MacBook-Pro`). Public domain names are not found.
    Hostname,
}

/// Every pattern with what it finds. Compiled together into [`PATTERN_SET`] (what
/// [`find`] uses) and, only when something was found, one by one for [`scrub`]'s
/// replacements.
const PATTERN_SOURCES: &[(Finding, &str)] = &[
    (Finding::UrlWithSecrets, r"(?i)\b[a-z][a-z0-9+.-]*://[^\s]*[?#@][^\s]*"),
    (Finding::Email, r"(?i)[a-z0-9._%+-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}"),
    (
        Finding::Secret,
        concat!(
            r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
            r"|\b(ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}",
            r"|\bgithub_pat_[A-Za-z0-9_]{20,}",
            r"|\bsk-[A-Za-z0-9_-]{16,}",
            r"|\b[rsp]k_(live|test)_[A-Za-z0-9]{16,}",
            r"|\bxox[abposr]-[A-Za-z0-9-]{10,}",
            r"|\b(AKIA|ASIA)[0-9A-Z]{16}\b",
            r"|\bAIza[0-9A-Za-z_-]{35}",
            r"|\bnpm_[A-Za-z0-9]{30,}",
            r"|\bglpat-[A-Za-z0-9_-]{20,}",
            r"|\bhf_[A-Za-z0-9]{30,}",
            r"|\bpypi-[A-Za-z0-9_-]{50,}",
            r"|hooks\.slack\.com/services/[A-Za-z0-9/_-]+",
            r"|-----BEGIN [A-Z ]*PRIVATE KEY-----",
            r"|\b[0-9a-fA-F]{32,}\b",
            r"|(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
            r"|(?i)\bbearer\s+[A-Za-z0-9._~+/-]{8,}=*",
            r"|(?i)(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|client[_-]?secret|private[_-]?key)\s*(=|:\s)\s*[^\s&]+",
        ),
    ),
    (
        Finding::Hostname,
        concat!(
            r"(?i)\b[a-z0-9][a-z0-9-]*(\.[a-z0-9-]+)*\.(local|lan|internal|intranet|corp|localdomain|home\.arpa)\b",
            r"|\b(DESKTOP|LAPTOP)-[A-Z0-9]{5,}\b",
            r"|(?i)\b[a-z0-9-]+-(macbook|imac|mac-mini|mbp)(-pro|-air)?\b",
        ),
    ),
    (Finding::HomePath, r"(?i)(/home/[^/\s]+|/Users/[^/\s]+|/root\b|[a-z]:[\\/]Users[\\/][^\\/\s]+|~[/\\])[^\s]*"),
    (Finding::IpAddress, r"\b(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}\b"),
    (
        Finding::IpAddress,
        r"(?i)\b([0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b|\b([0-9a-f]{1,4}:){1,7}:([0-9a-f]{1,4}(:[0-9a-f]{1,4}){0,6})?|::(ffff:)?[0-9a-f]{1,4}(:[0-9a-f]{1,4}){0,6}\b",
    ),
];

static PATTERNS: LazyLock<Vec<Regex>> =
    LazyLock::new(|| PATTERN_SOURCES.iter().map(|(_, re)| Regex::new(re).expect("scrub pattern compiles")).collect());

/// All of [`PATTERN_SOURCES`] in one automaton, so that the common case (nothing found)
/// costs one pass over the string.
static PATTERN_SET: LazyLock<RegexSet> =
    LazyLock::new(|| RegexSet::new(PATTERN_SOURCES.iter().map(|(_, re)| *re)).expect("scrub patterns compile"));

static CANDIDATE_TOKEN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[A-Za-z0-9+/=_-]{24,}").expect("token pattern compiles"));

/// A cheap proof that no pattern can match: every pattern needs one of these bytes, a dot
/// (IPv4, hostnames), a `-` (desktop names), or at least 15 bytes (the shortest secret
/// format, `xoxb-` and 10 more).
fn obviously_clean(s: &str) -> bool {
    s.len() < 15 && !s.bytes().any(|b| b"@/\\:~=.-".contains(&b))
}

/// The first kind of personal data found in `s`, if any.
pub fn find(s: &str) -> Option<Finding> {
    if obviously_clean(s) {
        return None;
    }
    PATTERN_SET
        .matches(s)
        .iter()
        .next()
        .map(|i| PATTERN_SOURCES[i].0)
        .or_else(|| CANDIDATE_TOKEN.find_iter(s).any(|m| looks_random(m.as_str())).then_some(Finding::Secret))
}

/// Whether `s` contains anything [`find`] reports.
pub fn is_sensitive(s: &str) -> bool {
    find(s).is_some()
}

/// `s` with every finding replaced by [`REDACTED`]; borrowed when nothing was found.
pub fn scrub(s: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(s);
    if obviously_clean(s) {
        return out;
    }
    let matched = PATTERN_SET.matches(s);
    for re in matched.iter().map(|i| &PATTERNS[i]) {
        if re.is_match(&out) {
            out = Cow::Owned(re.replace_all(&out, REDACTED).into_owned());
        }
    }
    if CANDIDATE_TOKEN.find_iter(&out).any(|m| looks_random(m.as_str())) {
        let replaced = CANDIDATE_TOKEN
            .replace_all(&out, |c: &regex::Captures<'_>| {
                let m = &c[0];
                if looks_random(m) { REDACTED.to_owned() } else { m.to_owned() }
            })
            .into_owned();
        out = Cow::Owned(replaced);
    }
    out
}

/// A long run of mixed letters and digits with high Shannon entropy: a key, not a word.
fn looks_random(s: &str) -> bool {
    let has_upper = s.bytes().any(|b| b.is_ascii_uppercase());
    let has_lower = s.bytes().any(|b| b.is_ascii_lowercase());
    let has_digit = s.bytes().any(|b| b.is_ascii_digit());
    let classes = [has_upper, has_lower, has_digit].iter().filter(|c| **c).count();
    classes >= 2 && has_digit && shannon_entropy(s) >= 3.5
}

fn shannon_entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The corpus both scrubbers are checked against (`sdks/node/test/scrub.test.mjs` reads it
    /// too), so that the Rust and the JavaScript scrubber cannot drift apart.
    const CORPUS: &str = include_str!("../scrub-corpus.json");

    fn corpus() -> serde_json::Value {
        serde_json::from_str(CORPUS).expect("scrub-corpus.json parses")
    }

    fn entries<'a>(c: &'a serde_json::Value, key: &str) -> &'a Vec<serde_json::Value> {
        let list = c[key].as_array().unwrap_or_else(|| panic!("scrub-corpus.json has no {key} list"));
        assert!(!list.is_empty(), "{key} is empty");
        list
    }

    fn text<'a>(v: &'a serde_json::Value, key: &str) -> &'a str {
        v[key].as_str().unwrap_or_else(|| panic!("{v}: no string {key}"))
    }

    fn finding(name: &str) -> Finding {
        match name {
            "email" => Finding::Email,
            "ip_address" => Finding::IpAddress,
            "home_path" => Finding::HomePath,
            "url_with_secrets" => Finding::UrlWithSecrets,
            "secret" => Finding::Secret,
            "hostname" => Finding::Hostname,
            other => panic!("unknown finding {other:?} in scrub-corpus.json"),
        }
    }

    #[test]
    fn finds_personal_data() {
        let c = corpus();
        for e in entries(&c, "finds") {
            let input = text(e, "input");
            assert_eq!(find(input), Some(finding(text(e, "finding"))), "find({input:?})");
            assert_ne!(scrub(input), input, "scrub({input:?}) changed nothing");
        }
    }

    #[test]
    fn keeps_ordinary_values() {
        let c = corpus();
        for ok in entries(&c, "clean") {
            let ok = ok.as_str().expect("clean entries are strings");
            assert_eq!(find(ok), None, "find({ok:?})");
            assert_eq!(scrub(ok), ok);
        }
    }

    /// Realistic leaks, as they show up in error texts, options and paths. Each must be
    /// found, and none of the sensitive piece may survive scrubbing.
    #[test]
    fn no_leak_survives() {
        let c = corpus();
        for e in entries(&c, "leaks") {
            let (input, piece) = (text(e, "input"), text(e, "piece"));
            assert_eq!(find(input), Some(finding(text(e, "finding"))), "find({input:?})");
            let out = scrub(input);
            assert!(!out.contains(piece), "scrub({input:?}) = {out:?} still contains {piece:?}");
            assert!(out.contains(REDACTED), "scrub({input:?}) = {out:?}");
            assert!(!is_sensitive(&out), "scrub({input:?}) = {out:?} is still sensitive");
        }
    }

    /// The exact output, so that the two scrubbers replace the same pieces.
    #[test]
    fn scrub_keeps_the_rest_of_the_string() {
        let c = corpus();
        for e in entries(&c, "scrubbed") {
            let input = text(e, "input");
            assert_eq!(scrub(input), text(e, "output"), "scrub({input:?})");
        }
    }

    #[test]
    fn fast_path_agrees_with_the_patterns() {
        let c = corpus();
        // Short strings the fast path declares clean really match no pattern.
        for s in entries(&c, "short_clean") {
            let s = s.as_str().expect("strings");
            assert!(obviously_clean(s), "{s:?}");
            assert!(!PATTERN_SET.is_match(s), "{s:?}");
        }
        for s in entries(&c, "short_sensitive") {
            let s = s.as_str().expect("strings");
            assert!(!obviously_clean(s), "{s:?}");
            assert!(is_sensitive(s), "{s:?}");
        }
    }

    /// Short strings with dots or dashes go through the patterns (they may be hostnames);
    /// ordinary ones match none.
    #[test]
    fn short_dotted_strings_take_the_patterns() {
        for s in ["20.11.1", "a.b.c", "xoxb-12345", "sk-123456789", "1.2.3-beta"] {
            assert!(!obviously_clean(s), "{s:?}");
            assert!(!is_sensitive(s), "{s:?}");
        }
    }
}
