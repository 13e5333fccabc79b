//! Whole timelines, minute by minute on a simulated clock, against a real store: the MTA and the
//! SMTP transport are fakes that record what they were asked.

use super::*;
use crate::model::notice::NoticeKind;
use crate::{
    model::envelope::{ArchiveState, Envelope, Recipient},
    store::{AttemptRow, LogMessageFields},
};
use std::sync::Mutex;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2026-11-20 08:00:00 UTC);

#[derive(Default)]
struct FakeQueue {
    calls: Mutex<Vec<(&'static str, String, OffsetDateTime)>>,
    now: Mutex<Option<OffsetDateTime>>,
    fail_remove: Mutex<bool>,
}

impl QueueControl for FakeQueue {
    async fn retry(&self, queue_id: &str) -> Result<(), String> {
        let now = self.now.lock().unwrap().unwrap();
        self.calls
            .lock()
            .unwrap()
            .push(("retry", queue_id.into(), now));
        Ok(())
    }
    async fn remove(&self, queue_id: &str) -> Result<(), String> {
        if *self.fail_remove.lock().unwrap() {
            return Err("postsuper: fatal: queue busy".into());
        }
        let now = self.now.lock().unwrap().unwrap();
        self.calls
            .lock()
            .unwrap()
            .push(("remove", queue_id.into(), now));
        Ok(())
    }
}

#[derive(Default)]
struct FakeTransport {
    sent: Mutex<Vec<(notify::NoticeKind, Vec<u8>)>>,
    failing: Mutex<bool>,
}

impl NoticeTransport for FakeTransport {
    async fn send(&self, notice: &notify::Notice) -> Result<(), String> {
        if *self.failing.lock().unwrap() {
            return Err("connection refused".into());
        }
        self.sent
            .lock()
            .unwrap()
            .push((notice.kind(), notice.formatted()));
        Ok(())
    }
}

struct World {
    _dir: tempfile::TempDir,
    config: Config,
    store: Store,
    queue: FakeQueue,
    transport: FakeTransport,
}

impl World {
    fn new(senders: &str) -> World {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[state]\ndir = \"{}\"\n[notify]\nenabled = true\nreporting_mta = \"mx.example.net\"\n{senders}",
            dir.path().display()
        );
        let config = crate::config::parse(std::path::Path::new("t.toml"), &text).unwrap();
        let store = Store::open(&config.store.path).unwrap();
        World {
            _dir: dir,
            config,
            store,
            queue: FakeQueue::default(),
            transport: FakeTransport::default(),
        }
    }

    /// A message from `from` to `rcpts`, as the milter records it and qmgr then logs it.
    fn message(&mut self, qid: &str, from: &str, rcpts: &[&str]) -> i64 {
        let policy = self.config.sender_policy(from, None);
        let e = Envelope {
            queue_id: Some(qid.into()),
            arrived_at: T0,
            mta_host: None,
            client_name: None,
            client_addr: None,
            helo: None,
            sasl_user: None,
            mail_from: from.into(),
            mail_args: vec![],
            recipients: rcpts
                .iter()
                .map(|a| Recipient {
                    address: a.to_string(),
                    args: vec![],
                })
                .collect(),
            recipients_dropped: 0,
            size: 100,
            message_id: Some("<orig@example.com>".into()),
            subject: Some("hello".into()),
            archive_name: None,
            archive_state: ArchiveState::Disabled,
            mode: policy.mode,
            receipts: policy.receipts,
            is_notice: false,
        };
        let id = self.store.insert_envelopes(&[&e]).unwrap()[0];
        let batch = self.store.log_batch().unwrap();
        let fields = LogMessageFields {
            nrcpt: Some(rcpts.len() as u32),
            ..Default::default()
        };
        batch.set_message_fields(id, &fields).unwrap();
        batch.commit().unwrap();
        id
    }

    fn attempt(&mut self, message: i64, rcpt: &str, at: OffsetDateTime, status: &str, reply: &str) {
        let batch = self.store.log_batch().unwrap();
        let r = batch.recipient_for(message, rcpt, None).unwrap();
        let dsn = if status == "sent" { "2.0.0" } else { "4.7.1" };
        batch
            .record_attempt(
                r,
                &AttemptRow {
                    at: at.unix_timestamp(),
                    status: status.parse().unwrap(),
                    relay_host: Some("mx.dest.example"),
                    relay_ip: Some("192.0.2.25"),
                    relay_port: Some(25),
                    dsn: Some(dsn),
                    smtp_code: Some(if status == "sent" { 250 } else { 451 }),
                    reply,
                    stage: None,
                    delay: None,
                    delays: None,
                    category: None,
                },
            )
            .unwrap();
        batch.commit().unwrap();
    }

