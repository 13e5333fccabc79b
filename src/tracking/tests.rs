use super::*;
use crate::maillog::ParserOptions;
use time::macros::{datetime, offset};

/// Deferral then success (address case differs), a deferral logged after the success, an
/// alias (orig_to), an expiry, a bounce with its notice, a queue id reused after removal,
/// a rejected command.
const LOG: &str = "\
May 20 00:11:22 mail postfix/submission/smtpd[2073]: B50A1214B93: client=sazow.example.com[10.1.226.55], sasl_method=PLAIN, sasl_username=lip@example.net
May 20 00:11:22 mail postfix/cleanup[1060]: B50A1214B93: message-id=<m1@example.net>
May 20 00:11:22 mail postfix/qmgr[1006]: B50A1214B93: from=<lip@example.net>, size=81759, nrcpt=2 (queue active)
May 20 00:11:23 mail postfix/smtp[1300]: B50A1214B93: to=<Info@votac.org>, relay=mail1.votac.org[195.230.105.38]:25, delay=1.5, delays=0.48/0.02/0.66/0.36, dsn=4.2.0, status=deferred (host mail1.votac.org[195.230.105.38] said: 450 4.2.0 <info@votac.org>: Recipient address rejected: Greylisted (in reply to RCPT TO command))
May 20 00:11:24 mail postfix/lmtp[1442]: B50A1214B93: to=<mija@example.com>, orig_to=<postmaster@example.com>, relay=mail.example.org[private/dovecot-lmtp], delay=3.1, delays=2.9/0.01/0/0.13, dsn=2.0.0, status=sent (250 2.0.0 <mija@example.com> Saved)
May 20 00:18:13 mail postfix/smtp[1362]: B50A1214B93: to=<info@votac.org>, relay=mail1.votac.org[195.230.105.38]:25, delay=411, delays=408/0.01/0.94/2, dsn=2.0.0, status=sent (250 ok dirdel)
May 20 00:18:14 mail postfix/smtp[1363]: B50A1214B93: to=<info@votac.org>, relay=mail1.votac.org[195.230.105.38]:25, delay=412, delays=408/0.01/0.94/2, dsn=4.4.1, status=deferred (connect to mail1.votac.org[195.230.105.38]:25: Connection timed out)
May 20 00:18:15 mail postfix/qmgr[1006]: B50A1214B93: removed
May 20 00:20:00 mail postfix/qmgr[1006]: C60B1214B94: from=<bulk@example.org>, size=1200, nrcpt=2 (queue active)
May 20 00:20:01 mail postfix/smtp[1300]: C60B1214B94: to=<a@nowhere.example>, relay=none, delay=1, delays=0.5/0/0.5/0, dsn=4.4.1, status=deferred (connect to nowhere.example[192.0.2.1]:25: Connection refused)
May 20 00:20:02 mail postfix/smtp[1301]: C60B1214B94: to=<b@gone.example>, relay=mx.gone.example[192.0.2.2]:25, delay=2, delays=1/0/0.5/0.5, dsn=5.1.1, status=bounced (host mx.gone.example[192.0.2.2] said: 550 5.1.1 <b@gone.example>: Recipient address rejected: User unknown (in reply to RCPT TO command))
May 20 00:20:03 mail postfix/bounce[1534]: C60B1214B94: sender non-delivery notification: D70B1214B95
May 25 00:20:04 mail postfix/qmgr[1006]: C60B1214B94: from=<bulk@example.org>, status=expired, returned to sender
May 25 00:20:05 mail postfix/qmgr[1006]: C60B1214B94: removed
May 25 01:00:00 mail postfix/qmgr[1006]: B50A1214B93: from=<other@example.net>, size=100, nrcpt=1 (queue active)
May 25 01:00:01 mail postfix/smtp[1300]: B50A1214B93: to=<x@votac.org>, relay=mail1.votac.org[195.230.105.38]:25, delay=1, delays=0.5/0/0.5/0, dsn=2.0.0, status=sent (250 ok)
May 25 01:00:02 mail postfix/smtpd[2000]: NOQUEUE: reject: RCPT from unknown[192.0.2.9]: 554 5.7.1 <spam@example.net>: Relay access denied; from=<s@example.com> to=<spam@example.net> proto=ESMTP helo=<x>
";

