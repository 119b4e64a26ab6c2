//! `tally serve`'s flags for the collector's [`Limits`]: one flag per field, each unset flag
//! taking the default documented on the field (`crates/tally-collector/src/limits.rs`,
//! docs/limits.md). Durations are given in seconds (fractions allowed). The insight request
//! bounds (`tally_insights::Bounds`, one `QueryBounds` per audience) have one flag per
//! field and audience too, `--public-max-…` and `--private-max-…`; whether a public range
//! must cover whole days is no flag: it is what keeps two public answers from being
//! subtracted to isolate a few hours.

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
    /// Longest range of a public insight request, in days; beyond, 400 [default: 400].
    #[arg(long, value_name = "DAYS")]
    public_max_range_days: Option<u32>,
    /// Largest `window_days` of a public request [default: 90].
    #[arg(long, value_name = "DAYS")]
    public_max_window_days: Option<u32>,
    /// Largest `weeks` of a public request [default: 52].
    #[arg(long, value_name = "N")]
    public_max_weeks: Option<u32>,
    /// Largest `limit` of a public request [default: 100].
    #[arg(long, value_name = "N")]
    public_max_limit: Option<usize>,
    /// Longest range of a private insight request, in days [default: 3660].
    #[arg(long, value_name = "DAYS")]
    private_max_range_days: Option<u32>,
    /// Largest `window_days` of a private request [default: 366].
    #[arg(long, value_name = "DAYS")]
    private_max_window_days: Option<u32>,
    /// Largest `weeks` of a private request [default: 520].
    #[arg(long, value_name = "N")]
    private_max_weeks: Option<u32>,
    /// Largest `limit` of a private request [default: 10000].
    #[arg(long, value_name = "N")]
    private_max_limit: Option<usize>,
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
        l.query_bounds = self.query_bounds()?;
        Ok(l)
    }

    /// The insight request bounds: each flag given replaces its default. A bound of 0 would
    /// refuse every request, and a public bound above the private one would let anyone ask
    /// what an admin may not, so both are refused.
    fn query_bounds(&self) -> anyhow::Result<tally_insights::Bounds> {
        let mut b = tally_insights::Bounds::default();
        fn set<T: Copy + PartialEq + From<u8> + std::fmt::Display>(
            name: &str,
            flag: Option<T>,
            field: &mut T,
        ) -> anyhow::Result<()> {
            match flag {
                Some(v) if v == T::from(0) => bail!("--{name} must be at least 1"),
                Some(v) => *field = v,
                None => {}
            }
            Ok(())
        }
        for (audience, bounds, [range, window, weeks], limit) in [
            (
                "public",
                &mut b.public,
                [self.public_max_range_days, self.public_max_window_days, self.public_max_weeks],
                self.public_max_limit,
            ),
            (
                "private",
                &mut b.private,
                [self.private_max_range_days, self.private_max_window_days, self.private_max_weeks],
                self.private_max_limit,
            ),
        ] {
            set(&format!("{audience}-max-range-days"), range, &mut bounds.max_range_days)?;
            set(&format!("{audience}-max-window-days"), window, &mut bounds.max_window_days)?;
            set(&format!("{audience}-max-weeks"), weeks, &mut bounds.max_weeks)?;
            set(&format!("{audience}-max-limit"), limit, &mut bounds.max_limit)?;
        }
        let (public, private) = (&b.public, &b.private);
        for (name, public, private) in [
            ("max-range-days", public.max_range_days as usize, private.max_range_days as usize),
            ("max-window-days", public.max_window_days as usize, private.max_window_days as usize),
            ("max-weeks", public.max_weeks as usize, private.max_weeks as usize),
            ("max-limit", public.max_limit, private.max_limit),
        ] {
            if public > private {
                bail!(
                    "--public-{name} {public} is above --private-{name} {private}: a request without a token may not \
                     ask for more than one with it; lower the public bound or raise the private one"
                );
            }
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use tally_insights::QueryBounds;

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
            &["--public-max-range-days", "0"],
            &["--private-max-limit", "0"],
            &["--public-max-weeks", "-1"],
        ] {
            assert!(resolve(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn each_bound_flag_sets_its_field_and_the_others_keep_their_defaults() {
        let l = resolve(&[
            "--public-max-range-days",
            "30",
            "--public-max-limit",
            "10",
            "--private-max-window-days",
            "400",
            "--private-max-weeks",
            "60",
        ])
        .expect("flags");
        let (public, private) = (QueryBounds::PUBLIC, QueryBounds::PRIVATE);
        assert_eq!(l.query_bounds.public, QueryBounds { max_range_days: 30, max_limit: 10, ..public });
        assert_eq!(l.query_bounds.private, QueryBounds { max_window_days: 400, max_weeks: 60, ..private });
        // Raising a public bound to the private one is allowed; whole days stay required.
        let l = resolve(&["--public-max-range-days", "3660", "--public-max-limit", "10000"]).expect("flags");
        assert_eq!((l.query_bounds.public.max_range_days, l.query_bounds.public.max_limit), (3660, 10_000));
        assert!(l.query_bounds.public.whole_days);
    }

    #[test]
    fn a_public_bound_above_the_private_one_is_refused() {
        for (args, expected) in [
            (
                &["--public-max-range-days", "3661"][..],
                "--public-max-range-days 3661 is above --private-max-range-days 3660",
            ),
            (&["--private-max-window-days", "60"], "--public-max-window-days 90 is above --private-max-window-days 60"),
            (&["--public-max-weeks", "600", "--private-max-weeks", "599"], "--public-max-weeks 600 is above"),
            (&["--private-max-limit", "99"], "--public-max-limit 100 is above --private-max-limit 99"),
        ] {
            let message = resolve(args).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(message.contains(expected), "{args:?}: {message}");
        }
        assert!(resolve(&["--private-max-limit", "99", "--public-max-limit", "99"]).is_ok());
    }
}
