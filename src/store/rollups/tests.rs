use super::*;
use crate::bounce::Category;
use crate::stats::{CategoryRow, SmtpErrorRow, StatsRow, TOP_ROWS};
use crate::store::{AttemptRow, RejectRow};
use time::macros::{date, datetime, offset};
use time::{Month, OffsetDateTime, UtcOffset};

const PLUS2: UtcOffset = offset!(+2);

fn attempt<'a>(at: i64, status: &'a str, relay: &'a str, delay: f64) -> AttemptRow<'a> {
    AttemptRow {
        at,
        status: status.parse().unwrap(),
        relay_host: Some(relay),
        relay_ip: None,
        relay_port: None,
        dsn: Some("5.1.1"),
        smtp_code: None,
        reply: "",
        stage: None,
        delay: Some(delay),
        delays: None,
        category: (status != "sent").then_some(Category::InvalidMailbox),
    }
}

fn reject(at: i64, sender: &str, code: u16, dsn: &str) -> RejectRow<'static> {
    RejectRow {
        at,
        mta_host: None,
        source: "smtpd",
        code: Some(code),
        dsn: Some(dsn.to_string().leak()),
        client_host: None,
        client_ip: None,
        sender: Some(sender.to_string().leak()),
        recipient: None,
        helo: None,
        stage: None,
        reason: "no",
        category: None,
    }
}

/// A message of `sender` logged at `at` (unix) with `size`, and attempts per recipient.
fn message(
    store: &mut Store,
    qid: &str,
    sender: &str,
    at: i64,
    size: u64,
    deliveries: &[(&str, &[AttemptRow])],
) {
    let batch = store.log_batch().unwrap();
    let m = batch.message_for(qid, at, None).unwrap();
    batch
        .set_message_fields(
            m,
            &crate::store::LogMessageFields {
                sender: Some(sender),
                size: Some(size),
                ..Default::default()
            },
        )
        .unwrap();
    for (to, attempts) in deliveries {
        let r = batch.recipient_for(m, to, None).unwrap();
        for a in *attempts {
            batch.record_attempt(r, a).unwrap();
        }
    }
    batch.commit().unwrap();
}

fn unix(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

/// 2026-05-04 (a Monday) 09:30 +02:00 and the next days.
fn fill(store: &mut Store) {
    let t = unix(datetime!(2026-05-04 09:30 +2));
    message(
        store,
        "Q1",
        "Alice@Mine.example",
        t,
        1000,
        &[
            (
                "a@dest.example",
                &[attempt(t + 10, "sent", "mx.dest.example", 10.0)],
            ),
            (
                "b@dest.example",
                &[
                    attempt(t + 10, "deferred", "mx.dest.example", 10.0),
                    attempt(t + 3600, "bounced", "mx.dest.example", 3600.0),
                ],
            ),
        ],
    );
    // Arrives late on Tuesday 23:50 local, delivered after midnight: attempt on Wednesday.
    let t2 = unix(datetime!(2026-05-05 23:50 +2));
    message(
        store,
        "Q2",
        "bob@other.example",
        t2,
        500,
        &[(
            "c@far.example",
            &[attempt(t2 + 1200, "sent", "mx.far.example", 1200.0)],
        )],
    );
    let batch = store.log_batch().unwrap();
    batch
        .insert_reject(&RejectRow {
            // The milter's refusal of a recipient on the suppression list.
            category: Some(crate::bounce::Category::SuppressionList),
            ..reject(t + 5, "x@other.example", 554, "5.7.1")
        })
        .unwrap();
    batch
        .insert_reject(&reject(t + 6, "y@mine.example", 450, "4.2.0"))
        .unwrap();
    batch.commit().unwrap();
}

fn row<'a>(rows: &'a [StatsRow], key: &str) -> &'a StatsCounts {
    &rows.iter().find(|r| r.key == key).unwrap().counts
}