    async fn tick(&mut self, now: OffsetDateTime) -> TickReport {
        *self.queue.now.lock().unwrap() = Some(now);
        run_once(
            &self.config,
            &mut self.store,
            &self.queue,
            &self.transport,
            now,
        )
        .await
        .unwrap()
    }

    fn calls(&self, kind: &str) -> Vec<Duration> {
        self.queue
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _, _)| *k == kind)
            .map(|(_, _, at)| *at - T0)
            .collect()
    }

    fn sent(&self) -> Vec<notify::NoticeKind> {
        self.transport
            .sent
            .lock()
            .unwrap()
            .iter()
            .map(|(k, _)| *k)
            .collect()
    }
}

/// Walks minute by minute until `end`; every retry request makes the MTA try again, and the
/// recipient is deferred until `delivered_at` (if any).
async fn walk(w: &mut World, id: i64, rcpt: &str, end: Duration, delivered_at: Option<Duration>) {
    w.attempt(
        id,
        rcpt,
        T0 + Duration::seconds(2),
        "deferred",
        "451 4.7.1 Greylisted, try again later",
    );
    let mut minute = Duration::ZERO;
    while minute <= end {
        let now = T0 + minute;
        if delivered_at == Some(minute) {
            w.attempt(id, rcpt, now, "sent", "250 2.0.0 Ok: queued");
        }
        let retries_before = w.calls("retry").len();
        w.tick(now).await;
        if w.calls("retry").len() > retries_before && delivered_at.is_none_or(|d| minute < d) {
            w.attempt(
                id,
                rcpt,
                now,
                "deferred",
                "451 4.7.1 Greylisted, try again later",
            );
        }
        minute += Duration::MINUTE;
    }
}

fn minutes(list: &[Duration]) -> Vec<i64> {
    list.iter().map(|d| d.whole_minutes()).collect()
}

#[tokio::test]
async fn normal_sender_retries_every_10_minutes_warns_at_30_and_expires_at_4_hours() {
    let mut w = World::new("");
    let id = w.message("Q1", "alice@example.com", &["bob@dest.example"]);
    walk(&mut w, id, "bob@dest.example", Duration::hours(5), None).await;

    // The first deferral was logged at 08:00:02: each retry is 10 minutes after the last attempt.
    assert_eq!(
        minutes(&w.calls("retry")),
        (1..24).map(|n| n * 10 + 1).collect::<Vec<_>>()
    );
    assert_eq!(minutes(&w.calls("remove")), vec![240]);
    assert_eq!(
        w.sent(),
        vec![notify::NoticeKind::Warning, notify::NoticeKind::Expiry]
    );
    let message = w.store.policy_message(id).unwrap().unwrap();
    assert_eq!(message.recipients[0].status.as_str(), "expired");

    // The notices are real RFC 3464 reports about the original.
    let sent = w.transport.sent.lock().unwrap();
    let warning = mail_parser::MessageParser::default()
        .parse(&sent[0].1)
        .unwrap();
    assert_eq!(
        warning.subject(),
        Some("Warning: could not send message for past 30 minutes")
    );
    let expiry = String::from_utf8_lossy(&sent[1].1).into_owned();
    assert!(expiry.contains("Subject: Returned mail: see transcript for details"));
    assert!(expiry.contains("Status: 4.4.7") && expiry.contains("Action: failed"));
    assert!(expiry.contains("Message could not be delivered for 4 hours"));
    assert!(expiry.contains("Final-Recipient: rfc822; bob@dest.example"));
}

#[tokio::test]
async fn bulk_sender_gets_no_warning_and_24_hours() {
    let mut w = World::new("[[sender]]\nmatch = \"@news.example\"\nmode = \"bulk\"\n");
    let id = w.message("Q2", "letter@news.example", &["bob@dest.example"]);
    walk(&mut w, id, "bob@dest.example", Duration::hours(25), None).await;
    let retries = minutes(&w.calls("retry"));
    assert_eq!(
        retries.first(),
        Some(&31),
        "30 minutes after the 08:00:02 deferral"
    );
    assert!(retries.windows(2).all(|p| p[1] - p[0] == 30), "{retries:?}");
    assert_eq!(minutes(&w.calls("remove")), vec![24 * 60]);
    assert_eq!(w.sent(), vec![notify::NoticeKind::Expiry]);
}

