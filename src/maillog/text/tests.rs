use super::*;

#[test]
fn helpers() {
    assert_eq!(
        host_ip_port("mx.a[1.2.3.4]:25"),
        ("mx.a", Some("1.2.3.4"), Some(25))
    );
    assert_eq!(
        host_ip_port("mx[2001:db8::1]:25"),
        ("mx", Some("2001:db8::1"), Some(25))
    );
    assert_eq!(
        host_ip_port("[1.2.3.4]:999"),
        ("", Some("1.2.3.4"), Some(999))
    );
    assert_eq!(host_ip_port("none"), ("none", None, None));
    assert_eq!(
        code_dsn_text("550 5.1.1 <x>: no"),
        (Some(550), Some("5.1.1"), "<x>: no")
    );
    assert_eq!(code_dsn_text("5.7.1 spam"), (None, Some("5.7.1"), "spam"));
    assert_eq!(
        code_dsn_text("421-4.7.0 slow"),
        (Some(421), Some("4.7.0"), "slow")
    );
    assert_eq!(code_dsn_text("hello"), (None, None, "hello"));
    assert_eq!(sendmail_delay("1+02:00:01"), Some(93601.0));
    assert_eq!(sendmail_delay("00:00:x"), None);
    assert_eq!(address_end("<\"a>b\"@c>, x"), 9);
    assert_eq!(address_end("<\"a@c>, x"), 6);
    assert_eq!(find_top_level("<a, b>,<\"c, d\"@e>, x=1", ", "), Some(17));
}
