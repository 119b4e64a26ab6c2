//! Normalisation tables: Strapi's free-form values (environments, OS names and releases,
//! architectures, databases, package managers, field types, error texts) mapped to the
//! bounded values tally stores.

use serde_json::Value;
use tally_protocol::Env;
use tally_protocol::limits::{MAX_NAME_LEN, MAX_PLUGINS};
use tally_protocol::validate::is_plugin_name;

/// Strapi's environment (`NODE_ENV`, free-form) as one of tally's four.
pub fn env_of(environment: Option<&str>) -> Env {
    let Some(e) = environment.map(str::to_ascii_lowercase) else {
        return Env::Development;
    };
    let has = |words: &[&str]| words.iter().any(|w| e.contains(w));
    if has(&["stag", "preview", "preprod", "pre-prod", "uat", "qa"]) {
        Env::Staging
    } else if has(&["prod", "live"]) {
        Env::Production
    } else if has(&["test", "ci"]) {
        Env::Test
    } else {
        Env::Development
    }
}

/// Node's `os.platform()` (or `os.type()`) as tally's OS family.
pub(super) fn os_family(platform: Option<&str>, os_type: Option<&str>) -> String {
    let from_platform = platform.map(|p| match p.to_ascii_lowercase().as_str() {
        "darwin" => "macos".to_string(),
        "win32" => "windows".to_string(),
        "sunos" => "solaris".to_string(),
        other => other.to_string(),
    });
    let from_type = || {
        os_type.map(|t| match t.to_ascii_lowercase().as_str() {
            "darwin" => "macos".to_string(),
            "windows_nt" => "windows".to_string(),
            other => other.to_string(),
        })
    };
    from_platform
        .or_else(from_type)
        .filter(|o| tally_protocol::validate::is_name(o) && o.len() <= 32)
        .unwrap_or_else(|| "unknown".to_string())
}

/// `os.release()` reduced to the OS's major version: `6.8` for Linux 6.8.0-45, `14` for
/// Darwin 23.4.0, `11` for Windows 10.0.22631.
pub fn os_version(os: &str, release: &str) -> String {
    let nums: Vec<u64> = release.split(|c: char| !c.is_ascii_digit()).take(3).map_while(|p| p.parse().ok()).collect();
    match (os, nums.as_slice()) {
        ("macos", [darwin, ..]) if *darwin >= 25 => (darwin + 1).to_string(),
        ("macos", [darwin, ..]) if *darwin >= 20 => (darwin - 9).to_string(),
        ("macos", [darwin, ..]) if *darwin >= 5 => format!("10.{}", darwin - 4),
        ("windows", [10, 0, build]) => if *build >= 22000 { "11" } else { "10" }.to_string(),
        (_, [major, minor, ..]) => format!("{major}.{minor}"),
        (_, [major]) => major.to_string(),
        _ => String::new(),
    }
}

/// Node's `os.arch()` in the names tally uses.
pub(super) fn arch_of(arch: Option<&str>) -> String {
    match arch.map(str::to_ascii_lowercase).as_deref() {
        Some("x64") => "x86_64".into(),
        Some("arm64") => "aarch64".into(),
        Some("ia32") => "x86".into(),
        Some(a) if tally_protocol::validate::is_name(a) && a.len() <= 16 => a.into(),
        _ => "unknown".into(),
    }
}

/// The CI vendor: Strapi only says whether it runs in CI, so the vendor is `unknown`
/// unless a `ciName` is sent.
pub(super) fn ci_name(name: Option<&str>) -> String {
    name.map(|n| n.to_ascii_lowercase().replace(' ', "_"))
        .filter(|n| tally_protocol::validate::is_name(n) && n.len() <= 32)
        .unwrap_or_else(|| "unknown".into())
}

/// Plugin names as sent, lower-cased; names that are not plain plugin names are dropped.
pub(super) fn plugins(value: Option<&Value>) -> Vec<String> {
    let Some(list) = value.and_then(Value::as_array) else {
        return vec![];
    };
    list.iter()
        .filter_map(Value::as_str)
        .map(|p| p.trim().to_ascii_lowercase())
        .filter(|p| is_plugin_name(p))
        .take(MAX_PLUGINS)
        .collect()
}

pub(super) fn database(client: &str) -> &'static str {
    match client.to_ascii_lowercase().as_str() {
        "sqlite" | "sqlite3" | "better-sqlite3" => "sqlite",
        "postgres" | "postgresql" | "pg" => "postgres",
        "mysql" | "mysql2" => "mysql",
        "mariadb" => "mariadb",
        "mongo" | "mongodb" | "mongoose" => "mongo",
        _ => "other",
    }
}

pub(super) fn project_type(t: &str) -> &'static str {
    match t.to_ascii_lowercase().as_str() {
        "community" => "community",
        "enterprise" => "enterprise",
        _ => "other",
    }
}