/// The rows `sql` selects, each as its cells' values joined by `|`.
pub(crate) fn rows_as_text(conn: &rusqlite::Connection, sql: &str) -> Vec<String> {
    let mut stmt = conn.prepare(sql).expect("prepare");
    let width = stmt.column_count();
    stmt.query_map([], |row| {
        let cells: Vec<String> = (0..width)
            .map(|i| {
                format!(
                    "{:?}",
                    row.get::<_, rusqlite::types::Value>(i).expect("cell")
                )
            })
            .collect();
        Ok(cells.join("|"))
    })
    .expect("query")
    .collect::<Result<Vec<_>, _>>()
    .expect("rows")
}

/// How the test imports a log.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// As the live follower: each batch written at its end.
    Follower,
    /// As `mailtrail import` into an empty store: messages still in the queue wait in
    /// memory, and the end writes them.
    SoleWriter,
    /// As that import's parsing thread: tracked without the store, each batch's rows
    /// committed apart; with held messages (or attempts) over `max_held`, the tracker goes
    /// on with the store, as the import's writer does then.
    WithoutStore { max_held: (usize, usize) },
}

/// Every stored row without its id, in a stable order.
fn import(log: &str, lines_per_batch: usize) -> (Vec<String>, IngestStats) {
    import_with(log, lines_per_batch, Mode::Follower)
}

/// [`import`] in `mode`.
fn import_with(log: &str, lines_per_batch: usize, mode: Mode) -> (Vec<String>, IngestStats) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let mut store = Store::open(&path).expect("store");
    let config = Config::defaults();
    let parser = Parser::new(ParserOptions {
        now: datetime!(2026-11-23 12:00 UTC),
        syslog_names: vec!["postfix".into()],
        default_offset: offset!(+0),
    });
    let mut tracker = Tracker::new(parser, Classifier::builtin());
    if mode != Mode::Follower {
        tracker.sole_writer();
    }
    if let Mode::WithoutStore { max_held } = mode {
        tracker.hold_at_most(max_held.0, max_held.1);
    }
    let mut without_store = matches!(mode, Mode::WithoutStore { .. });
    let mut total = IngestStats::default();
    let lines: Vec<&str> = log.lines().collect();
    for chunk in lines.chunks(lines_per_batch) {
        without_store &= tracker.tracks_without_store();
        let stats = match without_store {
            true => {
                for &line in chunk {
                    let line = ParsedLine::parse(line, &mut tracker.parser, &mut tracker.failures);
                    tracker
                        .apply_without_store(&config, line, 0, |l| panic!("unknown line {l}"))
                        .expect("apply");
                }
                let mut rows = TrackedRows::default();
                tracker.take_rows(false, &mut rows);
                rows.commit(&mut store)
            }
            false => tracker.apply(&mut store, &config, chunk.iter().copied(), None, 0, |l| {
                panic!("unknown line {l}")
            }),
        };
        total.add(&stats.expect("commit"));
    }
    if let Mode::WithoutStore { max_held } = mode {
        // The log holds a message queued over a batch's end, with two attempts.
        let limited = max_held.0 == 0 || max_held.1 == 1;
        assert_eq!(without_store, !limited, "handed over to the store's side");
    }
    let end = match without_store {
        true => {
            let mut rows = TrackedRows::default();
            tracker.take_rows(true, &mut rows);
            rows.commit(&mut store)
        }
        false => tracker.begin(&mut store).expect("begin").commit_all(None),
    };
    total.add(&end.expect("commit all"));
    let conn = rusqlite::Connection::open(&path).expect("open");
    let mut rows = Vec::new();
    for sql in [
        "SELECT queue_id, arrived_at, mta_host, client_name, client_addr, sasl_user, mail_from,
            size, message_id, archive_state, mode, source, nrcpt, removed_at
         FROM message ORDER BY id",
        "SELECT m.queue_id, m.arrived_at, r.position, r.address, r.orig_to, r.status,
            r.category, r.dsn, r.reply, r.attempts, r.last_attempt_at, r.final_at
         FROM recipient r JOIN message m ON m.id = r.message ORDER BY m.id, r.position",
        "SELECT m.queue_id, r.address, a.at, a.status, a.relay_host, a.relay_ip, a.relay_port,
            a.dsn, a.smtp_code, a.reply, a.stage, a.delay, a.delays, a.category
         FROM attempt a JOIN recipient r ON r.id = a.recipient JOIN message m ON m.id = r.message
         ORDER BY m.id, r.position, a.id",
        "SELECT m.queue_id, n.at, n.kind, n.notice_queue_id
         FROM mta_notice n JOIN message m ON m.id = n.message ORDER BY m.id, n.id",
        "SELECT at, source, code, dsn, reason, category FROM reject ORDER BY id",
        "SELECT at, queue_id, line FROM raw_line ORDER BY id",
    ] {
        rows.extend(rows_as_text(&conn, sql));
    }
    (rows, total)
}

