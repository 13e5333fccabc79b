//! mailtrail against a real sendmail (Debian's sendmail-bin, unpacked by
//! scripts/e2e-sendmail.sh, run in private namespaces): scenario 1 of e2e_postfix.rs with
//! sendmail as the MTA. Needs root.

mod support;

use std::time::Duration;

use support::fixtures::tricky_message;
use support::mailtrail::Mailtrail;
use support::message::{diff, message_id};
use support::sendmail::{SM_HOSTNAME, Sendmail};
use support::smtp_server::ScriptedServer;
use support::submit;
use support::util::wait_for;

const T: Duration = Duration::from_secs(30);
const FROM: &str = "sender@client.test.example";

/// One message, three recipients, through sendmail with mailtrail as its milter: the archive
/// copy equals what the remote server received (header fields in order, body byte for byte),
/// and the envelope row carries the queue id of sendmail's `from=... msgid=<...>` log line.
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
    let (d, report) = diff(&archived, &relayed.data);
    eprintln!("{report}");
    assert!(d.headers_equal && d.body_equal, "{report}");
    assert!(d.prepended.is_empty(), "{report}");
    let received = relayed.header("Received").unwrap();
    assert!(
        received.contains(&format!("by {SM_HOSTNAME} (8.")) && received.contains(&qid),
        "{received}"
    );
    mt.assert_no_errors();
}
