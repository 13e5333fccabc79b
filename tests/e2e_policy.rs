//! Retry policies and notices end to end (see docs/e2e.md): a real postfix that would itself
//! retry only after an hour, so every quick retry is mailtrail's (`postqueue -i`); policies on a
//! scale of seconds; notices submitted back through postfix, relayed to the scripted server and
//! read there as the sender's mailbox would see them.

mod support;

use std::{io::Write, time::Duration};
use support::{
    mailtrail::Mailtrail,
    message::message_id,
    postfix::{Postfix, PostfixConfig, tail},
    smtp_server::{ReceivedMessage, Reply, ScriptedServer},
    submit,
    util::wait_until,
};

const T: Duration = Duration::from_secs(40);

struct Setup {
    server: ScriptedServer,
    pf: Postfix,
    mt: Mailtrail,
}

fn setup(script: &[(&str, Reply)]) -> Setup {
    let server = ScriptedServer::start();
    for (rcpt, reply) in script {
        server.script(rcpt, reply.clone());
    }
    let mut mt = Mailtrail::configure();
    // postfix retries only after an hour and never warns or expires on its own within the test:
    // mailtrail is the one source of retries and notices (the settings the README gives).
    let pf = Postfix::start(
        PostfixConfig::for_mailtrail(server.port(), &mt)
            .set("queue_run_delay", "3600s")
            .set("minimal_backoff_time", "3600s")
            .set("maximal_backoff_time", "3600s")
            .set("delay_warning_time", "0")
            .set("maximal_queue_lifetime", "1h")
            .set("bounce_queue_lifetime", "1h"),
    );
    let mut config = std::fs::OpenOptions::new()
        .append(true)
        .open(mt.config_path())
        .unwrap();
    write!(
        config,
        "\n[notify]\nenabled = true\nsmtp = \"127.0.0.1:{port}\"\nreporting_mta = \"mx.test.example\"\ntick = \"1s\"\n\
         \n[mta]\nkind = \"postfix\"\nconfig_dir = \"{dir}\"\n\
         \n[policy.normal]\nretry_every = \"2s\"\nwarn_after = \"5s\"\ngive_up_after = \"15s\"\n\
         \n[policy.bulk]\nretry_every = \"3s\"\ngive_up_after = \"10s\"\n\
         \n[[sender]]\nmatch = \"boss@client.test.example\"\nreceipts = true\n\
         \n[[sender]]\nmatch = \"@bulk.test.example\"\nmode = \"bulk\"\n",
        port = pf.smtpd_port(),
        dir = pf.config_dir().display()
    )
    .unwrap();
    mt.start();
    Setup { server, pf, mt }
}

/// Notices that reached `sender`'s mailbox, by their marker header.
fn notices_to(server: &ScriptedServer, sender: &str) -> Vec<ReceivedMessage> {
    server
        .messages()
        .into_iter()
        .filter(|m| {
            m.rcpt_to.iter().any(|r| r == sender) && m.header("X-Mailtrail-Notice").is_some()
        })
        .collect()
}

fn wait_notices(s: &Setup, sender: &str, n: usize) -> Vec<ReceivedMessage> {
    wait_until(
        T,
        &format!("{n} notice(s) for {sender}"),
        || notices_to(&s.server, sender).len() >= n,
        || {
            format!(
                "{}\n--- mailtrail ---\n{}",
                tail(&s.pf.maillog(), 40),
                tail(&s.mt.log(), 40)
            )
        },
    );
    notices_to(&s.server, sender)
}

