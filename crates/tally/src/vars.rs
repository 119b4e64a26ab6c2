//! Where the SDK reads environment variables from: the process, or (in tests) a fixed map.

use std::collections::BTreeMap;
use std::sync::Arc;

/// The environment as the SDK sees it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Vars(Option<Arc<BTreeMap<String, String>>>);

impl Vars {
    /// The real process environment.
    pub(crate) fn process() -> Vars {
        Vars(None)
    }

    /// A fixed environment; the process environment is not read at all.
    #[cfg_attr(not(any(test, feature = "testing")), allow(dead_code))]
    pub(crate) fn fixed(map: BTreeMap<String, String>) -> Vars {
        Vars(Some(Arc::new(map)))
    }

    /// The value of `name`, when set and valid UTF-8.
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        match &self.0 {
            None => std::env::var(name).ok(),
            Some(map) => map.get(name).cloned(),
        }
    }

    /// Whether `name` is set to a value that counts as "yes", see [`is_yes`].
    pub(crate) fn flag(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| is_yes(&v))
    }
}

/// How opt-out variables (`DO_NOT_TRACK`, `<APP>_TELEMETRY_DISABLED`, `<APP>_TELEMETRY_DEBUG`)
/// are read: any value counts as "yes" except, ignoring case and surrounding spaces, the
/// empty string, `0`, `false`, `no`, `off` and `n`. A person who types `DO_NOT_TRACK=yes`
/// or `=TRUE` or `=2` means it, so anything unusual errs on the side of not tracking.
pub(crate) fn is_yes(value: &str) -> bool {
    let v = value.trim().to_ascii_lowercase();
    !matches!(v.as_str(), "" | "0" | "false" | "no" | "off" | "n")
}

/// The prefix of the app's own variables: `my-tool` -> `MY_TOOL`.
pub(crate) fn app_prefix(app: &str) -> String {
    app.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yes_values() {
        for v in ["1", "true", "TRUE", " yes ", "on", "y", "2", "anything"] {
            assert!(is_yes(v), "{v:?}");
        }
        for v in ["", " ", "0", "false", "False", "no", "off", "N"] {
            assert!(!is_yes(v), "{v:?}");
        }
    }

    #[test]
    fn prefixes() {
        assert_eq!(app_prefix("strapi"), "STRAPI");
        assert_eq!(app_prefix("my-tool.x"), "MY_TOOL_X");
    }
}
