//! The web UI in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`,
//! installed by scripts/test.sh), driven over WebDriver by fantoccini. The browser logs in through
//! the form, opens the live page, and a message that goes through the milter of the real daemon
//! appears on it without a reload; the statistics page of a generated postfix log reads at a
//! glance (headline figures with units, the month's days so far, charts as wide as the page,
//! headings in words). Screenshots of both pages are left in `target/artifacts/` (`live.png`,
//! `stats.png`) for CI to keep.

mod support;

use fantoccini::{Client, ClientBuilder, Locator};
use indymilter_test::{Actions, Status};
use serde_json::{Value, json};
use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::maillog::{append, generated_postfix_log};
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

/// Logs in through the form the browser is on; waits until it leads to the live page.
async fn log_in(browser: &Client, name: &str, password: &str) {
    for (field, text) in [
        ("input[name=name]", name),
        ("input[name=password]", password),
    ] {
        browser
            .find(Locator::Css(field))
            .await
            .unwrap()
            .send_keys(text)
            .await
            .unwrap();
    }
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

/// Keeps a screenshot where CI picks it up: `target/artifacts/NAME`.
async fn keep_screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/artifacts")
        .join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    eprintln!("screenshot: {}", path.display());
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
    log_in(&browser, "admin", password).await;
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

    keep_screenshot(&browser, "live.png").await;
    browser.close().await.unwrap();
    daemon.stop();
}

/// Texts of the elements `css` finds.
async fn texts(browser: &Client, css: &str) -> Vec<String> {
    let mut texts = Vec::new();
    for element in browser.find_all(Locator::Css(css)).await.unwrap() {
        texts.push(element.text().await.unwrap());
    }
    texts
}

/// The figure of the statistics headline labelled `label`: (value, change line).
async fn headline_figure(browser: &Client, label: &str) -> (String, String) {
    for figure in browser
        .find_all(Locator::Css("dl.headline .figure"))
        .await
        .unwrap()
    {
        let dt = figure.find(Locator::Css("dt")).await.unwrap();
        if dt.text().await.unwrap() == label {
            let value = figure.find(Locator::Css("dd.value")).await.unwrap();
            let change = figure.find(Locator::Css("dd.change")).await.unwrap();
            return (value.text().await.unwrap(), change.text().await.unwrap());
        }
    }
    panic!("no headline figure {label:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_statistics_page_reads_at_a_glance_in_the_browser() {
    let password = "correct horse battery staple";
    let hash = mailtrail::config::hash_password(password).unwrap();
    let web_port = free_port();
    let mut daemon = Mailtrail::configure_with_web(&format!(
        "[web]\nlisten = \"127.0.0.1:{web_port}\"\nstats_refresh = \"1s\"\n\n\
         [[web.user]]\nname = \"admin\"\npassword_hash = \"{hash}\"\n"
    ));
    daemon.start();
    // Today's mail as postfix logs it: a few hundred messages from the start of this hour.
    let log = generated_postfix_log(3_000, 17, 0, 20_000);
    append(&daemon.mta_log_path(), &log);
    daemon.wait_counter("log_lines", log.lines().count() as u64, T);
    wait_until(
        T,
        "the web pages to accept connections",
        || port_open(web_port),
        || daemon.log(),
    );
    let base = format!("http://127.0.0.1:{web_port}");

    let driver = ChromeDriver::start();
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.session(profile.path()).await;
    browser.goto(&format!("{base}/")).await.unwrap();
    log_in(&browser, "admin", password).await;

    // The rollups refresh every second: reload until today's messages are counted.
    let (messages, _) = poll_until(T, "today's messages in the statistics", || async {
        browser
            .goto(&format!("{base}/stats"))
            .await
            .map_err(|e| e.to_string())?;
        let figure = headline_figure(&browser, "Messages").await;
        match figure.0.as_str() {
            "0" => Err(format!("{figure:?}")),
            _ => Ok(figure),
        }
    })
    .await;
    // Counts with thousands separators, figures with their units and their change.
    assert!(
        messages.chars().all(|c| c.is_ascii_digit() || c == ','),
        "{messages}"
    );
    let (rate, rate_change) = headline_figure(&browser, "Delivery rate").await;
    assert!(
        rate.ends_with(" %") && rate.trim_end_matches(" %").parse::<f64>().is_ok(),
        "{rate}"
    );
    // The same days of last month had no mail in this new store.
    assert_eq!(rate_change, "nothing to compare with");
    let (_, messages_change) = headline_figure(&browser, "Messages").await;
    assert_eq!(messages_change, "new · was 0");
    let (delay, _) = headline_figure(&browser, "Median delay").await;
    assert!(
        [" s", " min", " h"]
            .iter()
            .any(|unit| delay.ends_with(unit)),
        "{delay}"
    );
    let (size, _) = headline_figure(&browser, "Size").await;
    assert!(
        [" kB", " MB", " GB"]
            .iter()
            .any(|unit| size.ends_with(unit)),
        "{size}"
    );

    // The days of this month up to today, none after: "2026-12-01 to 2026-12-07, compared
    // with ..." (today in the server's zone, within a day of UTC's).
    let period = browser
        .find(Locator::Css("p.period"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let last = period
        .split(", compared")
        .next()
        .and_then(|p| p.rsplit(' ').next())
        .and_then(|d| {
            time::Date::parse(d, time::macros::format_description!("[year]-[month]-[day]")).ok()
        })
        .unwrap_or_else(|| panic!("no period in {period:?}"));
    let utc_today = time::OffsetDateTime::now_utc().date();
    assert!((last - utc_today).whole_days().abs() <= 1, "{period}");
    let days = texts(&browser, "#day tbody tr td:first-child").await;
    let expected: Vec<String> = (1..=last.day()).map(|d| d.to_string()).collect();
    assert_eq!(days, expected, "{period}");

    // Headings in words, never a field name.
    let headings = texts(&browser, "section th").await;
    assert!(
        headings.contains(&"Recipient domain".to_string()),
        "{headings:?}"
    );
    assert!(
        headings.iter().all(|h| !h.contains('_') && !h.is_empty()),
        "{headings:?}"
    );

    // Each chart as wide as its section (the page less its margins).
    let widths = browser
        .execute(
            "return [...document.querySelectorAll('section')].map(s => { \
               const svg = s.querySelector('.chart svg'); \
               return [s.id, svg ? svg.getBoundingClientRect().width : 0, \
                       s.getBoundingClientRect().width]; });",
            vec![],
        )
        .await
        .unwrap();
    let widths = widths.as_array().unwrap();
    assert_eq!(widths.len(), 10, "{widths:?}");
    for w in widths {
        let (chart, section) = (w[1].as_f64().unwrap(), w[2].as_f64().unwrap());
        assert!(
            chart > 1000.0 && (chart - section).abs() < 2.0,
            "chart of {} is {chart} px in a section of {section} px",
            w[0]
        );
    }

    keep_screenshot(&browser, "stats.png").await;
    browser.close().await.unwrap();
    daemon.stop();
}
