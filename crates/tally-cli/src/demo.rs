//! Synthetic telemetry for `tally serve --demo`: 90 days of a fictional framework's usage,
//! sent through the collector's real HTTP ingest path.
//!
//! The shape is what a maintainer would see for a popular tool: steady project growth,
//! many projects that are tried once and abandoned, a long tail of plugins with a
//! power-law popularity and plugins that are used together, laptops on three OSes in
//! development, Linux servers in production, CI runners sharing one id per vendor,
//! releases adopted over days to weeks, Node.js versions shifting over time, install times
//! that depend on the package manager (and regress in one release), and bounded error
//! kinds. The generator is seeded, so every demo is the same.
//!
//! One file (about 600 lines): the distributions are tuned together, and reading them in
//! one place is how their interplay (growth, churn, releases) is kept plausible.

use std::io::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tally_protocol::{Batch, Context, Env, Event, PropValue};
use uuid::Uuid;

const DAYS: i64 = 90;
const DAY_MS: i64 = tally_store::DAY_MS;
/// Concurrent senders: the demo stands for thousands of machines sending at once, and the
/// collector acknowledges every request waiting on one log fsync together (group commit),
/// so more senders fill the demo faster (4: 10.6-16.2 s on the 2-core VM; docs/benchmarks.md).
const SENDERS: usize = 16;

/// Plugins in popularity order; the weight of the n-th is about 1/n^1.1.
const PLUGINS: &[&str] = &[
    "users-permissions",
    "i18n",
    "seo",
    "graphql",
    "upload-s3",
    "email-sendgrid",
    "sentry",
    "documentation",
    "color-picker",
    "apollo-sandbox",
    "meilisearch",
    "stripe",
    "cart",
    "webhooks-plus",
    "redis-cache",
    "cloudinary",
    "slugify",
    "import-export",
    "config-sync",
    "navigation",
    "comments",
    "ckeditor",
    "publisher",
    "transformer",
    "rate-limit",
    "oauth-github",
    "oauth-google",
    "analytics-ga",
    "sitemap",
    "preview-button",
    "drag-drop-order",
    "multi-tenant",
    "field-encryption",
    "audit-log",
    "backup-s3",
    "algolia",
    "mux-video",
    "ratings",
    "email-designer",
    "content-versioning",
    "scheduler",
    "wysiwyg-markdown",
    "menus",
    "tags",
    "translate-deepl",
    "healthcheck",
    "opentelemetry",
    "csv-export",
    "geo-fields",
    "qr-codes",
];

/// Plugins that pull in others: (plugin, companion, probability).
const COMPANIONS: &[(&str, &str, f64)] = &[
    ("graphql", "apollo-sandbox", 0.65),
    ("i18n", "seo", 0.45),
    ("i18n", "translate-deepl", 0.2),
    ("stripe", "cart", 0.8),
    ("seo", "sitemap", 0.5),
    ("upload-s3", "backup-s3", 0.25),
    ("meilisearch", "slugify", 0.3),
    ("sentry", "opentelemetry", 0.3),
    ("oauth-github", "oauth-google", 0.6),
];

const TEMPLATES: &[(&str, f64)] =
    &[("blank", 0.35), ("blog", 0.2), ("ecommerce", 0.15), ("portfolio", 0.1), ("saas", 0.12), ("docs", 0.08)];
const DATABASES: &[(&str, f64)] = &[("sqlite", 0.45), ("postgres", 0.35), ("mysql", 0.15), ("mariadb", 0.05)];
const PACKAGE_MANAGERS: &[(&str, f64, f64)] =
    &[("npm", 0.5, 62_000.0), ("yarn", 0.2, 48_000.0), ("pnpm", 0.22, 27_000.0), ("bun", 0.08, 11_000.0)];
