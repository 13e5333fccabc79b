//! mailtrail against a real postfix: a private instance per test, relaying to a scripted SMTP
//! server, with mailtrail (the real binary) as its milter. Needs root and Debian's postfix.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use support::fixtures::tricky_message;
use support::mailtrail::{ArchivedMessage, Mailtrail};
use support::message::{diff, message_id};
use support::postfix::{MYHOSTNAME, Postfix, PostfixConfig};
use support::smtp_server::ScriptedServer;
use support::submit;
use support::util::wait_for;

const T: Duration = Duration::from_secs(30);
const FROM: &str = "sender@client.test.example";

fn started(mt: &Mailtrail) -> (ScriptedServer, Postfix) {
    let server = ScriptedServer::start();
    let pf = Postfix::start(PostfixConfig::for_mailtrail(server.port(), mt));
    (server, pf)
}

/// Waits until `archive ls` lists Message-ID `id`.
fn wait_archived(mt: &Mailtrail, id: &str) -> ArchivedMessage {
    wait_for(
        T,
        &format!("<{id}> in mailtrail archive ls"),
        || mt.find_message(id),
        || format!("{:#?}", mt.archive_ls()),
    )
}

fn sorted(v: &[impl AsRef<str>]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.as_ref().to_string()).collect();
    v.sort();
    v
}

/// Scenario 1: one message, three recipients, submitted over SMTP. The archive copy equals what
/// the remote server received apart from the `Received:` header postfix prepends (header fields
/// in order and the body byte for byte), equals what postfix received from the client, and the
/// envelope row carries the queue id of cleanup's `message-id=` log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_copy_matches_relayed_message() {
    let mt = Mailtrail::start_new();
    let (server, pf) = started(&mt);
    let id = message_id("three-rcpts");
    let rcpts = [
        "one@remote.test.example",
        "two@remote.test.example",
        "three@remote.test.example",
    ];
    let raw = tricky_message(&id, FROM, &rcpts);
    submit::send_raw(pf.smtpd_port(), FROM, &rcpts, &raw).await;

    let relayed = server.wait_for_message_id(&id, T);
    assert_eq!(relayed.mail_from, FROM);
    assert_eq!(
        sorted(&relayed.rcpt_to),
        sorted(&rcpts),
        "one transaction, three recipients"
    );
    let qid = pf.wait_queue_id(&id, T);
    pf.wait_queue_empty(T);
    assert_eq!(server.messages().len(), 1);

    let row = wait_archived(&mt, &id);
    assert_eq!(
        row.queue_id.as_deref(),
        Some(qid.as_str()),
        "queue id of {row:?}"
    );
    assert_eq!(row.mail_from, FROM);
    assert_eq!(row.recipient_addresses(), sorted(&rcpts));
    assert_eq!(row.archive_state, "stored");
    assert_eq!(row.message_id_bare(), Some(id.as_str()));
    assert_eq!(
        row.subject.as_deref(),
        Some("Grüße from the e2e test"),
        "decoded, unfolded"
    );
    assert_eq!(row.helo.as_deref(), Some(submit::CLIENT_HELO));
    assert_eq!(row.client_addr.as_deref(), Some("127.0.0.1"));
    let archived = row.read_archive();
    assert_eq!(mt.archive_files().len(), 1, "{:?}", mt.archive_files());

    // What postfix relays = one Received: field in front of the archived copy.
    let (d, report) = diff(&archived, &relayed.data);
    assert!(d.headers_equal && d.body_equal, "{report}");
    assert_eq!(d.prepended.len(), 1, "{report}");
    let received = &d.prepended[0];
    // "Received: from HELO (REVERSE-NAME [127.0.0.1])\r\n\tby mx... id QID;\r\n\tDATE\r\n"
    let (from, by) = received
        .split_once(" [127.0.0.1])\r\n\t")
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        from.starts_with(&format!("Received: from {} (", submit::CLIENT_HELO)),
        "{report}"
    );
    assert!(
        by.starts_with(&format!(
            "by {MYHOSTNAME} (Postfix) with ESMTP id {qid};\r\n\t"
        )),
        "{report}"
    );
    // And the archive is what postfix received from the client: lettre ends DATA with
    // "\r\n.\r\n" even after a final CRLF, so the message gained one empty line on the wire.
    let mut on_the_wire = raw.clone();
    on_the_wire.extend_from_slice(b"\r\n");
    assert!(
        archived == on_the_wire,
        "{}",
        diff(&archived, &on_the_wire).1
    );
    assert_eq!(
        row.size,
        archived.len() as i64,
        "size is the archived copy's length"
    );
    mt.assert_recorded_without_errors(1);
}

