//! The status pages over HTTPS (`[web] tls_cert` / `tls_key`), served by the real daemon with a
//! self-signed certificate made in the test, and requested by a client that trusts only that
//! certificate.

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode, header};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::{ClientConfig, RootCertStore, crypto::ring};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;
use support::mailtrail::Mailtrail;
use support::util::{free_port, port_open, wait_until};

const T: Duration = Duration::from_secs(30);
const PASSWORD: &str = "tls test password";

type HttpsClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// A daemon serving HTTPS on a free port with a fresh self-signed certificate for 127.0.0.1;
/// returns it, the port and a client trusting that certificate (and nothing else).
fn start_https_daemon() -> (Mailtrail, u16, HttpsClient, tempfile::TempDir) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let files = tempfile::tempdir().unwrap();
    let cert_path = files.path().join("web.pem");
    let key_path = files.path().join("web.key");
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();

    let hash = mailtrail::config::hash_password(PASSWORD).unwrap();
    let port = free_port();
    let mut daemon = Mailtrail::configure_with_web(&format!(
        "[web]\nlisten = \"127.0.0.1:{port}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\n\
         [[web.user]]\nname = \"admin\"\npassword_hash = \"{hash}\"\n",
        cert_path.display(),
        key_path.display()
    ));
    daemon.start();
    wait_until(
        T,
        "the HTTPS pages to accept connections",
        || port_open(port),
        || daemon.log(),
    );

    let mut roots = RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let tls = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    let client = Client::builder(TokioExecutor::new()).build(connector);
    (daemon, port, client, files)
}

async fn body_text(response: hyper::Response<hyper::body::Incoming>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_the_login_page_and_a_secure_session_cookie() {
    let (mut daemon, port, client, _files) = start_https_daemon();
    let base = format!("https://127.0.0.1:{port}");

    let login_page = client
        .get(format!("{base}/login").parse().unwrap())
        .await
        .unwrap_or_else(|e| panic!("GET /login over HTTPS: {e:?}\n{}", daemon.log()));
    assert_eq!(login_page.status(), StatusCode::OK);
    let html = body_text(login_page).await;
    assert!(html.contains("action=\"/login\""), "{html}");

    let login = Request::post(format!("{base}/login"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(format!(
            "name=admin&password={}",
            PASSWORD.replace(' ', "+")
        ))))
        .unwrap();
    let response = client.request(login).await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .to_string();
    let attributes: Vec<&str> = cookie.split(';').map(str::trim).collect();
    assert!(attributes.contains(&"Secure"), "{cookie}");
    assert!(attributes.contains(&"HttpOnly"), "{cookie}");

    // The cookie opens the live page.
    let session = cookie.split(';').next().unwrap().to_string();
    let live = Request::get(format!("{base}/"))
        .header(header::COOKIE, session)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client.request(live).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(body_text(response).await.contains("live-rows"));

    // Plain HTTP on the HTTPS port gets no page.
    let mut plain = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain.set_read_timeout(Some(T)).unwrap();
    plain
        .write_all(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).contains("action=\"/login\""),
        "plain HTTP was answered with the page"
    );

    assert!(daemon.stop(), "daemon did not stop on SIGTERM");
}

/// A missing key file is named in the log; the milter runs regardless and the pages stay off.
#[test]
fn unreadable_tls_file_is_logged_and_the_milter_keeps_running() {
    let files = tempfile::tempdir().unwrap();
    let missing = files.path().join("missing.key");
    let cert = files.path().join("web.pem");
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    let port = free_port();
    let mut daemon = Mailtrail::configure_with_web(&format!(
        "[web]\nlisten = \"127.0.0.1:{port}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert.display(),
        missing.display()
    ));
    daemon.start();
    wait_until(
        T,
        "the daemon to log the missing key file",
        || {
            daemon
                .log()
                .contains(&format!("web: {}: ", missing.display()))
        },
        || daemon.log(),
    );
    assert!(daemon.is_running());
    assert!(port_open(daemon.milter_port()));
    assert!(!port_open(port), "the pages must not be served without TLS");
}
