//! The web UI in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`,
//! installed by scripts/test.sh), driven over WebDriver by fantoccini. The browser logs in through
//! the form, opens the live page, and a message that goes through the milter of the real daemon
//! appears on it without a reload. A screenshot of the page is left in
//! `target/artifacts/live.png` for CI to keep.

mod support;

use fantoccini::{Client, ClientBuilder, Locator};
use indymilter_test::{Actions, Status};
use serde_json::{Value, json};
use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::mailtrail::Mailtrail;
use support::milter_client::{self, Mail};
use support::util::{POLL, free_port, port_open, wait_until};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long the browser may take for anything (a loaded CI machine starts Chromium slowly).
const T: Duration = Duration::from_secs(60);

/// chromedriver on a free loopback port, killed (and reaped) when dropped.
struct ChromeDriver {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ChromeDriver {
    fn start() -> ChromeDriver {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = dir.path().join("chromedriver.log");
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("spawn {CHROMEDRIVER} (Debian package chromium-driver): {e}")
            });
        let driver = ChromeDriver {
            child,
            port,
            log,
            _dir: dir,
        };
        wait_until(
            T,
            "chromedriver to accept connections",
            || port_open(port),
            || driver.log(),
        );
        driver
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A headless Chromium session with a fresh profile in `profile`.
    async fn session(&self, profile: &std::path::Path) -> Client {
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            // Without these Chromium keeps calling home, which a closed network refuses.
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "WebDriver session with {CHROMIUM}: {e}\nchromedriver log:\n{}",
                    support::postfix::tail(&self.log(), 40)
                )
            })
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls the async `check` every [`POLL`] until it returns `Some`, or panics after `timeout`
/// naming `what` and the last value seen.
async fn poll_until<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(v) => return v,
            Err(last) => last,
        };
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Texts of the live table's rows, top (newest) first.
async fn live_rows(browser: &Client) -> Vec<String> {
    let mut texts = Vec::new();
    for row in browser
        .find_all(Locator::Css("#live-rows tr"))
        .await
        .unwrap()
    {
        texts.push(row.text().await.unwrap());
    }
    texts
}

/// Where CI picks up the screenshot.
fn artifact_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/artifacts/live.png")
}

const SUBJECT: &str = "<script>window.__injected = 1</script> arrives live";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logged_in_browser_sees_a_new_message_appear_on_the_live_page_without_reload() {
    let password = "correct horse battery staple";
    let hash = mailtrail::config::hash_password(password).unwrap();
    let web_port = free_port();
    let mut daemon = Mailtrail::configure_with_web(&format!(
        "[web]\nlisten = \"127.0.0.1:{web_port}\"\n\n[[web.user]]\nname = \"admin\"\npassword_hash = \"{hash}\"\n"
    ));
    daemon.start();
    wait_until(
        T,
        "the web pages to accept connections",
        || port_open(web_port),
        || daemon.log(),
    );
    let base = format!("http://127.0.0.1:{web_port}");

    // One message before the page opens: the table is not empty, so the new row must be added
    // to what the server rendered.
    let mut conn = milter_client::connect(daemon.milter_port(), Actions::ADD_RCPT).await;
    let first = Mail {
        queue_id: "1FIRST",
        from: "alice@example.com",
        rcpts: &["bob@dest.example"],
        headers: &[(&b"Subject"[..], &b" rendered by the server"[..])],
        body: &[&b"first\r\n"[..]],
    };
    assert_eq!(first.send(&mut conn).await.1, Status::Continue);
    daemon.wait_for_archived(1, T);

    let driver = ChromeDriver::start();
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.session(profile.path()).await;

    // Not logged in: the live page sends the browser to the login form.
    browser.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(browser.current_url().await.unwrap().path(), "/login");
    browser
        .find(Locator::Css("input[name=name]"))
        .await
        .unwrap()
        .send_keys("admin")
        .await
        .unwrap();
    browser
        .find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    browser
        .find(Locator::Css("form.login button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    poll_until(T, "the login to lead to the live page", || async {
        let url = browser.current_url().await.map_err(|e| e.to_string())?;
        match url.path() {
            "/" => Ok(()),
            other => Err(other.to_string()),
        }
    })
    .await;
    browser
        .wait()
        .at_most(T)
        .for_element(Locator::Css("#live-rows"))
        .await
        .unwrap();

    let before = live_rows(&browser).await;
    assert_eq!(before.len(), 1, "{before:?}");
    assert!(before[0].contains("rendered by the server"), "{before:?}");
    // Survives only as long as this document: a reload or navigation drops it.
    browser
        .execute("window.__marker = 1;", vec![])
        .await
        .unwrap();

    let subject_header = format!(" {SUBJECT}");
    let second = Mail {
        queue_id: "2SECOND",
        from: "carol@example.com",
        rcpts: &["dave@dest.example"],
        headers: &[(&b"Subject"[..], subject_header.as_bytes())],
        body: &[&b"second\r\n"[..]],
    };
    assert_eq!(second.send(&mut conn).await.1, Status::Continue);
    conn.close().await.unwrap();

    let rows = poll_until(T, "the new message's row on the live page", || async {
        let rows = live_rows(&browser).await;
        match rows.len() == 2 && rows[0].contains(SUBJECT) {
            true => Ok(rows),
            false => Err(format!("{rows:?}")),
        }
    })
    .await;
    assert!(rows[0].contains("carol@example.com"), "{rows:?}");
    assert!(rows[1].contains("rendered by the server"), "{rows:?}");

    let marker = browser.execute("return window.__marker;", vec![]).await;
    assert_eq!(marker.unwrap(), json!(1), "the live page was reloaded");
    assert_eq!(browser.current_url().await.unwrap().path(), "/");

    // The subject is text in its cell, not markup: no script element, nothing ran.
    let subject_cell = browser
        .find(Locator::Css("#live-rows tr:first-child td:nth-child(5)"))
        .await
        .unwrap();
    assert_eq!(subject_cell.text().await.unwrap(), SUBJECT);
    let scripts = browser
        .find_all(Locator::Css("#live-rows script"))
        .await
        .unwrap();
    assert!(
        scripts.is_empty(),
        "a <script> element came from the subject"
    );
    let injected = browser
        .execute("return window.__injected === undefined;", vec![])
        .await
        .unwrap();
    assert_eq!(injected, json!(true), "the subject's script ran");

    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let path = artifact_path();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    eprintln!("screenshot: {}", path.display());

    browser.close().await.unwrap();
    daemon.stop();
}
