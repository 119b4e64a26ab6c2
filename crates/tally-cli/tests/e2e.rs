//! End to end on a real socket: `tally serve` as a process, batches over HTTP, insights
//! read back through the `tally` CLI and checked against what was sent.

mod common;

use common::{Server, batch, insight, post, tally};
use serde_json::{Value, json};
use uuid::Uuid;

fn rows(answer: &Value) -> Vec<Value> {
    answer["table"]["rows"].as_array().expect("rows").clone()
}

#[test]
fn batches_in_insights_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let agent = common::agent();
    let projects: Vec<Uuid> = (0..6).map(|_| Uuid::new_v4()).collect();
    let mut sent = 0;
    for (i, p) in projects.iter().enumerate() {
        // Projects 0 and 1 share a machine: 6 projects, 5 machines.
        let machine = if i == 1 { "machine-0".to_string() } else { format!("machine-{i}") };
        let env = if i < 4 { "production" } else { "development" };
        let mut plugins = vec!["graphql"];
        if i < 4 {
            plugins.push("i18n");
        }
        if i == 0 {
            plugins.push("seo");
        }
        let events: Vec<(Uuid, &str, &[&str])> =
            (0..3).map(|_| (Uuid::now_v7(), "server.started", plugins.as_slice())).collect();
        let body = batch(*p, &machine, env, &events);
        let (status, answer) = post(&agent, &server.url, &body);
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["accepted"], 3);
        sent += 3;
        // A resend is acknowledged as duplicates and not counted again.
        let (status, answer) = post(&agent, &server.url, &body);
        assert_eq!((status, answer["duplicate"].clone()), (200, json!(3)));
    }
    let dir_arg = dir.path().to_str().expect("utf-8 path");
    let server_args = ["--server", server.url.as_str(), "--data-dir", dir_arg];

    let active = insight("active", &server_args);
    assert_eq!(rows(&active), vec![json!([1, 6, 5]), json!([7, 6, 5]), json!([28, 6, 5])]);

    let per_day = insight("events-per-day", &server_args);
    let total: i64 = rows(&per_day).iter().map(|r| r[1].as_i64().expect("events")).sum();
    assert_eq!(total, sent);

    let plugins = insight("top-plugins", &server_args);
    assert_eq!(rows(&plugins), vec![json!(["graphql", 6, 5, 18]), json!(["i18n", 4, 3, 12]), json!(["seo", 1, 1, 3])]);

    // Published: i18n (4 projects) and seo (1) are below k = 5.
    let mut public_args = server_args.to_vec();
    public_args.push("--public");
    let public = insight("top-plugins", &public_args);
    assert_eq!(rows(&public), vec![json!(["graphql", 6, 5, 18])]);
    assert_eq!(public["suppression"], json!({"k": 5, "hidden_rows": 2}));

    // The collector raises a smaller k to its own, and applies a larger one.
    let mut low_k = public_args.clone();
    low_k.extend(["--k", "1"]);
    assert_eq!(insight("top-plugins", &low_k)["suppression"], json!({"k": 5, "hidden_rows": 2}));
    let mut high_k = public_args.clone();
    high_k.extend(["--k", "18446744073709551615"]);
    let hidden = insight("top-plugins", &high_k);
    assert_eq!((rows(&hidden), hidden["suppression"]["hidden_rows"].clone()), (vec![], json!(3)));

    // Options and a baseline file reach the collector as the CLI read them.
    let baseline = dir.path().join("baseline.csv");
    std::fs::write(&baseline, "version,share\n20,70%\n18,30%\n").expect("write baseline");
    // An explicit range, so that the answer read from the data dir later is for the same days.
    let today = chrono::Utc::now().date_naive();
    let (from, to) = ((today - chrono::Days::new(1)).to_string(), (today + chrono::Days::new(1)).to_string());
    let versions_args = [
        "--env",
        "production",
        "--group-by",
        "runtime_minor",
        "--baseline",
        baseline.to_str().expect("utf-8 path"),
        "--from",
        &from,
        "--to",
        &to,
    ];
    let versions = insight("runtime-versions", &[&server_args[..], &versions_args].concat());
    assert_eq!(versions["params"]["filters"]["env"], "production");
    assert_eq!(versions["params"]["group_by"], "runtime_minor");
    assert_eq!(versions["params"]["baseline"], json!({"18": 0.3, "20": 0.7}));

    let envs = insight("env-split", &server_args);
    assert_eq!(rows(&envs), vec![json!(["production", 4, 3, 12]), json!(["development", 2, 2, 6])]);

    // Table output, as a person reads it (the range's times filtered).
    let out = tally().args(["insights", "top-plugins"]).args(server_args).output().expect("run");
    common::assert_output_snapshot!("top_plugins_table", String::from_utf8(out.stdout).expect("utf-8"));
    let out = tally().args(["insights", "top-plugins", "--public"]).args(server_args).output().expect("run");
    common::assert_output_snapshot!("top_plugins_public_table", String::from_utf8(out.stdout).expect("utf-8"));

    // While the collector holds the database, opening it directly fails with a clear message.
    let out = tally()
        .args(["insights", "active", "--data-dir", dir_arg, "--server", "http://127.0.0.1:1"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let out = tally().args(["insights", "active", "--data-dir", dir_arg]).output().expect("run");
    assert!(!out.status.success());
    common::assert_output_snapshot!("data_dir_held_by_the_collector", String::from_utf8_lossy(&out.stderr));

    // After a clean stop, the CLI reads the data dir itself and gets the same numbers.
    server.stop();
    let offline = insight("active", &["--data-dir", dir_arg]);
    assert_eq!(rows(&offline), rows(&active));
    let offline = insight("runtime-versions", &[&["--data-dir", dir_arg][..], &versions_args].concat());
    assert_eq!((&offline["params"], &offline["table"]), (&versions["params"], &versions["table"]));
    // Without a collector, the default k is the floor.
    let offline = insight("top-plugins", &["--data-dir", dir_arg, "--public", "--k", "1"]);
    assert_eq!(offline["suppression"], json!({"k": 5, "hidden_rows": 2}));
}

#[test]
fn demo_fills_the_store_through_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, summary) =
        Server::start_and_wait(dir.path(), &["--demo", "--demo-projects", "40"], Some("demo: sent"));
    let summary = summary.expect("summary line");
    assert!(summary.contains("from 40 projects"), "{summary}");
    let dir_arg = dir.path().to_str().expect("utf-8 path");
    let args = ["--server", server.url.as_str(), "--data-dir", dir_arg, "--since", "90d"];
    let per_day = insight("events-per-day", &args);
    let total: i64 = rows(&per_day).iter().map(|r| r[1].as_i64().expect("events")).sum();
    let sent: i64 = summary.split_whitespace().nth(2).and_then(|n| n.parse().ok()).expect("event count in summary");
    assert_eq!(total, sent, "every demo event is counted once");
    assert!(rows(&per_day).len() > 30, "the demo spans the window");
    let active = insight("active", &args);
    assert!(rows(&active)[2][1].as_i64().expect("projects") > 5);
    for name in ["top-plugins", "env-split", "os-split", "runtime-versions", "error-kinds", "app-versions"] {
        assert!(!rows(&insight(name, &args)).is_empty(), "{name} is empty on demo data");
    }
}

