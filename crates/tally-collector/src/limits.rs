//! The limits a collector facing the internet needs, each a setting with a safe default, in
//! one place. [`crate::serve`] enforces the connection and request limits; the insight
//! handler enforces the query limits. `docs/limits.md` lists each with the reason for its
//! default.

use std::time::Duration;

/// Limits of the serving loop and of insight queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Time a connection may take to send a request's headers, counted from when the
    /// collector starts waiting for them (an idle keep-alive connection included); then it
    /// is closed. Default 10 s.
    pub header_read_timeout: Duration,
    /// Time a request may take to send its whole body, counted from its headers; a body
    /// not complete by then fails to read (the request is answered with an error and the
    /// connection closed). A batch is at most 1 MiB, so the default 30 s allows 35 KB/s.
    pub body_read_timeout: Duration,
    /// Open connections at most; a connection accepted beyond it is closed at once. Each
    /// costs a descriptor and a task, so the default 1,024 stays well below a typical
    /// descriptor limit.
    pub max_connections: usize,
    /// Requests being handled at once (reading, decoding, waiting for the writer or a
    /// query); beyond it, 503 with `Retry-After`. Decoding a batch takes up to 8 MiB, so the
    /// default 256 bounds that memory near 2 GiB in the worst case.
    pub max_requests_in_flight: usize,
    /// Requests per second one client may send, sustained; beyond it (and its burst), 429
    /// with `Retry-After`. A client is a keyed hash of its address ([`crate::ClientKey`]).
    /// 0 turns the limit off. Default 20: an SDK sends a batch every few seconds at most, and
    /// a NAT of a few hundred developers stays below it.
    pub rate_limit_per_second: u32,
    /// Requests one client may send at once before the rate applies. Default 200.
    pub rate_limit_burst: u32,
    /// Clients whose request rate is tracked at once; when full, idle clients are forgotten
    /// and new ones share one bucket until room is made. Default 65,536 (about 3 MiB).
    pub max_tracked_clients: usize,
    /// How long one salt of the client keys lives (then every key changes). Default a day.
    pub client_salt_rotation: Duration,
    /// Share of every cardinality cap (plugins, string props, context fields) one client may
    /// fill per salt period, in percent (`ingest::Caps`); its further new values become
    /// `other`. 0 turns the share off. Default 10: a cap of 40 takes ten clients to fill.
    pub client_cap_share_percent: usize,
    /// Public insight queries running at once; beyond it, 503 with `Retry-After`. A query
    /// holds a blocking thread and a core, so the default is 4.
    pub max_public_queries: usize,
    /// Time an insight query may take before the request is answered 503. The blocking work
    /// cannot be cancelled: it runs to its end (and, for a public query, keeps its slot of
    /// `max_public_queries` until then). Default 30 s.
    pub query_time_budget: Duration,
    /// How large an insight request may be, per audience (range, `window_days`, `weeks`,
    /// `limit`, whole days for public answers).
    pub query_bounds: tally_insights::Bounds,
    /// At shutdown, time given to requests in flight to finish before the serving loop
    /// returns. Default 30 s.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_requests_in_flight: 256,
            rate_limit_per_second: 20,
            rate_limit_burst: 200,
            max_tracked_clients: 65_536,
            client_salt_rotation: Duration::from_secs(24 * 60 * 60),
            client_cap_share_percent: 10,
            max_public_queries: 4,
            query_time_budget: Duration::from_secs(30),
            query_bounds: tally_insights::Bounds::default(),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let l = Limits::default();
        assert_eq!(
            (l.header_read_timeout, l.body_read_timeout, l.query_time_budget, l.shutdown_grace),
            (Duration::from_secs(10), Duration::from_secs(30), Duration::from_secs(30), Duration::from_secs(30))
        );
        assert_eq!((l.max_connections, l.max_requests_in_flight, l.max_public_queries), (1024, 256, 4));
        assert_eq!((l.rate_limit_per_second, l.rate_limit_burst, l.max_tracked_clients), (20, 200, 65_536));
        assert_eq!((l.client_salt_rotation, l.client_cap_share_percent), (Duration::from_secs(86_400), 10));
        assert_eq!(l.query_bounds.public, tally_insights::QueryBounds::PUBLIC);
        assert_eq!(l.query_bounds.private, tally_insights::QueryBounds::PRIVATE);
    }
}
