use super::*;

#[test]
fn builtin_rules_compile() {
    let c = Classifier::from_sources(&[(BUILTIN_RULES, BUILTIN_SOURCE)]);
    assert!(c.is_ok(), "{:?}", c.err());
}

#[test]
fn category_names_round_trip() {
    for c in Category::ALL {
        assert_eq!(c.as_str().parse::<Category>(), Ok(c));
        assert_eq!(c.to_string(), c.as_str());
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, format!("\"{}\"", c.as_str()));
    }
    assert!("no-such-category".parse::<Category>().is_err());
    assert_eq!(Category::ALL.len(), 16);
}

#[test]
fn code_fallback() {
    let c = Classifier::builtin();
    let f = Failure {
        code: Some(550),
        text: "xyzzy",
        stage: Some(SmtpStage::RcptTo),
        ..Failure::default()
    };
    assert_eq!(c.classify(&f), Category::InvalidMailbox);
    let f = Failure {
        stage: Some(SmtpStage::EndOfData),
        ..f
    };
    assert_eq!(c.classify(&f), Category::Other);
}

#[test]
fn extra_rules_take_precedence() {
    let extra = r#"
        [[rule]]
        category = "suppression-list"
        patterns = ['user unknown']
        dsn = ["5.1."]
    "#;
    let c = Classifier::with_extra_rules(extra, "/etc/mailtrail/bounce.toml").unwrap();
    let f = Failure {
        dsn: Some("5.1.1"),
        text: "550 5.1.1 User unknown",
        ..Failure::default()
    };
    assert_eq!(c.classify(&f), Category::SuppressionList);
    // The DSN restriction applies: same text with another status falls to built-ins.
    let f = Failure {
        dsn: Some("4.2.2"),
        text: "User unknown",
        ..Failure::default()
    };
    assert_eq!(c.classify(&f), Category::InvalidMailbox);
    assert_eq!(
        Classifier::builtin().classify(&Failure {
            dsn: Some("5.1.1"),
            text: "550 5.1.1 User unknown",
            ..Failure::default()
        }),
        Category::InvalidMailbox
    );
}

#[test]
fn bad_regex_names_source_index_and_pattern() {
    let extra = r#"
        [[rule]]
        category = "other"
        patterns = ['fine']

        [[rule]]
        category = "policy-related"
        patterns = ['ok', 'broken(']
    "#;
    let err = Classifier::with_extra_rules(extra, "local.toml").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("local.toml"), "{msg}");
    assert!(msg.contains("rule #2"), "{msg}");
    assert!(msg.contains("broken("), "{msg}");
    assert!(matches!(err, RulesError::Regex { index: 2, .. }));
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn bad_rule_files_are_errors() {
    let bad_category = "[[rule]]\ncategory = \"nope\"\npatterns = ['x']\n";
    let e = Classifier::with_extra_rules(bad_category, "a.toml").unwrap_err();
    assert!(e.to_string().contains("a.toml: rule #1"), "{e}");
    let bad_stage = "[[rule]]\ncategory = \"other\"\npatterns = ['x']\nstages = ['rcpt']\n";
    assert!(Classifier::with_extra_rules(bad_stage, "b.toml").is_err());
    let bad_dsn = "[[rule]]\ncategory = \"other\"\npatterns = ['x']\ndsn = ['5.1.1.1']\n";
    assert!(Classifier::with_extra_rules(bad_dsn, "c.toml").is_err());
    let not_toml = "[[rule]\n";
    let e = Classifier::with_extra_rules(not_toml, "d.toml").unwrap_err();
    assert!(matches!(e, RulesError::Toml { .. }));
    assert!(e.to_string().contains("d.toml"), "{e}");
    assert!(std::error::Error::source(&e).is_some());
}

