//! mailtrail against a real sendmail (Debian's sendmail-bin, unpacked by
//! scripts/e2e-sendmail.sh, run in private namespaces): scenario 1 of e2e_postfix.rs with
//! sendmail as the MTA. Needs root.

mod support;

use std::time::Duration;

use support::fixtures::tricky_message;
use support::mailtrail::Mailtrail;
use support::message::{diff, field_name, message_id, split};
use support::sendmail::{SM_HOSTNAME, Sendmail};
use support::smtp_server::ScriptedServer;
use support::submit;
use support::util::wait_for;

const T: Duration = Duration::from_secs(30);
const FROM: &str = "sender@client.test.example";

/// Scenario 5: one message, three recipients, through sendmail with mailtrail as its milter.
/// The archive copy is what sendmail received; it equals what the remote server received apart
/// from sendmail's `Received:` field in front and the re-formatted `To:` field (header fields
/// otherwise in order and byte for byte, body byte for byte); the envelope row carries the queue
/// id of sendmail's `from=... msgid=<...>` log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sendmail_archive_copy_matches_relayed_message() {
    let mt = Mailtrail::start_new();
    let server = ScriptedServer::start();
    let sm = Sendmail::start(server.port(), Some(mt.milter_port()));
    let id = message_id("sendmail-three-rcpts");
    let rcpts = [
        "one@remote.test.example",
        "two@remote.test.example",
        "three@remote.test.example",
    ];
    let raw = tricky_message(&id, FROM, &rcpts);
    submit::send_raw(sm.smtp_port(), FROM, &rcpts, &raw).await;

    let relayed = server.wait_for_message_id(&id, T);
    assert_eq!(relayed.mail_from, FROM);
    let mut got = relayed.rcpt_to.clone();
    got.sort();
    let mut want = rcpts.to_vec();
    want.sort();
    assert_eq!(got, want, "one transaction, three recipients");
    let qid = sm.wait_queue_id(&id, T);
    sm.wait_queue_empty(T);

    let row = wait_for(
        T,
        "the message in mailtrail archive ls",
        || mt.find_message(&id),
        || format!("{:#?}\n{}", mt.archive_ls(), sm.maillog()),
    );
    assert_eq!(row.queue_id.as_deref(), Some(qid.as_str()), "{row:?}");
    assert_eq!(row.mail_from, FROM);
    assert_eq!(row.recipient_addresses(), want);
    assert_eq!(row.archive_state, "stored");
    let archived = row.read_archive();

    // The archive is what sendmail received (lettre's final CRLF included, see e2e_postfix).
    let mut on_the_wire = raw.clone();
    on_the_wire.extend_from_slice(b"\r\n");
    assert!(
        archived == on_the_wire,
        "{}",
        diff(&archived, &on_the_wire).1
    );

    // What sendmail relays differs in two ways: its Received: field in front (not shown to the
    // milter), and the To: field, an address header that sendmail re-formats on output (joined
    // with ", " and re-folded with 8 spaces). Everything else: the same bytes.
    let (d, report) = diff(&archived, &relayed.data);
    eprintln!("{report}");
    assert!(d.body_equal, "{report}");
    assert_eq!(d.prepended.len(), 1, "{report}");
    let received = &d.prepended[0];
    assert!(
        received.starts_with(&format!(
            "Received: from {} ({SM_HOSTNAME} [127.0.0.1])\r\n\tby {SM_HOSTNAME} (8.",
            submit::CLIENT_HELO
        )) && received.contains(&format!(") with ESMTP id {qid};\r\n\t")),
        "{report}"
    );
    let a = split(&archived);
    let r = split(&relayed.data);
    let r = &r.headers[1..];
    assert_eq!(a.headers.len(), r.len());
    for (i, (x, y)) in a.headers.iter().zip(r).enumerate() {
        if field_name(x) == "To" {
            assert_eq!(
                String::from_utf8_lossy(x),
                "To: one@remote.test.example,\r\n\ttwo@remote.test.example,\r\n\tthree@remote.test.example\r\n"
            );
            assert_eq!(
                String::from_utf8_lossy(y),
                "To: one@remote.test.example, two@remote.test.example,\r\n        three@remote.test.example\r\n"
            );
        } else {
            assert_eq!(x, y, "header {i} is relayed unchanged\n{report}");
        }
    }
    mt.assert_recorded_without_errors(1);
}

/// `receipts = "dsn"` with sendmail as the MTA: the recipients mailtrail re-adds reach the
/// remote (which offers DSN) with `NOTIFY=SUCCESS,FAILURE,DELAY`, each delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sendmail_dsn_receipts_reach_the_remote_server() {
    let mut mt = Mailtrail::configure();
    let mut config = std::fs::read_to_string(mt.config_path()).unwrap();
    config.push_str("\n[[sender]]\nmatch = \"@receipts.test.example\"\nreceipts = \"dsn\"\n");
    std::fs::write(mt.config_path(), config).unwrap();
    mt.start();
    let server = ScriptedServer::start();
    server.with_dsn();
    let sm = Sendmail::start(server.port(), Some(mt.milter_port()));

    let id = message_id("sendmail-dsn");
    let rcpts = ["a@remote.test.example", "b@remote.test.example"];
    let m = submit::simple_message(
        "boss@receipts.test.example",
        &rcpts,
        "receipts",
        &id,
        "hi\n",
    );
    submit::send(sm.smtp_port(), m).await;
    let relayed = server.wait_for_message_id(&id, T);
    let mut delivered = relayed.rcpt_to.clone();
    delivered.sort();
    assert_eq!(delivered, rcpts);

    let params = server.rcpt_params();
    assert_eq!(params.len(), 2, "{params:?}\n{}", mt.log());
    for (rcpt, p) in &params {
        let notify: Vec<&str> = p.split(' ').filter(|a| a.starts_with("NOTIFY=")).collect();
        assert_eq!(
            notify,
            ["NOTIFY=SUCCESS,FAILURE,DELAY"],
            "{rcpt}: {p}\nmailtrail log:\n{}",
            mt.log()
        );
    }
    assert_eq!(server.messages().len(), 1);
    mt.assert_recorded_without_errors(1);
}