/// Scenario 2: 200 messages from 4 concurrent SMTP clients: 200 relayed, 200 archive copies,
/// 200 envelope rows each with the queue id postfix logged for it, no error counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_messages_from_four_clients() {
    const N: usize = 200;
    let mt = Mailtrail::start_new();
    let (server, pf) = started(&mt);
    let ids: Vec<String> = (0..N).map(|i| message_id(&format!("load{i}"))).collect();
    let messages = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let to = format!("rcpt{}@remote.test.example", i % 7);
            submit::simple_message(FROM, &[&to], &format!("load {i}"), id, "load test\n")
        })
        .collect();
    let t0 = Instant::now();
    submit::send_concurrently(pf.smtpd_port(), 4, messages).await;
    let submitted = t0.elapsed();
    let relayed = server.wait_for_messages(N, Duration::from_secs(120));
    pf.wait_queue_empty(T);
    eprintln!(
        "200 messages: submitted in {submitted:?}, relayed in {:?}",
        t0.elapsed()
    );
    assert_eq!(relayed.len(), N, "nothing extra (no bounces) relayed");

    let rows = mt.wait_for_archived(N, T);
    assert_eq!(rows.len(), N);
    assert_eq!(mt.archive_files().len(), N);
    let want: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    let got: BTreeSet<&str> = rows.iter().filter_map(|r| r.message_id_bare()).collect();
    assert_eq!(got, want);
    let row_ids: BTreeSet<i64> = rows.iter().map(|r| r.id).collect();
    assert_eq!(row_ids.len(), N, "distinct row ids");

    // Every row's queue id is the one cleanup logged for its Message-ID.
    let log = pf.maillog();
    let logged: BTreeMap<String, String> = log
        .lines()
        .filter(|l| l.contains("/cleanup["))
        .filter_map(|l| {
            let (before, after) = l.split_once(": message-id=<")?;
            let qid = before.rsplit(' ').next()?;
            Some((after.trim_end_matches('>').to_string(), qid.to_string()))
        })
        .collect();
    for r in &rows {
        let mid = r.message_id_bare().unwrap();
        assert_eq!(r.queue_id.as_ref(), logged.get(mid), "queue id of {mid}");
        let copy = r.read_archive();
        assert!(
            support::message::header_value(&copy, "Message-ID").as_deref()
                == Some(format!("<{mid}>").as_str()),
            "archive copy {:?} is the message {mid}",
            r.archive_path
        );
    }
    mt.assert_recorded_without_errors(N as u64);
}

/// Scenario 3: with mailtrail stopped, mail still flows (milter_default_action = accept); started
/// again, mailtrail archives the next message. Before, in between and after: three messages,
/// the middle one relayed but not archived, and tracked from the log alone once mailtrail is
/// back (a row of its own with archive state `not-seen`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_flows_while_mailtrail_is_down() {
    let mut mt = Mailtrail::start_new();
    let (server, pf) = started(&mt);
    let send = |tag: &str| {
        let id = message_id(tag);
        let m = submit::simple_message(FROM, &["a@remote.test.example"], tag, &id, "x\n");
        (id, submit::send(pf.smtpd_port(), m))
    };

    let (before, fut) = send("before");
    fut.await;
    server.wait_for_message_id(&before, T);
    wait_archived(&mt, &before);

    assert!(mt.stop(), "mailtrail exits on SIGTERM");
    let (down, fut) = send("down");
    fut.await;
    server.wait_for_message_id(&down, T);
    let down_qid = pf.wait_queue_id(&down, T);
    let refused = format!(
        "warning: connect to Milter service inet:127.0.0.1:{}: Connection refused",
        mt.milter_port()
    );
    assert!(pf.maillog().contains(&refused), "{}", pf.maillog());
    pf.wait_log_line(&down_qid, "status=sent", T);

    mt.start();
    let (after, fut) = send("after");
    fut.await;
    server.wait_for_message_id(&after, T);
    let after_qid = pf.wait_queue_id(&after, T);
    let row = wait_archived(&mt, &after);
    assert_eq!(row.queue_id.as_deref(), Some(after_qid.as_str()));
    pf.wait_queue_empty(T);

    let archived: Vec<String> = mt
        .archive_ls()
        .iter()
        .filter(|r| r.archive_state == "stored")
        .filter_map(|r| r.message_id_bare().map(str::to_string))
        .collect();
    assert_eq!(
        sorted(&archived),
        sorted(&[&before, &after]),
        "the one sent while down is not archived"
    );
    // It is still tracked, from the log alone (read when mailtrail came back): its own row,
    // without a copy, delivered.
    let tracked = wait_for(
        T,
        "the message sent while down to be tracked from the log",
        || {
            mt.archive_ls().into_iter().find(|r| {
                r.queue_id.as_deref() == Some(down_qid.as_str())
                    && r.deliveries.first().is_some_and(|d| d.status == "sent")
            })
        },
        || format!("{:#?}", mt.archive_ls()),
    );
    assert_eq!(tracked.archive_state, "not-seen", "{tracked:?}");
    assert_eq!(tracked.archive_path, None, "{tracked:?}");
    assert_eq!(tracked.mail_from, FROM, "{tracked:?}");
    assert_eq!(
        tracked.message_id_bare(),
        Some(down.as_str()),
        "{tracked:?}"
    );
    assert_eq!(mt.archive_ls().len(), 3);
    assert_eq!(server.messages().len(), 3);
    mt.assert_recorded_without_errors(2);
}

