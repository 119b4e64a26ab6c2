//! One insight request, as the CLI's flags (`tally insights NAME --env production`) and
//! the HTTP query string (`GET /v1/insights/{name}?env=production`) give it, resolved into
//! [`Params`] and an [`Audience`] by [`InsightRequest::resolve`], the one place that
//! applies defaults, turns `since` / `from` / `to` into a range, parses the baseline and
//! picks k and enforces the [`crate::QueryBounds`] of the audience. It also owns the parsers of
//! those values (durations, times, baselines).

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};
use tally_protocol::Env;
use tally_store::{Dimension, Filters, Period};

use crate::{Audience, Bounds, DEFAULT_LIMIT, InsightError, Params};

/// The range of a request that names none: today and the 29 days before.
const DEFAULT_SINCE: &str = "30d";

/// An insight request. The field names are the HTTP query parameters; the CLI flags are the
/// same names in kebab case (`group_by` is `--group-by`). The OpenAPI document of the
/// collector describes the parameters from this struct (`utoipa::IntoParams`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InsightRequest {
    /// The app (tool) whose events are counted.
    #[arg(long, default_value = "demo")]
    pub app: String,
    /// How far back from now (`90m`, `12h`, `30d`, `4w`; default 30d). Whole days end
    /// with today (`30d` is today and the 29 days before).
    #[arg(long)]
    pub since: Option<String>,
    /// Start of the range (`2026-11-01` or RFC 3339) instead of `since` ago.
    #[arg(long)]
    pub from: Option<String>,
    /// End of the range, exclusive (`2026-11-01` or RFC 3339); `since` counts back from it.
    #[arg(long)]
    pub to: Option<String>,
    /// Only this environment (development, staging, production, test).
    #[arg(long)]
    #[serde(default, deserialize_with = "parsed")]
    #[param(value_type = Option<String>)]
    pub env: Option<Env>,
    /// Only this OS family.
    #[arg(long)]
    pub os: Option<String>,
    /// Only this app version.
    #[arg(long)]
    pub app_version: Option<String>,
    /// Only events using this plugin.
    #[arg(long)]
    pub plugin: Option<String>,
    /// Most rows (plugins, error kinds) for top-N insights.
    #[arg(long, default_value_t = DEFAULT_LIMIT)]
    #[serde(default = "default_limit")]
    pub limit: usize,
    /// Time bucket for insights over time: day or week.
    #[arg(long)]
    #[serde(default, deserialize_with = "parsed")]
    #[param(value_type = Option<String>)]
    pub period: Option<Period>,
    /// A dimension to split by (env, os, arch, runtime, runtime_version, runtime_major,
    /// runtime_minor, app_version, ci, container, event, error_kind, plugin).
    #[arg(long)]
    #[serde(default, deserialize_with = "parsed")]
    #[param(value_type = Option<String>)]
    pub group_by: Option<Dimension>,
    /// Rolling window of active-trend, in days.
    #[arg(long)]
    pub window_days: Option<u32>,
    /// The timed event of setup-time (default project.created).
    #[arg(long)]
    pub event: Option<String>,
    /// co-usage: the plugin whose companions to list (default: matrix of the top plugins).
    #[arg(long)]
    pub focus: Option<String>,
    /// retention: weeks after the cohort (default 8).
    #[arg(long)]
    pub weeks: Option<u32>,
    /// runtime-versions: a baseline distribution file (JSON {"20": 0.41} or CSV
    /// version,share); over HTTP it is inline: `baseline=20:0.41,18:0.3`.
    // The request carries the baseline's text, in any form `parse_baseline` reads: the CLI
    // reads (and checks) the file and sends its text as is.
    #[arg(long, value_name = "FILE", value_parser = read_baseline)]
    pub baseline: Option<String>,
    /// Publishable output: hide rows with fewer than k distinct projects.
    #[arg(long)]
    #[serde(default)]
    pub public: bool,
    /// The k of --public. 0 (the default) means the collector's k (`tally serve --k`,
    /// default 5; reading the data dir, 5); a smaller k than that is raised to it, a larger
    /// one is used.
    #[arg(long, default_value_t = 0)]
    #[serde(default)]
    pub k: usize,
}

/// Reads a typed value with its `FromStr`, as clap does: a bad value is refused with the
/// same message on HTTP as on the CLI.
fn parsed<'de, D: Deserializer<'de>, T: FromStr<Err = String>>(d: D) -> Result<Option<T>, D::Error> {
    Option::<String>::deserialize(d)?.map(|s| s.parse().map_err(serde::de::Error::custom)).transpose()
}

