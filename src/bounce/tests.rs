use super::*;

fn text(t: &str) -> Category {
    Classifier::builtin().classify(&Failure {
        text: t,
        ..Failure::default()
    })
}

fn full(dsn: &str, code: u16, t: &str, stage: Option<SmtpStage>) -> Category {
    Classifier::builtin().classify(&Failure {
        dsn: Some(dsn),
        code: Some(code),
        text: t,
        stage,
    })
}

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
fn invalid_mailbox() {
    assert_eq!(
        text(
            "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown in virtual mailbox table"
        ),
        Category::InvalidMailbox
    );
    assert_eq!(
        text("550 5.1.1 The email account that you tried to reach does not exist."),
        Category::InvalidMailbox
    );
    assert_eq!(text("550 No such user here"), Category::InvalidMailbox);
}

#[test]
fn invalid_domain() {
    assert_eq!(
        text(
            "Host or domain name not found. Name service error for name=exmaple.com type=MX: Host not found"
        ),
        Category::InvalidDomain
    );
    assert_eq!(text("550 5.1.2 Host unknown"), Category::InvalidDomain);
    assert_eq!(
        text("556 5.1.10 Recipient address has null MX"),
        Category::InvalidDomain
    );
}

#[test]
fn words_shared_between_categories() {
    // Message counts: a full mailbox, not a sending-rate limit.
    assert_eq!(
        text("552 Too many messages in the mailbox"),
        Category::FullMailbox
    );
    assert_eq!(
        text("421 Too many messages from your IP, slow down"),
        Category::ReputationIssues
    );
    // "does not accept mail" is about a domain only when it says so.
    assert_eq!(
        text("550 5.7.27 example.org does not accept mail (null MX)"),
        Category::InvalidDomain
    );
    assert_ne!(
        text("550 The user does not accept mail from this sender"),
        Category::InvalidDomain
    );
    // Full mailbox wins over the 5.1.1 the same reply carries.
    assert_eq!(
        text("552 sorry, mailbox x@example.org is over quota temporarily (#5.1.1)"),
        Category::FullMailbox
    );
}

#[test]
fn inactive_mailbox() {
    assert_eq!(
        text("550 5.2.1 The email account that you tried to reach is disabled."),
        Category::InactiveMailbox
    );
    assert_eq!(
        text("554 30 Sorry, your message cannot be delivered. This mailbox is disabled (554.30)"),
        Category::InactiveMailbox
    );
}

#[test]
fn full_mailbox() {
    assert_eq!(
        text("552 5.2.2 <a@example.org>: Recipient address rejected: Mailbox full"),
        Category::FullMailbox
    );
    assert_eq!(
        text("452 4.2.2 The email account that you tried to reach is over quota."),
        Category::FullMailbox
    );
}

#[test]
fn dmarc_issues() {
    assert_eq!(
        text(
            "550 5.7.26 Unauthenticated email from example.com is not accepted due to domain's DMARC policy."
        ),
        Category::DmarcIssues
    );
    assert_eq!(
        text("550 5.7.1 192.0.2.1 is not allowed to send from <example.net> per its SPF record"),
        Category::DmarcIssues
    );
}

#[test]
fn reputation_issues() {
    assert_eq!(
        text(
            "451 4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation."
        ),
        Category::ReputationIssues
    );
    assert_eq!(
        text("554 5.7.1 Message rejected: this message has been scored as spam"),
        Category::ReputationIssues
    );
    assert_eq!(text("421 Too many connections"), Category::ReputationIssues);
}

#[test]
fn greylisting_issues() {
    assert_eq!(
        text(
            "450 4.2.0 <a@example.org>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.org.html"
        ),
        Category::GreylistingIssues
    );
    assert_eq!(
        full("4.7.1", 451, "451 4.7.1 Please try again later", None),
        Category::GreylistingIssues
    );
    // The same words with another status are not greylisting.
    assert_ne!(
        full(
            "4.7.500",
            451,
            "451 4.7.500 Server busy. Please try again later",
            None
        ),
        Category::GreylistingIssues
    );
}

#[test]
fn blocklisting_issues() {
    assert_eq!(
        text(
            "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org"
        ),
        Category::BlocklistingIssues
    );
    assert_eq!(
        text("550 5.7.606 Access denied, banned sending IP [192.0.2.1]."),
        Category::BlocklistingIssues
    );
}

#[test]
fn relaying_issues() {
    assert_eq!(
        text("554 5.7.1 <a@example.org>: Relay access denied"),
        Category::RelayingIssues
    );
    assert_eq!(text("550 5.7.1 Unable to relay"), Category::RelayingIssues);
}

#[test]
fn routing_issues() {
    assert_eq!(
        text("554 5.4.6 Hop count exceeded - possible mail loop"),
        Category::RoutingIssues
    );
    assert_eq!(
        text("mail for example.org loops back to myself"),
        Category::RoutingIssues
    );
}

#[test]
fn recipient_server_error() {
    assert_eq!(
        text("451 4.3.0 Error: queue file write error"),
        Category::RecipientServerError
    );
    assert_eq!(
        text("451 4.7.500 Server busy. Please try again later"),
        Category::RecipientServerError
    );
}

#[test]
fn connection_error() {
    for t in [
        "connect to mx.example.org[192.0.2.1]:25: Connection refused",
        "connect to mx.example.org[192.0.2.1]:25: Connection timed out",
        "lost connection with mx.example.org[192.0.2.1] while receiving the initial server greeting",
        "connect to mx.example.org[2001:db8::1]:25: Network is unreachable",
        "connect to mx.example.org[192.0.2.1]:25: No route to host",
        "Cannot start TLS: handshake failure",
    ] {
        assert_eq!(text(t), Category::ConnectionError, "{t}");
    }
}

