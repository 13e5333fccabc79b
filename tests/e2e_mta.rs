//! `mailtrail::mta` against a real private postfix (see docs/e2e.md): retry and remove one
//! queued message by queue id, with `-c DIR` pointing the commands at the test's instance.

mod support;

use std::time::Duration;

use mailtrail::{
    config::{MtaConfig, MtaKind, SENDMAIL_REMOVE_SCRIPT},
    mta::{MtaControl, MtaError},
};
use support::message::message_id;
use support::postfix::{Postfix, PostfixConfig, tail};
use support::sendmail::Sendmail;
use support::smtp_server::{Reply, ScriptedServer};
use support::submit;
use support::util::wait_until;

const T: Duration = Duration::from_secs(30);

/// A postfix that retries a deferred message only after an hour: any quick new attempt is ours.
fn patient_postfix(relay_port: u16) -> Postfix {
    Postfix::start(
        PostfixConfig::new(relay_port, None)
            .set("queue_run_delay", "3600s")
            .set("minimal_backoff_time", "3600s")
            .set("maximal_backoff_time", "3600s"),
    )
}

fn control(pf: &Postfix) -> MtaControl {
    let mut config = MtaConfig::defaults(MtaKind::Postfix);
    config.config_dir = Some(pf.config_dir());
    MtaControl::new(config)
}

/// Submits one message to `rcpt` and waits until postfix deferred it; returns its queue id.
async fn deferred_message(pf: &Postfix, rcpt: &str, tag: &str) -> String {
    let id = message_id(tag);
    let m = submit::simple_message("sender@client.test.example", &[rcpt], tag, &id, "x\n");
    eprintln!("{tag}: submitting");
    submit::send(pf.smtpd_port(), m).await;
    eprintln!("{tag}: submitted");
    let qid = pf.wait_queue_id(&id, T);
    pf.wait_log_line(&qid, "status=deferred", T);
    eprintln!("{tag}: deferred as {qid}");
    qid
}

fn queued_ids(pf: &Postfix) -> Vec<String> {
    pf.queue()
        .iter()
        .filter_map(|m| m["queue_id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_takes_a_deferred_message_out_of_the_queue() {
    let server = ScriptedServer::start();
    server.script("full@remote.test.example", Reply::MailboxFull);
    let pf = patient_postfix(server.port());
    let keep = deferred_message(&pf, "full@remote.test.example", "keep").await;
    let drop = deferred_message(&pf, "full@remote.test.example", "drop").await;
    let mut queued = queued_ids(&pf);
    queued.sort();
    let mut both = vec![keep.clone(), drop.clone()];
    both.sort();
    assert_eq!(queued, both);

    let mta = control(&pf);
    mta.remove(&drop)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", tail(&pf.maillog(), 20)));
    // Only the one message went; postsuper logged its removal.
    assert_eq!(queued_ids(&pf), std::slice::from_ref(&keep));
    pf.wait_log_line(&drop, "removed", T);
    assert!(server.messages().is_empty());

    // Removing it again is an error the caller sees, not a silent success.
    let err = mta.remove(&drop).await.unwrap_err();
    assert!(matches!(err, MtaError::Failed { .. }), "{err}");
    assert_eq!(queued_ids(&pf), [keep]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_makes_postfix_attempt_delivery_now() {
    let server = ScriptedServer::start();
    // 451 once, then 250: only a new attempt can deliver it.
    server.script("grey@remote.test.example", Reply::Greylist { tries: 1 });
    let pf = patient_postfix(server.port());
    let qid = deferred_message(&pf, "grey@remote.test.example", "grey").await;
    // Postfix itself would wait an hour: nothing happens on its own.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(server.rcpt_attempts().len(), 1);
    assert_eq!(queued_ids(&pf), std::slice::from_ref(&qid));

    eprintln!("retrying {qid}");
    control(&pf)
        .retry(&qid)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", tail(&pf.maillog(), 20)));
    eprintln!("retry requested");
    let sent = pf.wait_log_line(&qid, "status=sent", T);
    assert!(sent.contains("to=<grey@remote.test.example>"), "{sent}");
    assert_eq!(server.wait_for_messages(1, T).len(), 1);
    assert_eq!(server.rcpt_attempts().len(), 2);
    wait_until(
        T,
        "the queue to drain",
        || pf.queue().is_empty(),
        || tail(&pf.maillog(), 20),
    );

    // postqueue -i only passes a request to the flush service and cannot tell that the id is
    // gone: a retry of a message no longer queued succeeds and does nothing (documented on
    // `MtaControl::retry`; the log is what says whether an attempt happened).
    control(&pf)
        .retry(&qid)
        .await
        .expect("postqueue -i exits 0");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(server.rcpt_attempts().len(), 2);
}

/// The default sendmail remove command (the script, pointed at the test's queue directory)
/// against a real sendmail whose queue runner tries the message every second: it deletes the
/// message's queue files under the runner's lock, retried while a runner holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sendmail_remove_deletes_the_queue_files() {
    let server = ScriptedServer::start();
    server.script("full@remote.test.example", Reply::MailboxFull);
    let sm = Sendmail::start(server.port(), None);
    let mut qids = Vec::new();
    for tag in ["sm-keep", "sm-drop"] {
        let id = message_id(tag);
        let m = submit::simple_message(
            "sender@client.test.example",
            &["full@remote.test.example"],
            tag,
            &id,
            "x\n",
        );
        submit::send(sm.smtp_port(), m).await;
        let qid = sm.wait_queue_id(&id, T);
        wait_until(
            T,
            "the 452 to defer the message",
            || {
                sm.log_lines_for(&qid)
                    .iter()
                    .any(|l| l.contains("stat=Deferred"))
            },
            || tail(&sm.maillog(), 20),
        );
        qids.push(qid);
    }
    let (keep, drop) = (&qids[0], &qids[1]);
    let queue_dir = sm.root().join("queue");
    assert!(queue_dir.join(format!("qf{drop}")).exists());
    assert!(queue_dir.join(format!("df{drop}")).exists());

    let mut config = MtaConfig::defaults(MtaKind::Sendmail);
    // The default list with the queue directory (its last element) of this instance.
    assert_eq!(config.remove[2], SENDMAIL_REMOVE_SCRIPT);
    *config.remove.last_mut().unwrap() = queue_dir.display().to_string();
    let mta = MtaControl::new(config);
    let mut tries = 0;
    loop {
        tries += 1;
        match mta.remove(drop).await {
            Ok(()) => break,
            // A queue runner holds the lock: what the caller does, try again.
            Err(MtaError::Failed { .. }) if tries < 50 => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}\n{}", tail(&sm.maillog(), 20)),
        }
    }
    for prefix in ["qf", "df", "xf"] {
        assert!(
            !queue_dir.join(format!("{prefix}{drop}")).exists(),
            "{prefix}{drop}"
        );
    }
    assert_eq!(sm.queued(), [format!("qf{keep}")]);
    // Gone: a second remove fails, and the runner never delivers or bounces it.
    let err = mta.remove(drop).await.unwrap_err();
    assert!(matches!(err, MtaError::Failed { .. }), "{err}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(server.messages().is_empty());
    assert_eq!(sm.queued(), [format!("qf{keep}")]);
}