/// Scenario 4: a message submitted with postfix's sendmail command (pickup → cleanup, the
/// non_smtpd_milters path) is archived with its queue id, also without a Message-ID of its own.
/// What the milter sees, and so the
/// archive holds, is the message after cleanup's header fix-ups: the missing `Date:` (and
/// `Message-ID:`, when missing) are appended to the header block *before* the milter, and LF line
/// ends become CRLF. Postfix's local `Received: by ... (Postfix, from userid 0)` is added *after*
/// the milter: it is the only difference to the relayed copy.
#[test]
fn sendmail_submission_is_archived() {
    let mt = Mailtrail::start_new();
    let (server, pf) = started(&mt);
    let id = message_id("sendmail");
    let raw = format!(
        "From: Sender <{FROM}>\nTo: local-submit@remote.test.example\nSubject: via sendmail\nMessage-ID: <{id}>\n\nsubmitted with /usr/sbin/sendmail\n.\nlast line\n"
    );
    pf.sendmail(FROM, &["local-submit@remote.test.example"], raw.as_bytes());
    let relayed = server.wait_for_message_id(&id, T);
    let qid = pf.wait_queue_id(&id, T);
    pf.wait_queue_empty(T);
    let row = wait_archived(&mt, &id);
    assert_eq!(row.queue_id.as_deref(), Some(qid.as_str()));
    assert_eq!(row.mail_from, FROM);
    assert_eq!(
        row.recipient_addresses(),
        ["local-submit@remote.test.example"]
    );
    assert_eq!(row.archive_state, "stored");
    let archived = row.read_archive();

    let (d, report) = diff(&archived, &relayed.data);
    assert!(d.headers_equal && d.body_equal, "{report}");
    assert_eq!(d.prepended.len(), 1, "{report}");
    assert!(
        d.prepended[0].starts_with(&format!(
            "Received: by {MYHOSTNAME} (Postfix, from userid 0)\r\n\tid {qid}; "
        )),
        "{report}"
    );
    // The archive: the submitted message with CRLF line ends and cleanup's Date: appended.
    let crlf = raw.replace('\n', "\r\n");
    let (head, body) = crlf.split_once("\r\n\r\n").unwrap();
    let a = support::message::split(&archived);
    let date = String::from_utf8_lossy(a.headers.last().unwrap()).into_owned();
    assert!(
        date.starts_with("Date: ") && date.ends_with("\r\n"),
        "{date}"
    );
    assert!(!raw.contains("\nDate:"), "the submission had no Date:");
    let expected = format!("{head}\r\n{date}\r\n{body}");
    assert!(
        archived == expected.as_bytes(),
        "{}",
        diff(&archived, expected.as_bytes()).1
    );
    // Without a Message-ID: cleanup makes one (<DATE.QUEUEID@myhostname>), also before the
    // milter: the row and the archive copy have it, the same as the log.
    let raw = format!(
        "From: {FROM}\nTo: local-submit@remote.test.example\nSubject: no message-id\n\nbody\n"
    );
    pf.sendmail(FROM, &["local-submit@remote.test.example"], raw.as_bytes());
    let row = wait_for(
        T,
        "the message without Message-ID in archive ls",
        || {
            mt.archive_ls()
                .into_iter()
                .find(|m| m.subject.as_deref() == Some("no message-id"))
        },
        || format!("{:#?}", mt.archive_ls()),
    );
    let qid = row.queue_id.clone().expect("queue id");
    let made = row.message_id_bare().expect("a Message-ID").to_string();
    assert!(made.ends_with(&format!(".{qid}@{MYHOSTNAME}")), "{made}");
    assert_eq!(pf.queue_id_for_message_id(&made), Some(qid));
    assert_eq!(
        support::message::header_value(&row.read_archive(), "Message-ID"),
        Some(format!("<{made}>"))
    );
    server.wait_for_message_id(&made, T);
    mt.assert_recorded_without_errors(2);
}

