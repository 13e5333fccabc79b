//! The grammar, line by line: stamps and year inference, program names, every postfix and
//! sendmail line shape the parser promises.

use mailtrail::maillog::{
    Delivery, DeliveryStatus, Event, Mta, NotificationKind, ParseOutcome, Parser, ParserOptions,
    Reject, RejectSource, SmtpStage,
};
use time::macros::{datetime, offset};

fn parser_at(now: time::OffsetDateTime) -> Parser {
    Parser::new(ParserOptions {
        now,
        syslog_names: vec!["postfix".into()],
        default_offset: offset!(+2),
    })
}

fn p() -> Parser {
    parser_at(datetime!(2026-06-01 12:00 UTC))
}

fn event(line: &str) -> Event {
    match p().parse(line) {
        ParseOutcome::Event(_, e) => e,
        other => panic!("{line}\n -> {other:?}"),
    }
}

fn delivery(line: &str) -> Delivery {
    match event(line) {
        Event::Delivery(d) => d,
        other => panic!("{line}\n -> {other:?}"),
    }
}

fn reject(line: &str) -> Reject {
    match event(line) {
        Event::Reject(r) => r,
        other => panic!("{line}\n -> {other:?}"),
    }
}

const PF: &str = "May 31 06:26:22 mx postfix/smtp[123]: 3F1A2B4C5D: ";

#[test]
fn stamps_in_every_format() {
    let mut p = p();
    let want = datetime!(2026-05-31 06:26:22 +2);
    for line in [
        "May 31 06:26:22 host postfix/qmgr[1]: 3F1A2B4C5D: removed",
        "2026-05-31T06:26:22+02:00 host postfix/qmgr[1]: 3F1A2B4C5D: removed",
        "2026-05-31T06:26:22+0200 host postfix/qmgr[1]: 3F1A2B4C5D: removed",
        "2026-05-31T04:26:22Z host postfix/qmgr[1]: 3F1A2B4C5D: removed",
        "<22>May 31 06:26:22 host postfix/qmgr[1]: 3F1A2B4C5D: removed",
    ] {
        let ParseOutcome::Event(h, Event::Removed { queue_id }) = p.parse(line) else {
            panic!("{line}")
        };
        assert_eq!(h.time, want, "{line}");
        assert_eq!(queue_id, "3F1A2B4C5D");
        assert_eq!(
            (h.host.as_str(), h.program.as_str(), h.pid, h.mta, h.repeat),
            ("host", "postfix/qmgr", Some(1), Mta::Postfix, 1)
        );
    }
    let ParseOutcome::Event(h, _) =
        p.parse("2026-05-31T06:26:22.123456+02:00 host postfix/qmgr[1]: 3F1A2B4C5D: removed")
    else {
        panic!()
    };
    assert_eq!(h.time, datetime!(2026-05-31 06:26:22.123456 +2));
    // postlog (maillog_file) pads the day with a zero.
    let ParseOutcome::Event(h, _) =
        p.parse("May 01 06:26:22 host postfix/qmgr[1]: 3F1A2B4C5D: removed")
    else {
        panic!()
    };
    assert_eq!(h.time, datetime!(2026-05-01 06:26:22 +2));
}

#[test]
fn year_inference_across_new_year() {
    // A December line read in January is from last year.
    let mut p = parser_at(datetime!(2027-01-03 08:00 UTC));
    let ParseOutcome::Event(h, _) =
        p.parse("Dec 31 23:59:58 h postfix/qmgr[1]: 3F1A2B4C5D: removed")
    else {
        panic!()
    };
    assert_eq!(h.time.year(), 2026);
    // The same file goes on into January: the year moves on.
    let ParseOutcome::Event(h, _) =
        p.parse("Jan  1 00:00:03 h postfix/qmgr[1]: 3F1A2B4C5D: removed")
    else {
        panic!()
    };
    assert_eq!(h.time, datetime!(2027-01-01 00:00:03 +2));
    // Slightly out of order lines do not change the year.
    let ParseOutcome::Event(h, _) =
        p.parse("Dec 31 23:59:59 h postfix/qmgr[1]: 3F1A2B4C5D: removed")
    else {
        panic!()
    };
    assert_eq!(h.time.year(), 2026);
    // Other programs' lines still carry the year forward.
    let mut p = parser_at(datetime!(2027-01-03 08:00 UTC));
    assert_eq!(
        p.parse("Dec 30 10:00:00 h cron[1]: x"),
        ParseOutcome::Ignored("other program")
    );
    assert_eq!(
        p.parse("Jan  2 10:00:00 h dovecot[1]: x"),
        ParseOutcome::Ignored("other program")
    );
    let ParseOutcome::Event(h, _) =
        p.parse("Jan  2 10:00:01 h postfix/qmgr[1]: 3F1A2B4C5D: removed")
    else {
        panic!()
    };
    assert_eq!(h.time.year(), 2027);
    // A line from today or yesterday is this year.
    let mut p = parser_at(datetime!(2027-01-03 08:00 UTC));
    let ParseOutcome::Event(h, _) =
        p.parse("Jan  3 09:00:00 h postfix/qmgr[1]: 3F1A2B4C5D: removed")
    else {
        panic!()
    };
    assert_eq!(h.time.year(), 2027);
    // Feb 29 in a year without it is not a date.
    let mut p = parser_at(datetime!(2027-03-03 08:00 UTC));
    assert_eq!(
        p.parse("Feb 29 09:00:00 h postfix/qmgr[1]: 3F1A2B4C5D: removed"),
        ParseOutcome::Unknown
    );
}

