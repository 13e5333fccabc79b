use super::*;

#[test]
fn each_value_parses_or_says_what_it_must_look_like() {
    assert_eq!(
        "inet:localhost:25".parse::<ListenAddr>(),
        Ok(ListenAddr::Inet(([127, 0, 0, 1], 25).into()))
    );
    assert_eq!(
        "inet:example.com:25"
            .parse::<ListenAddr>()
            .unwrap_err()
            .to_string(),
        "`inet:example.com:25` is not inet:HOST:PORT or unix:/PATH"
    );
    assert_eq!("tempfail".parse::<OnError>(), Ok(OnError::Tempfail));
    assert!("reject".parse::<OnError>().is_err());
    assert_eq!(
        "file:/var/log/mail.log".parse::<LogSource>(),
        Ok(LogSource::File("/var/log/mail.log".into()))
    );
    assert_eq!(
        "file:mail.log".parse::<LogSource>(),
        Err(ParseParamError::LogSource("file:mail.log".into()))
    );
    assert_eq!("sendmail".parse::<MtaKind>(), Ok(MtaKind::Sendmail));
    assert_eq!("it-IT".parse::<Language>(), Ok(Language::It));
    assert!("de".parse::<Language>().is_err());
    assert_eq!(
        "4h".parse::<Interval>(),
        Ok(Interval(Duration::from_secs(4 * 3600)))
    );
    assert_eq!("0s".parse::<Interval>(), Err(ParseParamError::ZeroDuration));
    assert!(
        "soon"
            .parse::<Interval>()
            .unwrap_err()
            .to_string()
            .starts_with("`soon` is not a duration like 10m, 4h or 7d (")
    );
    assert_eq!(
        "localhost:8025".parse::<ListenSocket>(),
        Ok(ListenSocket(([127, 0, 0, 1], 8025).into()))
    );
    assert_eq!(
        "[::1]:25".parse::<ServerAddr>(),
        Ok(ServerAddr {
            host: "::1".into(),
            port: 25
        })
    );
    assert!("smtp host:25".parse::<ServerAddr>().is_err());
    assert_eq!(
        "Thu".parse::<Weekday>(),
        Ok(Weekday(time::Weekday::Thursday))
    );
    assert_eq!(
        "07:30".parse::<TimeOfDay>(),
        Ok(TimeOfDay(time::macros::time!(07:30)))
    );
    assert!("7h".parse::<TimeOfDay>().is_err());
}
