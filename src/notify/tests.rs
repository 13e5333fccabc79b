use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders, PartType};
use time::{OffsetDateTime, macros::datetime};

use super::*;

const ARRIVAL: OffsetDateTime = datetime!(2026-11-23 08:00 UTC);
const ORIGINAL_HEADERS: &[u8] = b"From: Alice <alice@example.com>\r\nTo: bob@example.net\r\n\
Subject: Quarterly report\r\nMessage-ID: <orig-1@example.com>\r\n\r\nbody text\r\n";

fn recipient(addr: &str) -> RecipientReport {
    RecipientReport {
        final_recipient: addr.into(),
        original_recipient: Some(addr.into()),
        status: Some("4.7.1".into()),
        remote_mta: Some("mx.example.net".into()),
        diagnostic: Some("451 4.7.1 Greylisted, please try again later".into()),
        last_attempt: Some(ARRIVAL + Duration::from_secs(25 * 60)),
    }
}

fn input(report: Report) -> NoticeInput {
    NoticeInput {
        reporting_mta: "mail.example.com".into(),
        original: OriginalMessage {
            queue_id: Some("4XyZ12AbC".into()),
            sender: "alice@example.com".into(),
            message_id: Some("<orig-1@example.com>".into()),
            envelope_id: Some("ENV-42".into()),
            arrival: ARRIVAL,
            headers: Some(ORIGINAL_HEADERS.to_vec()),
        },
        recipients: vec![recipient("bob@example.net"), recipient("carol@example.org")],
        report,
        language: Language::En,
        now: ARRIVAL + Duration::from_secs(30 * 60),
    }
}

fn warning() -> NoticeInput {
    input(Report::warning(
        &Policy::normal(),
        ARRIVAL,
        ARRIVAL + Duration::from_secs(30 * 60),
    ))
}

fn expiry_input() -> NoticeInput {
    let mut i = input(Report::expiry(&Policy::normal()));
    i.now = ARRIVAL + Duration::from_secs(4 * 3600);
    i
}

fn receipt() -> NoticeInput {
    let mut i = input(Report::Receipt);
    for r in &mut i.recipients {
        r.status = Some("2.0.0".into());
        r.diagnostic = Some("250 2.0.0 Ok: queued as 9F8E7D".into());
    }
    i
}

/// A parsed notice: the three parts' content types and bodies, and the DSN's field groups.
struct Parsed {
    bytes: Vec<u8>,
    text: String,
    dsn: Vec<Vec<(String, String)>>,
    headers_part: Option<String>,
    content_types: Vec<String>,
}

fn parse(notice: &Notice) -> Parsed {
    let bytes = notice.formatted();
    let msg = MessageParser::default().parse(&bytes).expect("parses");
    let ct = msg.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    let PartType::Multipart(children) = &msg.parts[0].body else {
        panic!("root is not multipart");
    };
    let parts: Vec<_> = children.iter().map(|&i| &msg.parts[i as usize]).collect();
    let content_types = parts
        .iter()
        .map(|p| {
            let ct = p.content_type().unwrap();
            format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default())
        })
        .collect::<Vec<_>>();
    let text_ct = parts[0].content_type().unwrap();
    assert_eq!(text_ct.attribute("charset"), Some("utf-8"));
    let text = String::from_utf8(parts[0].contents().to_vec()).unwrap();
    let dsn_raw = String::from_utf8(parts[1].contents().to_vec()).unwrap();
    assert!(dsn_raw.is_ascii());
    let headers_part = parts
        .get(2)
        .map(|p| String::from_utf8(p.contents().to_vec()).unwrap());
    Parsed {
        bytes: bytes.clone(),
        text,
        dsn: dsn_groups(&dsn_raw),
        headers_part,
        content_types,
    }
}

/// Splits a delivery-status body into field groups, unfolding continuation lines.
fn dsn_groups(raw: &str) -> Vec<Vec<(String, String)>> {
    let unfolded = raw.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded
        .split("\r\n\r\n")
        .filter(|g| !g.trim().is_empty())
        .map(|g| {
            g.lines()
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let (k, v) = l.split_once(':').unwrap();
                    (k.to_owned(), v.trim().to_owned())
                })
                .collect()
        })
        .collect()
}

fn get<'a>(group: &'a [(String, String)], name: &str) -> Option<&'a str> {
    group
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn header<'a>(msg: &'a mail_parser::Message<'a>, name: &'static str) -> Option<&'a str> {
    msg.header(name).and_then(|h| h.as_text())
}