#[tokio::test]
async fn delivered_at_3h59_with_receipts_gets_warning_then_receipt_only() {
    let mut w = World::new("[[sender]]\nmatch = \"boss@example.com\"\nreceipts = true\n");
    let id = w.message("Q3", "boss@example.com", &["bob@dest.example"]);
    walk(
        &mut w,
        id,
        "bob@dest.example",
        Duration::hours(5),
        Some(Duration::minutes(239)),
    )
    .await;
    assert!(w.calls("remove").is_empty());
    assert_eq!(
        w.sent(),
        vec![notify::NoticeKind::Warning, notify::NoticeKind::Receipt]
    );
    let sent = w.transport.sent.lock().unwrap();
    let receipt = String::from_utf8_lossy(&sent[1].1).into_owned();
    assert!(receipt.contains("Subject: Return receipt") && receipt.contains("Action: relayed"));
    assert_eq!(
        w.store.policy_message(id).unwrap().unwrap().notices,
        vec![NoticeKind::Warning, NoticeKind::Receipt]
    );
}

#[tokio::test]
async fn a_notice_recorded_but_not_sent_is_sent_later_and_never_twice() {
    let mut w = World::new("");
    let id = w.message("Q4", "alice@example.com", &["bob@dest.example"]);
    w.attempt(
        id,
        "bob@dest.example",
        T0 + Duration::seconds(2),
        "deferred",
        "421 4.3.2 too busy",
    );
    // The transport is down when the warning falls due (or the daemon died before sending).
    *w.transport.failing.lock().unwrap() = true;
    let r = w.tick(T0 + Duration::minutes(30)).await;
    assert_eq!(
        (r.notices_recorded, r.notices_sent, r.notices_failed),
        (1, 0, 1)
    );
    assert_eq!(w.store.due_notices().unwrap().len(), 1, "recorded as due");
    // Back up: the due notice goes out, once.
    *w.transport.failing.lock().unwrap() = false;
    let r = w.tick(T0 + Duration::minutes(31)).await;
    assert_eq!((r.notices_recorded, r.notices_sent), (0, 1));
    for m in 32..40 {
        w.tick(T0 + Duration::minutes(m)).await;
    }
    assert_eq!(w.sent(), vec![notify::NoticeKind::Warning]);
    assert!(w.store.due_notices().unwrap().is_empty());
}

#[tokio::test]
async fn null_sender_and_unseen_messages_get_no_notice() {
    let mut w = World::new("");
    let bounce = w.message("Q5", "", &["alice@example.com"]);
    walk(
        &mut w,
        bounce,
        "alice@example.com",
        Duration::hours(5),
        None,
    )
    .await;
    assert!(w.sent().is_empty(), "never notify the null sender");
    assert_eq!(
        minutes(&w.calls("remove")),
        vec![240],
        "the queue is still cleaned"
    );

    // A message the log never reported on is left alone: its recipients may just be unknown.
    let mut w = World::new("");
    let e = w.message("Q6", "alice@example.com", &["bob@dest.example"]);
    w.store
        .conn_for_tests()
        .execute("UPDATE message SET nrcpt = NULL WHERE id = ?1", [e])
        .unwrap();
    let r = w.tick(T0 + Duration::hours(5)).await;
    assert_eq!(r, TickReport::default());
}

#[tokio::test]
async fn expiry_waits_until_the_mta_removed_the_message() {
    let mut w = World::new("");
    let id = w.message("Q7", "alice@example.com", &["bob@dest.example"]);
    w.attempt(
        id,
        "bob@dest.example",
        T0 + Duration::seconds(2),
        "deferred",
        "421 4.3.2 too busy",
    );
    *w.queue.fail_remove.lock().unwrap() = true;
    // First seen at 4 h: expiry is due (and takes precedence over the warning).
    let r = w.tick(T0 + Duration::hours(4)).await;
    assert_eq!(r.expired, 0);
    assert!(
        w.sent().is_empty(),
        "no expiry notice while the MTA may still deliver"
    );
    assert_eq!(
        w.store.policy_message(id).unwrap().unwrap().recipients[0]
            .status
            .as_str(),
        "deferred"
    );
    *w.queue.fail_remove.lock().unwrap() = false;
    let r = w.tick(T0 + Duration::hours(4) + Duration::MINUTE).await;
    assert_eq!(r.expired, 1);
    assert_eq!(w.sent(), vec![notify::NoticeKind::Expiry]);
}