#[test]
fn programs_and_repeats() {
    let mut p = Parser::new(ParserOptions {
        now: datetime!(2026-06-01 0:00 UTC),
        syslog_names: vec!["postfix".into(), "mta-out".into()],
        default_offset: offset!(UTC),
    });
    for (prog, mta) in [
        ("postfix/smtp", Some(Mta::Postfix)),
        ("postfix/submission/smtpd", Some(Mta::Postfix)),
        ("postfix-out/qmgr", Some(Mta::Postfix)),
        ("mta-out/qmgr", Some(Mta::Postfix)),
        ("sendmail", Some(Mta::Sendmail)),
        ("sm-mta", Some(Mta::Sendmail)),
        ("sm-msp-queue", Some(Mta::Sendmail)),
        ("dovecot", None),
        ("postfixadmin/x", None),
        ("amavis", None),
    ] {
        let out = p.parse(&format!("May 31 06:26:22 h {prog}[9]: hello there"));
        match mta {
            Some(m) => {
                let ParseOutcome::Event(h, _) = &out else {
                    panic!("{prog}: {out:?}")
                };
                assert_eq!((h.mta, h.program.as_str()), (m, prog));
            }
            None => assert_eq!(out, ParseOutcome::Ignored("other program"), "{prog}"),
        }
    }
    let ParseOutcome::Event(h, Event::Other { kind, .. }) =
        p.parse("May 31 06:26:22 h postfix/smtpd[9]: message repeated 4 times: [ warning: hostname x does not resolve]")
    else {
        panic!()
    };
    assert_eq!((h.repeat, kind), (4, "warning"));
    assert_eq!(p.parse(""), ParseOutcome::Ignored("blank"));
    assert_eq!(
        p.parse("May 31 06:26:22 h last message repeated 3 times"),
        ParseOutcome::Ignored("no program tag")
    );
    assert_eq!(p.parse("garbage"), ParseOutcome::Unknown);
}

#[test]
fn postfix_session_events() {
    let e = event(
        "May 31 06:26:22 mx postfix/submission/smtpd[9]: 3F1A2B4C5D: client=host.example[192.0.2.1]:4455, sasl_method=PLAIN, sasl_username=u@example.org",
    );
    assert_eq!(
        e,
        Event::Client {
            queue_id: "3F1A2B4C5D".into(),
            client_host: "host.example".into(),
            client_ip: "192.0.2.1".into(),
            client_port: Some(4455),
            sasl_method: Some("PLAIN".into()),
            sasl_username: Some("u@example.org".into()),
        }
    );
    let e = event("May 31 06:26:22 mx postfix/cleanup[9]: 3F1A2B4C5D: message-id=<abc@x>");
    assert_eq!(
        e,
        Event::MessageId {
            queue_id: "3F1A2B4C5D".into(),
            message_id: "abc@x".into()
        }
    );
    let Event::Queued {
        from, size, nrcpt, ..
    } = event(
        "May 31 06:26:22 mx postfix/qmgr[9]: 3F1A2B4C5D: from=<>, size=1234, nrcpt=3 (queue active)",
    )
    else {
        panic!()
    };
    assert_eq!((from.as_str(), size, nrcpt), ("", Some(1234), Some(3)));
    let e = event(
        "May 31 06:26:22 mx postfix/qmgr[9]: 3F1A2B4C5D: from=<a@b>, status=expired, returned to sender",
    );
    assert_eq!(
        e,
        Event::Expired {
            queue_id: "3F1A2B4C5D".into(),
            from: Some("a@b".into()),
            notice_queue_id: None,
            reason: "returned to sender".into()
        }
    );
    for (text, kind) in [
        (
            "sender non-delivery notification: 4B5C6D7E8F",
            NotificationKind::NonDelivery,
        ),
        (
            "sender delay notification: 4B5C6D7E8F",
            NotificationKind::Delay,
        ),
        (
            "sender delivery status notification: 4B5C6D7E8F",
            NotificationKind::Success,
        ),
        (
            "postmaster non-delivery notification: 4B5C6D7E8F",
            NotificationKind::PostmasterNotify,
        ),
    ] {
        let e = event(&format!(
            "May 31 06:26:22 mx postfix/bounce[9]: 3F1A2B4C5D: {text}"
        ));
        assert_eq!(
            e,
            Event::Notification {
                queue_id: "3F1A2B4C5D".into(),
                kind,
                notice_queue_id: Some("4B5C6D7E8F".into())
            }
        );
    }
    // Long queue ids.
    let e = event("May 31 06:26:22 mx postfix/qmgr[9]: 4gKpXH6DX0z4cRYb: removed");
    assert_eq!(
        e,
        Event::Removed {
            queue_id: "4gKpXH6DX0z4cRYb".into()
        }
    );
}