/// A failure seen before is found in the cache: equal in every part, not just in its hash
/// bucket — the same words at RCPT and after DATA are categories apart.
#[test]
fn failure_categories_are_remembered_per_failure() {
    let mut failures = FailureClassifier::new(Classifier::builtin());
    let text = "550 5.1.1 <b@gone.example>: Recipient address rejected: User unknown";
    let at = |stage| Failure {
        dsn: Some("5.1.1"),
        code: Some(550),
        text,
        stage: Some(stage),
    };
    let rcpt = failures.classify(&at(SmtpStage::RcptTo), Some(SmtpStage::RcptTo));
    let data = failures.classify(&at(SmtpStage::Data), Some(SmtpStage::Data));
    assert_eq!(rcpt, Category::InvalidMailbox);
    assert_eq!(data, Category::PolicyRelated);
    for _ in 0..2 {
        assert_eq!(
            failures.classify(&at(SmtpStage::RcptTo), Some(SmtpStage::RcptTo)),
            rcpt
        );
        assert_eq!(
            failures.classify(&at(SmtpStage::Data), Some(SmtpStage::Data)),
            data
        );
    }
    assert_eq!(failures.classified.len(), 2);
}

#[test]
fn writing_behind_stores_what_statement_by_statement_did() {
    // One line per batch: every line after a message's first goes through the
    // statement-by-statement path; one batch: everything is written at its end.
    let (single, single_stats) = import(LOG, 1);
    let (whole, whole_stats) = import(LOG, usize::MAX);
    assert_eq!(single, whole);
    assert_eq!(
        format!("{single_stats:?}").replace(char::is_whitespace, ""),
        format!("{whole_stats:?}").replace(char::is_whitespace, "")
    );
    // Held in memory while queued (an import): the same rows, each message written once it
    // left the queue — the reused queue id's second message, never removed, at the end.
    // Likewise tracked without the store, handing the tracker over to the store's side when
    // held messages or attempts pass their limits.
    let modes = [
        Mode::SoleWriter,
        Mode::WithoutStore {
            max_held: (MAX_HELD_MESSAGES, MAX_HELD_ATTEMPTS),
        },
        Mode::WithoutStore { max_held: (0, 100) },
        Mode::WithoutStore { max_held: (100, 1) },
    ];
    for (lines_per_batch, mode) in [1, 3].into_iter().flat_map(|n| modes.map(|m| (n, m))) {
        let (mut held, held_stats) = import_with(LOG, lines_per_batch, mode);
        let mut sorted = whole.clone();
        held.sort();
        sorted.sort();
        assert_eq!(held, sorted, "{lines_per_batch} lines per batch, {mode:?}");
        assert_eq!(
            format!("{held_stats:?}").replace(char::is_whitespace, ""),
            format!("{whole_stats:?}").replace(char::is_whitespace, "")
        );
    }
    assert_eq!(
        (whole_stats.sent, whole_stats.deferred, whole_stats.bounced),
        (3, 3, 1)
    );
    assert_eq!(whole_stats.expired, 1);
    let recipient = |address: &str| {
        whole
            .iter()
            .find(|r| r.contains(&format!("Text(\"{address}\")|")) && r.contains("|Integer"))
            .cloned()
            .unwrap_or_default()
    };
    // The deferral logged after the success does not undo it; the first spelling stays.
    assert!(
        recipient("Info@votac.org").contains("Text(\"sent\")"),
        "{whole:#?}"
    );
    // The alias is kept as orig_to.
    assert!(recipient("mija@example.com").contains("Text(\"postmaster@example.com\")"));
    // The deferred recipient expired with the message; the bounced one stayed bounced.
    assert!(recipient("a@nowhere.example").contains("Text(\"expired\")"));
    assert!(recipient("b@gone.example").contains("Text(\"bounced\")"));
    // The reused queue id is a second message.
    let reused = whole
        .iter()
        .filter(|r| r.starts_with("Text(\"B50A1214B93\")|Integer") && r.contains("mail"))
        .count();
    assert!(reused >= 2, "{whole:#?}");
    // `relay=none` stores no relay host.
    let deferral = whole
        .iter()
        .find(|r| r.contains("Text(\"a@nowhere.example\")|Integer") && r.contains("deferred"))
        .expect("deferral attempt");
    assert!(
        deferral.contains("Text(\"deferred\")|Null|Null|Null|"),
        "{deferral}"
    );
}

