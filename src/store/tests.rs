use super::*;
use crate::{
    config::Receipts,
    model::envelope::{ArchiveState, Envelope, Recipient},
};
use time::macros::datetime;

fn envelope(queue_id: &str, from: &str, to: &[&str], subject: &str) -> Envelope {
    Envelope {
        queue_id: Some(queue_id.into()),
        arrived_at: datetime!(2026-11-20 10:00:00 UTC),
        mta_host: Some("mx.example.com".into()),
        client_name: Some("client.example.com".into()),
        client_addr: Some("192.0.2.7".into()),
        helo: Some("client.example.com".into()),
        sasl_user: Some("alice".into()),
        mail_from: from.into(),
        mail_args: vec!["SIZE=1234".into(), "BODY=8BITMIME".into()],
        recipients: to
            .iter()
            .map(|a| Recipient {
                address: a.to_string(),
                args: vec!["NOTIFY=FAILURE".into()],
            })
            .collect(),
        recipients_dropped: 0,
        size: 1234,
        message_id: Some("<m1@example.com>".into()),
        subject: Some(subject.into()),
        archive_name: Some(format!("{queue_id}.maildir-name")),
        archive_state: ArchiveState::Stored,
        mode: "normal".into(),
        receipts: Receipts::On,
        is_notice: false,
    }
}

#[test]
fn envelopes_round_trip_and_filter() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("sub/m.db")).unwrap();
    let a = envelope(
        "AAA",
        "alice@example.com",
        &["x@dest.example", "y@dest.example"],
        "Invoice 100%",
    );
    let mut b = envelope("BBB", "bob@example.org", &["z@other.example"], "Hello");
    b.arrived_at = datetime!(2026-11-21 10:00:00 UTC);
    let ids = store.insert_envelopes(&[&a, &b]).unwrap();
    assert_eq!(ids.len(), 2);

    let got = store.message(ids[0]).unwrap().unwrap();
    assert_eq!(got.envelope, a);

    let all = store.list_messages(&MessageFilter::default()).unwrap();
    assert_eq!(
        all.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![ids[1], ids[0]]
    );

    let by = |f: MessageFilter| {
        store
            .list_messages(&f)
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        by(MessageFilter {
            from: Some("ALICE@".into()),
            ..Default::default()
        }),
        vec![ids[0]]
    );
    assert_eq!(
        by(MessageFilter {
            to: Some("z@other".into()),
            ..Default::default()
        }),
        vec![ids[1]]
    );
    // LIKE wildcards in user text match literally.
    assert_eq!(
        by(MessageFilter {
            subject: Some("100%".into()),
            ..Default::default()
        }),
        vec![ids[0]]
    );
    assert!(
        by(MessageFilter {
            subject: Some("1_0".into()),
            ..Default::default()
        })
        .is_empty()
    );
    assert_eq!(
        by(MessageFilter {
            since: Some(datetime!(2026-11-21 00:00:00 UTC)),
            ..Default::default()
        }),
        vec![ids[1]]
    );
    assert_eq!(
        by(MessageFilter {
            limit: Some(1),
            ..Default::default()
        }),
        vec![ids[1]]
    );
}

#[test]
fn queue_ids_are_not_unique() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("m.db")).unwrap();
    let first = envelope("ABC", "a@example.com", &["x@y.example"], "one");
    let mut second = envelope("ABC", "a@example.com", &["x@y.example"], "two");
    second.arrived_at = datetime!(2026-11-22 10:00:00 UTC);
    store.insert_envelopes(&[&first]).unwrap();
    store.insert_envelopes(&[&second]).unwrap();
    let found = store.messages_by_queue_id("ABC").unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].envelope.subject.as_deref(), Some("two"));
}

