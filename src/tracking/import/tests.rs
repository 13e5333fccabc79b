use super::*;
use crate::bounce::Classifier;
use std::path::Path;
use time::UtcOffset;

/// Messages, recipients and attempts as sorted text, without row ids.
fn rows(store: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(store).expect("open");
    let mut rows = Vec::new();
    for sql in [
        "SELECT queue_id, arrived_at, mail_from, size, message_id, client_addr, removed_at
         FROM message",
        "SELECT m.queue_id, m.arrived_at, r.position, r.address, r.orig_to, r.status,
            r.category, r.dsn, r.reply, r.attempts, r.last_attempt_at, r.final_at
         FROM recipient r JOIN message m ON m.id = r.message",
        "SELECT m.queue_id, m.arrived_at, r.address, a.at, a.status, a.relay_host, a.dsn,
            a.reply, a.category
         FROM attempt a JOIN recipient r ON r.id = a.recipient JOIN message m ON m.id = r.message",
        "SELECT m.queue_id, m.arrived_at, n.at, n.kind FROM mta_notice n
         JOIN message m ON m.id = n.message",
        "SELECT at, code, reason FROM reject",
    ] {
        rows.extend(crate::tracking::tests::rows_as_text(&conn, sql));
    }
    rows.sort();
    rows
}

/// The generated log imported in 64 KB transactions: tracked on the writing thread (a store
/// with rows already), on the parsing thread (an empty store), and on the parsing thread
/// until held messages pass a low limit, when the writer takes the tracker over — the same
/// rows and totals each way.
#[test]
fn tracking_on_either_thread_or_handed_over_stores_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("mail.log");
    let status = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/data/tools/gen_postfix_log.py"
        ))
        .args(["--lines", "30000", "--msgs-per-day", "500", "-o"])
        .arg(&log)
        .status()
        .expect("python3 runs");
    assert!(status.success());
    let config = Config::defaults();
    let import = |name: &str, sole_writer: bool, hold: Option<(usize, usize)>| {
        let path = dir.path().join(name);
        let mut store = Store::open(&path).expect("store");
        let parser = || follower::parser(&config, UtcOffset::from_hms(2, 0, 0).expect("offset"));
        let mut tracker = Tracker::new(parser(), Classifier::builtin());
        if sole_writer {
            tracker.sole_writer();
        }
        if let Some((messages, attempts)) = hold {
            tracker.hold_at_most(messages, attempts);
        }
        let mut parsing = ParsingThread::new(&config, parser(), &tracker);
        parsing.batch_limit = 64 << 10;
        let imported =
            import_lines(&mut store, tracker, parsing, std::slice::from_ref(&log)).expect("import");
        (rows(&path), imported)
    };
    let (on_writer, writer) = import("writer.db", false, None);
    let (on_parser, parser) = import("parser.db", true, None);
    let (handed, handed_over) = import("handed.db", true, Some((3, 30)));
    assert!(!writer.handed_over && !parser.handed_over);
    assert!(handed_over.handed_over, "the low limit was passed");
    let totals = |i: &Imported| format!("{:?}", i.total);
    assert_eq!(totals(&writer), totals(&parser));
    assert_eq!(totals(&writer), totals(&handed_over));
    assert!(
        writer.total.sent > 1_000 && writer.total.expired > 0,
        "{:?}",
        writer.total
    );
    assert_eq!(on_writer.len(), on_parser.len());
    assert!(
        on_writer == on_parser,
        "tracked on the parsing thread: rows differ"
    );
    assert!(on_writer == handed, "handed over: rows differ");
}

/// Every line arrives once, whole and in order, across chunk boundaries, with CRLF ends,
/// invalid UTF-8 and no newline at the end.
#[test]
fn parsing_thread_hands_over_every_line_whole() {
    let mut input = Vec::new();
    let mut n = 0;
    while input.len() < 2 * PARSE_CHUNK_BYTES + 12_345 {
        let pad = "x".repeat(n % 300);
        input.extend_from_slice(
            format!("May 20 00:11:22 mail postfix/qmgr[1]: B50A1214B93: removed {n} {pad}")
                .as_bytes(),
        );
        match n % 50 {
            7 => input.extend_from_slice(b" \xff\xfe\r\n"),
            _ => input.push(b'\n'),
        }
        n += 1;
    }
    input.extend_from_slice(b"May 20 00:11:23 mail postfix/qmgr[1]: last");
    let expected: Vec<String> = String::from_utf8_lossy(&input)
        .lines()
        .map(str::to_owned)
        .collect();

    let config = Config::defaults();
    let tracker = Tracker::new(
        follower::parser(&config, UtcOffset::UTC),
        Classifier::builtin(),
    );
    let mut parsing =
        ParsingThread::new(&config, follower::parser(&config, UtcOffset::UTC), &tracker);
    let mut reader = io::BufReader::new(io::Cursor::new(input));
    let mut carry = Vec::new();
    let mut got = Vec::new();
    let mut chunks = 0;
    let mut chunk = ParsedChunk::default();
    loop {
        // Reused buffers must not carry old lines into new chunks.
        let eof = read_chunk(&mut reader, &mut carry, &mut chunk).expect("read");
        parsing.parse(&mut chunk);
        chunks += 1;
        for (range, outcome, _) in chunk.lines.drain(..) {
            let line = &chunk.text[range];
            assert!(!line.ends_with(['\r', '\n']), "{line:?}");
            assert!(!matches!(outcome, ParseOutcome::Ignored(_)), "{line}");
            got.push(line.to_owned());
        }
        if eof {
            break;
        }
    }
    assert!(chunks >= 3, "{chunks} chunks");
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "lines differ");
}
