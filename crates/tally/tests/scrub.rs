//! A corpus of realistic leaks recorded through the SDK's public API: none survives into
//! what is delivered (nor into the outbox, which holds the same events).

use tally::testing::{MemorySink, Sandbox};
use tally::{Event, Mode};

/// (value recorded as a string property, a piece that must not be delivered)
const LEAKS: &[(&str, &str)] = &[
    ("/home/alice/projects/acme-secret/src/main.rs", "alice"),
    ("/Users/bob/Library/Application Support/x", "bob"),
    (r"C:\Users\carol\AppData\Roaming\tool", "carol"),
    ("~/work/client-x/site", "client-x"),
    ("/root/.config/tool/config.json", ".config/tool"),
    ("failed for alice.smith@example.com", "alice.smith"),
    ("From: Bob <bob@corp.example.org>", "corp.example"),
    ("connect ECONNREFUSED 192.168.10.24:5432", "192.168.10.24"),
    ("dns 8.8.4.4 timed out", "8.8.4.4"),
    ("bind [2001:db8:85a3::8a2e:370:7334]:443", "8a2e:370"),
    ("peer fe80::1%eth0", "fe80::1"),
    ("GET https://api.example.com/v1/users?api_key=12345abcde", "12345abcde"),
    ("https://example.com/callback#access_token=tok123", "tok123"),
    ("postgres://admin:hunter2@db.internal:5432/prod", "hunter2"),
    ("https://deploy:s3cret@git.example.com/repo.git", "s3cret"),
    ("token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "ghp_aBcDeF"),
    ("AWS AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    ("secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI"),
    ("stripe sk_live_51H8aBcDeFgHiJkLmNoPqRsT", "sk_live_51H8"),
    ("openai sk-proj-abcdEFGH1234ijklMNOP5678", "abcdEFGH1234"),
    ("slack xoxb-1234567890-0987654321-AbCdEfGhIjKl", "xoxb-1234567890"),
    ("npm_abcdefghijklmnopqrstuvwxyz0123456789", "npm_abcdefgh"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ", "eyJhbGciOiJIUzI1NiJ9"),
    ("Authorization: Bearer a1b2c3d4e5f6g7h8", "a1b2c3d4e5f6g7h8"),
    ("DATABASE_PASSWORD=correct-horse-battery", "correct-horse"),
    ("id 3d1219c7c4c5404aaa1f6d2a48adfda4", "3d1219c7c4c5404a"),
    ("key Zx8fK2mQ9vL4pR7tW1yB6nC3hJ5gD0sA", "Zx8fK2mQ9vL4"),
];

#[test]
fn no_leak_is_delivered() {
    let sandbox = Sandbox::new();
    let sink = MemorySink::new();
    let t = sandbox.builder("demo", "1.0.0").sink(sink.clone()).build();
    assert_eq!(t.mode(), Mode::On);
    for (i, (leak, _)) in LEAKS.iter().enumerate() {
        t.record(Event::new("command.run").prop("detail", *leak).prop("index", i).plugin(*leak).error_kind(leak));
    }
    t.shutdown();
    let events = sink.events();
    assert_eq!(events.len(), LEAKS.len());
    let delivered = serde_json::to_string(&sink.batches()).unwrap();
    for (leak, piece) in LEAKS {
        assert!(!delivered.contains(piece), "{piece:?} of {leak:?} was delivered");
    }
    for e in &events {
        assert_eq!(e.error_kind.as_deref(), Some("other"));
        assert!(e.plugins.iter().all(|p| p.starts_with("h:")), "{:?}", e.plugins);
    }
}

#[test]
fn ordinary_values_are_kept() {
    let sandbox = Sandbox::new();
    let sink = MemorySink::new();
    let t = sandbox.builder("demo", "1.0.0").sink(sink.clone()).build();
    t.record(
        Event::new("project.created")
            .prop("database", "postgres")
            .prop("node", "20.11.1")
            .prop("template", "ecommerce-template")
            .plugins(["@strapi/plugin-i18n", "graphql"]),
    );
    t.shutdown();
    let e = sink.assert_recorded("project.created");
    assert_eq!(e.plugins, ["@strapi/plugin-i18n", "graphql"]);
    assert_eq!(
        serde_json::to_value(&e.props).unwrap(),
        serde_json::json!({"database": "postgres", "node": "20.11.1", "template": "ecommerce-template"})
    );
}