fn default_limit() -> usize {
    DEFAULT_LIMIT
}

/// `--baseline FILE`: the file's text, once [`parse_baseline`] accepts it.
fn read_baseline(path: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("while reading {path}: {e}"))?;
    parse_baseline(&text).map_err(|e| e.to_string())?;
    Ok(text)
}

/// A request resolved: what to ask and for whom.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The insight's parameters.
    pub params: Params,
    /// Private, or public with the k to apply.
    pub audience: Audience,
}

impl InsightRequest {
    /// Resolves the request at `now_ms`. A public answer uses `server_k` (the collector's
    /// k) unless the request asks for a larger one: `k` may raise the threshold, never
    /// lower it, so `k = 0` means `server_k`. A request beyond the audience's `bounds` is
    /// refused.
    pub fn resolve(&self, now_ms: i64, server_k: usize, bounds: &Bounds) -> Result<Resolved, InsightError> {
        let since = parse_since(self.since.as_deref().unwrap_or(DEFAULT_SINCE))?;
        let time = |t: &Option<String>| t.as_deref().map(parse_time).transpose();
        let (from_ms, to_ms) = match (time(&self.from)?, time(&self.to)?) {
            (Some(from), Some(to)) => (from, to),
            (Some(from), None) => (from, range_until_now(now_ms, since).1),
            (None, Some(to)) => (to.saturating_sub(since), to),
            (None, None) => range_until_now(now_ms, since),
        };
        let params = Params {
            filters: Filters {
                env: self.env,
                os: self.os.clone(),
                app_version: self.app_version.clone(),
                plugin: self.plugin.clone(),
            },
            limit: self.limit,
            period: self.period,
            group_by: self.group_by,
            window_days: self.window_days,
            event: self.event.clone(),
            focus: self.focus.clone(),
            weeks: self.weeks,
            baseline: self.baseline.as_deref().map(parse_baseline).transpose()?,
            ..Params::new(self.app.clone(), from_ms, to_ms)
        };
        // At least 1: a row behind no project is never published, whatever the server says.
        let audience =
            if self.public { Audience::Public { k: self.k.max(server_k).max(1) } } else { Audience::Private };
        match audience {
            Audience::Public { .. } => bounds.public.check(&params, "public"),
            Audience::Private => bounds.private.check(&params, "private"),
        }?;
        Ok(Resolved { params, audience })
    }

    /// The request as HTTP query parameters, named and written as the collector reads them
    /// back (absent options are left out).
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        let serde_json::Value::Object(fields) = serde_json::to_value(self).expect("a request is plain data") else {
            unreachable!("a struct serializes as an object")
        };
        fields
            .into_iter()
            .filter_map(|(name, value)| match value {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some((name, s)),
                v => Some((name, v.to_string())),
            })
            .collect()
    }
}

/// Reads a baseline distribution (version → share) in any of three forms: JSON
/// `{"20": 0.41, ...}`, CSV lines `version,share` (a header line is skipped), or the inline
/// form of a query string, `20:0.41,18:0.3`. Shares may be fractions or percentages (then
/// divided by 100 when they sum to more than 1.5).
pub fn parse_baseline(text: &str) -> Result<BTreeMap<String, f64>, InsightError> {
    let bad = |m: String| InsightError::InvalidParams(format!("baseline: {m}"));
    let mut map: BTreeMap<String, f64> = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| bad(format!("not a JSON object of version -> share: {e}")))?
    } else if text.contains(':') {
        shares(text.split([',', '\n']), ':', "entry").map_err(bad)?
    } else {
        shares(text.lines(), ',', "line").map_err(bad)?
    };
    if map.values().any(|v| !v.is_finite() || *v < 0.0) {
        return Err(bad("shares must be non-negative numbers".into()));
    }
    if map.values().sum::<f64>() > 1.5 {
        for v in map.values_mut() {
            *v /= 100.0;
        }
    }
    Ok(map)
}

