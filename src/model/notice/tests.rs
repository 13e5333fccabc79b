use super::*;

#[test]
fn kinds_round_trip_through_their_names() {
    for k in NoticeKind::ALL {
        assert_eq!(k.as_str().parse::<NoticeKind>(), Ok(k));
    }
    assert!("bounce".parse::<NoticeKind>().is_err());
}