#[test]
fn hostile_input_never_panics() {
    let c = Classifier::builtin();
    // Only the first 2 KB count: a match beyond it is not seen.
    let long = format!("{}user unknown", "é".repeat(5000));
    assert_eq!(c.classify_line(&long), Category::Other);
    let long = format!("{}{}", "user unknown ", "x".repeat(1 << 20));
    assert_eq!(c.classify_line(&long), Category::InvalidMailbox);
    let lossy =
        String::from_utf8_lossy(&[0xff, 0xfe, 0x00, b'5', b'5', 0xc3, 0x28, b'0']).into_owned();
    for t in [
        "",
        "5",
        "550",
        "550-",
        "5.1.",
        "\t",
        "\t\t\t",
        "5.1.1\t",
        "999 9.9.9 x",
        "\u{0}\u{7f}\u{feff}\u{202e}",
        lossy.as_str(),
        "550 5.1.1\u{301}",
        "(#5.1.1",
    ] {
        let _ = c.classify_line(t);
        let _ = parse_reply(t);
        let _ = c.classify(&Failure {
            dsn: Some(t),
            code: Some(u16::MAX),
            text: t,
            stage: None,
        });
    }
}

#[test]
fn random_input_never_panics() {
    // Deterministic xorshift so a failure is reproducible.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let fragments = [
        "550",
        " ",
        "5.1.1",
        "-",
        "\t",
        "user unknown",
        "(in reply to ",
        "DATA command)",
        "é",
        "\u{fffd}",
        "#",
        "4.",
        ".",
        "said: ",
        "\u{0}",
        "[",
        "]",
        "RCPT TO",
    ];
    let c = Classifier::builtin();
    for _ in 0..300 {
        let mut s = String::new();
        for _ in 0..(x % 24) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s.push_str(fragments[(x % fragments.len() as u64) as usize]);
        }
        let _ = c.classify_line(&s);
        let _ = parse_reply(&s);
    }
}

#[test]
fn classifier_can_be_shared_between_tasks() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<Classifier>();
}

#[test]
fn classify_line_reads_dsn_column_and_leading_code() {
    let c = Classifier::builtin();
    assert_eq!(c.classify_line("5.2.2\txyzzy"), Category::FullMailbox);
    assert_eq!(
        c.classify_line("\t550 5.1.2 xyzzy"),
        Category::InvalidDomain
    );
    assert_eq!(
        c.classify_line("550 5.1.1 xyzzy\r\n"),
        Category::InvalidMailbox
    );
}

#[test]
fn parse_reply_splits_code_dsn_rest() {
    assert_eq!(
        parse_reply("550 5.1.1 <x@y>: Recipient address rejected"),
        (
            Some(550),
            Some("5.1.1"),
            "<x@y>: Recipient address rejected"
        )
    );
    assert_eq!(
        parse_reply("550-5.1.1 The email account"),
        (Some(550), Some("5.1.1"), "The email account")
    );
    assert_eq!(parse_reply("421 Too busy"), (Some(421), None, "Too busy"));
    assert_eq!(
        parse_reply("4.4.1 timeout"),
        (None, Some("4.4.1"), "timeout")
    );
    assert_eq!(parse_reply("5501 x"), (None, None, "5501 x"));
    assert_eq!(parse_reply("550"), (Some(550), None, ""));
    assert_eq!(parse_reply(""), (None, None, ""));
    assert_eq!(parse_reply("550 5.1.1"), (Some(550), Some("5.1.1"), ""));
}

#[test]
fn dsn_patterns() {
    assert!(dsn_matches("4.7.1", "4.7.1"));
    assert!(!dsn_matches("5.7.1", "5.7.10"));
    assert!(dsn_matches("5.7.", "5.7.10"));
    assert!(dsn_matches("x.1.1", "4.1.1"));
    assert!(!dsn_matches("x.1.1", "4.1.10"));
    assert!(dsn_matches("4.", "4.2.0"));
    assert!(!dsn_matches("4.", "5.2.0"));
}