/// `version{separator}share` entries; a first entry whose share is not a number is a header.
fn shares<'a>(
    entries: impl Iterator<Item = &'a str>,
    separator: char,
    what: &str,
) -> Result<BTreeMap<String, f64>, String> {
    let mut map = BTreeMap::new();
    for (n, entry) in entries.enumerate().filter(|(_, e)| !e.trim().is_empty()) {
        let (version, share) =
            entry.split_once(separator).ok_or_else(|| format!("{what} {}: expected version{separator}share", n + 1))?;
        match share.trim().trim_end_matches('%').parse::<f64>() {
            Ok(s) => {
                map.insert(version.trim().to_string(), s);
            }
            Err(_) if n == 0 => continue,
            Err(_) => return Err(format!("{what} {}: {share:?} is not a number", n + 1)),
        }
    }
    Ok(map)
}

/// The range `[from, to)` of the last `since_ms` up to `now_ms`. A whole number of days
/// becomes whole UTC days ending with today (`30d` = today and the 29 days before), which is
/// what dashboards mean and what stores answer from their rollups; shorter spans (`12h`)
/// end exactly at `now_ms`.
pub fn range_until_now(now_ms: i64, since_ms: i64) -> (i64, i64) {
    let day = tally_store::DAY_MS;
    if since_ms % day == 0 {
        let to = (now_ms.div_euclid(day) + 1) * day;
        (to - since_ms, to)
    } else {
        (now_ms - since_ms, now_ms)
    }
}

/// Parses a duration such as `30d`, `12h`, `4w` or `90m` into milliseconds.
pub fn parse_since(s: &str) -> Result<i64, InsightError> {
    let bad = || {
        InsightError::InvalidParams(format!("{s:?} is not a duration; use a number and a unit: 90m, 12h, 30d or 4w"))
    };
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let unit_ms = match unit {
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => tally_store::DAY_MS,
        "w" => 7 * tally_store::DAY_MS,
        _ => return Err(bad()),
    };
    n.checked_mul(unit_ms).filter(|ms| *ms > 0).ok_or_else(bad)
}

