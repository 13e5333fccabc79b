//! Self-tests of the end-to-end harness that do not need mailtrail: the private postfix instance
//! relays to the scripted server, and the scripted server answers RCPT TO as scripted.

mod support;

use std::time::Duration;

use support::message::{header_value, message_id};
use support::postfix::{Postfix, PostfixConfig};
use support::sendmail::Sendmail;
use support::smtp_server::{RcptAttempt, Reply, ScriptedServer};
use support::submit;
use support::util::{free_port, wait_until};

const T: Duration = Duration::from_secs(30);

/// Each scripted reply reaches postfix and shows in its log as the matching delivery status; a
/// greylisted recipient is delivered on a later try; the sendmail command works too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_replies_reach_postfix() {
    let server = ScriptedServer::start();
    server
        .script("ok@remote.test.example", Reply::Accept)
        .script("grey@remote.test.example", Reply::Greylist { tries: 2 })
        .script("full@remote.test.example", Reply::MailboxFull)
        .script("unknown@remote.test.example", Reply::UserUnknown);
    // A milter port nothing listens on: milter_default_action = accept lets mail through.
    let pf = Postfix::start(PostfixConfig::new(server.port(), Some(free_port())));

    let id = message_id("harness");
    let rcpts = [
        "ok@remote.test.example",
        "grey@remote.test.example",
        "full@remote.test.example",
        "unknown@remote.test.example",
    ];
    let msg = submit::simple_message(
        "sender@client.test.example",
        &rcpts,
        "harness",
        &id,
        "hello\n",
    );
    submit::send(pf.smtpd_port(), msg).await;
    let qid = pf.wait_queue_id(&id, T);

    // ok: delivered on the first try; grey: 451 twice, then delivered in a second message.
    let first = server.wait_for_message_id(&id, T);
    assert_eq!(first.rcpt_to, vec!["ok@remote.test.example"]);
    assert_eq!(first.mail_from, "sender@client.test.example");
    assert_eq!(first.helo, support::postfix::MYHOSTNAME);
    // The 550 makes postfix send a bounce to the (remote) sender: it arrives here too.
    let bounce = support::util::wait_for(
        T,
        "the non-delivery notification",
        || {
            server
                .messages()
                .into_iter()
                .find(|m| m.mail_from.is_empty())
        },
        || format!("{:?}", server.messages()),
    );
    assert_eq!(bounce.rcpt_to, vec!["sender@client.test.example"]);
    let grey_msg = support::util::wait_for(
        T,
        "grey@ to be delivered",
        || {
            server
                .messages()
                .into_iter()
                .find(|m| m.rcpt_to == ["grey@remote.test.example"])
        },
        || format!("{:?}", server.rcpt_attempts()),
    );
    assert_eq!(
        header_value(&grey_msg.data, "Message-ID"),
        Some(format!("<{id}>"))
    );

    let ok = pf.wait_log_line(&qid, "to=<ok@remote.test.example>", T);
    assert!(ok.contains("status=sent"), "{ok}");
    let grey = pf.wait_log_line(&qid, "to=<grey@remote.test.example>, relay", T);
    assert!(
        grey.contains("status=deferred") && grey.contains("451 4.7.1"),
        "{grey}"
    );
    let unknown = pf.wait_log_line(&qid, "to=<unknown@remote.test.example>", T);
    assert!(
        unknown.contains("status=bounced") && unknown.contains("550 5.1.1"),
        "{unknown}"
    );
    let full = pf.wait_log_line(&qid, "to=<full@remote.test.example>", T);
    assert!(
        full.contains("status=deferred") && full.contains("452 4.2.2"),
        "{full}"
    );
    wait_until(
        T,
        "grey@ to be sent after two 451s",
        || {
            pf.log_lines_for(&qid)
                .iter()
                .any(|l| l.contains("to=<grey@remote.test.example>") && l.contains("status=sent"))
        },
        || pf.log_lines_for(&qid).join("\n"),
    );
    let grey_tries: Vec<_> = server
        .rcpt_attempts()
        .into_iter()
        .filter(|a| a.rcpt == "grey@remote.test.example")
        .collect();
    assert_eq!(
        grey_tries[..3],
        [
            RcptAttempt {
                rcpt: "grey@remote.test.example".into(),
                code: Some(451)
            },
            RcptAttempt {
                rcpt: "grey@remote.test.example".into(),
                code: Some(451)
            },
            RcptAttempt {
                rcpt: "grey@remote.test.example".into(),
                code: Some(250)
            },
        ]
    );
}