/// What postfix changes in a message after the milter, beyond the `Received:` field, shown on
/// the relayed copy while the archive keeps what postfix received:
/// - a line longer than 998 bytes is broken by the smtp client (`smtp_line_length_limit`):
///   CRLF + one space is inserted so no line is longer than 998 bytes;
/// - when the remote server does not announce 8BITMIME, an 8-bit body is converted to
///   quoted-printable, and the `Content-Transfer-Encoding:` field is moved from its place to
///   the end of the header block;
/// - with one recipient, postfix's `Received:` field names it (`for <rcpt>;`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_changes_after_the_milter() {
    let mt = Mailtrail::start_new();
    let server = ScriptedServer::start();
    let pf = Postfix::start(
        PostfixConfig::for_mailtrail(server.port(), &mt)
            // Each delivery opens a new connection, so the EHLO features seen are current.
            .set("smtp_connection_cache_on_demand", "no"),
    );
    let rcpt = "one@remote.test.example";
    let long_line = "y".repeat(2500);

    // 1. A 2500-byte line, remote with 8BITMIME.
    let id = message_id("long-line");
    let mut raw = tricky_message(&id, FROM, &[rcpt]);
    raw.extend_from_slice(format!("{long_line}\r\n").as_bytes());
    submit::send_raw(pf.smtpd_port(), FROM, &[rcpt], &raw).await;
    let relayed = server.wait_for_message_id(&id, T);
    let qid = pf.wait_queue_id(&id, T);
    let archived = wait_archived(&mt, &id).read_archive();
    raw.extend_from_slice(b"\r\n"); // lettre's final CRLF, see scenario 1
    assert!(archived == raw, "the archive keeps the long line whole");
    let (d, report) = diff(&archived, &relayed.data);
    assert!(d.headers_equal, "{report}");
    assert!(!d.body_equal, "{report}");
    assert!(
        d.prepended[0].contains(&format!("with ESMTP id {qid}\r\n\tfor <{rcpt}>; ")),
        "{report}"
    );
    // The relayed body: every line at most 998 bytes; removing the inserted CRLF + space gives
    // back the archived body.
    let a_body = String::from_utf8(support::message::split(&archived).body.to_vec()).unwrap();
    let r_body = String::from_utf8(support::message::split(&relayed.data).body.to_vec()).unwrap();
    let lens: Vec<usize> = r_body.split("\r\n").map(str::len).collect();
    assert!(
        lens.iter().all(|l| *l <= 998),
        "relayed line lengths {lens:?}"
    );
    assert_eq!(r_body.replace("\r\n ", ""), a_body.replace("\r\n ", ""));
    assert!(
        r_body.contains(&format!(
            "\r\n{}\r\n {}\r\n {}\r\n",
            &long_line[..998],
            &long_line[998..1995],
            &long_line[1995..]
        )),
        "a 2500-byte line goes out as 998 + (1 + 997) + (1 + 505) bytes; lengths {lens:?}"
    );
    assert!(a_body.contains(&format!("\r\n{long_line}\r\n")));

    // 2. The same 8-bit message to a remote without 8BITMIME.
    server.without_8bitmime();
    let id = message_id("no-8bitmime");
    let raw = tricky_message(&id, FROM, &[rcpt]);
    submit::send_raw(pf.smtpd_port(), FROM, &[rcpt], &raw).await;
    let relayed = server.wait_for_message_id(&id, T);
    let archived = wait_archived(&mt, &id).read_archive();
    let a = support::message::split(&archived);
    let r = support::message::split(&relayed.data);
    let names = |h: &[&[u8]]| -> Vec<String> {
        h.iter().map(|f| support::message::field_name(f)).collect()
    };
    let mut expected_names = names(&a.headers);
    let cte = expected_names
        .iter()
        .position(|n| n == "Content-Transfer-Encoding")
        .unwrap();
    expected_names.remove(cte);
    expected_names.insert(0, "Received".into());
    expected_names.push("Content-Transfer-Encoding".into());
    assert_eq!(names(&r.headers), expected_names);
    assert_eq!(
        support::message::header_value(&relayed.data, "Content-Transfer-Encoding").as_deref(),
        Some("quoted-printable")
    );
    assert_eq!(
        support::message::header_value(&archived, "Content-Transfer-Encoding").as_deref(),
        Some("8bit")
    );
    let r_text = String::from_utf8_lossy(r.body);
    assert!(r_text.contains("Gr=C3=BC=C3=9Fe"), "{r_text}");
    assert!(String::from_utf8_lossy(a.body).contains("Grüße"));
    pf.wait_queue_empty(T);
    mt.assert_recorded_without_errors(2);
}