fn check_common(notice: &Notice, p: &Parsed, marker: &str, now: OffsetDateTime) {
    let msg = MessageParser::default().parse(&p.bytes).unwrap();
    let from = msg.from().unwrap().first().unwrap();
    assert_eq!(from.name(), Some("Mail Delivery System"));
    assert_eq!(from.address(), Some("MAILER-DAEMON@mail.example.com"));
    assert_eq!(
        msg.to().unwrap().first().unwrap().address(),
        Some("alice@example.com")
    );
    assert_eq!(header(&msg, "Auto-Submitted"), Some("auto-replied"));
    assert_eq!(header(&msg, "X-Mailtrail-Notice"), Some(marker));
    assert_eq!(msg.in_reply_to().as_text(), Some("orig-1@example.com"));
    assert_eq!(msg.references().as_text(), Some("orig-1@example.com"));
    let id = msg.message_id().unwrap();
    assert_eq!(format!("<{id}>"), notice.message_id());
    assert!(id.ends_with("@mail.example.com"), "{id}");
    assert_eq!(msg.date().unwrap().to_timestamp(), now.unix_timestamp());
    assert_eq!(
        p.content_types,
        [
            "text/plain",
            "message/delivery-status",
            "text/rfc822-headers"
        ]
    );
    let headers = p.headers_part.as_deref().unwrap();
    assert!(headers.contains("Subject: Quarterly report"));
    assert!(headers.contains("Message-ID: <orig-1@example.com>"));
    assert!(!headers.contains("body text"), "only the header section");

    let per_message = &p.dsn[0];
    assert_eq!(
        get(per_message, "Reporting-MTA"),
        Some("dns; mail.example.com")
    );
    assert_eq!(get(per_message, "Original-Envelope-Id"), Some("ENV-42"));
    assert_eq!(
        get(per_message, "Arrival-Date"),
        Some("Mon, 23 Nov 2026 08:00:00 +0000")
    );
    assert_eq!(p.dsn.len(), 3, "per-message group and two recipients");
    for (group, addr) in p.dsn[1..]
        .iter()
        .zip(["bob@example.net", "carol@example.org"])
    {
        let want = format!("rfc822; {addr}");
        assert_eq!(get(group, "Final-Recipient"), Some(want.as_str()));
        assert_eq!(get(group, "Original-Recipient"), Some(want.as_str()));
        assert_eq!(get(group, "Remote-MTA"), Some("dns; mx.example.net"));
        assert_eq!(
            get(group, "Last-Attempt-Date"),
            Some("Mon, 23 Nov 2026 08:25:00 +0000")
        );
    }
    // The null return path.
    let env = notice.envelope();
    assert_eq!(env.from(), None);
    assert_eq!(env.to(), [Address::from_str("alice@example.com").unwrap()]);
    assert_eq!(notice.message().envelope().from(), None);
}

#[test]
fn delay_warning() {
    let notice = build(&warning()).unwrap();
    assert_eq!(notice.kind(), NoticeKind::Warning);
    let p = parse(&notice);
    check_common(&notice, &p, "warning", warning().now);
    let msg = MessageParser::default().parse(&p.bytes).unwrap();
    assert_eq!(
        msg.subject(),
        Some("Warning: could not send message for past 30 minutes")
    );
    assert!(p.text.contains("THIS IS A WARNING MESSAGE ONLY"));
    assert!(p.text.contains("YOU DO NOT NEED TO RESEND YOUR MESSAGE"));
    assert!(
        p.text
            .contains("<bob@example.net>: 451 4.7.1 Greylisted, please try again later")
    );
    assert!(p.text.contains("<carol@example.org>"));
    assert!(
        p.text.contains("until Mon, 23 Nov 2026 12:00:00 +0000"),
        "{}",
        p.text
    );
    for group in &p.dsn[1..] {
        assert_eq!(get(group, "Action"), Some("delayed"));
        assert_eq!(get(group, "Status"), Some("4.7.1"));
        assert_eq!(
            get(group, "Diagnostic-Code"),
            Some("smtp; 451 4.7.1 Greylisted, please try again later")
        );
        assert_eq!(
            get(group, "Will-Retry-Until"),
            Some("Mon, 23 Nov 2026 12:00:00 +0000")
        );
    }
}

