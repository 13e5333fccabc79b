//! The grammar's rules that are not one line's outcome: stamps and year inference, program
//! names, JSON, and what no line may do (panic, forge a delivery, carry a control byte). Every
//! postfix and sendmail line shape the parser promises is a golden case in
//! `tests/golden/maillog/` (see `tests/golden.rs`).

use mailtrail::maillog::{
    Delivery, DeliveryStatus, Event, Mta, ParseOutcome, Parser, ParserOptions,
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

const SM: &str = "May 20 00:00:09 mail sm-mta[2034]: 64JM07JY002032: ";

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