/// `receipts = "dsn"`: mailtrail re-adds the sender's recipients with
/// `NOTIFY=SUCCESS,FAILURE,DELAY`, and postfix passes it on to a remote that offers DSN; another
/// sender's recipients go out without NOTIFY, as submitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dsn_receipts_reach_the_remote_server() {
    let mut mt = Mailtrail::configure();
    let mut config = std::fs::read_to_string(mt.config_path()).unwrap();
    config.push_str("\n[[sender]]\nmatch = \"@receipts.test.example\"\nreceipts = \"dsn\"\n");
    std::fs::write(mt.config_path(), config).unwrap();
    mt.start();
    let (server, pf) = started(&mt);
    server.with_dsn();

    let with = message_id("dsn-on");
    let without = message_id("dsn-off");
    let rcpts = ["a@remote.test.example", "b@remote.test.example"];
    for (id, from) in [(&with, "boss@receipts.test.example"), (&without, FROM)] {
        let m = submit::simple_message(from, &rcpts, "receipts", id, "hello\n");
        submit::send(pf.smtpd_port(), m).await;
        server.wait_for_message_id(id, T);
    }
    let with_row = wait_archived(&mt, &with);
    let without_row = wait_archived(&mt, &without);
    assert_eq!(with_row.mail_from, "boss@receipts.test.example");
    assert_eq!(without_row.mail_from, FROM);

    // RCPTs in order: the first message's two, then the second's.
    let params = server.rcpt_params();
    assert_eq!(params.len(), 4, "{params:?}\n{}", mt.log());
    for (rcpt, p) in &params[..2] {
        let notify: Vec<&str> = p.split(' ').filter(|a| a.starts_with("NOTIFY=")).collect();
        assert_eq!(
            notify,
            ["NOTIFY=SUCCESS,FAILURE,DELAY"],
            "{rcpt}: {p}\nmailtrail log:\n{}",
            mt.log()
        );
    }
    assert_eq!(
        sorted(&params[..2].iter().map(|(r, _)| r).collect::<Vec<_>>()),
        sorted(&rcpts)
    );
    for (rcpt, p) in &params[2..] {
        assert!(!p.contains("NOTIFY="), "{rcpt}: {p}");
    }
    // Both messages delivered once to both recipients: the rewrite lost and doubled nothing.
    let delivered: Vec<_> = server
        .messages()
        .iter()
        .map(|m| sorted(&m.rcpt_to))
        .collect();
    assert_eq!(delivered, [sorted(&rcpts), sorted(&rcpts)]);
    mt.assert_recorded_without_errors(2);
}

/// A message's body: what follows the blank line after its headers.
fn body_of(message: &[u8]) -> &[u8] {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers end");
    &message[end + 4..]
}

