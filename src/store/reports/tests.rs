use super::*;

#[test]
fn a_report_is_recorded_once_and_marked_sent() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("s.db")).unwrap();
    assert_eq!(store.report_record("weekly", 1000).unwrap(), None);
    let first = store.record_report_due("weekly", 1000, 1001).unwrap();
    assert_eq!((first.sent_at, first.attempts), (None, 0));
    store
        .finish_report_attempt("weekly", 1000, 1002, Some("connection refused"))
        .unwrap();
    // Due again after a restart: the same record, one failed attempt, still unsent.
    let again = store.record_report_due("weekly", 1000, 1003).unwrap();
    assert_eq!((again.sent_at, again.attempts), (None, 1));
    store
        .finish_report_attempt("weekly", 1000, 1004, None)
        .unwrap();
    let sent = store.report_record("weekly", 1000).unwrap().unwrap();
    assert_eq!((sent.sent_at, sent.attempts), (Some(1004), 2));
    // Another week is another record.
    assert_eq!(
        store
            .record_report_due("weekly", 2000, 2001)
            .unwrap()
            .sent_at,
        None
    );
}