#[test]
fn receipt_waits_for_every_recipient_and_is_sent_once() {
    // Receipts are decided once per message (UNIQUE(message, kind)), whatever the tick count.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut w = World::new("[[sender]]\nmatch = \"@example.com\"\nreceipts = true\n");
        let id = w.message("Q8", "a@example.com", &["x@d.example", "y@d.example"]);
        w.attempt(
            id,
            "x@d.example",
            T0 + Duration::seconds(5),
            "sent",
            "250 ok",
        );
        w.tick(T0 + Duration::minutes(1)).await;
        assert!(w.sent().is_empty(), "y is not final yet");
        w.attempt(
            id,
            "y@d.example",
            T0 + Duration::minutes(2),
            "sent",
            "250 ok",
        );
        for m in 3..10 {
            w.tick(T0 + Duration::minutes(m)).await;
        }
        assert_eq!(w.sent(), vec![notify::NoticeKind::Receipt]);
        let sent = w.transport.sent.lock().unwrap();
        let text = String::from_utf8_lossy(&sent[0].1).into_owned();
        assert!(text.contains("rfc822; x@d.example") && text.contains("rfc822; y@d.example"));
    });
}

#[tokio::test]
async fn a_config_reload_keeps_the_mode_a_message_arrived_with() {
    let mut w = World::new("[[sender]]\nmatch = \"@news.example\"\nmode = \"bulk\"\n");
    let id = w.message("Q9", "letter@news.example", &["bob@dest.example"]);
    // The operator drops the rule: new mail from news.example would be normal, this one stays bulk.
    let dir = w.config.state_dir.clone();
    w.config = crate::config::parse(
        std::path::Path::new("t.toml"),
        &format!(
            "[state]\ndir = \"{}\"\n[notify]\nenabled = true\n",
            dir.display()
        ),
    )
    .unwrap();
    assert_eq!(
        w.config.sender_policy("letter@news.example", None).mode,
        "normal"
    );
    walk(&mut w, id, "bob@dest.example", Duration::hours(2), None).await;
    assert!(
        w.sent().is_empty(),
        "bulk: no warning at 30 minutes, even after the reload"
    );
    assert_eq!(
        minutes(&w.calls("retry"))[..2],
        [31, 61],
        "bulk: every 30 minutes"
    );
}

/// A notice that cannot be built (a sender with CR/LF would inject headers) is refused once and
/// given up, not refused and logged again at every tick.
#[tokio::test]
async fn a_notice_that_cannot_be_built_is_given_up_once() {
    let mut w = World::new("");
    let id = w.message(
        "Q1",
        "alice@example.com\r\nBcc: victim@example.net",
        &["bob@dest.example"],
    );
    w.attempt(
        id,
        "bob@dest.example",
        T0 + Duration::seconds(2),
        "deferred",
        "451 4.7.1 Greylisted, try again later",
    );
    let mut failed = Vec::new();
    for minute in 0..90 {
        let report = w.tick(T0 + Duration::minutes(minute)).await;
        if report.notices_failed > 0 {
            failed.push((minute, report.notices_failed));
        }
    }
    assert_eq!(failed, [(30, 1)]);
    assert!(w.sent().is_empty());
}

/// A message handed over to this host's MTA under a new queue id (sendmail's submission
/// program, a content filter re-injecting into postfix) has no delivery of its own: its
/// recipients stay pending on that row. The next hop carries the promise; the hand-over row
/// gets no retry, no warning, no expiry and is never removed from a queue it is not in.
#[tokio::test]
async fn a_row_handed_over_to_a_next_hop_is_left_to_it() {
    let mut w = World::new("[[sender]]\nmatch = \"alice@example.com\"\nreceipts = true\n");
    let hop = w.message("Q7", "alice@example.com", &["bob@dest.example"]);
    let batch = w.store.log_batch().unwrap();
    let fields = LogMessageFields {
        handed_to: Some("Q8"),
        ..Default::default()
    };
    batch.set_message_fields(hop, &fields).unwrap();
    batch.commit().unwrap();
    for minutes in [11, 31, 241, 24 * 60 + 1] {
        let r = w.tick(T0 + Duration::minutes(minutes)).await;
        assert_eq!(r, TickReport::default(), "at minute {minutes}");
    }
    assert!(w.sent().is_empty());
    assert!(w.queue.calls.lock().unwrap().is_empty());
}
