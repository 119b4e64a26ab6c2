//! `tally serve`'s flags for the collector's [`Limits`]: one flag per field, each unset flag
//! taking the default documented on the field (`crates/tally-collector/src/limits.rs`,
//! docs/limits.md). Durations are given in seconds (fractions allowed). The insight request
//! bounds (`tally_insights::Bounds`) keep their defaults.

use std::time::Duration;

use anyhow::bail;
use tally_collector::Limits;

#[derive(Debug, Default, clap::Args)]
#[command(next_help_heading = "Limits (defaults in docs/limits.md)")]
pub struct LimitFlags {
    /// Seconds a connection may take to send a request's headers [default: 10].
    #[arg(long, value_name = "SECS")]
    header_read_timeout: Option<f64>,
    /// Seconds a request may take to send its whole body; then 408 [default: 30].
    #[arg(long, value_name = "SECS")]
    body_read_timeout: Option<f64>,
    /// Open connections at most [default: 1024].
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Requests handled at once; beyond, 503 [default: 256].
    #[arg(long, value_name = "N")]
    max_requests_in_flight: Option<usize>,
    /// Requests per second one client may send, sustained; beyond, 429; 0 turns it off
    /// [default: 20].
    #[arg(long, value_name = "N")]
    rate_limit_per_second: Option<u32>,
    /// Requests one client may send at once before the rate applies [default: 200].
    #[arg(long, value_name = "N")]
    rate_limit_burst: Option<u32>,
    /// Clients whose rate is tracked at once [default: 65536].
    #[arg(long, value_name = "N")]
    max_tracked_clients: Option<usize>,
    /// Seconds one salt of the client keys lives [default: 86400].
    #[arg(long, value_name = "SECS")]
    client_salt_rotation: Option<f64>,
    /// Percent of every cardinality cap one client may fill per salt period; 0 turns it
    /// off [default: 10].
    #[arg(long, value_name = "PERCENT")]
    client_cap_share_percent: Option<usize>,
    /// Public insight queries running at once; beyond, 503 [default: 4].
    #[arg(long, value_name = "N")]
    max_public_queries: Option<usize>,
    /// Seconds an insight query may take before it is answered 503 [default: 30].
    #[arg(long, value_name = "SECS")]
    query_time_budget: Option<f64>,
    /// Seconds requests in flight get to finish at shutdown [default: 30].
    #[arg(long, value_name = "SECS")]
    shutdown_grace: Option<f64>,
}

impl LimitFlags {
    /// The limits: each flag given replaces its default.
    pub fn resolve(&self) -> anyhow::Result<Limits> {
        let mut l = Limits::default();
        let secs = |name: &str, v: Option<f64>, default: Duration| -> anyhow::Result<Duration> {
            match v {
                None => Ok(default),
                Some(s) if s.is_finite() && s > 0.0 && s < 1e9 => Ok(Duration::from_secs_f64(s)),
                Some(s) => bail!("--{name} {s}: give a number of seconds above 0"),
            }
        };
        let count = |name: &str, v: Option<usize>, default: usize| -> anyhow::Result<usize> {
            match v {
                Some(0) => bail!("--{name} must be at least 1"),
                Some(n) => Ok(n),
                None => Ok(default),
            }
        };
        l.header_read_timeout = secs("header-read-timeout", self.header_read_timeout, l.header_read_timeout)?;
        l.body_read_timeout = secs("body-read-timeout", self.body_read_timeout, l.body_read_timeout)?;
        l.max_connections = count("max-connections", self.max_connections, l.max_connections)?;
        l.max_requests_in_flight =
            count("max-requests-in-flight", self.max_requests_in_flight, l.max_requests_in_flight)?;
        l.rate_limit_per_second = self.rate_limit_per_second.unwrap_or(l.rate_limit_per_second);
        l.rate_limit_burst = self.rate_limit_burst.unwrap_or(l.rate_limit_burst);
        if l.rate_limit_burst == 0 {
            bail!("--rate-limit-burst must be at least 1 (turn the limit off with --rate-limit-per-second 0)");
        }
        l.max_tracked_clients = count("max-tracked-clients", self.max_tracked_clients, l.max_tracked_clients)?;
        l.client_salt_rotation = secs("client-salt-rotation", self.client_salt_rotation, l.client_salt_rotation)?;
        l.client_cap_share_percent = self.client_cap_share_percent.unwrap_or(l.client_cap_share_percent);
        if l.client_cap_share_percent > 100 {
            bail!("--client-cap-share-percent is a percentage: 0 to 100");
        }
        l.max_public_queries = count("max-public-queries", self.max_public_queries, l.max_public_queries)?;
        l.query_time_budget = secs("query-time-budget", self.query_time_budget, l.query_time_budget)?;
        l.shutdown_grace = secs("shutdown-grace", self.shutdown_grace, l.shutdown_grace)?;
        Ok(l)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        limits: LimitFlags,
    }

    fn resolve(args: &[&str]) -> anyhow::Result<Limits> {
        Cli::try_parse_from(std::iter::once("tally").chain(args.iter().copied()))?.limits.resolve()
    }

    #[test]
    fn no_flag_is_the_defaults_and_each_flag_sets_its_field() {
        assert_eq!(resolve(&[]).expect("defaults"), Limits::default());
        let l = resolve(&[
            "--header-read-timeout",
            "0.5",
            "--max-connections",
            "9",
            "--rate-limit-per-second",
            "0",
            "--client-cap-share-percent",
            "0",
            "--query-time-budget",
            "2",
        ])
        .expect("flags");
        assert_eq!(l.header_read_timeout, Duration::from_millis(500));
        assert_eq!((l.max_connections, l.rate_limit_per_second, l.client_cap_share_percent), (9, 0, 0));
        assert_eq!(l.query_time_budget, Duration::from_secs(2));
        assert_eq!(l.body_read_timeout, Limits::default().body_read_timeout);
    }

    #[test]
    fn values_that_would_disable_a_safety_limit_are_refused() {
        for args in [
            &["--max-connections", "0"][..],
            &["--body-read-timeout", "0"],
            &["--body-read-timeout", "-1"],
            &["--header-read-timeout", "inf"],
            &["--rate-limit-burst", "0"],
            &["--client-cap-share-percent", "101"],
            &["--max-public-queries", "0"],
        ] {
            assert!(resolve(args).is_err(), "{args:?}");
        }
    }
}