pub(super) fn package_manager(name: Option<&str>, use_yarn: Option<bool>) -> Option<&'static str> {
    match (name.map(str::to_ascii_lowercase).as_deref(), use_yarn) {
        (Some("npm"), _) => Some("npm"),
        (Some("yarn"), _) => Some("yarn"),
        (Some("pnpm"), _) => Some("pnpm"),
        (Some("bun"), _) => Some("bun"),
        (Some(_), _) => Some("other"),
        (None, Some(true)) => Some("yarn"),
        (None, Some(false)) => Some("npm"),
        (None, None) => None,
    }
}

pub(super) fn status_class(status: i64) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

pub(super) fn field_type(t: &str) -> &'static str {
    const TYPES: &[&str] = &[
        "text",
        "richtext",
        "blocks",
        "email",
        "password",
        "number",
        "enumeration",
        "date",
        "media",
        "boolean",
        "json",
        "relation",
        "uid",
        "component",
        "dynamiczone",
        "customField",
    ];
    TYPES.iter().find(|k| **k == t).copied().unwrap_or("other")
}

/// Reduces an error text (a message, or up to 1 KB of a package manager's stderr) to a
/// bounded kind. The first matching rule wins; the text itself is never kept.
pub fn error_kind(text: &str) -> &'static str {
    const CODES: &[&str] = &[
        "ENOENT",
        "EACCES",
        "EPERM",
        "ENOSPC",
        "EEXIST",
        "EBUSY",
        "EMFILE",
        "ENOTEMPTY",
        "EINTEGRITY",
        "ERESOLVE",
        "ETARGET",
        "E404",
        "E401",
        "E403",
        "EBADENGINE",
    ];
    let lower = text.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
    if has(&["etimedout", "esockettimedout", "timed out", "timeout"]) {
        return "timeout";
    }
    if has(&[
        "econnrefused",
        "econnreset",
        "enotfound",
        "eai_again",
        "enetunreach",
        "ehostunreach",
        "getaddrinfo",
        "socket hang up",
        "network",
        "proxy",
        "self signed certificate",
        "unable_to_get_issuer_cert",
    ]) {
        return "network";
    }
    if let Some(code) = CODES.iter().find(|c| contains_word(text, c)) {
        return code;
    }
    if has(&["out of memory", "heap out of memory", "enomem"]) {
        return "out_of_memory";
    }
    if has(&["node-gyp", "gyp err", "prebuild-install", "compilation error"]) {
        return "native_build";
    }
    if has(&["unsupported engine", "engine \"node\" is incompatible", "the engine"]) {
        return "EBADENGINE";
    }
    if has(&["sigkill", "sigterm", "killed"]) {
        return "killed";
    }
    if text.trim().is_empty() { "unknown" } else { "other" }
}

/// Whether `word` appears in `text` delimited by non-alphanumerics (so `E404` is not found
/// inside `E4041`).
fn contains_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric()) && !after.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

pub(super) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._:+-".contains(&b)
}

pub(super) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME_LEN && s.bytes().all(is_token_byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environments_map_to_four() {
        let cases = [
            (None, Env::Development),
            (Some("development"), Env::Development),
            (Some("dev"), Env::Development),
            (Some("production"), Env::Production),
            (Some("prod"), Env::Production),
            (Some("staging"), Env::Staging),
            (Some("preprod"), Env::Staging),
            (Some("preview"), Env::Staging),
            (Some("test"), Env::Test),
            (Some("whatever"), Env::Development),
        ];
        for (e, want) in cases {
            assert_eq!(env_of(e), want, "{e:?}");
        }
    }

    #[test]
    fn os_versions_are_major() {
        let cases = [
            ("linux", "6.8.0-45-generic", "6.8"),
            ("linux", "6.18.44-fc-v657", "6.18"),
            ("macos", "23.4.0", "14"),
            ("macos", "25.0.0", "26"),
            ("macos", "19.6.0", "10.15"),
            ("windows", "10.0.22631", "11"),
            ("windows", "10.0.19045", "10"),
            ("linux", "garbage", ""),
        ];
        for (os, release, want) in cases {
            assert_eq!(os_version(os, release), want, "{os} {release}");
        }
    }

    #[test]
    fn error_texts_become_kinds() {
        let cases = [
            ("", "unknown"),
            ("npm error code EACCES\nnpm error syscall mkdir\nnpm error path /home/alice/app", "EACCES"),
            ("Error: ENOENT: no such file or directory, open '/Users/bob/x/package.json'", "ENOENT"),
            ("npm ERR! code ETIMEDOUT\nnpm ERR! network request to https://registry.npmjs.org failed", "timeout"),
            ("getaddrinfo ENOTFOUND registry.npmjs.org", "network"),
            ("npm error code ERESOLVE\nnpm error ERESOLVE unable to resolve dependency tree", "ERESOLVE"),
            ("npm ERR! code E404 Not Found - GET https://registry.npmjs.org/@strapi%2fnope", "E404"),
            ("gyp ERR! build error\nnode-gyp rebuild failed", "native_build"),
            ("FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory", "out_of_memory"),
            ("something odd happened to alice@example.com", "other"),
        ];
        for (text, want) in cases {
            assert_eq!(error_kind(text), want, "{text}");
        }
    }
}