#[test]
fn warning_status_defaults_to_4_0_0() {
    let mut i = warning();
    i.recipients[0].status = None;
    i.recipients[1].status = Some("5.1.1".into());
    let p = parse(&build(&i).unwrap());
    assert_eq!(get(&p.dsn[1], "Status"), Some("4.0.0"));
    assert_eq!(get(&p.dsn[2], "Status"), Some("4.0.0"));
}

#[test]
fn warning_subject_real_duration() {
    for (minutes, want) in [
        (30, "30 minutes"),
        (60, "1 hour"),
        (61, "1 hour 1 minute"),
        (150, "2 hours 30 minutes"),
    ] {
        let now = ARRIVAL + Duration::from_secs(minutes * 60);
        let mut i = input(Report::warning(&Policy::normal(), ARRIVAL, now));
        i.now = now;
        let bytes = build(&i).unwrap().formatted();
        let msg = MessageParser::default().parse(&bytes).unwrap();
        assert_eq!(
            msg.subject().unwrap(),
            format!("Warning: could not send message for past {want}")
        );
    }
}

#[test]
fn expiry_notice() {
    let notice = build(&expiry_input()).unwrap();
    let p = parse(&notice);
    check_common(&notice, &p, "expiry", expiry_input().now);
    let msg = MessageParser::default().parse(&p.bytes).unwrap();
    assert_eq!(
        msg.subject(),
        Some("Returned mail: see transcript for details")
    );
    assert!(
        p.text
            .contains("Message could not be delivered for 4 hours")
    );
    assert!(p.text.contains("<bob@example.net>: 451 4.7.1 Greylisted"));
    assert!(!p.text.contains("WARNING"));
    for group in &p.dsn[1..] {
        assert_eq!(get(group, "Action"), Some("failed"));
        assert_eq!(get(group, "Status"), Some("4.4.7"));
        assert!(
            get(group, "Diagnostic-Code")
                .unwrap()
                .starts_with("smtp; 451 4.7.1")
        );
        assert_eq!(get(group, "Will-Retry-Until"), None);
    }
    // The bulk lifetime is quoted as configured.
    let mut i = expiry_input();
    i.report = Report::expiry(&Policy::bulk());
    let p = parse(&build(&i).unwrap());
    assert!(
        p.text
            .contains("Message could not be delivered for 24 hours")
    );
}

#[test]
fn return_receipt() {
    let notice = build(&receipt()).unwrap();
    let p = parse(&notice);
    check_common(&notice, &p, "receipt", receipt().now);
    let msg = MessageParser::default().parse(&p.bytes).unwrap();
    assert_eq!(msg.subject(), Some("Return receipt"));
    assert!(
        p.text
            .contains("The following addresses had successful delivery notifications")
    );
    assert!(p.text.contains("<bob@example.net>: 250 2.0.0 Ok"));
    let lower = p.text.to_lowercase();
    for word in [" read", "opened"] {
        assert!(!lower.contains(word), "receipt must not claim {word:?}");
    }
    for group in &p.dsn[1..] {
        assert_eq!(get(group, "Action"), Some("relayed"));
        assert_eq!(get(group, "Status"), Some("2.0.0"));
        assert_eq!(get(group, "Will-Retry-Until"), None);
    }
}

#[test]
fn italian() {
    let mut i = warning();
    i.language = Language::It;
    i.report = Report::warning(
        &Policy::normal(),
        ARRIVAL,
        ARRIVAL + Duration::from_secs(150 * 60),
    );
    let p = parse(&build(&i).unwrap());
    let msg = MessageParser::default().parse(&p.bytes).unwrap();
    assert_eq!(
        msg.subject(),
        Some("Avviso: impossibile inviare il messaggio da 2 ore e 30 minuti")
    );
    assert!(p.text.contains("QUESTO È SOLO UN MESSAGGIO DI AVVISO"));
    assert!(
        p.text
            .contains("NON È NECESSARIO INVIARE DI NUOVO IL MESSAGGIO")
    );
    // DSN fields are language-independent.
    assert_eq!(get(&p.dsn[1], "Action"), Some("delayed"));

    let mut i = expiry_input();
    i.language = Language::It;
    let p = parse(&build(&i).unwrap());
    assert!(
        p.text.contains("recapitare il messaggio per 4 ore"),
        "{}",
        p.text
    );

    let mut i = receipt();
    i.language = Language::It;
    let p = parse(&build(&i).unwrap());
    let msg = MessageParser::default().parse(&p.bytes).unwrap();
    assert_eq!(msg.subject(), Some("Ricevuta di ritorno"));
    assert!(
        p.text
            .contains("consegnato ai server di posta dei seguenti indirizzi")
    );
    assert_eq!("it-IT".parse::<Language>().ok(), Some(Language::It));
    assert_eq!("de".parse::<Language>().ok(), None);
}

