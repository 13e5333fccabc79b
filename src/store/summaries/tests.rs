use super::*;
use crate::model::status::RecipientStatus;
use crate::store::RawFilter;
use crate::{
    config::Receipts,
    model::envelope::{ArchiveState, Envelope, Recipient},
};
use time::OffsetDateTime;

fn envelope(qid: &str, from: &str, at: i64) -> Envelope {
    Envelope {
        queue_id: Some(qid.into()),
        arrived_at: OffsetDateTime::from_unix_timestamp(at).unwrap(),
        mta_host: None,
        client_name: None,
        client_addr: None,
        helo: None,
        sasl_user: None,
        mail_from: from.into(),
        mail_args: Vec::new(),
        recipients: vec![Recipient {
            address: "r@dest.example".into(),
            args: Vec::new(),
        }],
        recipients_dropped: 0,
        size: 10,
        message_id: None,
        subject: Some("s".into()),
        archive_name: None,
        archive_state: ArchiveState::Disabled,
        mode: "normal".into(),
        receipts: Receipts::Off,
        is_notice: false,
    }
}

#[test]
fn scope_follows_the_sender_domain_and_reused_queue_ids() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("db")).unwrap();
    let t = 1_000_000;
    let old = envelope("Q1", "a@mine.example", t);
    let reused = envelope("Q1", "b@other.example", t + 3600);
    let lookalike = envelope("Q2", "c@xmine.example", t + 10);
    let wildcard = envelope("Q3", "d@mine_example", t + 20);
    let ids = store
        .insert_envelopes(&[&old, &reused, &lookalike, &wildcard])
        .unwrap();
    let batch = store.log_batch().unwrap();
    batch.insert_raw_line(t + 5, Some("Q1"), "mine").unwrap();
    batch
        .insert_raw_line(t + 3605, Some("Q1"), "theirs")
        .unwrap();
    batch
        .insert_raw_line(t + 6, None, "connect from x")
        .unwrap();
    batch.commit().unwrap();

    let scope = DomainScope::Only(vec!["mine.example".into()]);
    let listed: Vec<i64> = store
        .message_summaries(&SummaryFilter::new(scope.clone(), 0))
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(listed, vec![ids[0]]);
    // `_` is escaped: a LIKE wildcard would also match the other domains here.
    let underscore = DomainScope::Only(vec!["mine_example".into()]);
    let listed = store
        .message_summaries(&SummaryFilter::new(underscore, 0))
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, ids[3]);
    let lines: Vec<String> = store
        .raw_lines(&RawFilter {
            scope: scope.clone(),
            since: 0,
            text: None,
            queue_id: None,
            host: None,
            limit: 10,
        })
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect();
    assert_eq!(lines, ["mine"]);
    let nobody = SummaryFilter::new(DomainScope::Only(Vec::new()), 0);
    assert!(store.message_summaries(&nobody).unwrap().is_empty());
    let all = SummaryFilter::new(DomainScope::All, 0);
    assert_eq!(store.count_summaries(&all).unwrap(), 4);
    let every_line = store
        .raw_lines(&RawFilter {
            scope: DomainScope::All,
            since: 0,
            text: None,
            queue_id: None,
            host: None,
            limit: 10,
        })
        .unwrap();
    assert_eq!(every_line.len(), 3);
}

