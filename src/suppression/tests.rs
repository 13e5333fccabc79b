use super::index::SuppressionIndex;
use super::learn::{Lesson, lesson};
use super::*;
use crate::config::SuppressionConfig;
use crate::model::status::DeliveryStatus;

#[test]
fn targets_are_normalised_and_nonsense_is_refused() {
    assert_eq!(
        Target::parse(" <User@Example.COM> "),
        Ok(Target::Address("user@example.com".into()))
    );
    assert_eq!(
        Target::parse("*@Example.com"),
        Ok(Target::Domain("example.com".into()))
    );
    assert_eq!(
        Target::parse("x@[192.0.2.1]"),
        Ok(Target::Address("x@[192.0.2.1]".into()))
    );
    assert!(matches!(
        Target::parse("*@*"),
        Err(TargetError::EveryAddress(_))
    ));
    assert!(matches!(
        Target::parse("*@"),
        Err(TargetError::EveryAddress(_))
    ));
    for bad in [
        "",
        "user",
        "@example.com",
        "a b@example.com",
        "user@-x.com",
        "user@exa mple.com",
        "user@ex..com",
        "u@[1.2.3]",
    ] {
        assert!(
            matches!(Target::parse(bad), Err(TargetError::NotAnAddress(_))),
            "{bad:?}"
        );
    }
    assert_eq!(
        Target::parse("*@example.com").unwrap().to_string(),
        "*@example.com"
    );
    assert_eq!(
        parse_sender_domain("@Shop.Example").unwrap(),
        "shop.example"
    );
    assert_eq!(parse_sender_domain("*").unwrap(), ALL_SENDERS);
    assert!(parse_sender_domain("not a domain").is_err());
}

#[test]
fn postmaster_and_the_null_sender_are_never_suppressed() {
    let rules = SuppressionConfig::default();
    let bounced = |from: &str, to: &str| {
        lesson(
            &rules,
            DeliveryStatus::Bounced,
            Some(Category::InvalidMailbox),
            from,
            to,
        )
    };
    assert_eq!(
        bounced("a@shop.example", "gone@x.example"),
        Lesson::Suppress
    );
    assert_eq!(bounced("", "gone@x.example"), Lesson::Nothing);
    assert_eq!(
        bounced("a@shop.example", "PostMaster@x.example"),
        Lesson::Nothing
    );
    assert!(is_exempt("<postmaster@x.example>"));
    assert!(!is_exempt("postmaster2@x.example"));
}

#[test]
fn permanent_failures_teach_by_category_and_deliveries_lift() {
    let rules = SuppressionConfig::default();
    let learn = |status, category| lesson(&rules, status, category, "a@s.example", "r@x.example");
    use DeliveryStatus::*;
    assert_eq!(
        learn(Bounced, Some(Category::InvalidDomain)),
        Lesson::Suppress
    );
    assert_eq!(
        learn(Bounced, Some(Category::InactiveMailbox)),
        Lesson::Suppress
    );
    assert_eq!(
        learn(Bounced, Some(Category::FullMailbox)),
        Lesson::Strike { needed: 3 }
    );
    // A temporary failure, a message that expired in the queue, another category: nothing.
    assert_eq!(
        learn(Deferred, Some(Category::InvalidMailbox)),
        Lesson::Nothing
    );
    assert_eq!(
        learn(Expired, Some(Category::InvalidMailbox)),
        Lesson::Nothing
    );
    assert_eq!(
        learn(Bounced, Some(Category::ReputationIssues)),
        Lesson::Nothing
    );
    assert_eq!(learn(Bounced, None), Lesson::Nothing);
    assert_eq!(learn(Sent, None), Lesson::Lift);

    let never = SuppressionConfig {
        full_mailbox_after: 0,
        ..SuppressionConfig::default()
    };
    assert_eq!(
        lesson(
            &never,
            Bounced,
            Some(Category::FullMailbox),
            "a@s.example",
            "r@x.example"
        ),
        Lesson::Nothing
    );
}