/// Real lines of messages refused as a whole after their queue id was assigned: a
/// milter-reject at END-OF-MESSAGE after the message's client and message-id lines
/// (postfix-grok-patterns cleanup_0004, smtpd_0003, cleanup_0002), a milter-reject at DATA
/// (fail2ban postfix.log), a cleanup header reject (parse-syslog-mail cpan-rt-28807.log).
/// Then the first queue id is reused.
const REJECTED: [&str; 6] = [
    "May 26 10:00:00 mail postfix/smtpd[100]: 4104E3D: client=061238241086.static.ctinets.com[61.238.241.86]",
    "May 26 10:00:01 mail postfix/cleanup[101]: 4104E3D: message-id=<>",
    "May 26 10:00:02 mail postfix/cleanup[101]: 4104E3D: milter-reject: END-OF-MESSAGE from 061238241086.static.ctinets.com[61.238.241.86]: 5.7.1 Blocked by SpamAssassin; from=<wumt5@cchfdc.com> to=<voorzitter@example.com> proto=ESMTP helo=<ecsolved.com>",
    "Mar 7 02:09:33 server postfix/smtpd[27246]: 1D8CC1CA0A7F: milter-reject: DATA from 66-220-155-151.mail-mail.facebook.com[192.0.2.151]: 550 5.7.1 Command rejected; from=<security@mail.example.com> to=<hostmaster@example.com> proto=ESMTP helo=<192-0-2-151.mail-mail.example.com>",
    "Aug 13 16:06:58 DalekGate postfix/cleanup[17395]: 8B7EF2BB7: reject: header Date: Mon, 18 Jan 2038 19:07:11 +0800 from unknown[192.168.7.245]; from=<bcfxhdfyrey4l@easterndalek.com> to=<service@exterminate.com> proto=ESMTP helo=<realmail.iiiiiii.com>: Message content rejected",
    "May 26 11:00:00 mail postfix/qmgr[102]: 4104E3D: from=<other@example.org>, size=100, nrcpt=1 (queue active)",
];

/// sendmail's refusal at end of message (`Milter: data, reject=`; the shared logs hold
/// none, so these lines follow the format of tests/maillog_grammar.rs).
#[test]
fn sendmail_message_rejected_by_a_milter_is_finished() {
    let log = "\
May 20 00:00:09 mail sm-mta[2034]: 64JM07JY002032: from=<a@example.org>, size=100, class=0, nrcpts=1, msgid=<m@example.org>, proto=ESMTP, daemon=MTA, relay=h.example [192.0.2.3]
May 20 00:00:10 mail sm-mta[2034]: 64JM07JY002032: Milter: data, reject=554 5.7.1 Rejected as spam";
    let (single, _) = import(log, 1);
    let (whole, stats) = import(log, usize::MAX);
    assert_eq!(single, whole);
    assert_eq!(stats.rejects, 1);
    let message: Vec<_> = whole
        .iter()
        .filter(|r| r.starts_with("Text(\"64JM07JY002032\")|Integer(") && r.contains("not-seen"))
        .collect();
    assert_eq!(message.len(), 1, "{whole:#?}");
    assert!(
        !message[0].ends_with("|Null"),
        "not removed: {}",
        message[0]
    );
}