#[test]
fn expiry_mark_and_counters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let mut store = Store::open(&path).unwrap();
    let ids = store
        .insert_envelopes(&[&envelope("Q1", "a@example.com", &["x@y.example"], "s")])
        .unwrap();
    assert_eq!(
        store
            .mark_archive_expired(&["Q1.maildir-name".into(), "nope".into()])
            .unwrap(),
        1
    );
    let m = store.message(ids[0]).unwrap().unwrap();
    assert_eq!(m.envelope.archive_state, ArchiveState::Expired);

    store
        .add_counters(&[("archive_errors", 2), ("store_errors", 0)])
        .unwrap();
    store.add_counters(&[("archive_errors", 3)]).unwrap();
    drop(store);
    // Reopening migrates nothing twice and keeps the data.
    let store = Store::open(&path).unwrap();
    let counters = store.counters().unwrap();
    assert_eq!(counters.get("archive_errors"), Some(&5));
    assert_eq!(counters.get("store_errors"), Some(&0));
}

#[test]
fn milter_envelope_takes_over_the_row_the_log_created_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("m.db")).unwrap();
    let e = envelope(
        "4XyZ1",
        "alice@example.com",
        &["bob@dest.example", "carol@dest.example"],
        "hi",
    );
    let at = e.arrived_at.unix_timestamp();
    // postfix logs message-id= and even a delivery before the milter's row is committed.
    let batch = store.log_batch().unwrap();
    let log_id = batch.message_for("4XyZ1", at - 1, Some("mx")).unwrap();
    let rcpt = batch
        .recipient_for(log_id, "bob@dest.example", None)
        .unwrap();
    batch
        .record_attempt(
            rcpt,
            &AttemptRow {
                at,
                status: crate::model::status::DeliveryStatus::Sent,
                relay_host: Some("mx.dest.example"),
                relay_ip: None,
                relay_port: None,
                dsn: Some("2.0.0"),
                smtp_code: Some(250),
                reply: "250 ok",
                stage: None,
                delay: Some(0.5),
                delays: None,
                category: None,
            },
        )
        .unwrap();
    batch.commit().unwrap();

    let ids = store.insert_envelopes(&[&e]).unwrap();
    assert_eq!(ids, vec![log_id], "no second row for the same message");
    let all = store.list_messages(&MessageFilter::default()).unwrap();
    assert_eq!(all.len(), 1);
    let m = &all[0].envelope;
    assert_eq!(m.mail_from, "alice@example.com");
    assert_eq!(m.subject.as_deref(), Some("hi"));
    assert_eq!(m.archive_state, ArchiveState::Stored);
    let addresses: Vec<&str> = m.recipients.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(addresses, vec!["bob@dest.example", "carol@dest.example"]);
    // The delivery the log recorded stays with bob.
    let status: String = store
        .conn
        .query_row(
            "SELECT status FROM recipient WHERE message = ?1 AND address = 'bob@dest.example'",
            [log_id],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(status, "sent");

    // A later message reusing the queue id after removal gets its own row.
    let batch = store.log_batch().unwrap();
    batch.mark_removed(log_id, at + 10).unwrap();
    let reused = batch.message_for("4XyZ1", at + 20, Some("mx")).unwrap();
    batch.commit().unwrap();
    assert_ne!(reused, log_id);
}

