//! Install times: a `willInstallProjectDependencies` starts a timer per project and
//! machine, the matching `didInstallProjectDependencies` (or `didNot…`) reads it.

use std::collections::HashMap;
use std::sync::Mutex;

use uuid::Uuid;

/// How long a started install waits for its end before it is forgotten.
pub const INSTALL_TIMEOUT_MS: i64 = 2 * 60 * 60 * 1000;

/// Most installs waiting for their end at once; beyond it the oldest is forgotten.
pub const MAX_PENDING_INSTALLS: usize = 10_000;

/// Installs that started and have not ended yet, per project and machine, with the time
/// they started. Bounded: entries older than [`INSTALL_TIMEOUT_MS`] are forgotten, and at
/// [`MAX_PENDING_INSTALLS`] the oldest goes.
#[derive(Debug, Default)]
pub struct InstallTimes {
    pending: Mutex<HashMap<(Uuid, String), i64>>,
}

impl InstallTimes {
    /// No pending installs.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Uuid, String), i64>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes that `project` started installing on `machine` at `at_ms`. A second start
    /// replaces the first (the first install was abandoned).
    pub fn started(&self, project: Uuid, machine: &str, at_ms: i64) {
        let mut pending = self.lock();
        let key = (project, machine.to_string());
        if pending.len() >= MAX_PENDING_INSTALLS && !pending.contains_key(&key) {
            pending.retain(|_, started| at_ms - *started <= INSTALL_TIMEOUT_MS);
            if pending.len() >= MAX_PENDING_INSTALLS
                && let Some(oldest) = pending.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone())
            {
                pending.remove(&oldest);
            }
        }
        pending.insert(key, at_ms);
    }

    /// The install of `project` on `machine` ended at `at_ms`: its duration, when its start
    /// was seen less than [`INSTALL_TIMEOUT_MS`] ago.
    pub fn finished(&self, project: Uuid, machine: &str, at_ms: i64) -> Option<u64> {
        let started = self.lock().remove(&(project, machine.to_string()))?;
        let elapsed = at_ms - started;
        (0..=INSTALL_TIMEOUT_MS).contains(&elapsed).then_some(elapsed as u64)
    }

    /// How many installs are waiting for their end.
    pub fn pending(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_are_timed_and_bounded() {
        let t = InstallTimes::new();
        let p = Uuid::from_u128(7);
        assert_eq!(t.finished(p, "m", 10), None, "no start seen");
        t.started(p, "m", 1_000);
        assert_eq!(t.finished(p, "other-machine", 2_000), None);
        assert_eq!(t.finished(p, "m", 43_000), Some(42_000));
        assert_eq!(t.finished(p, "m", 44_000), None, "an end is used once");
        t.started(p, "m", 0);
        assert_eq!(t.finished(p, "m", INSTALL_TIMEOUT_MS + 1), None, "too late");
        for i in 0..(MAX_PENDING_INSTALLS as u128 + 10) {
            t.started(Uuid::from_u128(i + 100), "m", i as i64);
        }
        assert_eq!(t.pending(), MAX_PENDING_INSTALLS);
        assert_eq!(t.finished(Uuid::from_u128(100), "m", 20_000), None, "the oldest was evicted");
    }
}
