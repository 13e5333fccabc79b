//! A notice about a message with a hostile sender, recipients, reply and headers: either
//! refused, or a message that parses back with mail-parser and has no header line that a CR
//! or LF from the input broke open.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailtrail::config::{Language, Policy};
use mailtrail::notify::{self, NoticeInput, OriginalMessage, RecipientReport, Report};
use time::macros::datetime;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Fields cut from the input at NUL bytes: sender, recipient, subject line, reply, ids.
    let mut parts = text.split('\0');
    let mut next = || parts.next().unwrap_or("").to_owned();
    let (sender, recipient, subject, reply, message_id, envelope_id, kind) =
        (next(), next(), next(), next(), next(), next(), next());
    let arrival = datetime!(2026-06-01 08:00 UTC);
    let report = match kind.len() % 3 {
        0 => Report::warning(
            &Policy::normal(),
            arrival,
            arrival + time::Duration::minutes(30),
        ),
        1 => Report::expiry(&Policy::normal()),
        _ => Report::Receipt,
    };
    let input = NoticeInput {
        reporting_mta: "mail.example.com".into(),
        original: OriginalMessage {
            queue_id: Some("4XyZ12AbC".into()),
            sender,
            message_id: Some(message_id),
            envelope_id: Some(envelope_id),
            arrival,
            headers: Some(
                format!("Subject: {subject}\r\nFrom: x@example.com\r\n\r\nbody").into_bytes(),
            ),
        },
        recipients: vec![RecipientReport {
            final_recipient: recipient.clone(),
            original_recipient: Some(recipient),
            status: Some("4.7.1".into()),
            remote_mta: Some("mx.example.net".into()),
            diagnostic: Some(reply),
            last_attempt: Some(arrival),
        }],
        report,
        language: Language::En,
        now: arrival + time::Duration::hours(4),
    };
    let Ok(notice) = notify::build(&input) else {
        return;
    };
    let bytes = notice.formatted();
    let parsed = mail_parser::MessageParser::default()
        .parse(&bytes)
        .expect("a built notice parses");
    // Every top-level header is one the builder writes: none was smuggled in through a CR/LF.
    for header in parsed.headers() {
        let name = header.name().to_ascii_lowercase();
        assert!(
            [
                "from",
                "to",
                "subject",
                "date",
                "message-id",
                "mime-version",
                "content-type",
                "auto-submitted",
                "x-mailtrail-notice",
                "in-reply-to",
                "references",
                "content-transfer-encoding",
            ]
            .contains(&name.as_str()),
            "unexpected header {name}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
});
