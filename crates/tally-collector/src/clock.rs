//! The collector's "now": the system clock, or for tests a fixed instant (the browser test
//! starts `tally serve` with a hidden `--fixed-now`) or the system clock moved by an offset
//! the test changes while the collector runs (a resend "20 days later"). It is what ingest
//! stamps receipt times with and checks event ages, clock skew and the dedupe window
//! against, what the retention schedule cuts at and what relative ranges (`since=7d`) end
//! at; timings (health, metrics, timeouts) always use the system clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};

/// Where "now" comes from.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// Always this instant.
    Fixed(DateTime<Utc>),
    /// The system clock plus this many milliseconds (changed by the test that holds it).
    Offset(Arc<AtomicI64>),
}

impl Clock {
    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Fixed(at) => *at,
            Clock::Offset(ms) => Utc::now() + chrono::Duration::milliseconds(ms.load(Ordering::Relaxed)),
        }
    }

    /// The current time in ms since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }
}
