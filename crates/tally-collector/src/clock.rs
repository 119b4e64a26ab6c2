//! The collector's "now": the system clock, or a fixed instant for tests that need known
//! answers (the browser test starts `tally serve` with a hidden `--fixed-now`). It is what
//! ingest checks event ages and clock skew against and what relative ranges (`since=7d`)
//! end at; timings (health, metrics, timeouts) always use the system clock.

use chrono::{DateTime, Utc};

/// Where "now" comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// Always this instant.
    Fixed(DateTime<Utc>),
}

impl Clock {
    /// The current time.
    pub fn now(self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Fixed(at) => at,
        }
    }

    /// The current time in ms since the Unix epoch.
    pub fn now_ms(self) -> i64 {
        self.now().timestamp_millis()
    }
}