/// Issue 11: `tally insights top-plugins --data-dir D` answered from the collector that
/// happened to listen on the default address (and sent it D's admin token).
#[test]
fn an_explicit_data_dir_is_asked_even_when_a_collector_listens_at_the_default_address() {
    let agent = common::agent();
    let send = |url: &str, projects: usize| {
        for _ in 0..projects {
            let body = batch(Uuid::new_v4(), "machine-0", "production", &[(Uuid::now_v7(), "server.started", &[])]);
            assert_eq!(post(&agent, url, &body).0, 200);
        }
    };
    // A stopped collector's data dir with one project…
    let named = tempfile::tempdir().expect("tempdir");
    let stopped = Server::start(named.path(), &[]);
    send(&stopped.url, 1);
    stopped.stop();
    // …and a collector with three at what the CLI takes for the default address.
    let other = tempfile::tempdir().expect("tempdir");
    let running = Server::start(other.path(), &[]);
    send(&running.url, 3);
    let insights_requests = || {
        let (_, text) = running.admin_get("/metrics");
        text.lines().filter(|l| l.contains("route=\"/v1/insights\"")).count()
    };
    let ask = |args: &[&str]| {
        let out = tally()
            .env("TALLY_DEFAULT_SERVER", &running.url)
            .args(["insights", "active", "--format", "json"])
            .args(args)
            .output()
            .expect("run tally insights");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let answer: Value = serde_json::from_slice(&out.stdout).expect("json");
        rows(&answer)[0][1].clone()
    };
    assert_eq!(ask(&["--data-dir", named.path().to_str().expect("utf-8")]), json!(1), "answered from the data dir");
    assert_eq!(insights_requests(), 0, "the collector at the default address was asked");
    // Neither named: the default address is asked.
    let token = std::fs::read_to_string(other.path().join("admin-token")).expect("token");
    assert_eq!(ask(&["--token", token.trim()]), json!(3), "answered by the collector");
    assert_eq!(insights_requests(), 1);
}