/// Attempts in the store: `(queue id, recipient, status)`, one per row.
fn stored_attempts(mt: &Mailtrail) -> Vec<(String, String, String)> {
    let db = rusqlite::Connection::open(mt.store_path()).unwrap();
    let mut stmt = db
        .prepare(
            "SELECT m.queue_id, r.address, a.status FROM attempt a
             JOIN recipient r ON r.id = a.recipient JOIN message m ON m.id = r.message",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Scenario 7: `kill -9` of mailtrail in the middle of 150 messages from 3 clients, and
/// `postfix logrotate` while it is down. Mail flows throughout (postfix's
/// `milter_default_action = accept` while the milter is away); every message mailtrail
/// recorded from the milter has its whole copy; every message postfix relayed is in the store
/// once, with exactly the attempts its log lines (both files) report: none lost, none doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_with_a_log_rotation_loses_and_doubles_nothing() {
    const N: usize = 150;
    let mut mt = Mailtrail::start_new();
    let server = ScriptedServer::start();
    // As Debian's logrotate does it (`delaycompress`): the rotated file stays readable until
    // the next rotation, so a follower that was down finishes it.
    let pf = Postfix::start(
        PostfixConfig::for_mailtrail(server.port(), &mt).set("maillog_file_compressor", "true"),
    );
    let ids: Vec<String> = (0..N).map(|i| message_id(&format!("kill{i}"))).collect();
    let messages = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let to = format!("rcpt{}@remote.test.example", i % 5);
            submit::simple_message(FROM, &[&to], &format!("kill {i}"), id, "under load\n")
        })
        .collect();
    let load = tokio::spawn(submit::send_concurrently(pf.smtpd_port(), 3, messages));

    server.wait_for_messages(N / 4, Duration::from_secs(120));
    mt.kill();
    let rotate = std::process::Command::new("postfix")
        .arg("-c")
        .arg(pf.config_dir())
        .arg("logrotate")
        .output()
        .unwrap();
    assert!(
        rotate.status.success(),
        "postfix logrotate: {}",
        String::from_utf8_lossy(&rotate.stderr)
    );
    mt.start();
    load.await.unwrap();
    let relayed = server.wait_for_messages(N, Duration::from_secs(120));
    assert_eq!(relayed.len(), N, "every message relayed, nothing extra");
    pf.wait_queue_empty(T);

    // What postfix logged, in the rotated file and the new one.
    let dir = mt.mta_log_path().parent().unwrap().to_path_buf();
    let mut logged = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("mta.log") {
            logged.extend(
                std::fs::read_to_string(entry.path())
                    .unwrap()
                    .lines()
                    .filter(|l| l.contains(" status=sent "))
                    .map(str::to_owned),
            );
        }
    }
    assert!(
        std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("mta.log.")),
        "a rotated file"
    );
    assert_eq!(logged.len(), N, "postfix logged one delivery per message");
    let attempts = wait_for(
        T,
        &format!("{N} attempts in the store"),
        || {
            let a = stored_attempts(&mt);
            (a.len() >= N).then_some(a)
        },
        || {
            format!(
                "{} attempts so far\n{}",
                stored_attempts(&mt).len(),
                mt.log()
            )
        },
    );
    // A little longer: nothing comes in twice.
    std::thread::sleep(Duration::from_secs(2));
    let attempts_after = stored_attempts(&mt);
    assert_eq!(attempts_after.len(), N, "no attempt doubled");
    assert_eq!(attempts, attempts_after);
    let logged_qids: BTreeSet<String> = logged
        .iter()
        .filter_map(|l| {
            l.split(": to=<")
                .next()?
                .rsplit(' ')
                .next()
                .map(str::to_owned)
        })
        .collect();
    let stored_qids: BTreeSet<String> = attempts.iter().map(|a| a.0.clone()).collect();
    assert_eq!(
        stored_qids, logged_qids,
        "the attempts of every logged delivery"
    );
    assert!(attempts.iter().all(|a| a.2 == "sent"));

    // Every message the milter recorded has its whole copy; the rest came in while mailtrail
    // was down and are known from the log alone.
    let rows = mt.archive_ls();
    assert_eq!(rows.len(), N, "one row per message");
    assert!(
        rows.iter()
            .all(|r| r.archive_state == "stored" || r.archive_state == "not-seen"),
        "every row archived, or seen in the log only: {:?}",
        rows.iter().map(|r| &r.archive_state).collect::<Vec<_>>()
    );
    let from_milter: Vec<_> = rows
        .iter()
        .filter(|r| r.archive_state == "stored")
        .collect();
    assert!(from_milter.len() >= N / 4, "{} archived", from_milter.len());
    for r in &from_milter {
        let mid = r.message_id_bare().unwrap();
        let copy = r.read_archive();
        assert_eq!(
            support::message::header_value(&copy, "Message-ID").as_deref(),
            Some(format!("<{mid}>").as_str())
        );
        let sent = relayed
            .iter()
            .find(|m| m.header("Message-ID").as_deref() == Some(format!("<{mid}>").as_str()))
            .unwrap();
        assert_eq!(body_of(&copy), body_of(&sent.data), "{mid}: whole copy");
    }
    assert_eq!(mt.archive_files().len(), from_milter.len());
    assert_eq!(
        std::fs::read_dir(mt.archive_dir().join("tmp"))
            .unwrap()
            .count(),
        0
    );
    eprintln!(
        "{N} messages: {} archived through the milter, {} known from the log only",
        from_milter.len(),
        N - from_milter.len()
    );
}
