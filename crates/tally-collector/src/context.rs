//! What of a batch's context is stored.
//!
//! To the protocol a context field is 64 bytes of `[A-Za-z0-9._:+-]`, so a misconfigured
//! or hostile client can put an IP address, a token or a hostname in `app_version` or
//! `os`, and each distinct value costs the rollup a dictionary entry and its indexes. So
//! before any row is built, every stored string field of the context ([`ContextField`]):
//!
//! - becomes [`scrub::REDACTED`] when the scrubber finds personal data in it (also once
//!   upper-cased, for a lower-cased AWS key id), or when it does not have its field's shape
//!   ([`fits`]): versions start with a digit, names are a letter then letters, digits, `_`
//!   or `-` (no dot, so no hostname or address fits);
//! - is capped: once an app has [`MAX_VERSIONS`] or [`MAX_NAMES`] distinct values of a
//!   field stored, a new one is stored as `other`, like a property over its cap (and one
//!   client fills at most its share of a cap per day: `ingest::Caps`).
//!
//! The event is always kept: only the value is replaced. Empty optional fields stay empty.

use tally_protocol::{Context, scrub};
use tally_store::ContextField;

use crate::client::ClientKey;
use crate::ingest::Caps;
use crate::metrics::Metrics;

/// Distinct versions kept per field and app: an app released every day stays under it for
/// years.
pub const MAX_VERSIONS: usize = 1000;

/// Distinct names (OS families, architectures, runtimes, CI vendors) kept per field and
/// app: there are a few dozen of each.
pub const MAX_NAMES: usize = 100;

/// What a missing value is sent as (by the SDK and the Strapi receiver); fits every field.
const UNKNOWN: &str = "unknown";

/// Longest name kept.
const MAX_NAME_BYTES: usize = 32;

/// Scrubs, shape-checks and caps every string field of `ctx` in place.
pub fn sanitize(ctx: &mut Context, caps: &Caps, metrics: &Metrics, client: Option<ClientKey>) {
    let app = ctx.app.clone();
    for field in ContextField::ALL {
        let Some(value) = value_mut(ctx, field) else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        if is_sensitive(value) || !fits(field, value) {
            *value = scrub::REDACTED.to_string();
            metrics.replaced("redacted");
        }
        if caps.cap_context(&app, field, value, max_distinct(field), client) {
            metrics.replaced("cap");
        }
    }
}

/// Whether `value` has the shape of `field`. A version (`app_version`, `os_version`,
/// `runtime_version`) is a digit, after an optional `v`, then letters, digits and `._+-`,
/// no `:` (`20.11.1`, `v1.2.0-rc.1+build.5`, `14`). A name (`os`, `arch`, `runtime`,
/// `ci`) is a letter, then letters, digits, `_` and `-`, at most 32 bytes (`linux`,
/// `x86_64`, `github_actions`). `unknown` fits every field.
pub fn fits(field: ContextField, value: &str) -> bool {
    if value == UNKNOWN {
        return true;
    }
    if is_version_field(field) {
        let rest = value.strip_prefix(['v', 'V']).unwrap_or(value);
        rest.starts_with(|c: char| c.is_ascii_digit())
            && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
    } else {
        value.len() <= MAX_NAME_BYTES
            && value.starts_with(|c: char| c.is_ascii_alphabetic())
            && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
    }
}

/// Whether the scrubber finds personal data in `value` as sent or upper-cased: a token the
/// scrubber knows by its capitals (an AWS key id) is still a secret once a client, or the
/// Strapi receiver's normalisation of OS and CI names, has lower-cased it.
fn is_sensitive(value: &str) -> bool {
    scrub::is_sensitive(value) || scrub::is_sensitive(&value.to_ascii_uppercase())
}

fn is_version_field(field: ContextField) -> bool {
    matches!(field, ContextField::AppVersion | ContextField::OsVersion | ContextField::RuntimeVersion)
}

fn max_distinct(field: ContextField) -> usize {
    if is_version_field(field) { MAX_VERSIONS } else { MAX_NAMES }
}

fn value_mut(ctx: &mut Context, field: ContextField) -> Option<&mut String> {
    match field {
        ContextField::AppVersion => Some(&mut ctx.app_version),
        ContextField::Os => Some(&mut ctx.os),
        ContextField::OsVersion => Some(&mut ctx.os_version),
        ContextField::Arch => Some(&mut ctx.arch),
        ContextField::Runtime => Some(&mut ctx.runtime),
        ContextField::RuntimeVersion => Some(&mut ctx.runtime_version),
        ContextField::Ci => ctx.ci.as_mut(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fit_their_field_shape() {
        use ContextField::*;
        let cases = [
            (AppVersion, "2.1.0", true),
            (AppVersion, "v1.2.0-rc.1+build.5", true),
            (AppVersion, "2024.10", true),
            (AppVersion, "unknown", true),
            (AppVersion, "dev", false),
            (AppVersion, "alice-macbook.local", false),
            (AppVersion, "AKIAIOSFODNN7EXAMPLE", false),
            (AppVersion, "2001:db8::1", false),
            (OsVersion, "14", true),
            (OsVersion, "6.8", true),
            (RuntimeVersion, "20.11.1", true),
            (RuntimeVersion, "xoxb-123456789012-abcdef", false),
            (Os, "linux", true),
            (Os, "unknown", true),
            (Os, "alice-macbook.local", false),
            (Os, "10.0.0.12", false),
            (Os, "fe80::1", false),
            (Arch, "x86_64", true),
            (Arch, "aarch64", true),
            (Arch, "64bit", false),
            (Runtime, "node", true),
            (Ci, "github_actions", true),
            (Ci, "a-very-long-ci-vendor-name-that-goes-on", false),
        ];
        for (field, value, want) in cases {
            assert_eq!(fits(field, value), want, "{} = {value:?}", field.name());
        }
    }
}
