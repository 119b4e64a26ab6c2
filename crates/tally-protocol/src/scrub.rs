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

    fn check(input: &str, expected: Option<Finding>) {
        assert_eq!(find(input), expected, "find({input:?})");
        if expected.is_some() {
            assert_ne!(scrub(input), input, "scrub({input:?}) changed nothing");
        } else {
            assert_eq!(scrub(input), input);
        }
    }

    #[test]
    fn finds_personal_data() {
        check("contact alice.smith+x@example.co.uk now", Some(Finding::Email));
        check("connect 192.168.1.20:5432", Some(Finding::IpAddress));
        check("fe80::1ff:fe23:4567:890a", Some(Finding::IpAddress));
        check("2001:0db8:85a3:0000:0000:8a2e:0370:7334", Some(Finding::IpAddress));
        check("/home/alice/projects/app", Some(Finding::HomePath));
        check("/Users/bob/src", Some(Finding::HomePath));
        check(r"C:\Users\carol\AppData", Some(Finding::HomePath));
        check("https://api.example.com/v1?token=abc", Some(Finding::UrlWithSecrets));
        check("https://user:pw@example.com/", Some(Finding::UrlWithSecrets));
        check("ghp_0123456789abcdefghijABCDEFGHIJ012345", Some(Finding::Secret));
        check("AKIAIOSFODNN7EXAMPLE", Some(Finding::Secret));
        check(
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            Some(Finding::Secret),
        );
        check("key Zx8fK2mQ9vL4pR7tW1yB6nC3hJ5gD0sA", Some(Finding::Secret));
        // Issue 11: a hostname sent as a plugin name or a string prop reached storage.
        for host in [
            "alice-macbook.local",
            "db.internal",
            "build-agent-42.corp.example.com",
            "nas.home.arpa",
            "DESKTOP-4F2K9QX",
            "Alices-MacBook-Pro",
        ] {
            check(host, Some(Finding::Hostname));
        }
    }

    #[test]
    fn keeps_ordinary_values() {
        for ok in [
            "postgres",
            "20.11.1",
            "@strapi/plugin-i18n",
            "ecommerce-template",
            "x86_64",
            "project.created",
            "ENOENT",
            "https://example.com/docs",
            "users-permissions",
            "content-manager",
            "lodash.merge",
            "next.config.js",
            "5.0.0-rc.1",
            "better-sqlite3",
        ] {
            check(ok, None);
        }
    }

    #[test]
    fn scrub_keeps_the_rest_of_the_string() {
        assert_eq!(scrub("mail bob@example.com please"), "mail [redacted] please");
    }

    /// Realistic leaks, as they show up in error texts, options and paths. Each must be
    /// found, and none of the sensitive piece may survive scrubbing.
    const LEAKS: &[(&str, &str, Finding)] = &[
        // (input, the piece that must disappear, finding)
        ("open /home/alice/.ssh/id_rsa failed", "alice", Finding::HomePath),
        ("ENOENT: /Users/bob.smith/Library/app.json", "bob.smith", Finding::HomePath),
        (r"C:\Users\carol\Desktop\site", "carol", Finding::HomePath),
        ("C:/Users/dave/projects/x", "dave", Finding::HomePath),
        ("cannot read ~/secret-project/config", "secret-project", Finding::HomePath),
        ("/root/.aws/credentials", ".aws", Finding::HomePath),
        ("/var/home/erin/src/app", "erin", Finding::HomePath),
        ("/mnt/c/Users/frank/code", "frank", Finding::HomePath),
        ("mail alice@example.com", "alice@example.com", Finding::Email),
        ("Bob.Smith@Sub.Example.CO.UK wrote", "Bob.Smith", Finding::Email),
        ("user+tag@gmail.com", "user+tag", Finding::Email),
        ("mailto:carol@example.org", "carol@", Finding::Email),
        ("connect ECONNREFUSED 10.0.0.12:5432", "10.0.0.12", Finding::IpAddress),
        ("resolver 8.8.8.8", "8.8.8.8", Finding::IpAddress),
        ("listen on [2001:db8::1]:8080", "2001:db8::1", Finding::IpAddress),
        ("peer fe80::1ff:fe23:4567:890a%eth0", "fe80::1ff", Finding::IpAddress),
        ("2001:0db8:85a3:0000:0000:8a2e:0370:7334", "8a2e", Finding::IpAddress),
        ("mapped ::ffff:192.0.2.128", "192.0.2.128", Finding::IpAddress),
        ("https://example.com/reset?token=abc123", "abc123", Finding::UrlWithSecrets),
        ("https://api.example.com/cb#access_token=xyz789", "xyz789", Finding::UrlWithSecrets),
        ("https://user:hunter2@example.com/", "hunter2", Finding::UrlWithSecrets),
        ("postgres://admin:s3cret@db.internal:5432/app", "s3cret", Finding::UrlWithSecrets),
        ("http://localhost:3000/callback?code=4f3a9", "4f3a9", Finding::UrlWithSecrets),
        ("ghp_0123456789abcdefghijABCDEFGHIJ012345", "ghp_0123", Finding::Secret),
        ("github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "github_pat_11", Finding::Secret),
        ("AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE", Finding::Secret),
        ("aws_secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI", Finding::Secret),
        ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "4eC39HqLyjWDarjtT1zdp7dc", Finding::Secret),
        ("sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv", "Ab3dEf6h", Finding::Secret),
        ("sk-ant-api03-abcDEF123ghiJKL456mno", "abcDEF123", Finding::Secret),
        ("xoxb-123456789012-abcdefABCDEF", "xoxb-1234", Finding::Secret),
        ("AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY", "AIzaSyD", Finding::Secret),
        ("npm_abcdefghijklmnopqrstuvwxyz0123456789", "npm_abcdef", Finding::Secret),
        ("glpat-xxxxYYYYzzzz11112222", "glpat-xxxx", Finding::Secret),
        ("hf_abcdefghijklmnopqrstuvwxyzABCDEF12", "hf_abcdef", Finding::Secret),
        ("https://hooks.slack.com/services/T0000/B0000/XXXXXXXX", "T0000", Finding::Secret),
        (
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "eyJhbGci",
            Finding::Secret,
        ),
        ("-----BEGIN RSA PRIVATE KEY-----", "PRIVATE KEY", Finding::Secret),
        ("Authorization: Bearer abcdef123456.xyz", "abcdef123456", Finding::Secret),
        ("password=hunter2", "hunter2", Finding::Secret),
        ("DB_PASSWORD: correct-horse", "correct-horse", Finding::Secret),
        ("api_key=0a1b2c3d", "0a1b2c3d", Finding::Secret),
        ("machine 3d1219c7c4c5404aaa1f6d2a48adfda4", "3d1219c7", Finding::Secret),
        ("key Zx8fK2mQ9vL4pR7tW1yB6nC3hJ5gD0sA", "Zx8fK2mQ", Finding::Secret),
        ("project 7b581c0d-89b7-479e-b379-a76ab90b8754", "7b581c0d", Finding::Secret),
    ];

    #[test]
    fn no_leak_survives() {
        for (input, piece, finding) in LEAKS {
            assert_eq!(find(input), Some(*finding), "find({input:?})");
            let out = scrub(input);
            assert!(!out.contains(piece), "scrub({input:?}) = {out:?} still contains {piece:?}");
            assert!(out.contains(REDACTED), "scrub({input:?}) = {out:?}");
            assert!(!is_sensitive(&out), "scrub({input:?}) = {out:?} is still sensitive");
        }
    }

    #[test]
    fn fast_path_agrees_with_the_patterns() {
        // Short strings the fast path declares clean really match no pattern.
        for s in ["postgres", "x86_64", "blog", "sqlite", "ENOENT", "token", "node"] {
            assert!(obviously_clean(s), "{s:?}");
            assert!(!PATTERN_SET.is_match(s), "{s:?}");
        }
        // Dots and dashes go through the patterns (hostnames), and ordinary ones match none.
        for s in ["20.11.1", "a.b.c", "xoxb-12345", "sk-123456789", "1.2.3-beta"] {
            assert!(!obviously_clean(s), "{s:?}");
            assert!(!is_sensitive(s), "{s:?}");
        }
        for s in ["1.2.3.4", "a@b.co", "~/x", "::1", "pwd=x", "pc.lan"] {
            assert!(!obviously_clean(s), "{s:?}");
            assert!(is_sensitive(s), "{s:?}");
        }
    }
}
