use super::*;
use crate::store::{AttemptRow, LogMessageFields};
use crate::suppression::{ALL_SENDERS, NewSuppression};

const DAY: i64 = 86_400;
const T0: i64 = 1_796_083_200; // 2026-12-01

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store.db")).unwrap();
    (dir, store)
}

/// One message from `from` to `to` whose attempt has `status` and `category`.
fn attempt(
    store: &mut Store,
    n: usize,
    from: &str,
    to: &str,
    status: &str,
    category: Option<Category>,
    at: i64,
) {
    let batch = store.log_batch().unwrap();
    let message = batch.message_for(&format!("Q{n}"), at, None).unwrap();
    batch
        .set_message_fields(
            message,
            &LogMessageFields {
                sender: Some(from),
                ..LogMessageFields::default()
            },
        )
        .unwrap();
    let recipient = batch.recipient_for(message, to, None).unwrap();
    batch
        .record_attempt(
            recipient,
            &AttemptRow {
                at,
                status: status.parse().unwrap(),
                relay_host: None,
                relay_ip: None,
                relay_port: None,
                dsn: Some(if status == "sent" { "2.0.0" } else { "5.1.1" }),
                smtp_code: Some(if status == "sent" { 250 } else { 550 }),
                reply: "550 5.1.1 <gone@x.example>: Recipient address rejected: User unknown",
                stage: None,
                delay: None,
                delays: None,
                category,
            },
        )
        .unwrap();
    batch.commit().unwrap();
}

fn live(store: &Store, now: i64) -> Vec<(String, String, Source)> {
    store
        .suppression_list(&SuppressionFilter::new(DomainScope::All), now)
        .unwrap()
        .into_iter()
        .map(|e| (e.sender_domain, e.target, e.source))
        .collect()
}

#[test]
fn permanent_failures_suppress_per_sender_domain_and_a_delivery_lifts() {
    let (_dir, mut store) = store();
    let rules = SuppressionConfig::default();
    attempt(
        &mut store,
        1,
        "a@Shop.example",
        "Gone@X.example",
        "bounced",
        Some(Category::InvalidMailbox),
        T0,
    );
    attempt(
        &mut store,
        2,
        "b@news.example",
        "busy@x.example",
        "deferred",
        Some(Category::InvalidMailbox),
        T0,
    );
    attempt(
        &mut store,
        3,
        "",
        "gone@x.example",
        "bounced",
        Some(Category::InvalidMailbox),
        T0,
    );
    let learned = store.suppression_learn(&rules, T0 + 10).unwrap();
    assert_eq!(learned.attempts, 3);
    assert_eq!(learned.suppressed, 1);
    let entries = store
        .suppression_list(&SuppressionFilter::new(DomainScope::All), T0 + 10)
        .unwrap();
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(
        (e.sender_domain.as_str(), e.target.as_str()),
        ("shop.example", "gone@x.example")
    );
    assert_eq!(e.category, Some(Category::InvalidMailbox));
    assert_eq!(e.dsn.as_deref(), Some("5.1.1"));
    assert_eq!(e.queue_id.as_deref(), Some("Q1"));
    assert_eq!(e.created_at, T0);
    assert_eq!(e.expires_at, Some(T0 + 90 * DAY));
    assert!(e.reply.as_deref().unwrap().contains("User unknown"));
    // Each attempt teaches once.
    assert_eq!(
        store.suppression_learn(&rules, T0 + 10).unwrap(),
        Learned::default()
    );

    // Delivered later: lifted.
    attempt(
        &mut store,
        4,
        "c@shop.example",
        "gone@x.example",
        "sent",
        None,
        T0 + DAY,
    );
    let learned = store.suppression_learn(&rules, T0 + DAY).unwrap();
    assert_eq!(learned.lifted, 1);
    assert!(live(&store, T0 + DAY).is_empty());
}