const COMMANDS: &[(&str, f64)] = &[
    ("develop", 0.45),
    ("build", 0.15),
    ("start", 0.1),
    ("generate", 0.1),
    ("console", 0.03),
    ("routes:list", 0.03),
    ("plugin:build", 0.04),
    ("ts:generate-types", 0.05),
    ("export", 0.02),
    ("import", 0.02),
    ("upgrade", 0.01),
];
const ERRORS: &[(&str, f64)] = &[
    ("DB_CONNECTION_REFUSED", 0.22),
    ("PORT_IN_USE", 0.18),
    ("PLUGIN_LOAD_FAILED", 0.14),
    ("TS_COMPILE", 0.12),
    ("ENOENT_CONFIG", 0.1),
    ("EACCES", 0.08),
    ("OUT_OF_MEMORY", 0.06),
    ("MIGRATION_FAILED", 0.06),
    ("INVALID_LICENSE", 0.04),
];
/// Releases: version and the day (relative to the window start) it shipped.
const RELEASES: &[(&str, i64)] =
    &[("2.0.3", -60), ("2.1.0", 8), ("2.2.0", 27), ("2.3.0", 45), ("2.4.0", 62), ("2.4.1", 69), ("2.5.0", 83)];
/// Node.js versions with a weight that shifts from `early` to `late` over the window.
const NODE: &[(&str, f64, f64)] = &[
    ("16.20.2", 0.04, 0.01),
    ("18.20.4", 0.28, 0.14),
    ("20.11.1", 0.22, 0.14),
    ("20.18.0", 0.16, 0.2),
    ("22.9.0", 0.2, 0.18),
    ("22.11.0", 0.1, 0.23),
    ("24.1.0", 0.0, 0.1),
];
const CI_VENDORS: &[(&str, f64)] = &[("github_actions", 0.7), ("gitlab", 0.2), ("circleci", 0.1)];

fn pick<'a>(rng: &mut StdRng, items: &[(&'a str, f64)]) -> &'a str {
    let total: f64 = items.iter().map(|i| i.1).sum();
    let mut x = rng.random::<f64>() * total;
    for (name, w) in items {
        if x < *w {
            return name;
        }
        x -= w;
    }
    items[items.len() - 1].0
}

fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn uuid4(rng: &mut StdRng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

fn hex_id(rng: &mut StdRng) -> String {
    let bytes: [u8; 32] = rng.random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Role {
    Laptop,
    Ci,
    Staging,
    Production,
}

struct Machine {
    id: String,
    role: Role,
    os: &'static str,
    os_version: &'static str,
    arch: &'static str,
    node: String,
    ci: Option<String>,
    container: bool,
    /// Days after a release before this machine runs it.
    upgrade_lag: i64,
    cpu: &'static str,
    memory: &'static str,
}

fn machine(rng: &mut StdRng, role: Role, day: i64, ci_vendor: Option<&str>) -> Machine {
    let t = (day as f64 / DAYS as f64).clamp(0.0, 1.0);
    let node_weights: Vec<(&str, f64)> = NODE.iter().map(|(v, a, b)| (*v, a + (b - a) * t)).collect();
    let node = pick(rng, &node_weights).to_string();
    let (os, os_version, arch) = match role {
        Role::Laptop => match pick(rng, &[("macos", 0.45), ("windows", 0.25), ("linux", 0.3)]) {
            "macos" => (
                "macos",
                if rng.random_bool(0.6) { "15" } else { "14" },
                if rng.random_bool(0.8) { "aarch64" } else { "x86_64" },
            ),
            "windows" => ("windows", if rng.random_bool(0.7) { "11" } else { "10" }, "x86_64"),
            _ => ("linux", "6", "x86_64"),
        },
        _ => (
            "linux",
            if rng.random_bool(0.7) { "6" } else { "5" },
            if rng.random_bool(0.2) { "aarch64" } else { "x86_64" },
        ),
    };
    let id = match ci_vendor {
        // CI runners share one id per vendor, as the SDK sends them.
        Some(v) => format!("ci-{v}"),
        None => hex_id(rng),
    };
    let (cpu, memory) = match role {
        Role::Laptop => (
            pick(rng, &[("5-8", 0.45), ("9-16", 0.4), ("3-4", 0.1), ("17+", 0.05)]),
            pick(rng, &[("8-16GB", 0.35), ("16-32GB", 0.4), ("32GB+", 0.15), ("4-8GB", 0.1)]),
        ),
        Role::Ci => ("3-4", "8-16GB"),
        _ => (
            pick(rng, &[("1", 0.15), ("2", 0.4), ("3-4", 0.3), ("5-8", 0.15)]),
            pick(rng, &[("<2GB", 0.15), ("2-4GB", 0.4), ("4-8GB", 0.3), ("8-16GB", 0.15)]),
        ),
    };
    Machine {
        id,
        role,
        os,
        os_version,
        arch,
        node,
        ci: ci_vendor.map(str::to_string),
        container: match role {
            Role::Production | Role::Staging => rng.random_bool(0.6),
            Role::Ci => rng.random_bool(0.3),
            Role::Laptop => false,
        },
        upgrade_lag: match role {
            Role::Laptop | Role::Ci => (rng.random::<f64>().powi(2) * 20.0) as i64,
            _ => 3 + (rng.random::<f64>().powi(2) * 40.0) as i64,
        },
        cpu,
        memory,
    }
}

fn version_on(day: i64, lag: i64) -> &'static str {
    RELEASES.iter().rev().find(|(_, shipped)| shipped + lag <= day).map_or(RELEASES[0].0, |r| r.0)
}

fn plugins_for(rng: &mut StdRng, template: &str) -> Vec<String> {
    let mut chosen: Vec<&str> = Vec::new();
    if rng.random_bool(0.85) {
        chosen.push(PLUGINS[0]);
    }
    let n = (rng.random::<f64>().powi(2) * 9.0) as usize;
    for _ in 0..n {
        // Zipf-like: rank r with probability ~ 1/r^1.1.
        let weights: Vec<(&str, f64)> =
            PLUGINS.iter().enumerate().skip(1).map(|(i, p)| (*p, 1.0 / (i as f64).powf(1.1))).collect();
        let p = pick(rng, &weights);
        if !chosen.contains(&p) {
            chosen.push(p);
        }
    }
    if template == "ecommerce" && !chosen.contains(&"stripe") && rng.random_bool(0.7) {
        chosen.push("stripe");
    }
    for (plugin, companion, p) in COMPANIONS {
        if chosen.contains(plugin) && !chosen.contains(companion) && rng.random_bool(*p) {
            chosen.push(companion);
        }
    }
    chosen.into_iter().map(str::to_string).collect()
}

struct Project {
    uuid: Uuid,
    created: i64,
    last: i64,
    activity: f64,
    template: &'static str,
    database: &'static str,
    typescript: bool,
    package_manager: (&'static str, f64),
    plugins: Vec<String>,
    content_types: i64,
    machines: Vec<Machine>,
}

fn project(rng: &mut StdRng) -> Project {
    // Growth: more projects are created later in the window; 30% predate it.
    let created = if rng.random_bool(0.3) {
        -(rng.random_range(1..200))
    } else {
        (rng.random::<f64>().sqrt() * DAYS as f64) as i64
    };
    let lifetime = match rng.random::<f64>() {
        x if x < 0.4 => rng.random_range(0..3),
        x if x < 0.7 => rng.random_range(7..35),
        _ => 400,
    };
    let template = pick(rng, TEMPLATES);
    let pm = PACKAGE_MANAGERS[{
        let w: Vec<(&str, f64)> = PACKAGE_MANAGERS.iter().map(|(n, w, _)| (*n, *w)).collect();
        let name = pick(rng, &w);
        PACKAGE_MANAGERS.iter().position(|p| p.0 == name).unwrap_or(0)
    }];
    let mut machines = vec![machine(rng, Role::Laptop, created, None)];
    if rng.random_bool(0.25) {
        machines.push(machine(rng, Role::Laptop, created, None));
    }
    let long_lived = lifetime > 100;
    if long_lived && rng.random_bool(0.45) {
        let vendor = pick(rng, CI_VENDORS).to_string();
        machines.push(machine(rng, Role::Ci, created, Some(&vendor)));
    }
    if long_lived && rng.random_bool(0.55) {
        for _ in 0..rng.random_range(1..=3) {
            machines.push(machine(rng, Role::Production, created, None));
        }
        if rng.random_bool(0.3) {
            machines.push(machine(rng, Role::Staging, created, None));
        }
    }
    Project {
        uuid: uuid4(rng),
        created,
        last: created + lifetime,
        activity: rng.random_range(0.25..0.8),
        template,
        database: pick(rng, DATABASES),
        typescript: rng.random_bool(0.62),
        package_manager: (pm.0, pm.2),
        plugins: plugins_for(rng, template),
        content_types: rng.random_range(1..40),
        machines,
    }
}

fn str_prop(s: &str) -> PropValue {
    PropValue::Str(s.to_string())
}

/// The batches of one project: one per machine and app version, split at the batch limit.
fn project_batches(rng: &mut StdRng, p: &Project, start_ms: i64, now_ms: i64) -> Vec<Batch> {
    let mut batches = Vec::new();
    for (mi, m) in p.machines.iter().enumerate() {
        let env = match m.role {
            Role::Laptop => Env::Development,
            Role::Ci => Env::Test,
            Role::Staging => Env::Staging,
            Role::Production => Env::Production,
        };
        let mut by_version: Vec<(&str, Vec<Event>)> = Vec::new();
        let first = p.created.max(0) + if m.role == Role::Laptop { 0 } else { 3 };
        for day in first..=p.last.min(DAYS - 1) {
            let weekend = (day % 7) >= 5;
            let chance = match m.role {
                Role::Laptop => p.activity * if weekend { 0.3 } else { 1.0 },
                Role::Ci => p.activity * 0.8,
                Role::Staging => 0.3,
                Role::Production => 0.9,
            };
            let creating = mi == 0 && day == p.created;
            if !creating && !rng.random_bool(chance.min(1.0)) {
                continue;
            }
            let version = version_on(day, m.upgrade_lag);
            let at = |rng: &mut StdRng| {
                let t = start_ms + day * DAY_MS + rng.random_range(8 * 3_600_000..22 * 3_600_000);
                DateTime::<Utc>::from_timestamp_millis(t.min(now_ms - 60_000)).expect("valid time")
            };
            let mut events = Vec::new();
            let mut push = |rng: &mut StdRng,
                            event: &str,
                            duration_ms,
                            error_kind: Option<&str>,
                            plugins: bool,
                            props: Vec<(&str, PropValue)>| {
                events.push(Event {
                    event_id: uuid::Builder::from_random_bytes(rng.random()).into_uuid(),
                    event: event.to_string(),
                    occurred_at: at(rng),
                    plugins: if plugins { p.plugins.clone() } else { vec![] },
                    duration_ms,
                    error_kind: error_kind.map(str::to_string),
                    props: props.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
                });
            };
            if creating {
                // Install time: log-normal around the package manager's median, slower
                // with little memory, and 35% slower in 2.4.x (a regression fixed in 2.5).
                let mut median = p.package_manager.1;
                if version.starts_with("2.4") {
                    median *= 1.35;
                }
                if matches!(m.memory, "4-8GB" | "<2GB") {
                    median *= 1.3;
                }
                let install = (median * (0.45 * normal(rng)).exp()) as u64;
                push(
                    rng,
                    "project.created",
                    Some(install),
                    None,
                    false,
                    vec![
                        ("template", str_prop(p.template)),
                        ("database", str_prop(p.database)),
                        ("typescript", PropValue::Bool(p.typescript)),
                        ("package_manager", str_prop(p.package_manager.0)),
                        ("cpu_count", str_prop(m.cpu)),
                        ("memory", str_prop(m.memory)),
                    ],
                );
            }
            let (starts, commands, builds) = match m.role {
                Role::Laptop => (rng.random_range(1..4), rng.random_range(1..6), u32::from(rng.random_bool(0.2))),
                Role::Ci => (0, 1, rng.random_range(1..3)),
                Role::Staging | Role::Production => (rng.random_range(0..2), 0, 0),
            };
            for _ in 0..starts {
                push(
                    rng,
                    "server.started",
                    None,
                    None,
                    true,
                    vec![
                        ("database", str_prop(p.database)),
                        ("content_types", PropValue::Int(p.content_types)),
                        ("cpu_count", str_prop(m.cpu)),
                        ("memory", str_prop(m.memory)),
                    ],
                );
            }
            for _ in 0..commands {
                let command = if m.role == Role::Ci { "build" } else { pick(rng, COMMANDS) };
                push(rng, "command.run", None, None, false, vec![("command", str_prop(command))]);
                let error_rate = match m.os {
                    "windows" => 0.06,
                    _ => 0.035,
                };
                if rng.random_bool(error_rate) {
                    let mut kind = pick(rng, ERRORS);
                    if m.os == "windows" && rng.random_bool(0.3) {
                        kind = "EPERM_SYMLINK";
                    }
                    if m.node.starts_with("16.") && rng.random_bool(0.5) {
                        kind = "UNSUPPORTED_NODE";
                    }
                    push(rng, "error", None, Some(kind), true, vec![("command", str_prop(command))]);
                }
            }
            for _ in 0..builds {
                let ms = (40_000.0 * (0.5 * normal(rng)).exp() * if p.typescript { 1.4 } else { 1.0 }) as u64;
                push(rng, "build.finished", Some(ms), None, true, vec![("typescript", PropValue::Bool(p.typescript))]);
            }
            match by_version.last_mut() {
                Some((v, evs)) if *v == version => evs.extend(events),
                _ => by_version.push((version, events)),
            }
        }
        for (version, events) in by_version {
            for chunk in events.chunks(tally_protocol::limits::MAX_EVENTS_PER_BATCH) {
                batches.push(Batch {
                    sent_at: DateTime::<Utc>::from_timestamp_millis(now_ms).expect("valid time"),
                    context: Context {
                        app: "demo".into(),
                        app_version: version.into(),
                        project: p.uuid,
                        machine: m.id.clone(),
                        env,
                        os: m.os.into(),
                        os_version: m.os_version.into(),
                        arch: m.arch.into(),
                        runtime: "node".into(),
                        runtime_version: m.node.clone(),
                        ci: m.ci.clone(),
                        container: m.container,
                    },
                    events: chunk.to_vec(),
                });
            }
        }
    }
    batches
}

/// Generates the demo up to `now_ms` (the collector's clock) and posts it to the collector
/// at `url`; returns a summary line.
pub fn fill(url: &str, projects: usize, now_ms: i64) -> anyhow::Result<String> {
    let started = Instant::now();
    let start_ms = (now_ms / DAY_MS - (DAYS - 1)) * DAY_MS;
    let mut rng = StdRng::seed_from_u64(0x7a11_7e1e);
    eprintln!("demo: generating {projects} projects over {DAYS} days");
    let mut batches = Vec::new();
    let mut machines = std::collections::HashSet::new();
    for _ in 0..projects {
        let p = project(&mut rng);
        for m in &p.machines {
            machines.insert(m.id.clone());
        }
        batches.extend(project_batches(&mut rng, &p, start_ms, now_ms));
    }
    let total: u64 = batches.iter().map(|b| b.events.len() as u64).sum();
    let progress = indicatif::ProgressBar::new(total)
        .with_style(
            indicatif::ProgressStyle::with_template(
                "demo: sending {bar:40} {pos}/{len} events ({per_sec}, {eta} left)",
            )
            .expect("valid template"),
        )
        .with_message("sending");
    let queue = Mutex::new(batches.into_iter());
    let accepted = AtomicU64::new(0);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
        .http_status_as_error(false)
        // One kept-alive connection per sender (ureq keeps 3 per host by default).
        .max_idle_connections(SENDERS)
        .max_idle_connections_per_host(SENDERS)
        .build()
        .into();
    let endpoint = format!("{}{}", url.trim_end_matches('/'), tally_protocol::BATCH_PATH);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..SENDERS)
            .map(|_| {
                s.spawn(|| -> anyhow::Result<()> {
                    loop {
                        let Some(batch) = queue.lock().unwrap_or_else(|e| e.into_inner()).next() else { return Ok(()) };
                        let n = send(&agent, &endpoint, &batch)?;
                        accepted.fetch_add(n, Ordering::Relaxed);
                        progress.inc(batch.events.len() as u64);
                    }
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| w.join().unwrap_or_else(|_| bail!("a demo sender panicked")))
    })?;
    progress.finish_and_clear();
    let accepted = accepted.into_inner();
    let secs = started.elapsed().as_secs_f64();
    Ok(format!(
        "demo: sent {total} events ({accepted} accepted) from {projects} projects and {} machines over {DAYS} days in {secs:.1} s ({:.0} events/s)",
        machines.len(),
        total as f64 / secs
    ))
}

fn send(agent: &ureq::Agent, endpoint: &str, batch: &Batch) -> anyhow::Result<u64> {
    let mut body = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    serde_json::to_writer(&mut body, batch)?;
    let body = body.finish()?;
    for _ in 0..100 {
        let mut resp = agent
            .post(endpoint)
            .header("Content-Type", "application/json")
            .header("Content-Encoding", "gzip")
            .send(&body[..])
            .context("while sending demo events")?;
        match resp.status().as_u16() {
            200 => {
                let r: tally_protocol::BatchResponse = serde_json::from_str(&resp.body_mut().read_to_string()?)?;
                return Ok(r.accepted as u64);
            }
            429 | 503 => {
                let wait = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1);
                std::thread::sleep(Duration::from_millis(wait * 200));
            }
            status => {
                let text = resp.body_mut().read_to_string().unwrap_or_default();
                std::io::stderr().flush().ok();
                bail!("the collector refused a demo batch ({status}): {text}");
            }
        }
    }
    bail!("the collector stayed overloaded; demo stopped")
}

/// The demo's distributions as stored rows, for the benchmark: projects are generated one
/// after another (seeded) and handed to `sink` as the rows of one project at a time, until
/// `sink` returns `false`. Events fall in the 90 days ending the day before `end_ms`.
pub fn rows(
    seed: u64,
    end_ms: i64,
    secret: &tally_store::ServerSecret,
    mut sink: impl FnMut(Vec<tally_store::EventRow>) -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let start_ms = (end_ms / DAY_MS - DAYS) * DAY_MS;
    let mut rng = StdRng::seed_from_u64(seed);
    loop {
        let p = project(&mut rng);
        let mut out = Vec::new();
        for batch in project_batches(&mut rng, &p, start_ms, end_ms) {
            let ctx = &batch.context;
            let project = secret.project_key(&ctx.project);
            let machine = secret.machine_key(&ctx.app, &ctx.machine);
            for e in batch.events {
                let at = e.occurred_at.timestamp_millis();
                out.push(tally_store::EventRow::new(ctx, e, at, at + 1_000, project, machine));
            }
        }
        if !sink(out)? {
            return Ok(());
        }
    }
}

/// The demo's batches of `projects` projects for the ingest benchmark, with every event
/// moved into the `days` days before `now_ms` (the collector accepts 31 days) by taking its
/// age modulo `days`: contexts, plugins, properties and event mix as in the demo.
pub fn recent_batches(seed: u64, projects: usize, now_ms: i64, days: i64) -> Vec<Batch> {
    let start_ms = (now_ms / DAY_MS - (DAYS - 1)) * DAY_MS;
    let window = days * DAY_MS;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    for _ in 0..projects {
        let p = project(&mut rng);
        for mut batch in project_batches(&mut rng, &p, start_ms, now_ms) {
            for e in &mut batch.events {
                let age = (now_ms - e.occurred_at.timestamp_millis()).rem_euclid(window);
                e.occurred_at = DateTime::<Utc>::from_timestamp_millis(now_ms - age.max(60_000)).expect("valid time");
            }
            out.push(batch);
        }
    }
    out
}