#[test]
fn injection_refused_in_every_field() {
    type Edit = fn(&mut NoticeInput, String);
    let cases: [(&str, Edit); 10] = [
        ("reporting_mta", |i, v| i.reporting_mta = v),
        ("sender", |i, v| i.original.sender = v),
        ("queue_id", |i, v| i.original.queue_id = Some(v)),
        ("message_id", |i, v| i.original.message_id = Some(v)),
        ("envelope_id", |i, v| i.original.envelope_id = Some(v)),
        ("final_recipient", |i, v| {
            i.recipients[1].final_recipient = v
        }),
        ("original_recipient", |i, v| {
            i.recipients[1].original_recipient = Some(v)
        }),
        ("status", |i, v| i.recipients[1].status = Some(v)),
        ("remote_mta", |i, v| i.recipients[1].remote_mta = Some(v)),
        ("diagnostic", |i, v| i.recipients[1].diagnostic = Some(v)),
    ];
    for (field, edit) in cases {
        for evil in ["\r\nBcc: victim@example.org", "\n", "\r", "a\0b", "x\ty"] {
            for base in [warning(), expiry_input(), receipt()] {
                let mut i = base;
                edit(&mut i, format!("x{evil}@example.com"));
                assert_eq!(
                    build(&i).unwrap_err(),
                    NoticeError::HeaderInjection { field },
                    "{field} with {evil:?}"
                );
            }
        }
    }
}

#[test]
fn null_sender_and_mailer_daemon_refused() {
    for sender in ["", "<>", "MAILER-DAEMON@example.com", "mailer-daemon"] {
        let mut i = warning();
        i.original.sender = sender.into();
        assert_eq!(
            build(&i).unwrap_err(),
            NoticeError::NullSender,
            "{sender:?}"
        );
    }
}

#[test]
fn invalid_inputs_refused() {
    let mut i = warning();
    i.original.sender = "not an address".into();
    assert!(matches!(
        build(&i).unwrap_err(),
        NoticeError::InvalidAddress {
            field: "sender",
            ..
        }
    ));
    let mut i = warning();
    i.recipients[0].status = Some("4.7".into());
    assert_eq!(
        build(&i).unwrap_err(),
        NoticeError::InvalidStatus { field: "status" }
    );
    let mut i = warning();
    i.recipients[0].remote_mta = Some("mx.example.net:25 extra".into());
    assert_eq!(
        build(&i).unwrap_err(),
        NoticeError::InvalidHost {
            field: "remote_mta"
        }
    );
    let mut i = warning();
    i.reporting_mta = "bad host".into();
    assert_eq!(
        build(&i).unwrap_err(),
        NoticeError::InvalidHost {
            field: "reporting_mta"
        }
    );
    for bad in ["<>", "<a><b>", "a>b"] {
        let mut i = warning();
        i.original.message_id = Some(bad.into());
        assert!(
            matches!(
                build(&i).unwrap_err(),
                NoticeError::InvalidValue {
                    field: "message_id",
                    ..
                }
            ),
            "{bad}"
        );
    }
    let mut i = warning();
    i.original.message_id = Some("bare-id@example.com".into());
    let bytes = build(&i).unwrap().formatted();
    let msg = MessageParser::default().parse(&bytes).unwrap();
    assert_eq!(msg.in_reply_to().as_text(), Some("bare-id@example.com"));
    let mut i = warning();
    i.recipients.clear();
    assert_eq!(build(&i).unwrap_err(), NoticeError::NoRecipients);
}

#[test]
fn long_reply_bounded_and_folded() {
    let mut i = expiry_input();
    let long = format!("550 5.7.1 {}", "blocked ".repeat(500));
    i.recipients[0].diagnostic = Some(long);
    let notice = build(&i).unwrap();
    let bytes = notice.formatted();
    assert!(
        bytes.split(|&b| b == b'\n').all(|l| l.len() <= 998),
        "no line over the SMTP limit"
    );
    let p = parse(&notice);
    let diag = get(&p.dsn[1], "Diagnostic-Code").unwrap();
    assert!(diag.chars().count() <= "smtp; ".len() + MAX_REPLY_CHARS + 3);
    assert!(diag.ends_with("..."));
}