#[test]
fn a_full_mailbox_is_suppressed_after_failures_in_a_row() {
    let (_dir, mut store) = store();
    let rules = SuppressionConfig::default();
    let full = Some(Category::FullMailbox);
    attempt(
        &mut store,
        1,
        "a@shop.example",
        "full@x.example",
        "bounced",
        full,
        T0,
    );
    attempt(
        &mut store,
        2,
        "a@shop.example",
        "full@x.example",
        "bounced",
        full,
        T0 + 1,
    );
    attempt(
        &mut store,
        3,
        "a@shop.example",
        "full@x.example",
        "sent",
        None,
        T0 + 2,
    );
    attempt(
        &mut store,
        4,
        "a@shop.example",
        "full@x.example",
        "bounced",
        full,
        T0 + 3,
    );
    attempt(
        &mut store,
        5,
        "a@shop.example",
        "full@x.example",
        "bounced",
        full,
        T0 + 4,
    );
    store.suppression_learn(&rules, T0 + 5).unwrap();
    assert!(live(&store, T0 + 5).is_empty(), "a delivery broke the row");
    attempt(
        &mut store,
        6,
        "a@shop.example",
        "full@x.example",
        "bounced",
        full,
        T0 + 6,
    );
    store.suppression_learn(&rules, T0 + 7).unwrap();
    assert_eq!(
        live(&store, T0 + 7),
        [(
            "shop.example".into(),
            "full@x.example".into(),
            Source::Learned
        )]
    );
}

#[test]
fn manual_entries_stay_until_removed_and_every_change_is_numbered() {
    let (_dir, mut store) = store();
    let add = |sender: &str, target: &str| NewSuppression {
        sender_domain: sender.into(),
        target: target.into(),
        reason: Some("asked us to stop".into()),
    };
    store
        .suppression_add(
            &[
                add("shop.example", "gone@x.example"),
                add(ALL_SENDERS, "*@dead.example"),
            ],
            T0,
        )
        .unwrap();
    let (changes, last) = store.suppression_changes(0, 100).unwrap();
    assert_eq!(changes.len(), 2);
    assert!(
        changes
            .iter()
            .all(|c| matches!(c, SuppressionChange::Live(e) if e.source == Source::Manual))
    );

    // A bounce does not turn a manual entry into a learned one, and a delivery does not lift it.
    attempt(
        &mut store,
        1,
        "a@shop.example",
        "gone@x.example",
        "bounced",
        Some(Category::InvalidMailbox),
        T0 + 1,
    );
    attempt(
        &mut store,
        2,
        "a@shop.example",
        "gone@x.example",
        "sent",
        None,
        T0 + 2,
    );
    store
        .suppression_learn(&SuppressionConfig::default(), T0 + 3)
        .unwrap();
    assert_eq!(live(&store, T0 + 3).len(), 2);
    assert!(
        live(&store, T0 + 3)
            .iter()
            .all(|(_, _, s)| *s == Source::Manual)
    );

    assert!(
        store
            .suppression_remove("shop.example", "gone@x.example", T0 + 4)
            .unwrap()
    );
    assert!(
        !store
            .suppression_remove("shop.example", "gone@x.example", T0 + 4)
            .unwrap()
    );
    let (changes, newest) = store.suppression_changes(last, 100).unwrap();
    assert_eq!(
        changes,
        [SuppressionChange::Gone {
            sender_domain: "shop.example".into(),
            target: "gone@x.example".into()
        }]
    );
    assert!(newest > last);

    // Removals are forgotten after a day; the numbers go on from where they were.
    store.suppression_expire(T0 + 2 * DAY, false).unwrap();
    store
        .suppression_add(&[add("shop.example", "again@x.example")], T0 + 2 * DAY)
        .unwrap();
    let (changes, _) = store.suppression_changes(newest, 100).unwrap();
    assert_eq!(
        changes.len(),
        1,
        "a change after a purge is still past the last number"
    );
}

