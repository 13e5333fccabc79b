//! Reliability against hostile and broken input, through the real binary (`mailtrail run`):
//! bad log lines, slow and idle clients of the pages and the milter, crash leftovers.

mod support;

use std::time::Duration;

use support::mailtrail::Mailtrail;

const T: Duration = Duration::from_secs(30);

/// Malformed and unknown log lines are counted in `mailtrail counters`, never fatal, and
/// nothing of them is stored: no recipient with a NUL byte, no raw line of junk.
#[test]
fn bad_log_lines_are_counted_and_never_stored() {
    let mut mt = Mailtrail::configure();
    // Recent stamps: raw lines are kept for 7 days.
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let good = [
        "STAMP mx postfix/qmgr[2]: 3F1A2B4C5D: from=<a@example.com>, size=100, nrcpt=1 (queue active)",
        "STAMP mx postfix/smtp[3]: 3F1A2B4C5D: to=<bob@example.net>, relay=mx.example.net[192.0.2.7]:25, delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
        "STAMP mx postfix/qmgr[2]: 3F1A2B4C5D: removed",
    ];
    let bad = [
        // A NUL in the recipient: once stored as `bob@\0…`.
        "STAMP mx postfix/smtp[3]: 4A1A2B4C5D: to=<bob@\0evil.example>, relay=none, delay=1, dsn=4.4.1, status=deferred (x)",
        // Junk after a valid header.
        "STAMP mx postfix/smtp[3]: \u{1}\u{2}%%%% garbage ==== (",
        // A stamp that is no date.
        "Feb 31 25:61:00 mx postfix/qmgr[2]: 3F1A2B4C5E: removed",
        "\0\0\0\0",
    ];
    let good = good.map(|l| l.replace("STAMP", &now));
    let bad = bad.map(|l| l.replace("STAMP", &now));
    let mut text = String::new();
    for line in good.iter().chain(&bad) {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(mt.mta_log_path(), text).unwrap();
    mt.start();
    let counters = mt.wait_counter("log_lines", (good.len() + bad.len()) as u64, T);
    assert_eq!(
        counters["log_lines_unknown"],
        bad.len() as u64,
        "{counters:?}"
    );
    assert_eq!(counters["log_events"], good.len() as u64, "{counters:?}");
    assert!(mt.is_running());

    let store = rusqlite::Connection::open(mt.store_path()).unwrap();
    let addresses: Vec<String> = store
        .prepare("SELECT address FROM recipient")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(addresses, ["bob@example.net"]);
    let raw: Vec<String> = store
        .prepare("SELECT line FROM raw_line ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(raw, good);
}