#[test]
fn postfix_deliveries_and_stages() {
    let d = delivery(&format!(
        "{PF}to=<u@example.com>, orig_to=<alias@example.com>, relay=mx.example.com[192.0.2.5]:25, conn_use=2, delay=2.5, delays=0.94/0/1.2/0.31, dsn=5.1.1, status=bounced (host mx.example.com[192.0.2.5] said: 550 5.1.1 <u@example.com>: user unknown (in reply to RCPT TO command))"
    ));
    assert_eq!(d.queue_id, "3F1A2B4C5D");
    assert_eq!(
        (d.to.as_str(), d.orig_to.as_deref()),
        ("u@example.com", Some("alias@example.com"))
    );
    assert_eq!(
        (d.relay_host.as_deref(), d.relay_ip.as_deref(), d.relay_port),
        (Some("mx.example.com"), Some("192.0.2.5"), Some(25))
    );
    assert_eq!(
        (d.delay_secs, d.delays.as_deref(), d.dsn.as_deref()),
        (Some(2.5), Some("0.94/0/1.2/0.31"), Some("5.1.1"))
    );
    assert_eq!(
        (d.status, d.smtp_code, d.stage),
        (DeliveryStatus::Bounced, Some(550), Some(SmtpStage::RcptTo))
    );
    assert_eq!(d.reply, "550 5.1.1 <u@example.com>: user unknown");
    assert_eq!(d.agent, "smtp");

    for (text, stage, code) in [
        (
            "host m[192.0.2.5] said: 554 5.7.1 rejected (in reply to end of DATA command)",
            Some(SmtpStage::EndOfData),
            Some(554),
        ),
        (
            "host m[192.0.2.5] said: 451 4.3.2 later (in reply to MAIL FROM command)",
            Some(SmtpStage::MailFrom),
            Some(451),
        ),
        (
            "host m[192.0.2.5] said: 421 4.7.0 busy (in reply to DATA command)",
            Some(SmtpStage::Data),
            Some(421),
        ),
        (
            "host m[192.0.2.5] said: 504 5.5.2 bad helo (in reply to EHLO command)",
            Some(SmtpStage::Helo),
            Some(504),
        ),
        (
            "connect to mx1.example.com[192.0.2.9]:25: Connection refused",
            Some(SmtpStage::Connect),
            None,
        ),
        (
            "lost connection with m[192.0.2.5] while receiving the initial server greeting",
            Some(SmtpStage::Connect),
            None,
        ),
        (
            "lost connection with m[192.0.2.5] while sending RCPT TO",
            Some(SmtpStage::RcptTo),
            None,
        ),
        (
            "conversation with m[192.0.2.5] timed out while sending message body",
            Some(SmtpStage::EndOfData),
            None,
        ),
        (
            "conversation with m[192.0.2.5] timed out while receiving the initial server greeting",
            Some(SmtpStage::Connect),
            None,
        ),
        (
            "host m[192.0.2.5] refused to talk to me: 554 5.7.1 go away",
            Some(SmtpStage::Connect),
            Some(554),
        ),
        (
            "Host or domain name not found. Name service error for name=x type=MX: Host not found",
            None,
            None,
        ),
        ("250 2.0.0 Ok: queued as 9ABC", None, Some(250)),
    ] {
        let d = delivery(&format!(
            "{PF}to=<u@x>, relay=none, delay=1, dsn=4.4.1, status=deferred ({text})"
        ));
        assert_eq!((d.stage, d.smtp_code), (stage, code), "{text}");
        // `relay=none` names no host.
        assert_eq!(
            (d.relay_host.as_deref(), d.relay_ip.as_deref(), d.relay_port),
            (None, None, None)
        );
    }
    let d = delivery(
        "May 31 06:26:22 mx postfix/local[9]: 3F1A2B4C5D: to=<a@b>, relay=local, delay=0.1, status=sent (delivered to mailbox)",
    );
    assert_eq!(
        (d.relay_host.as_deref(), d.reply.as_str(), d.agent.as_str()),
        (Some("local"), "delivered to mailbox", "local")
    );
    let d = delivery(
        "May 31 06:26:22 mx postfix/lmtp[9]: 3F1A2B4C5D: to=<a@b>, relay=mail.example.org[private/dovecot-lmtp], delay=1, dsn=2.0.0, status=sent (250 2.0.0 <a@b> x Saved)",
    );
    assert_eq!(
        (d.relay_host.as_deref(), d.relay_ip.as_deref()),
        (Some("mail.example.org"), None)
    );
    let d = delivery(
        "May 31 06:26:22 mx postfix/smtp[9]: 3F1A2B4C5D: to=<a@b>, relay=mx[2001:db8::1]:25, delay=1, dsn=2.0.0, status=sent (250 ok)",
    );
    assert_eq!(
        (d.relay_ip.as_deref(), d.relay_port),
        (Some("2001:db8::1"), Some(25))
    );
    // Field order does not matter; unknown keys are skipped.
    let d = delivery(&format!(
        "{PF}status=deferred (x), dsn=4.0.0, newkey=1, to=<a@b>, relay=none"
    ));
    assert_eq!(
        (d.status, d.to.as_str(), d.dsn.as_deref()),
        (DeliveryStatus::Deferred, "a@b", Some("4.0.0"))
    );
    // Address verification is not a delivery.
    assert!(matches!(
        event(&format!(
            "{PF}to=<a@b>, relay=none, status=deliverable (ok)"
        )),
        Event::Other { kind: "verify", .. }
    ));
}