#[test]
fn learned_entries_expire_and_a_scoped_list_shows_only_its_domains() {
    let (_dir, mut store) = store();
    let rules = SuppressionConfig::default();
    attempt(
        &mut store,
        1,
        "a@shop.example",
        "gone@x.example",
        "bounced",
        Some(Category::InvalidMailbox),
        T0,
    );
    attempt(
        &mut store,
        2,
        "a@news.example",
        "gone@x.example",
        "bounced",
        Some(Category::InvalidDomain),
        T0,
    );
    // Too old to matter by now: nothing learned.
    attempt(
        &mut store,
        3,
        "a@news.example",
        "old@x.example",
        "bounced",
        Some(Category::InvalidDomain),
        T0 - 100 * DAY,
    );
    store.suppression_learn(&rules, T0).unwrap();
    let scoped = store
        .suppression_list(
            &SuppressionFilter::new(DomainScope::Only(vec!["shop.example".into()])),
            T0,
        )
        .unwrap();
    assert_eq!(scoped.len(), 1);
    assert_eq!(scoped[0].sender_domain, "shop.example");
    assert_eq!(live(&store, T0).len(), 2);

    let later = T0 + 91 * DAY;
    assert!(live(&store, later).is_empty(), "past keep, not listed");
    assert_eq!(store.suppression_expire(later, false).unwrap(), 2);
    let (changes, _) = store.suppression_changes(0, 100).unwrap();
    assert!(
        changes
            .iter()
            .all(|c| matches!(c, SuppressionChange::Gone { .. }))
    );
}

#[test]
fn changes_from_the_fleet_replace_only_older_ones_and_are_not_sent_back() {
    let (_dir, mut store) = store();
    let remote = |target: &str, created_at: i64, removed_at: Option<i64>| SharedSuppression {
        entry: Suppression {
            id: 0,
            sender_domain: "shop.example".into(),
            target: target.into(),
            source: Source::Learned,
            category: Some(Category::InvalidMailbox),
            dsn: Some("5.1.1".into()),
            reply: None,
            queue_id: Some("R1".into()),
            reason: None,
            created_at,
            expires_at: Some(created_at + 90 * DAY),
        },
        removed_at,
        host: "relay2".into(),
    };
    store
        .suppression_add(
            &[NewSuppression {
                sender_domain: "shop.example".into(),
                target: "mine@x.example".into(),
                reason: None,
            }],
            T0,
        )
        .unwrap();
    let (unsent, position) = store.suppression_unsent("relay1", 100).unwrap();
    assert_eq!(unsent.len(), 1);
    assert_eq!(unsent[0].host, "relay1");
    store.suppression_sent(position).unwrap();
    assert!(
        store
            .suppression_unsent("relay1", 100)
            .unwrap()
            .0
            .is_empty()
    );

    // Another relay's entry is taken, and not sent back.
    store
        .suppression_take(&[remote("theirs@x.example", T0 + 10, None)], Some(42))
        .unwrap();
    assert_eq!(store.suppression_taken().unwrap(), 42);
    assert_eq!(live(&store, T0 + 20).len(), 2);
    assert!(
        store
            .suppression_unsent("relay1", 100)
            .unwrap()
            .0
            .is_empty()
    );
    // An older change of an entry changed here later is ignored; a newer one replaces it.
    store
        .suppression_take(&[remote("mine@x.example", T0 - 10, Some(T0 - 5))], None)
        .unwrap();
    assert_eq!(live(&store, T0 + 20).len(), 2);
    store
        .suppression_take(&[remote("mine@x.example", T0, Some(T0 + 30))], None)
        .unwrap();
    assert_eq!(live(&store, T0 + 40).len(), 1);
    // In the same second, a removal is newer than an addition (as in the fleet database).
    store
        .suppression_add(
            &[NewSuppression {
                sender_domain: "shop.example".into(),
                target: "tie@x.example".into(),
                reason: None,
            }],
            T0 + 45,
        )
        .unwrap();
    store
        .suppression_take(&[remote("tie@x.example", T0, Some(T0 + 45))], None)
        .unwrap();
    assert!(
        live(&store, T0 + 46)
            .iter()
            .all(|(_, t, _)| t != "tie@x.example"),
        "the removal in the same second wins"
    );
    // A change made here to a taken entry is this host's again, to send.
    assert!(
        store
            .suppression_remove("shop.example", "theirs@x.example", T0 + 50)
            .unwrap()
    );
    let (unsent, _) = store.suppression_unsent("relay1", 100).unwrap();
    assert_eq!(unsent.len(), 1);
    assert_eq!(unsent[0].removed_at, Some(T0 + 50));
    assert_eq!(unsent[0].changed_at(), T0 + 50);
}