/// Issue 11: at `TALLY_LOG=trace`, axum's serving loop logged every client's address.
#[test]
fn client_addresses_are_not_logged_at_trace_level() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("stderr.log");
    let mut child = tally()
        .env("TALLY_LOG", "trace")
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start tally serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let url = loop {
        let line = lines.next().expect("tally serve printed its address").expect("read stdout");
        if let Some(rest) = line.strip_prefix("tally collector listening on http://") {
            break rest.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let mut clients = Vec::new();
    for request in ["GET /healthz HTTP/1.1", "GET /v1/insights/active?app=demo&public=true HTTP/1.1"] {
        let mut s = std::net::TcpStream::connect(&url).expect("connect");
        clients.push(s.local_addr().expect("client address"));
        write!(s, "{request}\r\nHost: collector\r\nConnection: close\r\n\r\n").expect("write");
        let mut response = String::new();
        s.read_to_string(&mut response).expect("read");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
    let body = batch(Uuid::new_v4(), "machine-0", "production", &[(Uuid::now_v7(), "server.started", &[])]);
    assert_eq!(post(&common::agent(), &format!("http://{url}"), &body).0, 200);
    let pid = child.id().to_string();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
    assert!(child.wait().expect("wait").success());
    let logged = std::fs::read_to_string(&log).expect("read log");
    assert!(logged.contains("connection accepted"), "TALLY_LOG=trace did not log connections:\n{logged}");
    for client in clients {
        assert!(!logged.contains(&client.to_string()), "{client} is in the log:\n{logged}");
        assert!(!logged.contains(&format!(":{}", client.port())), "port {} is in the log", client.port());
    }
}

/// `tally serve --tls-cert --tls-key`: the collector answers HTTPS with a certificate made
/// here (rcgen, self-signed for `localhost`), and ingest works over it.
#[test]
fn serve_over_tls_with_a_self_signed_certificate() {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert =
        rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params").self_signed(&key).expect("cert");
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    let data = dir.path().join("data");
    let server = Server::start(
        &data,
        &["--tls-cert", cert_path.to_str().expect("utf-8"), "--tls-key", key_path.to_str().expect("utf-8")],
    );
    assert!(server.url.starts_with("https://127.0.0.1:"), "{}", server.url);
    let url = server.url.replace("127.0.0.1", "localhost");
    let roots = ureq::tls::RootCerts::new_with_certs(&[ureq::tls::Certificate::from_der(cert.der()).to_owned()]);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build())
        .http_status_as_error(false)
        .build()
        .into();
    let (status, answer) =
        post(&agent, &url, &batch(Uuid::new_v4(), "m", "production", &[(Uuid::now_v7(), "command.run", &[])]));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 1);
    let mut resp = agent.get(&format!("{url}/healthz")).call().expect("healthz over TLS");
    assert_eq!(resp.body_mut().read_to_string().expect("body"), r#"{"status":"ok"}"#);
    // Without trusting the certificate, a client refuses it.
    assert!(common::agent().get(&format!("{url}/healthz")).call().is_err(), "an untrusted certificate was accepted");
}
