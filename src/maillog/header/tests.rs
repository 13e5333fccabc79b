use super::*;

#[test]
fn classic_and_iso() {
    let h = parse("May  1 06:26:22 mail postfix/smtp[123]: hello").unwrap();
    assert_eq!((h.stamp.month, h.stamp.day, h.stamp.hour), (5, 1, 6));
    assert_eq!(
        (h.host, h.program, h.pid, h.message),
        ("mail", "postfix/smtp", Some(123), "hello")
    );
    let h = parse("2026-05-31T06:26:22.123456+02:00 mx postfix/qmgr[9]: x").unwrap();
    assert_eq!(h.stamp.year, Some(2026));
    assert_eq!(h.stamp.micro, 123456);
    assert_eq!(h.stamp.offset, Some(7200));
    let h = parse("2026-05-31T06:26:22-0130 mx sm-mta[9]: x").unwrap();
    assert_eq!(h.stamp.offset, Some(-5400));
    let h =
        parse("<22>May 01 06:26:22 mx postfix/qmgr[9]: message repeated 3 times: [ abc]").unwrap();
    assert_eq!((h.repeat, h.message, h.stamp.day), (3, "abc", 1));
    let h = parse("Mar 7 02:09:33 server postfix/smtpd[27246]: x").unwrap();
    assert_eq!((h.stamp.day, h.stamp.hour, h.host), (7, 2, "server"));
    let h = parse("Jun 17 14:37:39 <mail.notice> robin sm-mta[2794]: x").unwrap();
    assert_eq!((h.host, h.program), ("robin", "sm-mta"));
    assert_eq!(parse("   ").unwrap_err(), HeaderError::Blank);
    assert_eq!(
        parse("May 31 06:26:22 host last message repeated 2 times").unwrap_err(),
        HeaderError::NoTag
    );
    assert!(parse("<999999>").is_err());
    assert!(parse("2026-13-01T00:00:00Z h p: x").is_err());
}