#[test]
fn rollups_count_messages_by_arrival_and_attempts_by_their_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("db")).unwrap();
    fill(&mut store);
    let report = store
        .refresh_stats(PLUS2, datetime!(2026-05-06 12:00 +2))
        .unwrap();
    assert!(report.full);
    assert_eq!(
        (report.messages, report.attempts, report.rejects),
        (2, 4, 2)
    );
    let may = StatsPeriod::month(2026, Month::May).unwrap();
    let s = store.stats(&may, &DomainScope::All).unwrap();
    let c = s.summary.counts;
    assert_eq!(
        (c.messages, c.recipients, c.bytes),
        (2, 3, 1500),
        "{:?}",
        s.summary
    );
    assert_eq!(
        (c.delivered, c.deferred, c.bounced, c.expired, c.rejected),
        (2, 1, 1, 0, 2)
    );
    assert_eq!(s.summary.delivery_rate, Some(2.0 / 3.0));
    // Delivered delays 10 s and 1200 s: the median is the first, p95 the second, each
    // within the histogram's 4.5 %.
    let p50 = s.summary.delay_p50.unwrap();
    let p95 = s.summary.delay_p95.unwrap();
    assert!((p50 / 10.0 - 1.0).abs() < 0.045, "{p50}");
    assert!((p95 / 1200.0 - 1.0).abs() < 0.045, "{p95}");
    assert_eq!(s.by_month.len(), 1);
    assert_eq!(s.by_month[0].key, "2026-05");
    assert_eq!(s.by_month[0].counts, c);
    // Local days and hours (+02:00): Q2 arrived on Tuesday the 5th at 23h, its delivery
    // was on Wednesday the 6th at 00h.
    assert_eq!(row(&s.by_day, "5").messages, 1);
    assert_eq!(row(&s.by_day, "6").delivered, 1);
    assert_eq!(row(&s.by_weekday, "Tue").messages, 1);
    assert_eq!(row(&s.by_weekday, "Wed").delivered, 1);
    assert_eq!(row(&s.by_weekday, "Mon").messages, 1);
    assert_eq!(row(&s.by_hour, "09").messages, 1);
    assert_eq!(row(&s.by_hour, "23").messages, 1);
    assert_eq!(row(&s.by_hour, "00").delivered, 1);
    assert_eq!(row(&s.by_hour, "10").bounced, 1);
    assert_eq!(
        (s.by_day.len(), s.by_weekday.len(), s.by_hour.len()),
        (31, 7, 24)
    );
    let dest = row(&s.by_recipient_domain, "dest.example");
    assert_eq!((dest.delivered, dest.deferred, dest.bounced), (1, 1, 1));
    assert_eq!(row(&s.by_relay_host, "mx.far.example").delivered, 1);
    // The sender keeps its spelling; messages and attempts both count on it.
    let alice = row(&s.by_sender, "Alice@Mine.example");
    assert_eq!(
        (alice.messages, alice.recipients, alice.attempts()),
        (1, 2, 3)
    );
    assert_eq!(
        s.smtp_errors,
        vec![
            SmtpErrorRow {
                code: Some(450),
                dsn: "4.2.0".into(),
                count: 1
            },
            SmtpErrorRow {
                code: Some(554),
                dsn: "5.7.1".into(),
                count: 1
            },
        ]
    );
    assert_eq!(
        s.categories,
        vec![
            CategoryRow {
                category: "invalid-mailbox".parse().unwrap(),
                count: 1,
                refused: 0,
            },
            CategoryRow {
                category: "suppression-list".parse().unwrap(),
                count: 0,
                refused: 1,
            }
        ]
    );
    // Another month has nothing.
    let june = StatsPeriod::month(2026, Month::June).unwrap();
    let empty = store.stats(&june, &DomainScope::All).unwrap();
    assert_eq!(empty.summary.counts, StatsCounts::default());
    assert_eq!(empty.summary.delay_p50, None);
}

#[test]
fn a_scope_sees_only_its_domains_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("db")).unwrap();
    fill(&mut store);
    store
        .refresh_stats(PLUS2, datetime!(2026-05-06 12:00 +2))
        .unwrap();
    let may = StatsPeriod::month(2026, Month::May).unwrap();
    let mine = store
        .stats(&may, &DomainScope::Only(vec!["mine.example".into()]))
        .unwrap();
    let c = mine.summary.counts;
    assert_eq!(
        (c.messages, c.delivered, c.bounced, c.rejected),
        (1, 1, 1, 1)
    );
    assert!(mine.by_sender.iter().all(|r| r.key == "Alice@Mine.example"));
    assert!(
        mine.by_relay_host
            .iter()
            .all(|r| r.key == "mx.dest.example")
    );
    assert_eq!(mine.smtp_errors.len(), 1);
    assert_eq!(mine.smtp_errors[0].code, Some(450));
    for scope in [
        DomainScope::Only(Vec::new()),
        DomainScope::Only(vec!["@".into()]),
        DomainScope::Only(vec!["nobody.example".into()]),
    ] {
        let s = store.stats(&may, &scope).unwrap();
        assert_eq!(s.summary.counts, StatsCounts::default(), "{scope:?}");
        assert!(
            s.by_sender.is_empty() && s.smtp_errors.is_empty(),
            "{scope:?}"
        );
    }
}