/// Parses a point in time: RFC 3339 (`2026-11-01T12:00:00Z`) or a date (`2026-11-01`, at
/// 00:00 UTC), into ms since the Unix epoch.
pub fn parse_time(s: &str) -> Result<i64, InsightError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc().timestamp_millis())
        .map_err(|_| {
            InsightError::InvalidParams(format!("{s:?} is not a time; use 2026-11-01 or 2026-11-01T12:00:00Z"))
        })
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use tally_store::DAY_MS;
    use tally_store::conformance::T0;

    use super::*;
    use crate::DEFAULT_K;

    /// 2026-10-06 01:00 UTC.
    const NOW: i64 = T0 + 5 * DAY_MS + 3_600_000;
    /// The end of today (NOW's day).
    const END: i64 = T0 + 6 * DAY_MS;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        request: InsightRequest,
    }

    fn flags(args: &[&str]) -> Result<InsightRequest, clap::Error> {
        Cli::try_parse_from(std::iter::once("tally").chain(args.iter().copied())).map(|c| c.request)
    }

    fn request(args: &[&str]) -> InsightRequest {
        flags(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    /// What a request without flags resolves to: app demo, the last 30 whole days.
    fn params() -> Params {
        Params::new("demo", END - 30 * DAY_MS, END)
    }

    #[test]
    fn requests_resolve_into_params_and_audience() {
        let private = Audience::Private;
        let public = |k| Audience::Public { k };
        let cases: Vec<(&[&str], Params, Audience)> = vec![
            (&[], params(), private),
            (&["--app", "x", "--since", "7d"], Params::new("x", END - 7 * DAY_MS, END), private),
            (&["--since", "12h"], Params::new("demo", NOW - 12 * 3_600_000, NOW), private),
            (&["--since", "2w"], Params::new("demo", END - 14 * DAY_MS, END), private),
            (&["--from", "2026-10-02"], Params::new("demo", T0 + DAY_MS, END), private),
            (
                &["--from", "2026-10-02", "--to", "2026-10-04T12:00:00Z", "--since", "1d"],
                Params::new("demo", T0 + DAY_MS, T0 + 3 * DAY_MS + DAY_MS / 2),
                private,
            ),
            (&["--to", "2026-10-04", "--since", "2d"], Params::new("demo", T0 + DAY_MS, T0 + 3 * DAY_MS), private),
            (&["--to", "2026-10-04"], Params::new("demo", T0 + 3 * DAY_MS - 30 * DAY_MS, T0 + 3 * DAY_MS), private),
            (
                &["--env", "production", "--os", "linux", "--app-version", "2.1.0", "--plugin", "seo"],
                Params {
                    filters: Filters {
                        env: Some(Env::Production),
                        os: Some("linux".into()),
                        app_version: Some("2.1.0".into()),
                        plugin: Some("seo".into()),
                    },
                    ..params()
                },
                private,
            ),
            (
                &[
                    "--limit",
                    "3",
                    "--period",
                    "day",
                    "--group-by",
                    "runtime_major",
                    "--window-days",
                    "7",
                    "--event",
                    "build.done",
                    "--focus",
                    "seo",
                    "--weeks",
                    "4",
                ],
                Params {
                    limit: 3,
                    period: Some(Period::Day),
                    group_by: Some(Dimension::RuntimeMajor),
                    window_days: Some(7),
                    event: Some("build.done".into()),
                    focus: Some("seo".into()),
                    weeks: Some(4),
                    ..params()
                },
                private,
            ),
            (&["--period", "week"], Params { period: Some(Period::Week), ..params() }, private),
            // k applies to public answers only, and never goes below the server's.
            (&["--k", "9"], params(), private),
            (&["--public"], params(), public(DEFAULT_K)),
            (&["--public", "--k", "0"], params(), public(DEFAULT_K)),
            (&["--public", "--k", "1"], params(), public(DEFAULT_K)),
            (&["--public", "--k", "9"], params(), public(9)),
            (&["--public", "--k", "18446744073709551615"], params(), public(usize::MAX)),
        ];
        for (args, params, audience) in cases {
            let resolved =
                request(args).resolve(NOW, DEFAULT_K, &Bounds::default()).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert_eq!(resolved, Resolved { params, audience }, "{args:?}");
        }
        // A server with k = 0 still publishes no row behind zero projects.
        assert_eq!(request(&["--public"]).resolve(NOW, 0, &Bounds::default()).expect("resolves").audience, public(1));
    }

    #[test]
    fn bad_requests_are_refused_with_what_to_do() {
        // Typed values are checked while the flags (or the query string) are read.
        for args in [
            &["--env", "prod"][..],
            &["--period", "month"],
            &["--group-by", "colour"],
            &["--k", "-1"],
            &["--limit", "many"],
            &["--baseline", "/nonexistent/baseline.csv"],
        ] {
            assert!(flags(args).is_err(), "{args:?}");
        }
        let message = flags(&["--env", "prod"]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("\"prod\" is not one of development, staging, production, test"), "{message}");
        // The rest when the request is resolved.
        let with_baseline = |b: &str| InsightRequest { baseline: Some(b.into()), ..request(&[]) };
        for (req, expected) in [
            (request(&["--since", "soon"]), "\"soon\" is not a duration"),
            (request(&["--since", "0d"]), "\"0d\" is not a duration"),
            (request(&["--from", "yesterday"]), "\"yesterday\" is not a time"),
            (request(&["--to", "2026-13-01"]), "\"2026-13-01\" is not a time"),
            (with_baseline("20:0.4,18"), "baseline: entry 2: expected version:share"),
            (with_baseline("20,0.4\n18,x"), "baseline: line 2: \"x\" is not a number"),
        ] {
            match req.resolve(NOW, DEFAULT_K, &Bounds::default()) {
                Err(InsightError::InvalidParams(m)) => assert!(m.contains(expected), "{m:?} lacks {expected:?}"),
                other => panic!("{req:?}: {other:?}"),
            }
        }
    }

    /// Resolves `args` with the default bounds and returns the refusal's message.
    fn refusal(args: &[&str]) -> String {
        match request(args).resolve(NOW, DEFAULT_K, &Bounds::default()) {
            Err(InsightError::InvalidParams(m)) => m,
            other => panic!("{args:?} was not refused: {other:?}"),
        }
    }

    #[test]
    fn remote_panic_on_a_since_of_a_hundred_billion_days_is_a_refusal() {
        // `since=100000000000d` overflowed calendar arithmetic in the store ("time in range").
        for args in [&["--public", "--since", "100000000000d"][..], &["--since", "100000000000d"]] {
            assert!(refusal(args).contains("between 1970-01-01 and 9999-12-31"), "{args:?}");
        }
        assert!(refusal(&["--from", "9999-12-31", "--to", "+10000-01-02T00:00:00Z"]).contains("is not a time"));
        assert!(request(&["--since", "99999999999999999999d"]).resolve(NOW, DEFAULT_K, &Bounds::default()).is_err());
    }

    #[test]
    fn public_queries_are_bounded() {
        for (args, expected) in [
            (
                &["--public", "--since", "401d"][..],
                "the range spans 401 days; ask for at most 400 days (public requests)",
            ),
            (&["--public", "--window-days", "91"], "window_days is at most 90 (public requests)"),
            (&["--public", "--weeks", "53"], "weeks is at most 52 (public requests)"),
            (&["--public", "--limit", "101"], "limit is at most 100 (public requests)"),
            (&["--since", "3661d"], "the range spans 3661 days; ask for at most 3660 days (private requests)"),
            (&["--window-days", "367"], "window_days is at most 366 (private requests)"),
            (&["--weeks", "521"], "weeks is at most 520 (private requests)"),
            (&["--limit", "10001"], "limit is at most 10000 (private requests)"),
        ] {
            assert_eq!(refusal(args), expected, "{args:?}");
        }
        // At the bounds, requests resolve.
        for args in [
            &["--public", "--since", "400d", "--window-days", "90", "--weeks", "52", "--limit", "100"][..],
            &["--since", "3660d", "--window-days", "366", "--weeks", "520", "--limit", "10000"],
        ] {
            assert!(request(args).resolve(NOW, DEFAULT_K, &Bounds::default()).is_ok(), "{args:?}");
        }
    }

    #[test]
    fn public_ranges_not_on_midnight_are_refused() {
        // Refused, not rounded: a rounded range would answer a question nobody asked.
        for args in [
            &["--public", "--since", "12h"][..],
            &["--public", "--from", "2026-10-01T06:00:00Z", "--to", "2026-10-03"],
            &["--public", "--from", "2026-10-01", "--to", "2026-10-03T00:00:01Z"],
        ] {
            assert!(refusal(args).contains("the range must cover whole UTC days"), "{args:?}");
        }
        assert!(
            request(&["--public", "--from", "2026-10-01", "--to", "2026-10-03"])
                .resolve(NOW, DEFAULT_K, &Bounds::default())
                .is_ok()
        );
        // Private requests may ask for any instant.
        assert!(request(&["--since", "12h"]).resolve(NOW, DEFAULT_K, &Bounds::default()).is_ok());
    }

    #[test]
    fn baselines_read_in_every_form() {
        let expected = BTreeMap::from([("18".to_string(), 0.2), ("20".to_string(), 0.35), ("22".to_string(), 0.45)]);
        for text in [
            "{\"22\": 0.45, \"20\": 0.35, \"18\": 0.2}",
            "version,share\n22,45\n20,35%\n18,20\n",
            "22,0.45\r\n20,0.35\r\n18,0.2\r\n",
            "22:0.45,20:0.35,18:0.2",
            "22:45%,20:35%,18:20%",
        ] {
            assert_eq!(parse_baseline(text).expect(text), expected, "{text:?}");
        }
        for bad in ["{\"20\": -1}", "[0.4]", "20,abc\n18,x", "20:0.4,18:x", "20:0.4,18"] {
            assert!(parse_baseline(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn query_pairs_name_the_http_parameters() {
        let mut r =
            request(&["--app", "x", "--env", "production", "--group-by", "runtime_major", "--public", "--k", "9"]);
        r.baseline = Some("22:0.45,20:0.35".into());
        let pairs: BTreeMap<String, String> = r.query_pairs().into_iter().collect();
        let expected: BTreeMap<String, String> = [
            ("app", "x"),
            ("env", "production"),
            ("group_by", "runtime_major"),
            ("limit", "20"),
            ("baseline", "22:0.45,20:0.35"),
            ("public", "true"),
            ("k", "9"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(pairs, expected);
    }

    #[test]
    fn whole_days_end_with_today() {
        let now = T0 + 5 * DAY_MS + 3_600_000;
        assert_eq!(range_until_now(now, 7 * DAY_MS), (T0 - DAY_MS, T0 + 6 * DAY_MS));
        assert_eq!(range_until_now(now, 12 * 3_600_000), (now - 12 * 3_600_000, now));
    }

    #[test]
    fn durations_and_times_parse() {
        assert_eq!(parse_since("30d").expect("30d"), 30 * DAY_MS);
        assert_eq!(parse_since("2w").expect("2w"), 14 * DAY_MS);
        assert_eq!(parse_since("90m").expect("90m"), 90 * 60_000);
        for bad in ["", "d", "30", "30x", "-3d", "0d"] {
            assert!(parse_since(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_time("2026-10-01").expect("date"), T0);
        assert_eq!(parse_time("2026-10-01T00:00:00Z").expect("rfc3339"), T0);
        assert!(parse_time("yesterday").is_err());
    }
}