#[test]
fn postfix_rejects() {
    let r = reject(
        "May 31 06:26:22 mx postfix/smtpd[9]: NOQUEUE: reject: RCPT from host.example[192.0.2.1]: 550 5.1.1 <x@y>: Recipient address rejected: User unknown; from=<> to=<x@y> proto=ESMTP helo=<host.example>",
    );
    assert_eq!(r.queue_id, None);
    assert_eq!(r.source, RejectSource::Smtpd);
    assert_eq!(
        (r.code, r.dsn.as_deref(), r.stage),
        (Some(550), Some("5.1.1"), SmtpStage::RcptTo)
    );
    assert_eq!(
        (r.client_host.as_deref(), r.client_ip.as_deref()),
        (Some("host.example"), Some("192.0.2.1"))
    );
    assert_eq!(
        (
            r.from.as_deref(),
            r.to.as_deref(),
            r.proto.as_deref(),
            r.helo.as_deref()
        ),
        (Some(""), Some("x@y"), Some("ESMTP"), Some("host.example"))
    );
    assert_eq!(r.reason, "<x@y>: Recipient address rejected: User unknown");

    let r = reject(
        "May 31 06:26:22 mx postfix/postscreen[9]: NOQUEUE: reject: RCPT from [203.0.113.9]:22287: 550 5.7.1 Service unavailable; client [203.0.113.9] blocked using zen.spamhaus.org; from=<a@b>, to=<c@d>, proto=ESMTP, helo=<e>",
    );
    assert_eq!(r.source, RejectSource::Postscreen);
    assert_eq!(
        (r.client_host, r.client_ip.as_deref(), r.client_port),
        (None, Some("203.0.113.9"), Some(22287))
    );
    assert_eq!(
        (r.from.as_deref(), r.to.as_deref(), r.helo.as_deref()),
        (Some("a@b"), Some("c@d"), Some("e"))
    );
    assert_eq!(
        r.reason,
        "Service unavailable; client [203.0.113.9] blocked using zen.spamhaus.org"
    );

    let r = reject(
        "May 31 06:26:22 mx postfix/cleanup[9]: 3F1A2B4C5D: milter-reject: END-OF-MESSAGE from h[192.0.2.1]: 5.7.1 Spam message rejected; from=<a@b> to=<c@d> proto=ESMTP helo=<h>",
    );
    assert_eq!(
        (r.source, r.queue_id.as_deref(), r.stage),
        (
            RejectSource::Milter,
            Some("3F1A2B4C5D"),
            SmtpStage::EndOfData
        )
    );
    assert_eq!(
        (r.code, r.dsn.as_deref(), r.reason.as_str()),
        (None, Some("5.7.1"), "Spam message rejected")
    );

    let r = reject(
        "May 31 06:26:22 mx postfix/cleanup[9]: 3F1A2B4C5D: reject: header Subject: buy now from h[192.0.2.1]; from=<a@b> to=<c@d> proto=ESMTP helo=<h>: 5.7.1 No spam here",
    );
    assert_eq!(
        (r.source, r.stage, r.dsn.as_deref(), r.reason.as_str()),
        (
            RejectSource::Cleanup,
            SmtpStage::Data,
            Some("5.7.1"),
            "No spam here"
        )
    );
    assert_eq!(r.to.as_deref(), Some("c@d"));

    // A refused DATA command has its reply after the client, as other commands do.
    let r = reject(
        "Mar 7 02:09:33 server postfix/smtpd[27246]: 1D8CC1CA0A7F: milter-reject: DATA from h[192.0.2.151]: 550 5.7.1 Command rejected; from=<a@b> to=<c@d> proto=ESMTP helo=<h>",
    );
    assert_eq!(
        (r.stage, r.code, r.dsn.as_deref(), r.reason.as_str()),
        (
            SmtpStage::Data,
            Some(550),
            Some("5.7.1"),
            "Command rejected"
        )
    );
    assert!(r.ends_message());

    assert!(matches!(
        event("May 31 06:26:22 mx postfix/postscreen[9]: PASS NEW [192.0.2.1]:1234"),
        Event::Other {
            kind: "postscreen-pass",
            ..
        }
    ));
    assert!(matches!(
        event("May 31 06:26:22 mx postfix/postscreen[9]: DNSBL rank 7 for [192.0.2.1]:1234"),
        Event::Other {
            kind: "postscreen-dnsbl",
            ..
        }
    ));
    let Event::Other { queue_id, kind } = event(
        "May 31 06:26:22 mx postfix/cleanup[9]: warning: 3F1A2B4C5D: sender_canonical_maps lookup problem",
    ) else {
        panic!()
    };
    assert_eq!((queue_id.as_deref(), kind), (Some("3F1A2B4C5D"), "warning"));
}