#[test]
fn an_incremental_refresh_equals_a_full_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("db")).unwrap();
    fill(&mut store);
    let now = datetime!(2026-05-20 12:00 +2);
    store.refresh_stats(PLUS2, now).unwrap();
    // New rows: a late attempt for a May 4 message (its recipient count changes too) and a
    // new message on May 10.
    let t = unix(datetime!(2026-05-10 08:00 +2));
    let batch = store.log_batch().unwrap();
    let m = batch
        .find_message("Q1", unix(datetime!(2026-05-04 10:00 +2)))
        .unwrap()
        .unwrap();
    let r = batch.recipient_for(m, "late@dest.example", None).unwrap();
    batch
        .record_attempt(r, &attempt(t, "expired", "none", 0.0))
        .unwrap();
    batch.commit().unwrap();
    message(&mut store, "Q3", "c@mine.example", t, 10, &[]);
    let report = store.refresh_stats(PLUS2, now).unwrap();
    assert!(!report.full);
    // May 4 (message), May 10 (attempt and message), May 19 and 20 (yesterday, today).
    assert_eq!(report.days, 4);
    let may = StatsPeriod::month(2026, Month::May).unwrap();
    let incremental = store.stats(&may, &DomainScope::All).unwrap();
    assert_eq!(incremental.summary.counts.expired, 1);
    assert_eq!(incremental.summary.counts.recipients, 4); // Q1: 3, Q2: 1, Q3: none yet.

    store
        .conn_for_tests()
        .execute("DELETE FROM stats_state", [])
        .unwrap();
    assert!(store.refresh_stats(PLUS2, now).unwrap().full);
    // Read from the month sums, or from the days alone: the same lists.
    let days = StatsPeriod::new(date!(2026 - 05 - 01), date!(2026 - 05 - 31)).unwrap();
    let by_days = store.stats(&days, &DomainScope::All).unwrap();
    assert_eq!(by_days.by_sender, incremental.by_sender);
    assert_eq!(by_days.by_relay_host, incremental.by_relay_host);
    assert_eq!(by_days.categories, incremental.categories);
    // Part of a month: May 5 to 6 has Q2 and its delivery only.
    let part = StatsPeriod::new(date!(2026 - 05 - 05), date!(2026 - 05 - 07)).unwrap();
    let part = store.stats(&part, &DomainScope::All).unwrap();
    assert_eq!(part.by_sender.len(), 1);
    assert_eq!(part.by_sender[0].key, "bob@other.example");
    assert_eq!(part.by_sender[0].counts.delivered, 1);

    let mut full = store.stats(&may, &DomainScope::All).unwrap();
    full.refreshed_at = incremental.refreshed_at;
    assert_eq!(incremental, full);
    // Another offset moves hours: everything is recomputed.
    let moved = store.refresh_stats(UtcOffset::UTC, now).unwrap();
    assert!(moved.full);
    let utc = store.stats(&may, &DomainScope::All).unwrap();
    assert_eq!(row(&utc.by_hour, "07").messages, 1);
}

#[test]
fn top_lists_keep_fifty_rows_and_sum_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("db")).unwrap();
    let t = unix(datetime!(2026-05-04 09:30 +2));
    for i in 0..(TOP_ROWS + 5) {
        message(
            &mut store,
            &format!("Q{i}"),
            &format!("s{i:03}@mine.example"),
            t + i as i64,
            1,
            &[],
        );
    }
    store
        .refresh_stats(PLUS2, datetime!(2026-05-06 12:00 +2))
        .unwrap();
    let s = store
        .stats(
            &StatsPeriod::month(2026, Month::May).unwrap(),
            &DomainScope::All,
        )
        .unwrap();
    assert_eq!(s.by_sender.len(), TOP_ROWS + 1);
    let other = s.by_sender.last().unwrap();
    assert!(other.other);
    assert_eq!(other.counts.messages, 5);
}