#[test]
fn policy_related() {
    assert_eq!(
        text("552 5.3.4 Message size exceeds fixed limit"),
        Category::PolicyRelated
    );
    assert_eq!(
        text("550 5.7.1 Only internal senders may send to this address"),
        Category::PolicyRelated
    );
    // Format rules come before the spam words Gmail appends to them.
    assert_eq!(
        text(
            "550 5.7.1 This message is not RFC 5322 compliant because it has duplicate headers. To reduce the amount of spam sent to Gmail, this message has been blocked."
        ),
        Category::PolicyRelated
    );
    assert_eq!(
        text(
            "host mx.example.org[192.0.2.1] said: 550 Denied by policy (in reply to RCPT TO command)"
        ),
        Category::PolicyRelated
    );
}

#[test]
fn message_expired() {
    for t in [
        "message expired",
        "Message could not be delivered for 5 days",
        "I'm not going to try again; this message has been in the queue too long.",
        "Delivery failed: too long in queue",
    ] {
        assert_eq!(text(t), Category::MessageExpired, "{t}");
    }
}

#[test]
fn suppression_list() {
    assert_eq!(
        text(
            "Amazon SES did not send the message to this address because it is on the suppression list for your account."
        ),
        Category::SuppressionList
    );
    assert_eq!(
        text("550 5.1.1 recipient is on the suppression list"),
        Category::SuppressionList
    );
    assert_eq!(text("Address suppressed"), Category::SuppressionList);
}

#[test]
fn other_when_unrecognisable() {
    assert_eq!(text("something odd happened"), Category::Other);
    assert_eq!(text(""), Category::Other);
    assert_eq!(full("5.0.0", 554, "554 nope", None), Category::Other);
}

#[test]
fn stage_decides_user_unknown() {
    let t = "550 5.1.1 <a@example.org>: User unknown";
    assert_eq!(
        full("5.1.1", 550, t, Some(SmtpStage::RcptTo)),
        Category::InvalidMailbox
    );
    assert_eq!(
        full("5.1.1", 550, t, Some(SmtpStage::EndOfData)),
        Category::PolicyRelated
    );
    // Stage read from postfix' own wording when the caller does not know it.
    assert_eq!(
        text(
            "host mx.example.org[192.0.2.1] said: 550 User unknown (in reply to end of DATA command)"
        ),
        Category::PolicyRelated
    );
    assert_eq!(
        text("host mx.example.org[192.0.2.1] said: 550 User unknown (in reply to RCPT TO command)"),
        Category::InvalidMailbox
    );
}

#[test]
fn sender_side_refusals_are_policy_not_recipient() {
    assert_eq!(
        text("450 4.1.8 <a@example.org>: Sender address rejected: Domain not found"),
        Category::PolicyRelated
    );
    let t = "550 5.1.2 No such domain example.net";
    assert_eq!(
        full("5.1.2", 550, t, Some(SmtpStage::MailFrom)),
        Category::PolicyRelated
    );
    assert_eq!(
        full("5.1.2", 550, t, Some(SmtpStage::RcptTo)),
        Category::InvalidDomain
    );
}

#[test]
fn greeting_refusal_is_a_ban() {
    assert_eq!(
        text("host mx.example.org[192.0.2.1] refused to talk to me: 554 Go away"),
        Category::BlocklistingIssues
    );
    assert_eq!(
        full("5.0.0", 550, "550 Rejected", Some(SmtpStage::Helo)),
        Category::BlocklistingIssues
    );
}

#[test]
fn dsn_fallbacks() {
    let cases = [
        ("5.1.1", Category::InvalidMailbox),
        ("5.1.2", Category::InvalidDomain),
        ("5.4.4", Category::InvalidDomain),
        ("5.2.1", Category::InactiveMailbox),
        ("4.2.2", Category::FullMailbox),
        ("5.2.3", Category::PolicyRelated),
        ("5.7.1", Category::PolicyRelated),
        ("4.4.7", Category::MessageExpired),
        ("4.4.1", Category::ConnectionError),
        ("4.4.2", Category::ConnectionError),
        ("4.3.0", Category::RecipientServerError),
        ("5.4.6", Category::RoutingIssues),
        ("5.7.26", Category::DmarcIssues),
        ("5.7.27", Category::DmarcIssues),
        ("5.7.25", Category::PolicyRelated),
        ("5.7.13", Category::InactiveMailbox),
        ("5.0.0", Category::Other),
    ];
    for (dsn, want) in cases {
        assert_eq!(full(dsn, 550, "xyzzy", None), want, "{dsn}");
    }
    // A DSN found in the text counts when the caller has none.
    assert_eq!(text("said: 550 5.2.2 xyzzy"), Category::FullMailbox);
    // ... but not digits inside an IP address.
    assert_eq!(text("host 10.5.1.1 said xyzzy"), Category::Other);
    // A garbage DSN from the log is ignored.
    assert_eq!(full("5.1.1.1.1", 554, "xyzzy", None), Category::Other);
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
fn code_quoted_by_the_mta_counts() {
    assert_eq!(
        text("host mx.example.org[192.0.2.1] said: 550-xyzzy (in reply to RCPT TO command)"),
        Category::InvalidMailbox
    );
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