#[test]
fn status_filter_matches_the_summary_status_and_counts_stop_at_the_cap() {
    use crate::store::AttemptRow;
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("db")).unwrap();
    let t = 1_000_000;
    // Recipient states per message; "pending" gets no attempt.
    let combos: [&[&str]; 8] = [
        &["sent", "sent"],
        &["sent", "bounced"],
        &["deferred", "expired"],
        &["deferred", "sent"],
        &["pending", "sent"],
        &["bounced", "expired"],
        &["deferred", "pending"],
        &[],
    ];
    let envelopes: Vec<Envelope> = combos
        .iter()
        .enumerate()
        .map(|(n, states)| {
            let mut e = envelope(&format!("Q{n}"), "a@mine.example", t + n as i64);
            e.recipients = (0..states.len())
                .map(|r| Recipient {
                    address: format!("r{r}@dest.example"),
                    args: Vec::new(),
                })
                .collect();
            e
        })
        .collect();
    let refs: Vec<&Envelope> = envelopes.iter().collect();
    store.insert_envelopes(&refs).unwrap();
    let batch = store.log_batch().unwrap();
    for (n, states) in combos.iter().enumerate() {
        let at = t + 100 + n as i64;
        let message = batch.message_for(&format!("Q{n}"), at, None).unwrap();
        for (r, status) in states.iter().enumerate() {
            if *status == "pending" {
                continue;
            }
            let recipient = batch
                .recipient_for(message, &format!("r{r}@dest.example"), None)
                .unwrap();
            let attempt = AttemptRow {
                at,
                status: status.parse().unwrap(),
                relay_host: None,
                relay_ip: None,
                relay_port: None,
                dsn: None,
                smtp_code: None,
                reply: "250 ok",
                stage: None,
                delay: None,
                delays: None,
                category: None,
            };
            batch.record_attempt(recipient, &attempt).unwrap();
        }
    }
    batch.commit().unwrap();

    let all = store
        .message_summaries(&SummaryFilter::new(DomainScope::All, 0))
        .unwrap();
    assert_eq!(all.len(), combos.len());
    for status in ["sent", "deferred", "bounced", "expired", "pending"] {
        let mut filter = SummaryFilter::new(DomainScope::All, 0);
        filter.status = Some(status.parse().unwrap());
        let filtered: Vec<i64> = store
            .message_summaries(&filter)
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect();
        let expected: Vec<i64> = all
            .iter()
            .filter(|m| m.status.as_str() == status)
            .map(|m| m.id)
            .collect();
        assert!(!expected.is_empty(), "{status}: the fixture covers it");
        assert_eq!(filtered, expected, "{status}");
        assert_eq!(
            store.count_summaries(&filter).unwrap(),
            expected.len() as u64
        );
    }
    // A status no summary shows cannot be asked for: the filter holds a state, and the pages
    // refuse the text with 400 (`web::tests`, `status=lost`).
    assert!("nonsense".parse::<RecipientStatus>().is_err());

    let every = SummaryFilter::new(DomainScope::All, 0);
    assert_eq!(
        store.count_summaries_upto(&every, 3).unwrap(),
        MessageCount {
            count: 3,
            capped: true
        }
    );
    assert_eq!(
        store.count_summaries_upto(&every, 8).unwrap(),
        MessageCount {
            count: 8,
            capped: false
        }
    );
}

#[test]
fn a_live_cursor_reads_back_as_written_and_moves_past_rows() {
    let local: LiveCursor = "42".parse().unwrap();
    assert_eq!(local.to_string(), "42");
    let fleet: LiveCursor = "relay2:7,relay1:42".parse().unwrap();
    assert_eq!(fleet.to_string(), "relay1:42,relay2:7");
    assert!("relay1:x".parse::<LiveCursor>().is_err());
    assert_eq!("".parse::<LiveCursor>().unwrap(), LiveCursor::default());

    let mut sql = String::new();
    let mut args = Vec::new();
    fleet.restrict(Dialect::Postgres, &mut sql, &mut args);
    assert_eq!(
        sql,
        " AND NOT (m.host = ? AND m.id <= ?) AND NOT (m.host = ? AND m.id <= ?)"
    );
    assert_eq!(args.len(), 4);
    let mut sql = String::new();
    fleet.restrict(Dialect::Sqlite, &mut sql, &mut Vec::new());
    assert_eq!(sql, "", "another store's positions say nothing on a host");
}

#[test]
fn the_fleet_index_of_worst_recipients_holds_the_lists_ranking() {
    // PostgreSQL reads the index only for the very expression the statements order by.
    let ranked = crate::store::fleet::postgres::MIGRATIONS
        .iter()
        .find(|m| m.contains("CREATE INDEX recipient_rank"))
        .unwrap();
    assert!(ranked.contains(&severity_order("status")), "{ranked}");
    assert!(worst_category(Dialect::Postgres).contains(&severity_order("r.status")));
}
