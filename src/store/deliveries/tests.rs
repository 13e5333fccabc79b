use super::*;
use crate::bounce::Category;
use crate::store::AttemptRow;
use crate::store::timestamp;

fn attempt<'a>(at: i64, status: &'a str, reply: &'a str) -> AttemptRow<'a> {
    AttemptRow {
        at,
        status: status.parse().unwrap(),
        relay_host: Some("mx.dest.example"),
        relay_ip: Some("192.0.2.25"),
        relay_port: Some(25),
        dsn: Some(if status == "sent" { "2.0.0" } else { "4.7.1" }),
        smtp_code: Some(if status == "sent" { 250 } else { 451 }),
        reply,
        stage: Some("rcpt-to"),
        delay: Some(1.5),
        delays: Some("0.1/0/0.4/1"),
        category: (status != "sent").then_some(Category::GreylistingIssues),
    }
}

#[test]
fn deliveries_and_attempt_counts() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("m.db")).unwrap();
    assert!(store.attempt_counts().unwrap().is_empty());
    let (message, other) = {
        let batch = store.log_batch().unwrap();
        let m = batch.message_for("ABC123", 1_000, Some("mx")).unwrap();
        let grey = batch.recipient_for(m, "grey@dest.example", None).unwrap();
        let alias = batch
            .recipient_for(m, "real@dest.example", Some("alias@dest.example"))
            .unwrap();
        // A recipient without any attempt yet.
        batch.recipient_for(m, "later@dest.example", None).unwrap();
        // Logged out of order: the timeline is by time, not by insertion.
        batch
            .record_attempt(grey, &attempt(1_010, "sent", "250 2.0.0 Ok"))
            .unwrap();
        batch
            .record_attempt(grey, &attempt(1_001, "deferred", "451 4.7.1 Greylisted"))
            .unwrap();
        batch
            .record_attempt(grey, &attempt(1_005, "deferred", "451 4.7.1 Greylisted"))
            .unwrap();
        batch
            .record_attempt(alias, &attempt(1_002, "sent", "250 ok"))
            .unwrap();
        let o = batch.message_for("DEF456", 1_000, Some("mx")).unwrap();
        let r = batch.recipient_for(o, "x@else.example", None).unwrap();
        batch
            .record_attempt(r, &attempt(1_003, "deferred", "451 try later"))
            .unwrap();
        batch
            .expire_pending(o, 1_100, "expired", Category::MessageExpired)
            .unwrap();
        batch.commit().unwrap();
        (m, o)
    };

    let d = store.deliveries(message).unwrap();
    let addresses: Vec<&str> = d.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(
        addresses,
        [
            "grey@dest.example",
            "real@dest.example",
            "later@dest.example"
        ]
    );
    let grey = &d[0];
    assert_eq!(grey.status.as_str(), "sent");
    assert_eq!(grey.category, None);
    assert_eq!(grey.dsn.as_deref(), Some("2.0.0"));
    assert_eq!(grey.attempts, 3);
    assert_eq!(grey.final_at, Some(timestamp(1_010)));
    assert_eq!(grey.last_attempt_at, Some(timestamp(1_010)));
    let timeline: Vec<(i64, &str, Option<&str>)> = grey
        .attempt_list
        .iter()
        .map(|a| {
            (
                a.at.unix_timestamp(),
                a.status.as_str(),
                a.category.map(Category::as_str),
            )
        })
        .collect();
    assert_eq!(
        timeline,
        [
            (1_001, "deferred", Some("greylisting-issues")),
            (1_005, "deferred", Some("greylisting-issues")),
            (1_010, "sent", None),
        ]
    );
    let first = &grey.attempt_list[0];
    assert_eq!(first.relay_host.as_deref(), Some("mx.dest.example"));
    assert_eq!(first.relay_ip.as_deref(), Some("192.0.2.25"));
    assert_eq!(first.relay_port, Some(25));
    assert_eq!(first.smtp_code, Some(451));
    assert_eq!(first.reply, "451 4.7.1 Greylisted");
    assert_eq!(first.stage.as_deref(), Some("rcpt-to"));
    assert_eq!(first.delay, Some(1.5));

    assert_eq!(d[1].orig_to.as_deref(), Some("alias@dest.example"));
    assert_eq!(d[1].status.as_str(), "sent");
    assert_eq!((d[2].status.as_str(), d[2].attempts), ("pending", 0));
    assert!(d[2].attempt_list.is_empty() && d[2].final_at.is_none());

    let o = store.deliveries(other).unwrap();
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].status.as_str(), "expired");
    assert_eq!(o[0].category.map(Category::as_str), Some("message-expired"));
    assert_eq!(o[0].dsn.as_deref(), Some("4.4.7"));
    assert_eq!(o[0].attempt_list.len(), 2);

    assert!(store.deliveries(999).unwrap().is_empty());
    let counts = store.attempt_counts().unwrap();
    let want: BTreeMap<String, u64> = [("deferred", 3), ("expired", 1), ("sent", 2)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(counts, want);
}

/// A status the store holds only if something else wrote it is an error on reading, naming the
/// text, never read as some default state.
#[test]
fn an_unknown_stored_status_is_an_error_not_a_default() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("m.db")).unwrap();
    let batch = store.log_batch().unwrap();
    let m = batch.message_for("ABC124", 1_000, Some("mx")).unwrap();
    batch.recipient_for(m, "bob@dest.example", None).unwrap();
    batch.commit().unwrap();
    assert_eq!(store.deliveries(m).unwrap()[0].status.as_str(), "pending");
    store
        .conn_for_tests()
        .execute("UPDATE recipient SET status = 'queued'", [])
        .unwrap();
    let err = store.deliveries(m).unwrap_err().to_string();
    assert!(err.contains("unknown state \"queued\""), "{err}");
}