#[test]
fn long_reply_without_spaces_still_fits_a_line() {
    let mut i = expiry_input();
    i.recipients[0].diagnostic = Some("x".repeat(5000));
    let bytes = build(&i).unwrap().formatted();
    assert!(bytes.split(|&b| b == b'\n').all(|l| l.len() <= 998));
}

#[test]
fn from_policy_state() {
    let state = crate::policy::RecipientState {
        address: "bob@example.net".into(),
        status: crate::policy::RecipientStatus::Deferred,
        last_attempt_at: Some(ARRIVAL),
        last_reply: Some("451 4.7.1 later".into()),
        last_dsn: Some("4.7.1".into()),
        remote_mta: Some("mx.example.net".into()),
    };
    let r = RecipientReport::from(&state);
    assert_eq!(r.final_recipient, "bob@example.net");
    assert_eq!(r.status.as_deref(), Some("4.7.1"));
    assert_eq!(r.diagnostic.as_deref(), Some("451 4.7.1 later"));
    assert_eq!(r.last_attempt, Some(ARRIVAL));
}

#[test]
fn original_headers_bounded_normalised_and_kept_7bit() {
    let dkim = format!("DKIM-Signature: v=1; b={}", "A".repeat(300));
    let mut i = receipt();
    // Bare LF line ends, as a Maildir copy may have them; a long line; then a body.
    i.original.headers = Some(format!("Subject: hi\n{dkim}\n\nbody\n").into_bytes());
    let bytes = build(&i).unwrap().formatted();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(
        text.contains(&format!("Subject: hi\r\n{dkim}\r\n")),
        "kept verbatim"
    );
    let p = parse(&build(&i).unwrap());
    assert!(!p.headers_part.unwrap().contains("body"));

    let mut i = receipt();
    let big = "X-Filler: 0123456789\r\n".repeat(10_000);
    i.original.headers = Some(big.into_bytes());
    let p = parse(&build(&i).unwrap());
    let part = p.headers_part.unwrap();
    assert!(part.len() <= MAX_ORIGINAL_HEADERS);
    assert!(part.ends_with("0123456789\r\n"), "cut at a line end");
}

#[test]
fn without_original_headers_the_part_is_left_out() {
    let mut i = receipt();
    i.original.headers = None;
    let p = parse(&build(&i).unwrap());
    assert_eq!(p.content_types, ["text/plain", "message/delivery-status"]);
    assert!(p.headers_part.is_none());
}

#[test]
fn optional_fields_absent() {
    let mut i = warning();
    i.original.message_id = None;
    i.original.envelope_id = None;
    i.original.queue_id = None;
    i.recipients[0].original_recipient = None;
    i.recipients[0].remote_mta = None;
    i.recipients[0].diagnostic = None;
    i.recipients[0].last_attempt = None;
    let notice = build(&i).unwrap();
    let p = parse(&notice);
    let msg = MessageParser::default().parse(&p.bytes).unwrap();
    assert!(msg.in_reply_to().as_text().is_none());
    assert_eq!(get(&p.dsn[0], "Original-Envelope-Id"), None);
    let g = &p.dsn[1];
    for name in [
        "Original-Recipient",
        "Remote-MTA",
        "Diagnostic-Code",
        "Last-Attempt-Date",
    ] {
        assert_eq!(get(g, name), None, "{name}");
    }
    assert_eq!(get(g, "Final-Recipient"), Some("rfc822; bob@example.net"));
    assert!(p.text.contains("<bob@example.net>: (no reply recorded)"));
}

#[test]
fn message_id_is_stable() {
    let a = build(&warning()).unwrap();
    let b = build(&warning()).unwrap();
    assert_eq!(a.message_id(), b.message_id());
    assert_ne!(a.message_id(), build(&receipt()).unwrap().message_id());
}

#[test]
fn utf8_recipient_uses_rfc6533_form() {
    assert_eq!(dsn_address("bob@example.net"), "rfc822; bob@example.net");
    assert_eq!(
        dsn_address("jörg+x@example.de"),
        "utf-8; j\\x{F6}rg\\x{2B}x@example.de"
    );
}