#[test]
fn message_rejected_as_a_whole_is_finished_and_its_queue_id_freed() {
    let logs = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/logs/");
    for (file, line) in [
        ("postfix-grok-patterns/cases.jsonl", 0),
        ("postfix-grok-patterns/cases.jsonl", 1),
        ("postfix-grok-patterns/cases.jsonl", 2),
        ("fail2ban/postfix.log", 3),
        ("parse-syslog-mail/cpan-rt-28807.log", 4),
    ] {
        let text = std::fs::read_to_string(format!("{logs}{file}")).expect("real log");
        let message = REJECTED[line].split_once("]: ").expect("tag").1;
        assert!(text.contains(message), "not in {file}: {message}");
    }
    let log = REJECTED.join("\n");
    let (single, single_stats) = import(&log, 1);
    let (whole, whole_stats) = import(&log, usize::MAX);
    assert_eq!(single, whole);
    assert_eq!(format!("{single_stats:?}"), format!("{whole_stats:?}"));
    // Refused commands, not deliveries.
    assert_eq!((whole_stats.rejects, whole_stats.bounced), (3, 0));

    let rows = |prefix: &str, part: &str| -> Vec<&String> {
        whole
            .iter()
            .filter(|r| r.starts_with(prefix) && r.contains(part))
            .collect()
    };
    // The first 4104E3D was removed when refused; its queue id then names a second message,
    // still queued.
    let reused = rows("Text(\"4104E3D\")|Integer(", "Text(\"not-seen\")");
    assert_eq!(reused.len(), 2, "{whole:#?}");
    assert!(reused[1].ends_with("|Null"), "{}", reused[1]);
    for (queue_id, address, stage, dsn, reply) in [
        (
            "4104E3D",
            "voorzitter@example.com",
            "end-of-data",
            "Text(\"5.7.1\")",
            "Blocked by SpamAssassin",
        ),
        (
            "1D8CC1CA0A7F",
            "hostmaster@example.com",
            "data",
            "Text(\"5.7.1\")",
            "Command rejected",
        ),
        (
            "8B7EF2BB7",
            "service@exterminate.com",
            "data",
            "Null",
            "Message content rejected",
        ),
    ] {
        let message = rows(&format!("Text(\"{queue_id}\")|Integer("), "not-seen");
        assert!(
            !message[0].ends_with("|Null"),
            "not removed: {}",
            message[0]
        );
        // The recipient the line names: bounced with the refusal's DSN and reply, final,
        // no attempt (nothing was attempted; the refusal is a reject row).
        let recipient = rows(
            &format!("Text(\"{queue_id}\")|Integer("),
            &format!("|Integer(0)|Text(\"{address}\")|Null|Text(\"bounced\")|Text("),
        );
        assert_eq!(recipient.len(), 1, "{queue_id}: {whole:#?}");
        assert!(
            recipient[0].contains(&format!("|{dsn}|Text(\"{reply}\")|Integer(0)|Integer(")),
            "{}",
            recipient[0]
        );
        assert!(
            !recipient[0].ends_with("|Null"),
            "not final: {}",
            recipient[0]
        );
        let attempts = rows(&format!("Text(\"{queue_id}\")|Text(\"{address}\")|"), "");
        assert!(attempts.is_empty(), "{attempts:#?}");
        // The refusal itself, once, as a reject row (at|source|code|dsn|reason|category).
        let rejects = rows("Integer(", &format!("|Text(\"{reply}\")|"));
        assert_eq!(rejects.len(), 1, "{stage}: {whole:#?}");
    }
}

/// A message only the log knows (the next hop of a content filter, mail that passed while
/// mailtrail was down) gets its sender's receipts as it gets its mode, live and in an import:
/// the policy then owes it the receipt the sender asked for.
#[test]
fn a_log_only_message_gets_its_senders_receipts() {
    let log = "\
May 20 00:20:00 mail postfix/qmgr[1006]: C60B1214B94: from=<ceo@example.org>, size=1200, nrcpt=1 (queue active)
May 20 00:20:01 mail postfix/smtp[1300]: C60B1214B94: to=<a@dest.example>, relay=mx.dest.example[192.0.2.2]:25, delay=1, delays=0.5/0/0.5/0, dsn=2.0.0, status=sent (250 ok)
May 20 00:20:02 mail postfix/qmgr[1006]: D70B1214B95: from=<other@example.org>, size=1200, nrcpt=1 (queue active)
";
    let config = crate::config::parse(
        std::path::Path::new("t.toml"),
        "[[sender]]\nmatch = \"ceo@example.org\"\nreceipts = true\nmode = \"bulk\"\n",
    )
    .unwrap();
    for sole_writer in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let mut store = Store::open(&path).unwrap();
        let parser = Parser::new(ParserOptions {
            now: datetime!(2026-11-23 12:00 UTC),
            syslog_names: vec!["postfix".into()],
            default_offset: offset!(+0),
        });
        let mut tracker = Tracker::new(parser, Classifier::builtin());
        if sole_writer {
            tracker.sole_writer();
        }
        tracker
            .apply(&mut store, &config, log.lines(), None, 0, |l| {
                panic!("unknown line {l}")
            })
            .unwrap();
        tracker.begin(&mut store).unwrap().commit_all(None).unwrap();
        let conn = rusqlite::Connection::open(&path).unwrap();
        assert_eq!(
            rows_as_text(
                &conn,
                "SELECT queue_id, mode, receipts FROM message ORDER BY queue_id"
            ),
            [
                "Text(\"C60B1214B94\")|Text(\"bulk\")|Text(\"on\")",
                "Text(\"D70B1214B95\")|Text(\"normal\")|Text(\"off\")"
            ],
            "sole writer: {sole_writer}"
        );
    }
}