/// 421 and a dropped connection defer the message; the scripted server sees the attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_and_dropped_connections_defer() {
    let server = ScriptedServer::start();
    server
        .script("busy@remote.test.example", Reply::TooBusy)
        .script("drop@remote.test.example", Reply::Drop);
    let pf = Postfix::start(PostfixConfig::new(server.port(), None));

    let busy = message_id("busy");
    let dropped = message_id("drop");
    for (id, rcpt) in [
        (&busy, "busy@remote.test.example"),
        (&dropped, "drop@remote.test.example"),
    ] {
        let m = submit::simple_message("sender@client.test.example", &[rcpt], "x", id, "x\n");
        submit::send(pf.smtpd_port(), m).await;
    }
    let busy_q = pf.wait_queue_id(&busy, T);
    let drop_q = pf.wait_queue_id(&dropped, T);
    let l = pf.wait_log_line(&busy_q, "status=deferred", T);
    assert!(l.contains("421 4.3.2 too busy"), "{l}");
    let l = pf.wait_log_line(&drop_q, "status=deferred", T);
    assert!(l.contains("lost connection"), "{l}");
    // Retried within the short backoff (a few seconds apart; a failed connection also makes
    // qmgr hold the whole destination for minimal_backoff_time): at least two attempts each.
    // The harness's backoff keeps qmgr from taking a message back while the delivery agent
    // still holds it; should that happen anyway (an agent stalled on a loaded machine), qmgr
    // parks the message for a fixed 60 s, which the deadline covers.
    wait_until(
        Duration::from_secs(90),
        "a retry of each deferred message",
        || {
            let a = server.rcpt_attempts();
            a.iter().filter(|a| a.code == Some(421)).count() >= 2
                && a.iter().filter(|a| a.code.is_none()).count() >= 2
        },
        || {
            format!(
                "attempts: {:?}\nmaillog:\n{}",
                server.rcpt_attempts(),
                support::postfix::tail(&pf.maillog(), 40)
            )
        },
    );
    assert!(server.messages().is_empty());
    assert_eq!(pf.queue().len(), 2);
}

/// A message submitted with postfix's sendmail command is relayed to the scripted server.
#[test]
fn sendmail_command_relays() {
    let server = ScriptedServer::start();
    // Both milter settings point at a port nothing listens on: fail-open on both paths.
    let milter_port = free_port();
    let pf = Postfix::start(PostfixConfig::new(server.port(), Some(milter_port)));
    let id = message_id("sendmail");
    let raw = format!(
        "From: sender@client.test.example\nTo: someone@remote.test.example\nSubject: via sendmail\nMessage-ID: <{id}>\n\nbody\n"
    );
    pf.sendmail(
        "sender@client.test.example",
        &["someone@remote.test.example"],
        raw.as_bytes(),
    );
    let m = server.wait_for_message_id(&id, T);
    assert_eq!(m.rcpt_to, vec!["someone@remote.test.example"]);
    pf.wait_queue_empty(T);
    // The non_smtpd_milters path was tried (by cleanup) and failed open.
    let refused = format!(
        "/cleanup[.*warning: connect to Milter service inet:127.0.0.1:{milter_port}: Connection refused"
    );
    let re_ok = pf.maillog().lines().any(|l| {
        l.contains("/cleanup[")
            && l.contains(&format!(
                "warning: connect to Milter service inet:127.0.0.1:{milter_port}: Connection refused"
            ))
    });
    assert!(re_ok, "no line like {refused:?} in\n{}", pf.maillog());
}

/// The private sendmail (unpacked Debian sendmail-bin) relays to the scripted server, logs
/// through the harness's syslog socket, and fails open when its milter is not there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sendmail_mta_relays_and_logs() {
    let server = ScriptedServer::start();
    let milter_port = free_port();
    let sm = Sendmail::start(server.port(), Some(milter_port));
    let id = message_id("sendmail-mta");
    let rcpts = ["x@remote.test.example", "y@remote.test.example"];
    let m = submit::simple_message("sender@client.test.example", &rcpts, "sm", &id, "hi\n");
    submit::send(sm.smtp_port(), m).await;
    let relayed = server.wait_for_message_id(&id, T);
    assert_eq!(relayed.mail_from, "sender@client.test.example");
    let mut got = relayed.rcpt_to.clone();
    got.sort();
    assert_eq!(got, ["x@remote.test.example", "y@remote.test.example"]);
    let qid = sm.wait_queue_id(&id, T);
    // Log lines reach the file after the queue empties (see the next test): wait for them.
    sm.wait_log_line(&qid, "stat=Sent", T);
    sm.wait_queue_empty(T);
    let lines = sm.log_lines_for(&qid).join("\n");
    assert!(
        lines.contains("Milter (mailtrail): error connecting to filter"),
        "{lines}"
    );
    assert!(lines.contains("stat=Sent"), "{lines}");
    let received = relayed.header("Received").unwrap();
    assert!(
        received.contains(&format!("with ESMTP id {qid};")),
        "{received}"
    );
}

/// The sendmail log is written in the syslog file format, with the host name, like postfix's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sendmail_log_has_syslog_file_format() {
    let server = ScriptedServer::start();
    let sm = Sendmail::start(server.port(), None);
    let id = message_id("sendmail-log");
    let m = submit::simple_message(
        "sender@client.test.example",
        &["z@remote.test.example"],
        "log",
        &id,
        "x\n",
    );
    submit::send(sm.smtp_port(), m).await;
    let qid = sm.wait_queue_id(&id, T);
    // The queue empties before the syslog datagrams of the delivery reach the log file: wait
    // for the last line of the delivery.
    let sent = sm.wait_log_line(&qid, "stat=Sent", T);
    sm.wait_log_line(&qid, "done;", T);
    sm.wait_queue_empty(T);
    let lines = sm.log_lines_for(&qid);
    assert!(lines.contains(&sent), "{lines:?}");
    for line in lines {
        // "Nov 23 19:21:05 sm sendmail[13362]: QID: ..."
        let (stamp, rest) = line.split_at(16);
        assert_eq!(stamp.len(), 16, "{line}");
        assert!(
            stamp.as_bytes()[3] == b' ' && stamp.ends_with(' '),
            "{line}"
        );
        assert!(rest.starts_with("sm sendmail["), "{line}");
        assert!(rest.contains(&format!("]: {qid}: ")), "{line}");
    }
}
