use std::time::Duration;

use time::{OffsetDateTime, macros::datetime};

use super::*;

const T0: OffsetDateTime = datetime!(2026-11-23 08:00 UTC);

fn min(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

fn at(d: Duration) -> OffsetDateTime {
    T0 + d
}

fn recipient(address: &str) -> RecipientState {
    RecipientState {
        address: address.into(),
        status: RecipientStatus::Pending,
        last_attempt_at: None,
        last_reply: None,
        last_dsn: None,
        remote_mta: None,
    }
}

fn message(sender: &str, receipts: Receipts, rcpts: &[&str]) -> MessageState {
    MessageState {
        arrived_at: T0,
        sender: sender.into(),
        is_notice: false,
        receipts,
        recipients: rcpts.iter().map(|a| recipient(a)).collect(),
        warning_sent: false,
        expiry_sent: false,
        receipt_sent: false,
        last_retry_request_at: None,
        removed_from_queue: false,
    }
}

/// What the MTA does with one recipient on an attempt at minute `m`.
type Outcome = fn(&str, u64) -> RecipientStatus;

fn always_deferred(_: &str, _: u64) -> RecipientStatus {
    RecipientStatus::Deferred
}

/// Walks a timeline minute by minute like the tick does: MTA attempts at arrival and after
/// every `RetryNow`, actions applied back into the state. Returns `(minute, actions)` for every
/// minute where something was due. Checks on the way that `next_due` agrees with `decide`.
fn walk(
    state: &mut MessageState,
    policy: &Policy,
    minutes: u64,
    mta: Outcome,
) -> Vec<(u64, Vec<Action>)> {
    let mut log = Vec::new();
    attempt(state, 0, mta);
    for m in 0..=minutes {
        let now = at(min(m));
        let actions = decide(state, policy, now);
        let next = next_due(state, policy, now);
        assert_eq!(
            !actions.is_empty(),
            next.is_some_and(|d| d <= now),
            "minute {m}: decide {actions:?} vs next_due {next:?}"
        );
        if actions.is_empty() {
            continue;
        }
        apply(state, &actions, m, mta);
        log.push((m, actions));
    }
    log
}

fn attempt(state: &mut MessageState, m: u64, mta: Outcome) {
    for r in &mut state.recipients {
        if !r.status.is_final() {
            r.status = mta(&r.address, m);
            r.last_attempt_at = Some(at(min(m)));
            r.last_reply = Some("451 4.7.1 try again later".into());
        }
    }
    if state.recipients.iter().all(|r| r.status.is_final()) {
        state.removed_from_queue = true;
    }
}

fn apply(state: &mut MessageState, actions: &[Action], m: u64, mta: Outcome) {
    for action in actions {
        match action {
            Action::RetryNow => {
                state.last_retry_request_at = Some(at(min(m)));
                attempt(state, m, mta);
            }
            Action::SendWarning { .. } => state.warning_sent = true,
            Action::Expire { failed, .. } => {
                for r in &mut state.recipients {
                    if failed.contains(&r.address) {
                        r.status = RecipientStatus::Expired;
                    }
                }
                state.expiry_sent = true;
                state.removed_from_queue = true;
            }
            Action::SendReceipt { .. } => state.receipt_sent = true,
        }
    }
}

fn minutes_of(log: &[(u64, Vec<Action>)], pred: impl Fn(&Action) -> bool) -> Vec<u64> {
    log.iter()
        .filter(|(_, a)| a.iter().any(&pred))
        .map(|(m, _)| *m)
        .collect()
}

fn is_retry(a: &Action) -> bool {
    matches!(a, Action::RetryNow)
}
fn is_warning(a: &Action) -> bool {
    matches!(a, Action::SendWarning { .. })
}
fn is_expire(a: &Action) -> bool {
    matches!(a, Action::Expire { .. })
}
fn is_receipt(a: &Action) -> bool {
    matches!(a, Action::SendReceipt { .. })
}
fn is_notice(a: &Action) -> bool {
    matches!(
        a,
        Action::SendWarning { .. }
            | Action::SendReceipt { .. }
            | Action::Expire { notify: true, .. }
    )
}

#[test]
fn normal_timeline_deferred_forever() {
    let policy = Policy::normal();
    let mut state = message("alice@example.com", Receipts::On, &["bob@example.net"]);
    let log = walk(&mut state, &policy, 6 * 60, always_deferred);

    let retries: Vec<u64> = (1..24).map(|i| i * 10).collect();
    assert_eq!(
        minutes_of(&log, is_retry),
        retries,
        "every 10 minutes up to 3h50m"
    );
    assert_eq!(minutes_of(&log, is_warning), [30]);
    assert_eq!(minutes_of(&log, is_expire), [240]);
    assert_eq!(log.last().unwrap().0, 240, "nothing after expiry");
    assert_eq!(
        log.iter().find(|(m, _)| *m == 30).unwrap().1,
        [
            Action::RetryNow,
            Action::SendWarning {
                waiting: vec!["bob@example.net".into()]
            }
        ]
    );
    // Expiry alone at 4h: no retry at the same instant, and no receipt (nothing delivered).
    assert_eq!(
        log.last().unwrap().1,
        [Action::Expire {
            failed: vec!["bob@example.net".into()],
            notify: true
        }]
    );
    assert_eq!(next_due(&state, &policy, at(min(300))), None);
}

#[test]
fn warning_exactly_at_deadline() {
    let policy = Policy::normal();
    let mut state = message("alice@example.com", Receipts::Off, &["bob@example.net"]);
    state.recipients[0].status = RecipientStatus::Deferred;
    // A recent attempt keeps retries out of the way.
    state.recipients[0].last_attempt_at = Some(at(min(29)));
    let just_before = at(min(30) - Duration::from_secs(1));
    assert_eq!(decide(&state, &policy, just_before), []);
    assert_eq!(next_due(&state, &policy, just_before), Some(at(min(30))));
    assert_eq!(
        decide(&state, &policy, at(min(30))),
        [Action::SendWarning {
            waiting: vec!["bob@example.net".into()]
        }]
    );
    let before_expiry = at(min(240) - Duration::from_secs(1));
    state.warning_sent = true;
    state.recipients[0].last_attempt_at = Some(before_expiry);
    assert_eq!(decide(&state, &policy, before_expiry), []);
    assert!(matches!(
        decide(&state, &policy, at(min(240)))[..],
        [Action::Expire { .. }]
    ));
}

#[test]
fn bulk_timeline() {
    let policy = Policy::bulk();
    let mut state = message(
        "news@example.com",
        Receipts::Off,
        &["a@example.net", "b@example.org"],
    );
    let log = walk(&mut state, &policy, 30 * 60, always_deferred);
    let retries: Vec<u64> = (1..48).map(|i| i * 30).collect();
    assert_eq!(minutes_of(&log, is_retry), retries);
    assert_eq!(minutes_of(&log, is_warning), Vec::<u64>::new());
    assert_eq!(minutes_of(&log, is_expire), [24 * 60]);
    assert_eq!(log.last().unwrap().0, 24 * 60);
    assert_eq!(
        log.last().unwrap().1,
        [Action::Expire {
            failed: vec!["a@example.net".into(), "b@example.org".into()],
            notify: true
        }]
    );
}

#[test]
fn delivered_just_before_expiry_gets_receipt_only() {
    fn mta(_: &str, m: u64) -> RecipientStatus {
        if m >= 239 {
            RecipientStatus::Sent
        } else {
            RecipientStatus::Deferred
        }
    }
    let policy = Policy::normal();
    let mut state = message("alice@example.com", Receipts::On, &["bob@example.net"]);
    let mut log = Vec::new();
    attempt(&mut state, 0, mta);
    for m in 0..=600 {
        // The MTA's own queue run delivers at 3h59m, between our retries.
        if m == 239 {
            attempt(&mut state, m, mta);
        }
        let actions = decide(&state, &policy, at(min(m)));
        apply(&mut state, &actions, m, mta);
        if !actions.is_empty() {
            log.push((m, actions));
        }
    }
    assert_eq!(minutes_of(&log, is_expire), Vec::<u64>::new());
    assert_eq!(minutes_of(&log, is_warning), [30]);
    assert_eq!(
        log.last().unwrap(),
        &(
            239,
            vec![Action::SendReceipt {
                delivered: vec!["bob@example.net".into()]
            }]
        )
    );
}

#[test]
fn receipts_off_or_dsn_never_send_receipt() {
    for receipts in [Receipts::Off, Receipts::Dsn] {
        let mut state = message("alice@example.com", receipts, &["bob@example.net"]);
        let log = walk(&mut state, &Policy::normal(), 60, |_, _| {
            RecipientStatus::Sent
        });
        assert!(log.is_empty(), "{receipts:?}: {log:?}");
    }
}

#[test]
fn mixed_recipients_one_receipt_with_delivered_only() {
    fn mta(rcpt: &str, m: u64) -> RecipientStatus {
        match rcpt {
            "bounced@example.net" => RecipientStatus::Bounced,
            "sent@example.net" => RecipientStatus::Sent,
            _ if m >= 20 => RecipientStatus::Sent,
            _ => RecipientStatus::Deferred,
        }
    }
    let policy = Policy::normal();
    let mut state = message(
        "alice@example.com",
        Receipts::On,
        &[
            "bounced@example.net",
            "sent@example.net",
            "later@example.net",
        ],
    );
    let log = walk(&mut state, &policy, 6 * 60, mta);
    assert_eq!(minutes_of(&log, is_retry), [10, 20]);
    // The retry at 20 delivers; the next tick sees every recipient final.
    assert_eq!(minutes_of(&log, is_receipt), [21]);
    assert_eq!(minutes_of(&log, is_warning), Vec::<u64>::new());
    assert_eq!(
        log.last().unwrap().1,
        [Action::SendReceipt {
            delivered: vec!["sent@example.net".into(), "later@example.net".into()]
        }]
    );
}

#[test]
fn all_bounced_no_receipt() {
    let mut state = message("alice@example.com", Receipts::On, &["x@example.net"]);
    let log = walk(&mut state, &Policy::normal(), 300, |_, _| {
        RecipientStatus::Bounced
    });
    assert!(log.is_empty(), "{log:?}");
}

#[test]
fn partial_delivery_then_expiry_sends_both() {
    fn mta(rcpt: &str, _: u64) -> RecipientStatus {
        if rcpt == "ok@example.net" {
            RecipientStatus::Sent
        } else {
            RecipientStatus::Deferred
        }
    }
    let mut state = message(
        "alice@example.com",
        Receipts::On,
        &["ok@example.net", "slow@example.net"],
    );
    let log = walk(&mut state, &Policy::normal(), 300, mta);
    assert_eq!(
        log.last().unwrap(),
        &(
            240,
            vec![
                Action::Expire {
                    failed: vec!["slow@example.net".into()],
                    notify: true
                },
                Action::SendReceipt {
                    delivered: vec!["ok@example.net".into()]
                }
            ]
        )
    );
}

#[test]
fn null_sender_mailer_daemon_and_notices_never_notified() {
    let policy = Policy::normal();
    let senders = ["", "<>", "MAILER-DAEMON@mx.example.com", "mailer-daemon"];
    let mut cases: Vec<MessageState> = senders
        .iter()
        .map(|s| message(s, Receipts::On, &["bob@example.net"]))
        .collect();
    let mut notice = message("alice@example.com", Receipts::On, &["bob@example.net"]);
    notice.is_notice = true;
    cases.push(notice);
    for mut state in cases {
        let mut deferred = state.clone();
        let log = walk(&mut deferred, &policy, 300, always_deferred);
        assert!(
            !log.iter().flat_map(|(_, a)| a).any(is_notice),
            "{:?}: {log:?}",
            state.sender
        );
        // The queue is still cleaned, silently.
        assert_eq!(
            log.last().unwrap(),
            &(
                240,
                vec![Action::Expire {
                    failed: vec!["bob@example.net".into()],
                    notify: false
                }]
            )
        );
        let log = walk(&mut state, &policy, 300, |_, _| RecipientStatus::Sent);
        assert!(log.is_empty(), "{log:?}");
    }
}

#[test]
fn null_sender_detection() {
    for s in ["", " ", "<>", "MAILER-DAEMON", "Mailer-Daemon@example.com"] {
        assert!(is_null_sender(s), "{s:?}");
    }
    for s in [
        "alice@example.com",
        "daemon@example.com",
        "mailer-daemon-fan@example.com",
    ] {
        assert!(!is_null_sender(s), "{s:?}");
    }
}

#[test]
fn custom_mode() {
    // A "priority" mode: retry every 5 minutes, warn after 15, give up after 1 hour.
    let policy = Policy {
        retry_every: min(5),
        warn_after: Some(min(15)),
        give_up_after: min(60),
    };
    let mut state = message("ceo@example.com", Receipts::Off, &["board@example.net"]);
    let log = walk(&mut state, &policy, 180, always_deferred);
    let retries: Vec<u64> = (1..12).map(|i| i * 5).collect();
    assert_eq!(minutes_of(&log, is_retry), retries);
    assert_eq!(minutes_of(&log, is_warning), [15]);
    assert_eq!(minutes_of(&log, is_expire), [60]);
    assert_eq!(log.last().unwrap().0, 60);
}

#[test]
fn retry_counts_from_later_of_attempt_and_request() {
    let policy = Policy::normal();
    let mut state = message("alice@example.com", Receipts::Off, &["bob@example.net"]);
    state.recipients[0].status = RecipientStatus::Deferred;
    state.recipients[0].last_attempt_at = Some(at(min(3)));
    state.last_retry_request_at = Some(at(min(7)));
    assert_eq!(next_due(&state, &policy, at(min(8))), Some(at(min(17))));
    assert_eq!(decide(&state, &policy, at(min(16))), []);
    assert_eq!(decide(&state, &policy, at(min(17))), [Action::RetryNow]);
    // An MTA queue run after our request moves the next retry too.
    state.recipients[0].last_attempt_at = Some(at(min(12)));
    assert_eq!(next_due(&state, &policy, at(min(13))), Some(at(min(22))));
}

#[test]
fn removed_from_queue_by_hand_is_not_retried_or_warned() {
    let policy = Policy::normal();
    let mut state = message("alice@example.com", Receipts::Off, &["bob@example.net"]);
    state.recipients[0].status = RecipientStatus::Deferred;
    state.recipients[0].last_attempt_at = Some(T0);
    state.removed_from_queue = true;
    assert_eq!(decide(&state, &policy, at(min(100))), []);
    // It still expires, so the recipient reaches a final state and the sender hears of it.
    assert!(matches!(
        decide(&state, &policy, at(min(240)))[..],
        [Action::Expire { notify: true, .. }]
    ));
}
