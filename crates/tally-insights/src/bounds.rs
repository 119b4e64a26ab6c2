//! How large an insight request may be: [`QueryBounds`] per audience, in [`Bounds`], which
//! [`crate::InsightRequest::resolve`] enforces. Its tests are with `resolve`'s, in `request`.

use crate::{InsightError, Params};

/// How large a question may be: a request beyond a bound is refused (`InvalidParams`,
/// HTTP 400 `invalid_params`) rather than answered slowly or not at all. One value per
/// audience, in [`Bounds`]; the defaults are documented in `docs/limits.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryBounds {
    /// Longest range, in days (a range of whole days or not). A store builds about one row
    /// per day and group before anything is suppressed, so this bounds the work and the
    /// memory of one query.
    pub max_range_days: u32,
    /// Largest `window_days` of `active-trend` (each day of the range unions this many days).
    pub max_window_days: u32,
    /// Largest `weeks` of `retention` (one column per week for every cohort).
    pub max_weeks: u32,
    /// Largest `limit` of top-N insights.
    pub max_limit: usize,
    /// Whether the range must start and end at midnight UTC. Public answers must: a range
    /// of whole days is answered from the rollup's day indexes, and two public answers
    /// whose ranges differ by less than a day cannot be subtracted to reveal the events
    /// of a few hours.
    pub whole_days: bool,
}

/// The bounds of each audience, chosen by [`InsightRequest::resolve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Bounds of `public=true` requests: anyone may send them.
    pub public: QueryBounds,
    /// Bounds of private requests (admin token or the data dir): generous, but a typo must
    /// not ask for a hundred million days.
    pub private: QueryBounds,
}

impl QueryBounds {
    /// The default bounds of public requests: 400 days (a year and a month, the longest
    /// range a public dashboard shows), window 90 days, 52 weeks, 100 rows, whole days.
    pub const PUBLIC: QueryBounds =
        QueryBounds { max_range_days: 400, max_window_days: 90, max_weeks: 52, max_limit: 100, whole_days: true };
    /// The default bounds of private requests: ten years, window 366 days, 520 weeks,
    /// 10,000 rows, any instant.
    pub const PRIVATE: QueryBounds = QueryBounds {
        max_range_days: 3660,
        max_window_days: 366,
        max_weeks: 520,
        max_limit: 10_000,
        whole_days: false,
    };

    /// Refuses `params` when they exceed a bound, with what to ask instead.
    pub(crate) fn check(&self, params: &Params, audience: &str) -> Result<(), InsightError> {
        let bad = |m: String| Err(InsightError::InvalidParams(format!("{m} ({audience} requests)")));
        let day = tally_store::DAY_MS;
        if !(0..=MAX_TIME_MS).contains(&params.from_ms) || !(0..=MAX_TIME_MS).contains(&params.to_ms) {
            return bad("the range must lie between 1970-01-01 and 9999-12-31".into());
        }
        let days = (params.to_ms - params.from_ms + day - 1) / day;
        if days > i64::from(self.max_range_days) {
            return bad(format!("the range spans {days} days; ask for at most {} days", self.max_range_days));
        }
        if self.whole_days && (params.from_ms % day != 0 || params.to_ms % day != 0) {
            return bad("the range must cover whole UTC days: use `since` in days or weeks (30d, 4w) or dates \
                 for `from` and `to` (2026-11-01)"
                .into());
        }
        if params.window_days.is_some_and(|w| w > self.max_window_days) {
            return bad(format!("window_days is at most {}", self.max_window_days));
        }
        if params.weeks.is_some_and(|w| w > self.max_weeks) {
            return bad(format!("weeks is at most {}", self.max_weeks));
        }
        if params.limit > self.max_limit {
            return bad(format!("limit is at most {}", self.max_limit));
        }
        Ok(())
    }
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds { public: QueryBounds::PUBLIC, private: QueryBounds::PRIVATE }
    }
}

/// 9999-12-31T23:59:59.999Z, the last instant a date of four digits names; later times make
/// calendar arithmetic fail (a `since` of 10^11 days panicked the collector: issue 11).
pub(crate) const MAX_TIME_MS: i64 = 253_402_300_799_999;