fn entry(sender: &str, target: &str, source: Source, expires_at: Option<i64>) -> Suppression {
    Suppression {
        id: 1,
        sender_domain: sender.into(),
        target: target.into(),
        source,
        category: Some(Category::InvalidMailbox),
        dsn: Some("5.1.1".into()),
        reply: None,
        queue_id: None,
        reason: None,
        created_at: 1_796_083_200, // 2026-12-01
        expires_at,
    }
}

#[test]
fn the_index_finds_a_senders_entries_then_every_senders() {
    let mut index = SuppressionIndex::default();
    index.insert(&entry(
        "shop.example",
        "gone@x.example",
        Source::Learned,
        None,
    ));
    index.insert(&entry("*", "*@dead.example", Source::Manual, None));
    index.insert(&entry(
        "news.example",
        "old@x.example",
        Source::Learned,
        Some(1_796_100_000),
    ));
    assert_eq!(index.len(), 3);
    let now = 1_796_090_000;

    let hit = index.lookup("shop.example", "Gone@X.example", now).unwrap();
    assert_eq!(hit.sender_domain, "shop.example");
    assert!(!hit.whole_domain);
    assert_eq!(
        hit.reply_text(),
        "this recipient is on mailtrail's suppression list for mail from shop.example since 2026-12-01 (earlier mail failed permanently: invalid-mailbox)"
    );
    // Another sender's entry does not hold; a pattern for every sender does.
    assert_eq!(index.lookup("other.example", "gone@x.example", now), None);
    let hit = index
        .lookup("other.example", "anyone@dead.example", now)
        .unwrap();
    assert!(hit.whole_domain);
    assert!(
        hit.reply_text().starts_with(
            "this domain is on mailtrail's suppression list for mail from every sender"
        )
    );
    assert!(hit.reply_text().ends_with("(added by an operator)"));
    // Expired entries hold no more.
    assert!(index.lookup("news.example", "old@x.example", now).is_some());
    assert_eq!(
        index.lookup("news.example", "old@x.example", 1_796_100_000),
        None
    );

    index.remove("shop.example", "gone@x.example");
    assert_eq!(index.lookup("shop.example", "gone@x.example", now), None);
    index.remove("shop.example", "gone@x.example");
    assert_eq!(index.len(), 2);
}

#[test]
fn the_index_stays_right_across_many_removals() {
    let mut index = SuppressionIndex::default();
    for n in 0..1000 {
        index.insert(&entry(
            "shop.example",
            &format!("u{n}@x.example"),
            Source::Learned,
            None,
        ));
    }
    index.insert(&entry("shop.example", "*@u5.example", Source::Manual, None));
    // Removing most keys compacts the arena the survivors point into.
    for n in (0..1000).filter(|n| n % 10 != 0) {
        index.remove("shop.example", &format!("u{n}@x.example"));
    }
    assert_eq!(index.len(), 101);
    for n in 0..1000 {
        let found = index
            .lookup("shop.example", &format!("u{n}@x.example"), 0)
            .is_some();
        assert_eq!(found, n % 10 == 0, "u{n}");
    }
    // A domain entry and an address that spells the same text are different keys.
    assert!(
        index
            .lookup("shop.example", "anyone@u5.example", 0)
            .unwrap()
            .whole_domain
    );
    index.insert(&entry(
        "shop.example",
        "u1@x.example",
        Source::Learned,
        None,
    ));
    assert_eq!(index.len(), 102);
    index.insert(&entry("shop.example", "u1@x.example", Source::Manual, None));
    assert_eq!(index.len(), 102, "replaced, not added");
    assert_eq!(
        index
            .lookup("shop.example", "u1@x.example", 0)
            .unwrap()
            .mark
            .source(),
        Source::Manual
    );
}
