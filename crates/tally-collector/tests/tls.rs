//! `serve_with` over TLS (`tally serve --tls-cert --tls-key`), with a self-signed
//! certificate made in the test (rcgen): requests are answered over TLS, plain HTTP on the
//! same port is not, and a client that never completes its handshake is closed.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tally_collector::{Collector, Limits, Settings, Tls};
use tally_store::{MemoryStore, ServerSecret};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A collector on 127.0.0.1 over TLS with a new self-signed certificate for `localhost`;
/// returns its address and the certificate (DER) a client must trust.
async fn serve_tls(limits: Limits) -> (std::net::SocketAddr, Vec<u8>, tempfile::TempDir) {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert =
        rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params").self_signed(&key).expect("cert");
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    let tls = Tls::from_pem_files(&cert_path, &key_path).expect("a TLS identity");
    let schemas = tally_collector::builtin::load(None).expect("schemas");
    let settings = Settings { limits: limits.clone(), ..Settings::default() };
    let collector = Collector::new(Arc::new(MemoryStore::new()), schemas, ServerSecret::from_bytes([7; 32]), settings)
        .expect("collector");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(tally_collector::serve_with(listener, collector.router(), limits, Some(tls), std::future::pending()));
    (addr, cert.der().to_vec(), dir)
}

async fn get_over_tls(addr: std::net::SocketAddr, trusted: &[u8]) -> String {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(trusted.to_vec())).expect("root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let mut tls = connector.connect(ServerName::try_from("localhost").expect("name"), tcp).await.expect("handshake");
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.expect("write");
    let mut response = Vec::new();
    // A server that closes without close_notify still gave its answer.
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut response)).await.expect("in time");
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn requests_are_answered_over_tls_with_a_self_signed_certificate() {
    let (addr, cert, _dir) = serve_tls(Limits::default()).await;
    let response = get_over_tls(addr, &cert).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with(r#"{"status":"ok"}"#), "{response}");
}

#[tokio::test]
async fn plain_http_on_the_tls_port_gets_no_answer_and_a_stalled_handshake_is_closed() {
    let limits = Limits { header_read_timeout: Duration::from_millis(500), ..Limits::default() };
    let (addr, cert, _dir) = serve_tls(limits).await;
    let mut plain = TcpStream::connect(addr).await.expect("connect");
    plain.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut buf)).await.expect("closed in time");
    assert!(!String::from_utf8_lossy(&buf).contains("HTTP/1.1 200"), "plain HTTP was answered");
    // Connected, never said hello: closed after the header timeout.
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    let started = std::time::Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut [0u8; 16])).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    assert!(started.elapsed() >= Duration::from_millis(400));
    // And the server still serves.
    assert!(get_over_tls(addr, &cert).await.starts_with("HTTP/1.1 200"));
}

#[test]
fn files_that_are_not_a_certificate_and_key_are_refused_with_their_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not pem").expect("write");
    let missing = dir.path().join("missing.pem");
    for (cert, key, says) in [(&junk, &junk, "holds no PEM certificate"), (&missing, &junk, "missing.pem")] {
        let Err(e) = Tls::from_pem_files(cert, key) else { panic!("accepted {}", cert.display()) };
        assert!(e.contains(says), "{e}");
    }
    let key = rcgen::KeyPair::generate().expect("key");
    let cert =
        rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params").self_signed(&key).expect("cert");
    let cert_path = dir.path().join("cert.pem");
    std::fs::write(&cert_path, cert.pem()).expect("write");
    let Err(e) = Tls::from_pem_files(&cert_path, &junk) else { panic!("a junk key was accepted") };
    assert!(e.contains("private key") && e.contains("junk.pem"), "{e}");
}
