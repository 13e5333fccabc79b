//! Statistics of the generated 1,000,000-line postfix log (../shared/data/tools, default seed):
//! imported with the binary, `mailtrail stats --json` must give the generator's known delivery
//! totals, and every breakdown must add up to the summary.

use std::{path::Path, process::Command};

const BIN: &str = env!("CARGO_BIN_EXE_mailtrail");
const TOOL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/data/tools/gen_postfix_log.py"
);
// What the generator's documentation states for its default seed and 1,000,000 lines.
const SENT: u64 = 114_768;
const DEFERRED: u64 = 52_909;
const BOUNCED: u64 = 4_316;
/// `status=expired` lines: one per message that gave up.
const EXPIRED_MESSAGES: u64 = 341;

fn run(config: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        // The generator writes +02:00 stamps without an offset (syslog format).
        .env("TZ", "UTC-2")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn sum(rows: &serde_json::Value, field: &str) -> u64 {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r[field].as_u64().unwrap())
        .sum()
}

#[test]
fn stats_of_the_generated_million_line_log_match_its_known_totals() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("maillog");
    let status = Command::new("python3")
        .args([TOOL, "--lines", "1000000", "-o"])
        .arg(&log)
        .status()
        .expect("python3 runs");
    assert!(status.success(), "generator failed");
    let config = dir.path().join("mailtrail.toml");
    std::fs::write(
        &config,
        format!(
            "[state]\ndir = \"{}\"\n[maillog]\nsource = \"off\"\n[web]\nenabled = false\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let imported = run(&config, &["import", log.to_str().unwrap()]);
    // The import leaves the rollups to the next refresh: `stats` runs it.
    assert!(imported.contains("statistics: added by"), "{imported}");

    let v: serde_json::Value =
        serde_json::from_str(&run(&config, &["stats", "--period", "2026", "--json"])).unwrap();
    let s = &v["summary"];
    let n = |field: &str| s[field].as_u64().unwrap();
    assert_eq!(n("delivered"), SENT);
    assert_eq!(n("deferred"), DEFERRED);
    assert_eq!(n("bounced"), BOUNCED);

    // Cross-checks against the raw tables, read directly.
    let db = rusqlite::Connection::open(dir.path().join("state/mailtrail.db")).unwrap();
    let count = |sql: &str| db.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap() as u64;
    // `delivered` counts status=sent lines (attempts). A message listing one address twice
    // has one recipient row for it, so delivered recipients can be fewer, never more.
    assert_eq!(
        count("SELECT COUNT(*) FROM attempt WHERE status = 'sent'"),
        SENT
    );
    assert!(count("SELECT COUNT(*) FROM recipient WHERE status = 'sent'") <= SENT);
    // Expired counts recipients: every recipient still open when its message expired.
    assert_eq!(
        count(
            "SELECT COUNT(DISTINCT r.message) FROM attempt a JOIN recipient r ON r.id = a.recipient
             WHERE a.status = 'expired'"
        ),
        EXPIRED_MESSAGES
    );
    assert_eq!(
        n("expired"),
        count("SELECT COUNT(*) FROM attempt WHERE status = 'expired'")
    );
    assert!(n("expired") >= EXPIRED_MESSAGES);
    assert_eq!(n("messages"), count("SELECT COUNT(*) FROM message"));
    assert_eq!(n("recipients"), count("SELECT COUNT(*) FROM recipient"));
    assert_eq!(n("bytes"), count("SELECT SUM(size) FROM message"));
    assert_eq!(n("rejected"), count("SELECT COUNT(*) FROM reject"));
    let rate = s["delivery_rate"].as_f64().unwrap();
    let want = SENT as f64 / (SENT + BOUNCED + n("expired")) as f64;
    assert!((rate - want).abs() < 1e-9, "{rate} vs {want}");
    // The median delivery delay, exactly: the histogram's is within its 4.5 %.
    let delays: Vec<f64> = db
        .prepare(
            "SELECT delay FROM attempt WHERE status = 'sent' AND delay IS NOT NULL ORDER BY delay",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let exact = |q: f64| delays[((q * delays.len() as f64).ceil() as usize).max(1) - 1];
    for (field, q) in [("delay_p50", 0.5), ("delay_p95", 0.95)] {
        let got = s[field].as_f64().unwrap();
        assert!(
            (got / exact(q) - 1.0).abs() < 0.045,
            "{field}: {got} vs {}",
            exact(q)
        );
    }

    // Every time breakdown adds up to the summary; the log spans May and June 2026.
    for section in ["by_month", "by_day", "by_weekday", "by_hour"] {
        for field in [
            "messages",
            "recipients",
            "delivered",
            "deferred",
            "bounced",
            "expired",
            "rejected",
        ] {
            assert_eq!(sum(&v[section], field), n(field), "{section}.{field}");
        }
    }
    let months: Vec<&str> = v["by_month"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["messages"].as_u64().unwrap() > 0)
        .map(|m| m["key"].as_str().unwrap())
        .collect();
    assert_eq!(months.first(), Some(&"2026-05"));
    // Top lists with their "other" row cover every attempt or message.
    for section in ["by_recipient_domain", "by_relay_host"] {
        for field in ["delivered", "deferred", "bounced", "expired"] {
            assert_eq!(sum(&v[section], field), n(field), "{section}.{field}");
        }
    }
    assert_eq!(sum(&v["by_sender"], "messages"), n("messages"));
    assert_eq!(sum(&v["categories"], "count"), n("bounced") + n("expired"));
    assert_eq!(sum(&v["smtp_errors"], "count"), n("rejected"));

    // A month alone: May's totals plus the rest of the year's are the year's.
    let may: serde_json::Value =
        serde_json::from_str(&run(&config, &["stats", "--period", "2026-05", "--json"])).unwrap();
    let may_sent = may["summary"]["delivered"].as_u64().unwrap();
    assert!(may_sent > 0 && may_sent <= SENT);
    assert_eq!(may_sent, v["by_month"][4]["delivered"].as_u64().unwrap());
}
