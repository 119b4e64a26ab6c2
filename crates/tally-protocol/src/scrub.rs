//! Detection and removal of personal data in strings.
//!
//! Both sides use it: the SDK scrubs every string before an event is queued, and the
//! collector scrubs again before anything is stored. It finds e-mail addresses, IPv4 and
//! IPv6 addresses, home-directory paths, URLs with query strings or credentials, and
//! secrets (well-known token formats, JWTs, long high-entropy strings).

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

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
}

struct Pattern {
    finding: Finding,
    regex: Regex,
}

static PATTERNS: LazyLock<Vec<Pattern>> = LazyLock::new(|| {
    let p = |finding, re: &str| Pattern {
        finding,
        regex: Regex::new(re).expect("scrub pattern compiles"),
    };
    vec![
        p(
            Finding::UrlWithSecrets,
            r"(?i)\b[a-z][a-z0-9+.-]*://[^\s]*[?#@][^\s]*",
        ),
        p(
            Finding::Email,
            r"(?i)[a-z0-9._%+-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}",
        ),
        p(
            Finding::Secret,
            concat!(
                r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
                r"|\b(ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}",
                r"|\bgithub_pat_[A-Za-z0-9_]{20,}",
                r"|\bsk-[A-Za-z0-9_-]{16,}",
                r"|\bxox[abposr]-[A-Za-z0-9-]{10,}",
                r"|\b(AKIA|ASIA)[0-9A-Z]{16}\b",
                r"|\bnpm_[A-Za-z0-9]{30,}",
                r"|\bglpat-[A-Za-z0-9_-]{20,}",
                r"|-----BEGIN [A-Z ]*PRIVATE KEY-----",
            ),
        ),
        p(
            Finding::HomePath,
            r"(?i)(/home/[^/\s]+|/Users/[^/\s]+|/root\b|[a-z]:\\Users\\[^\\\s]+|~[/\\])[^\s]*",
        ),
        p(
            Finding::IpAddress,
            r"\b(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}\b",
        ),
        p(
            Finding::IpAddress,
            r"(?i)\b([0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b|\b([0-9a-f]{1,4}:){1,7}:([0-9a-f]{1,4}(:[0-9a-f]{1,4}){0,6})?|::(ffff:)?[0-9a-f]{1,4}(:[0-9a-f]{1,4}){0,6}\b",
        ),
    ]
});

static CANDIDATE_TOKEN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[A-Za-z0-9+/=_-]{24,}").expect("token pattern compiles"));

/// The first kind of personal data found in `s`, if any.
pub fn find(s: &str) -> Option<Finding> {
    PATTERNS
        .iter()
        .find(|p| p.regex.is_match(s))
        .map(|p| p.finding)
        .or_else(|| {
            CANDIDATE_TOKEN
                .find_iter(s)
                .any(|m| looks_random(m.as_str()))
                .then_some(Finding::Secret)
        })
}

/// Whether `s` contains anything [`find`] reports.
pub fn is_sensitive(s: &str) -> bool {
    find(s).is_some()
}

/// `s` with every finding replaced by [`REDACTED`]; borrowed when nothing was found.
pub fn scrub(s: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(s);
    for p in PATTERNS.iter() {
        if p.regex.is_match(&out) {
            out = Cow::Owned(p.regex.replace_all(&out, REDACTED).into_owned());
        }
    }
    if CANDIDATE_TOKEN
        .find_iter(&out)
        .any(|m| looks_random(m.as_str()))
    {
        let replaced = CANDIDATE_TOKEN
            .replace_all(&out, |c: &regex::Captures<'_>| {
                let m = &c[0];
                if looks_random(m) {
                    REDACTED.to_owned()
                } else {
                    m.to_owned()
                }
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
    let classes = [has_upper, has_lower, has_digit]
        .iter()
        .filter(|c| **c)
        .count();
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
        check(
            "contact alice.smith+x@example.co.uk now",
            Some(Finding::Email),
        );
        check("connect 192.168.1.20:5432", Some(Finding::IpAddress));
        check("fe80::1ff:fe23:4567:890a", Some(Finding::IpAddress));
        check(
            "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
            Some(Finding::IpAddress),
        );
        check("/home/alice/projects/app", Some(Finding::HomePath));
        check("/Users/bob/src", Some(Finding::HomePath));
        check(r"C:\Users\carol\AppData", Some(Finding::HomePath));
        check(
            "https://api.example.com/v1?token=abc",
            Some(Finding::UrlWithSecrets),
        );
        check(
            "https://user:pw@example.com/",
            Some(Finding::UrlWithSecrets),
        );
        check(
            "ghp_0123456789abcdefghijABCDEFGHIJ012345",
            Some(Finding::Secret),
        );
        check("AKIAIOSFODNN7EXAMPLE", Some(Finding::Secret));
        check(
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            Some(Finding::Secret),
        );
        check(
            "key Zx8fK2mQ9vL4pR7tW1yB6nC3hJ5gD0sA",
            Some(Finding::Secret),
        );
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
        ] {
            check(ok, None);
        }
    }

    #[test]
    fn scrub_keeps_the_rest_of_the_string() {
        assert_eq!(
            scrub("mail bob@example.com please"),
            "mail [redacted] please"
        );
    }
}
