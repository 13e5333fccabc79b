//! The weekly summary e-mail through the binary and the library: figures equal to what the
//! imported log says, the message as a mail client gets it, and the schedule's promise — sent
//! once, retried after a failure, never repeated.

mod support;

use mail_parser::{MessageParser, MimeHeaders, PartType};
use mailtrail::{config, notify::weekly as report, store::Store};
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};
use support::smtp_server::ScriptedServer;
use time::{OffsetDateTime, UtcOffset, format_description::well_known::Rfc3339, macros::datetime};

const BIN: &str = env!("CARGO_BIN_EXE_mailtrail");
const TOOLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/tools");

/// A state directory with a config sending through `smtp_port`, and the generated log of
/// 2026-05-18 onwards (UTC stamps) imported.
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    log: PathBuf,
}

fn setup(smtp_port: u16) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mailtrail.toml");
    std::fs::write(
        &config,
        format!(
            "[state]\ndir = \"{}\"\n[maillog]\nsource = \"off\"\n[web]\nenabled = false\n\
             [notify]\nsmtp = \"127.0.0.1:{smtp_port}\"\nreporting_mta = \"mx.test.example\"\n\
             [report]\nenabled = true\nrecipients = [\"ops@example.net\"]\n\
             weekday = \"monday\"\ntime = \"07:00\"\n\
             base_url = \"https://mail.test.example/mailtrail\"\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let log = dir.path().join("mail.log");
    let generated = Command::new("python3")
        .arg(format!("{TOOLS}/gen_postfix_log.py"))
        .args([
            "--lines",
            "40000",
            "--msgs-per-day",
            "300",
            "--format",
            "rfc3339",
        ])
        .args(["--start", "2026-05-18T00:00:00+00:00", "-o"])
        .arg(&log)
        .status()
        .expect("python3 runs");
    assert!(generated.success());
    let setup = Setup { dir, config, log };
    let import = setup.mailtrail(&["import"], Some(&setup.log));
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    setup
}

impl Setup {
    fn mailtrail(&self, args: &[&str], file: Option<&Path>) -> std::process::Output {
        let mut command = Command::new(BIN);
        command.arg("--config").arg(&self.config).args(args);
        if let Some(f) = file {
            command.arg(f);
        }
        // Local days are UTC days here, as in the log's stamps.
        command.env("TZ", "UTC").output().expect("mailtrail runs")
    }

    /// `status=sent` lines of the log stamped in `[from, to)`.
    fn sent_between(&self, from: OffsetDateTime, to: OffsetDateTime) -> u64 {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .filter(|l| l.contains(" status=sent "))
            .filter(|l| {
                let stamp = l.split_whitespace().next().unwrap();
                let at = OffsetDateTime::parse(stamp, &Rfc3339).unwrap();
                from <= at && at < to
            })
            .count() as u64
    }
}

/// The first figure of a line of the totals table.
fn figure(text: &str, label: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no {label} line in:\n{text}"));
    line[line.find(label).unwrap() + label.len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .replace(',', "")
        .parse()
        .unwrap()
}

#[test]
fn report_figures_match_the_log_and_the_mail_carries_them() {
    let server = ScriptedServer::start();
    let setup = setup(server.port());

    let printed = setup.mailtrail(
        &["report", "weekly", "--print", "--date", "2026-06-01"],
        None,
    );
    assert!(
        printed.status.success(),
        "{}",
        String::from_utf8_lossy(&printed.stderr)
    );
    let text = String::from_utf8(printed.stdout).unwrap();
    assert!(text.contains("2026-05-25 to 2026-05-31 (compared with 2026-05-18 to 2026-05-24)"));
    let this_week = setup.sent_between(
        datetime!(2026-05-25 00:00 UTC),
        datetime!(2026-06-01 00:00 UTC),
    );
    let week_before = setup.sent_between(
        datetime!(2026-05-18 00:00 UTC),
        datetime!(2026-05-25 00:00 UTC),
    );
    assert!(
        this_week > 100 && week_before > 100,
        "the log spans both weeks"
    );
    let delivered_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("Delivered"))
        .unwrap();
    let numbers: Vec<u64> = delivered_line
        .split_whitespace()
        .skip(1)
        .take(2)
        .map(|n| n.replace(',', "").parse().unwrap())
        .collect();
    assert_eq!(numbers, [this_week, week_before], "{delivered_line}");
    assert!(figure(&text, "Messages") > 0);

    let sent = setup.mailtrail(
        &["report", "weekly", "--send", "--date", "2026-06-01"],
        None,
    );
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let messages = server.wait_for_messages(1, Duration::from_secs(30));
    assert_eq!(messages[0].rcpt_to, ["ops@example.net"]);
    assert_eq!(messages[0].mail_from, "mailtrail@mx.test.example");
    let parsed = MessageParser::default()
        .parse(&messages[0].data)
        .expect("parses");
    assert_eq!(
        parsed.subject(),
        Some("mailtrail weekly summary for mx.test.example, 2026-05-25 to 2026-05-31")
    );
    assert_eq!(parsed.body_text(0).unwrap().replace("\r\n", "\n"), text);
    let html = parsed.body_html(0).unwrap();
    assert!(
        html.contains("https://mail.test.example/mailtrail/stats?period=2026-05-25..2026-06-01")
    );
    let pngs = parsed
        .parts
        .iter()
        .filter(|p| matches!(&p.body, PartType::InlineBinary(b) | PartType::Binary(b) if b.starts_with(b"\x89PNG")))
        .inspect(|p| {
            let cid = p.content_id().unwrap();
            assert!(html.contains(&format!("cid:{cid}")), "{cid}");
        })
        .count();
    assert_eq!(pngs, 3, "days, hours and bounce categories");

    let eml = setup.dir.path().join("weekly.eml");
    let written = setup.mailtrail(
        &[
            "report",
            "weekly",
            "--eml",
            eml.to_str().unwrap(),
            "--date",
            "2026-06-01",
        ],
        None,
    );
    assert!(written.status.success());
    assert!(
        MessageParser::default()
            .parse(&std::fs::read(&eml).unwrap())
            .unwrap()
            .body_html(0)
            .is_some()
    );

    let bad = setup.mailtrail(&["report", "weekly", "--print", "--date", "June"], None);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("YYYY-MM-DD"));
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_report_is_sent_once_and_retried_after_a_failure() {
    let server = ScriptedServer::start();
    let setup = setup(server.port());
    let good = config::load(&setup.config).unwrap();
    let mut store = Store::open(&good.store.path).unwrap();
    // Monday 2026-06-01 07:00 was due; it is 07:05.
    let now = datetime!(2026-06-01 07:05 UTC);
    let due = datetime!(2026-06-01 07:00 UTC).unix_timestamp();

    // The MTA is down: the report stays due, one failed attempt.
    let mut down = good.clone();
    down.notify.smtp_port = closed_port();
    let failed = report::send_due(&down, &mut store, UtcOffset::UTC, now).await;
    assert!(
        matches!(failed, Err(report::ReportError::Send { .. })),
        "{failed:?}"
    );
    let record = store.report_record(report::WEEKLY, due).unwrap().unwrap();
    assert_eq!((record.sent_at, record.attempts), (None, 1));

    // Ten minutes later it goes out, for the week before that Monday.
    let later = now + time::Duration::minutes(10);
    let week = report::send_due(&good, &mut store, UtcOffset::UTC, later)
        .await
        .unwrap();
    assert_eq!(
        week.map(|w| (w.period.from, w.period.to))
            .map(|(f, t)| (f.to_string(), t.to_string())),
        Some(("2026-05-25".into(), "2026-06-01".into()))
    );
    assert_eq!(
        server.wait_for_messages(1, Duration::from_secs(30)).len(),
        1
    );

    // Woken again that day, and after a restart (a new store connection): nothing more.
    assert!(
        report::send_due(
            &good,
            &mut store,
            UtcOffset::UTC,
            later + time::Duration::hours(1)
        )
        .await
        .unwrap()
        .is_none()
    );
    let mut reopened = Store::open(&good.store.path).unwrap();
    assert!(
        report::send_due(
            &good,
            &mut reopened,
            UtcOffset::UTC,
            later + time::Duration::hours(2)
        )
        .await
        .unwrap()
        .is_none()
    );
    // Two days late (mailtrail was down): not sent late.
    assert!(
        report::send_due(
            &good,
            &mut reopened,
            UtcOffset::UTC,
            datetime!(2026-06-10 09:00 UTC)
        )
        .await
        .unwrap()
        .is_none()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.messages().len(), 1);

    // Off: nothing, even when due.
    let mut off = good.clone();
    off.report.enabled = false;
    assert!(
        report::send_due(
            &off,
            &mut reopened,
            UtcOffset::UTC,
            datetime!(2026-06-08 07:01 UTC)
        )
        .await
        .unwrap()
        .is_none()
    );
    assert!(
        reopened
            .report_record(
                report::WEEKLY,
                datetime!(2026-06-08 07:00 UTC).unix_timestamp()
            )
            .unwrap()
            .is_none()
    );
}

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