async fn submit_one(s: &Setup, from: &str, rcpt: &str, tag: &str) -> String {
    let id = message_id(tag);
    let m = submit::simple_message(from, &[rcpt], tag, &id, "policy test\n");
    submit::send(s.pf.smtpd_port(), m).await;
    s.pf.wait_queue_id(&id, T)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greylisted_recipient_gets_a_warning_then_delivery_then_a_receipt() {
    let s = setup(&[("grey@remote.test.example", Reply::Greylist { tries: 3 })]);
    let boss = "boss@client.test.example";
    let qid = submit_one(&s, boss, "grey@remote.test.example", "grey").await;

    // Postfix waits an hour between tries: the retries that get it through are mailtrail's.
    s.pf.wait_log_line(&qid, "status=sent", T);
    let attempts = s.server.rcpt_attempts();
    let grey: Vec<_> = attempts
        .iter()
        .filter(|a| a.rcpt == "grey@remote.test.example")
        .collect();
    assert_eq!(
        grey.len(),
        4,
        "three greylisted tries, then delivery: {attempts:?}"
    );

    let notices = wait_notices(&s, boss, 2);
    let kinds: Vec<String> = notices
        .iter()
        .filter_map(|m| m.header("X-Mailtrail-Notice"))
        .collect();
    assert_eq!(
        kinds,
        ["warning", "receipt"],
        "a warning, then the receipt; nothing else"
    );
    let warning = &notices[0];
    assert_eq!(
        warning.mail_from, "",
        "notices go out with a null return path"
    );
    let subject = warning.header("Subject").unwrap();
    assert!(
        subject.starts_with("Warning: could not send message for past"),
        "{subject}"
    );
    let text = String::from_utf8_lossy(&warning.data);
    assert!(text.contains("THIS IS A WARNING MESSAGE ONLY"));
    assert!(text.contains("multipart/report") && text.contains("report-type=delivery-status"));
    assert!(text.contains("Final-Recipient: rfc822; grey@remote.test.example"));
    assert!(text.contains("Action: delayed"));
    let receipt = String::from_utf8_lossy(&notices[1].data);
    assert!(receipt.contains("Subject: Return receipt") && receipt.contains("Action: relayed"));

    // Nothing more comes, and the notices themselves were not taken for mail to watch over.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(notices_to(&s.server, boss).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_busy_recipient_expires_and_leaves_the_queue_and_bulk_gets_no_warning() {
    let s = setup(&[
        ("busy@remote.test.example", Reply::TooBusy),
        ("busy2@remote.test.example", Reply::TooBusy),
    ]);
    let alice = "alice@client.test.example";
    let news = "news@bulk.test.example";
    let qid = submit_one(&s, alice, "busy@remote.test.example", "busy").await;
    let bulk_qid = submit_one(&s, news, "busy2@remote.test.example", "bulk").await;

    let notices = wait_notices(&s, alice, 2);
    let kinds: Vec<String> = notices
        .iter()
        .filter_map(|m| m.header("X-Mailtrail-Notice"))
        .collect();
    assert_eq!(kinds, ["warning", "expiry"]);
    let expiry = String::from_utf8_lossy(&notices[1].data);
    assert!(expiry.contains("Subject: Returned mail: see transcript for details"));
    assert!(expiry.contains("Action: failed") && expiry.contains("Status: 4.4.7"));
    assert!(
        expiry.contains("Message could not be delivered for 15s"),
        "{expiry}"
    );

    // mailtrail removed it from postfix's queue: it is never delivered after the sender was told.
    s.pf.wait_log_line(&qid, "removed", T);
    let bulk_notices = wait_notices(&s, news, 1);
    wait_until(
        T,
        "postfix's queue to be empty",
        || s.pf.queue().is_empty(),
        || tail(&s.pf.maillog(), 30),
    );
    s.pf.wait_log_line(&bulk_qid, "removed", T);
    let kinds: Vec<String> = bulk_notices
        .iter()
        .filter_map(|m| m.header("X-Mailtrail-Notice"))
        .collect();
    assert_eq!(
        kinds,
        ["expiry"],
        "a bulk sender never gets a delay warning"
    );

    // The store agrees: both recipients expired as message-expired.
    let shown = s.mt.command(&["archive", "show", &qid]);
    assert!(
        shown.contains("expired") && shown.contains("message-expired"),
        "{shown}"
    );
}