const SM: &str = "May 20 00:00:09 mail sm-mta[2034]: 64JM07JY002032: ";

#[test]
fn sendmail_lines() {
    let Event::Queued {
        queue_id,
        from,
        size,
        nrcpt,
        message_id,
        client_host,
        client_ip,
        proto,
    } = event(&format!(
        "{SM}from=<a@b.example>, size=10947, class=0, nrcpts=2, msgid=<m@id>, bodytype=8BITMIME, proto=ESMTPSA, daemon=MSA-v4, relay=out.example.net [192.0.2.4] (may be forged)"
    ))
    else {
        panic!()
    };
    assert_eq!(
        (queue_id.as_str(), from.as_str(), size, nrcpt),
        ("64JM07JY002032", "a@b.example", Some(10947), Some(2))
    );
    assert_eq!(
        (
            message_id.as_deref(),
            client_host.as_deref(),
            client_ip.as_deref(),
            proto.as_deref()
        ),
        (
            Some("m@id"),
            Some("out.example.net"),
            Some("192.0.2.4"),
            Some("ESMTPSA")
        )
    );

    let d = delivery(&format!(
        "{SM}to=<x@y.example>,<z@y.example>, ctladdr=<a@b> (1366/100), delay=00:00:02, xdelay=00:00:01, mailer=esmtp, pri=130947, relay=mx.y.example. [192.0.2.7], dsn=2.0.0, stat=Sent (<q> Queued mail for delivery)"
    ));
    assert_eq!(
        (d.to.as_str(), d.also_to.as_slice()),
        ("x@y.example", &["z@y.example".to_owned()][..])
    );
    assert_eq!(
        d.recipients().collect::<Vec<_>>(),
        ["x@y.example", "z@y.example"]
    );
    assert_eq!(
        (d.relay_host.as_deref(), d.relay_ip.as_deref()),
        (Some("mx.y.example"), Some("192.0.2.7"))
    );
    assert_eq!(
        (
            d.status,
            d.delay_secs,
            d.delays.as_deref(),
            d.agent.as_str()
        ),
        (DeliveryStatus::Sent, Some(2.0), Some("00:00:01"), "esmtp")
    );
    assert_eq!(d.reply, "<q> Queued mail for delivery");

    let d = delivery(&format!(
        "{SM}to=<x@y>, delay=1+02:00:00, xdelay=00:00:01, mailer=esmtp, pri=1, relay=mx.y. [192.0.2.7], dsn=4.2.0, reply=451 4.7.1 Greylisting in action, please come back later, stat=Deferred: 451 4.7.1 Greylisting in action, please come back later"
    ));
    assert_eq!(
        (d.status, d.smtp_code, d.delay_secs),
        (DeliveryStatus::Deferred, Some(451), Some(93600.0))
    );
    assert_eq!(
        d.reply,
        "451 4.7.1 Greylisting in action, please come back later"
    );

    let d = delivery(&format!(
        "{SM}to=<x@y>, delay=00:00:01, mailer=esmtp, pri=1, relay=mx.y. [192.0.2.7], dsn=5.1.1, reply=550 5.1.1 <x@y>... User unknown, stat=User unknown"
    ));
    assert_eq!(
        (d.status, d.smtp_code, d.dsn.as_deref()),
        (DeliveryStatus::Bounced, Some(550), Some("5.1.1"))
    );
    let d = delivery(&format!(
        "{SM}to=<x@y>, delay=00:00:01, mailer=esmtp, pri=1, relay=mx.y, dsn=4.0.0, stat=Deferred: Connection refused by mx.y"
    ));
    assert_eq!(
        (d.status, d.stage, d.reply.as_str()),
        (
            DeliveryStatus::Deferred,
            Some(SmtpStage::Connect),
            "Connection refused by mx.y"
        )
    );
    // Old sendmail without dsn=: anything but Sent/Deferred is final.
    let d = delivery(&format!(
        "{SM}to=<x@y>, delay=00:00:01, mailer=local, stat=User unknown"
    ));
    assert_eq!(d.status, DeliveryStatus::Bounced);

    for (text, want) in [
        (
            "64K4AUPY014172: DSN: User unknown",
            Some(NotificationKind::NonDelivery),
        ),
        (
            "64K4AUPY014172: DSN: Return receipt",
            Some(NotificationKind::Success),
        ),
        (
            "64K4AUPY014172: sender notify: Warning: could not send message for past 4 hours",
            Some(NotificationKind::Delay),
        ),
        (
            "64K4AUPY014172: postmaster notify: Data format error",
            Some(NotificationKind::PostmasterNotify),
        ),
        (
            "64K4AUPY014172: return to sender: Service unavailable",
            Some(NotificationKind::ReturnToSender),
        ),
        ("64K4AUPY014172: DSN: Cannot send message for 5 days", None),
        (
            "64K4AUPY014172: return to sender: Cannot send message for 5 days",
            None,
        ),
    ] {
        match (event(&format!("{SM}{text}")), want) {
            (
                Event::Notification {
                    queue_id,
                    kind,
                    notice_queue_id,
                },
                Some(k),
            ) => {
                assert_eq!(
                    (queue_id.as_str(), kind, notice_queue_id.as_deref()),
                    ("64JM07JY002032", k, Some("64K4AUPY014172"))
                );
            }
            (
                Event::Expired {
                    queue_id,
                    notice_queue_id,
                    reason,
                    ..
                },
                None,
            ) => {
                assert_eq!(
                    (
                        queue_id.as_str(),
                        notice_queue_id.as_deref(),
                        reason.as_str()
                    ),
                    (
                        "64JM07JY002032",
                        Some("64K4AUPY014172"),
                        "Cannot send message for 5 days"
                    )
                );
            }
            (other, _) => panic!("{text}: {other:?}"),
        }
    }

    let r = reject(&format!(
        "{SM}ruleset=check_rcpt, arg1=<x@y>, relay=h.example [192.0.2.3], reject=550 5.7.1 <x@y>... Relaying denied"
    ));
    assert_eq!(
        (r.source, r.stage, r.code, r.dsn.as_deref(), r.to.as_deref()),
        (
            RejectSource::Ruleset,
            SmtpStage::RcptTo,
            Some(550),
            Some("5.7.1"),
            Some("x@y")
        )
    );
    assert_eq!(
        (
            r.client_host.as_deref(),
            r.client_ip.as_deref(),
            r.reason.as_str()
        ),
        (
            Some("h.example"),
            Some("192.0.2.3"),
            "<x@y>... Relaying denied"
        )
    );
    let r = reject(
        "May 20 00:00:09 mail sm-mta[2034]: ruleset=check_relay, arg1=[192.0.2.9], arg2=192.0.2.9, relay=[192.0.2.9], reject=554 5.7.1 Rejected 192.0.2.9 found in zen.spamhaus.org",
    );
    assert_eq!(
        (r.queue_id, r.stage, r.client_ip.as_deref()),
        (None, SmtpStage::Connect, Some("192.0.2.9"))
    );
    let r = reject(&format!(
        "{SM}Milter: data, reject=550 5.7.1 Command rejected"
    ));
    assert_eq!(
        (r.source, r.stage, r.code),
        (RejectSource::Milter, SmtpStage::EndOfData, Some(550))
    );
    let r = reject(&format!("{SM}<nobody@example.edu>... User unknown"));
    assert_eq!(
        (r.source, r.to.as_deref(), r.reason.as_str()),
        (
            RejectSource::SendmailRcpt,
            Some("nobody@example.edu"),
            "User unknown"
        )
    );

    let e = event(
        "May 20 00:00:09 mail sm-mta[2034]: AUTH=server, relay=h.example [192.0.2.1], authid=u@x, mech=LOGIN, bits=0",
    );
    assert_eq!(
        e,
        Event::SaslLogin {
            queue_id: None,
            client_host: Some("h.example".into()),
            client_ip: Some("192.0.2.1".into()),
            username: "u@x".into(),
            mechanism: Some("LOGIN".into()),
        }
    );
    for (text, kind) in [
        (
            "AUTH failure (LOGIN): authentication failure (-13), user=x, relay=[192.0.2.1]",
            "auth-failure",
        ),
        (
            "STARTTLS=client, relay=mx.y., version=TLSv1.3, verify=OK, cipher=X, bits=256/256",
            "starttls",
        ),
        (
            "64JM07JY002032: lost input channel from h [192.0.2.1] to MTA after rcpt",
            "lost-input-channel",
        ),
        (
            "64JM07JY002032[2]: continuation of a long line",
            "continuation",
        ),
    ] {
        let Event::Other { kind: k, .. } =
            event(&format!("May 20 00:00:09 mail sm-mta[2034]: {text}"))
        else {
            panic!("{text}")
        };
        assert_eq!(k, kind, "{text}");
    }
}