/// The milter and the log follower write through two connections at once. A log batch that has
/// read (found a message row) must not make the milter's insert, committed meanwhile, fail its
/// own first write with "database is locked" (SQLITE_BUSY_SNAPSHOT): write transactions begin
/// IMMEDIATE, so the second writer waits for the first instead.
#[test]
fn concurrent_writers_wait_for_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let mut follower = Store::open(&path).unwrap();
    let mut milter = Store::open(&path).unwrap();
    milter
        .insert_envelopes(&[&envelope("Q1", "a@example.com", &["x@y.example"], "s")])
        .unwrap();
    let at = datetime!(2026-11-20 10:00:01 UTC).unix_timestamp();

    let batch = follower.log_batch().unwrap();
    // A read: the milter's row for Q1.
    let q1 = batch.message_for("Q1", at, None).unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let writer = std::thread::spawn(move || {
        let r = milter.insert_envelopes(&[&envelope("Q2", "b@example.com", &["z@y.example"], "t")]);
        done_tx.send(()).unwrap();
        r.map(|ids| (ids, milter))
    });
    // Give the milter's insert a chance to commit in the middle of the batch (it must not: it
    // waits for the batch's commit).
    let finished_early = done_rx.recv_timeout(Duration::from_millis(300)).is_ok();
    // A write after the read: a log-only message.
    let q3 = batch.message_for("Q3", at, None).unwrap();
    batch.commit().unwrap();
    let (ids, milter) = writer
        .join()
        .unwrap()
        .expect("the milter's insert waited, not failed");
    assert!(
        !finished_early,
        "the milter's insert committed inside the log batch"
    );
    assert_ne!(q1, q3);
    assert_eq!(
        milter
            .message(ids[0])
            .unwrap()
            .unwrap()
            .envelope
            .queue_id
            .as_deref(),
        Some("Q2")
    );
    assert_eq!(
        follower
            .list_messages(&MessageFilter::default())
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn version_2_store_gains_the_notice_flag() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.db");
    {
        // A store as the previous release left it: migrations 1 and 2, one message.
        let conn = rusqlite::Connection::open(&path).unwrap();
        for sql in &super::schema::MIGRATIONS[..2] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 2).unwrap();
        conn.execute(
            "INSERT INTO message (queue_id, arrived_at, mail_from, size, archive_state, mode)
             VALUES ('OLD1', 1795000000, 'a@example.com', 10, 'stored', 'normal')",
            [],
        )
        .unwrap();
    }
    let mut store = Store::open(&path).unwrap();
    let old = store.messages_by_queue_id("OLD1").unwrap();
    assert_eq!(old.len(), 1);
    assert!(!old[0].envelope.is_notice);

    let mut notice = envelope("NEW1", "", &["a@example.com"], "Delivery delayed");
    notice.is_notice = true;
    let ids = store.insert_envelopes(&[&notice]).unwrap();
    let row = store.message(ids[0]).unwrap().unwrap();
    assert!(row.envelope.is_notice);
    assert_eq!(row.envelope.mail_from, "");
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, super::schema::MIGRATIONS.len() as i64);
}

/// The index names of `store`.
fn index_names(store: &Store) -> Vec<String> {
    store
        .conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'index' ORDER BY name")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn indexes_deferred_by_an_import_are_built_at_its_end_or_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let mut store = Store::open(&path).unwrap();
    let all = index_names(&store);
    assert!(!all.contains(&"recipient_message".to_owned()), "{all:?}");

    let lock = store.defer_indexes_for_import().unwrap();
    assert!(lock.is_some());
    let during = index_names(&store);
    for name in schema::IMPORT_DEFERRED_INDEXES {
        assert!(all.contains(&name.to_string()), "{name}");
        assert!(!during.contains(&name.to_string()), "{name}");
    }
    // Indexes on what a log import never writes stay.
    for name in ["message_archive_name", "notice_unsent"] {
        assert!(during.contains(&name.to_owned()), "{name}");
    }
    // Opened meanwhile (the daemon, `mailtrail stats`): left to the import, which holds the lock.
    let other = Store::open(&path).unwrap();
    assert_eq!(index_names(&other), during);
    drop(other);
    // A second import does not defer them again.
    assert!(
        Store::open(&path)
            .unwrap()
            .defer_indexes_for_import()
            .unwrap()
            .is_none()
    );
    store.build_deferred_indexes().unwrap();
    drop(lock);
    assert_eq!(index_names(&store), all);
    assert!(!dir.path().join("m.db.import-lock").exists());

    // An import that never reached its end (its lock gone with its process, the file left):
    // the next open builds them.
    let lock = store.defer_indexes_for_import().unwrap();
    assert!(lock.is_some());
    drop(store);
    drop(lock);
    std::fs::File::create(dir.path().join("m.db.import-lock")).unwrap();
    let mut store = Store::open(&path).unwrap();
    assert_eq!(index_names(&store), all);

    // A store that holds messages keeps its indexes: building them again would cost more than
    // the import saves.
    let batch = store.log_batch().unwrap();
    batch.message_for("4XyZ1", 1_000, Some("mx")).unwrap();
    batch.commit().unwrap();
    assert!(store.defer_indexes_for_import().unwrap().is_none());
    assert_eq!(index_names(&store), all);
}