#[test]
fn events_serialise_to_json() {
    let mut p = p();
    let ParseOutcome::Event(h, e) = p.parse(&format!("{PF}to=<u@x>, relay=none, delay=1, dsn=4.4.1, status=deferred (connect to m[192.0.2.9]:25: Connection refused)")) else { panic!() };
    let j = serde_json::to_value((&h, &e)).expect("serialise");
    assert_eq!(j[0]["time"], "2026-05-31T06:26:22+02:00");
    assert_eq!(j[1]["Delivery"]["status"], "Deferred");
    assert_eq!(j[1]["Delivery"]["stage"], "Connect");
}

/// Deterministic token soup: lines built from the grammar's own separators and keywords in
/// random order. Nothing may panic, whatever the outcome.
#[test]
fn random_token_soup_never_panics() {
    const TOKENS: &[&str] = &[
        " ",
        ":",
        ": ",
        "<",
        ">",
        "[",
        "]",
        "(",
        ")",
        "=",
        ",",
        ", ",
        ";",
        "; ",
        ".",
        "é",
        "\u{fffd}",
        "0",
        "9",
        "250",
        "5.1.1",
        "to=",
        "from=",
        "status=",
        "sent",
        "deferred",
        "relay=",
        "delay=",
        "said: ",
        " (in reply to ",
        "NOQUEUE: ",
        "reject: ",
        "RCPT from ",
        "h[1.2.3.4]:25",
        "3F1A2B4C5D: ",
        "64JM07JY002032: ",
        "stat=",
        "reply=",
        "dsn=",
        "ruleset=",
        "arg1=",
        "DSN: ",
        "Milter: ",
        "message repeated 2 times: [",
        "client=",
        "helo=<",
        "postscreen",
        "while sending ",
        "connect to ",
        "refused to talk to me: ",
        "AUTH=server, ",
    ];
    let heads = [
        "May 31 06:26:22 h postfix/smtp[1]: ",
        "2026-05-31T06:26:22.5+02:00 h postfix/smtpd[1]: ",
        "May  1 06:26:22 h sm-mta[1]: ",
        "<13>May 31 06:26:22 h postfix/postscreen[1]: ",
        "",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut p = p();
    let mut events = 0;
    for _ in 0..20_000 {
        let mut line = heads[(next() % heads.len() as u64) as usize].to_owned();
        for _ in 0..(next() % 24) {
            line.push_str(TOKENS[(next() % TOKENS.len() as u64) as usize]);
        }
        if let ParseOutcome::Event(..) = p.parse(&line) {
            events += 1;
        }
    }
    assert!(
        events > 1000,
        "the soup should still hit the grammar: {events}"
    );
}

/// Text from strangers (a subject quoted by header_checks, a quoted recipient address, a remote
/// server's reply) never reads as the MTA's own delivery fields.
#[test]
fn strangers_text_never_forges_a_delivery() {
    let cleanup = "Jun  1 10:00:00 mx postfix/cleanup[77]: 3F1A2B4C5D: ";
    for line in [
        // header_checks WARN: the subject holds a whole forged delivery.
        format!(
            "{cleanup}warning: header Subject: hi, status=sent from client.example[192.0.2.1]; from=<a@b.example> to=<c@d.example> proto=ESMTP helo=<client.example>"
        ),
        format!(
            "{cleanup}warning: header Subject: x to=<c@d.example>, relay=evil[6.6.6.6]:25, dsn=5.1.1, status=bounced (550 5.1.1 forged) from client.example[192.0.2.1]; from=<a@b.example> to=<c@d.example> proto=ESMTP helo=<h>"
        ),
        format!(
            "{cleanup}info: header Subject: to=<c@d.example>, status=sent (ok) from h[192.0.2.1]; from=<a@b.example> to=<c@d.example> proto=ESMTP helo=<h>"
        ),
        format!(
            "{cleanup}hold: body status=sent, to=<c@d.example> from h[192.0.2.1]; from=<a@b.example> to=<c@d.example> proto=ESMTP helo=<h>"
        ),
        "Jun  1 10:00:00 mx postfix/smtpd[78]: 3F1A2B4C5D: filter: RCPT from h[192.0.2.1]: <c@d.example>: status=sent, to=<c@d.example>; from=<a@b.example> to=<c@d.example> proto=ESMTP helo=<h>".to_owned(),
    ] {
        assert!(
            matches!(event(&line), Event::Other { .. }),
            "{line}\n -> {:?}",
            event(&line)
        );
    }

    // A remote reply that closes its parenthesis early and adds fields of its own.
    let d = delivery(&format!(
        "{PF}to=<c@d.example>, relay=mx.d.example[192.0.2.7]:25, delay=1, dsn=5.1.1, status=bounced (host mx.d.example[192.0.2.7] said: 550 5.1.1 no) relay=evil[6.6.6.6]:25, dsn=2.0.0, status=sent (250 ok (in reply to RCPT TO command))"
    ));
    assert_eq!(d.status, DeliveryStatus::Bounced);
    assert_eq!(d.relay_ip.as_deref(), Some("192.0.2.7"));
    assert_eq!(d.dsn.as_deref(), Some("5.1.1"));
    assert!(d.reply.contains("relay=evil"), "{}", d.reply);

    // A quoted local part holding `>`, `, ` and a status field is one address.
    let d = delivery(&format!(
        "{PF}to=<\"a>b, status=sent (x)\"@d.example>, relay=mx.d.example[192.0.2.7]:25, delay=1, dsn=4.4.1, status=deferred (connect to mx.d.example[192.0.2.7]:25: Connection refused)"
    ));
    assert_eq!(d.to, "\"a>b, status=sent (x)\"@d.example");
    assert_eq!(d.status, DeliveryStatus::Deferred);

    // Sendmail: a quoted recipient holding `, stat=Sent` is one address; stat is sendmail's.
    let d = delivery(&format!(
        "{SM}to=<\"x, stat=Sent (ok)\"@y.example>, delay=00:00:02, xdelay=00:00:01, mailer=esmtp, pri=120000, relay=mx.y.example. [192.0.2.7], dsn=4.0.0, stat=Deferred: Connection refused by mx.y.example."
    ));
    assert_eq!(d.to, "\"x, stat=Sent (ok)\"@y.example");
    assert_eq!(d.status, DeliveryStatus::Deferred);
    // A remote reply holding `, stat=Sent` does not end the reply early.
    let d = delivery(&format!(
        "{SM}to=<x@y.example>, delay=00:00:02, xdelay=00:00:01, mailer=esmtp, pri=120000, relay=mx.y.example. [192.0.2.7], dsn=5.1.1, reply=550 5.1.1 no, stat=Sent, stat=User unknown"
    ));
    assert_eq!(d.status, DeliveryStatus::Bounced);
    // sendmail logs milters' header changes, a stranger's subject inside: not a refusal.
    assert!(matches!(
        event(&format!(
            "{SM}Milter change: header Subject: from hi, reject=550 5.7.1 forged to x"
        )),
        Event::Other { .. }
    ));
}

/// A NUL or other control byte is never part of a line the MTA wrote: the line is malformed,
/// nothing of it is stored (a NUL once reached a stored recipient as `bob@\0…`).
#[test]
fn control_bytes_make_a_line_malformed() {
    for line in [
        format!("{PF}\u{1}\u{2}garbage"),
        // Found by fuzzing (fuzz/fuzz_targets/log_line.rs): a lone CR reached a stored reply.
        "Jan 23 22:18:50 Jupiter sendmail[8360]: j0NLInfd008360: to=cpan-te dsn=2.0.0, stat=Senct (j0NLInZN008361 Message accepted for\r delivery)".to_owned(),
        format!("{PF}to=<bob@evil\u{1b}[2J>, relay=none, delay=1, dsn=4.4.1, status=deferred (x)"),
        format!("{PF}to=<bob@\0evil>, relay=none, delay=1, dsn=4.4.1, status=deferred (x)"),
        "May 31 06:26:22 mx postfix/qmgr[1]: 3F1A2B4C5D: from=<a@\0b>, size=1, nrcpt=1 (queue active)".to_owned(),
        format!("{SM}to=<x@y\0>, delay=00:00:02, mailer=esmtp, dsn=2.0.0, stat=Sent (ok)"),
    ] {
        assert!(
            matches!(p().parse(&line), ParseOutcome::Unknown),
            "{line:?}"
        );
    }
}

/// A hand-over to this host's MTA under a new queue id is marked, so it is not counted as a
/// delivery: sendmail's submission program, a content filter re-injecting into postfix.
/// Deliveries to a local LMTP server, or to a remote server that names its own queue id, are
/// deliveries.
#[test]
fn local_hops_are_marked_as_hand_overs() {
    let d = delivery(&format!(
        "{SM}to=info@pike.de, ctladdr=alice (1248/100), delay=00:00:00, xdelay=00:00:00, mailer=relay, pri=38327, relay=[127.0.0.1] [127.0.0.1], dsn=2.0.0, stat=Sent (64JM0hdj002037 Message accepted for delivery)"
    ));
    assert_eq!(d.handed_to.as_deref(), Some("64JM0hdj002037"));
    let d = delivery(&format!(
        "{PF}to=<bob@example.net>, relay=127.0.0.1[127.0.0.1]:10024, delay=1.2, delays=0.1/0/0/1.1, dsn=2.0.0, status=sent (250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as 4BC1D2E3F4)"
    ));
    assert_eq!(d.handed_to.as_deref(), Some("4BC1D2E3F4"));
    for line in [
        // Dovecot's LMTP on loopback stores the message: a delivery.
        format!(
            "{PF}to=<bob@example.net>, relay=mail.example.net[127.0.0.1]:24, delay=0.1, dsn=2.0.0, status=sent (250 2.0.0 <bob@example.net> x Saved)"
        ),
        // A remote server's own queue id: a delivery.
        format!(
            "{PF}to=<bob@example.net>, relay=mx.example.net[192.0.2.7]:25, delay=1, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4BC1D2E3F4)"
        ),
        // A hand-over that failed is a failure, not a hop.
        format!(
            "{PF}to=<bob@example.net>, relay=127.0.0.1[127.0.0.1]:10024, delay=1, dsn=4.4.2, status=deferred (lost connection with 127.0.0.1[127.0.0.1] while sending end of data -- queued as 4BC1D2E3F4)"
        ),
    ] {
        assert_eq!(delivery(&line).handed_to, None, "{line}");
    }
}
