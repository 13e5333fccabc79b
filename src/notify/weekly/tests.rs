use super::*;
use crate::stats::{CategoryRow, SmtpErrorRow, StatsCounts, StatsSummary};
use mail_parser::{MessageParser, MimeHeaders, PartType};
use time::macros::datetime;

fn counts(messages: u64, delivered: u64, deferred: u64, bounced: u64) -> StatsCounts {
    StatsCounts {
        messages,
        recipients: messages,
        bytes: messages * 1000,
        delivered,
        deferred,
        bounced,
        expired: 0,
        rejected: 0,
    }
}

fn row(key: &str, c: StatsCounts) -> StatsRow {
    StatsRow {
        key: key.into(),
        other: false,
        counts: c,
    }
}

fn stats(messages: u64, delivered: u64, sender: &str) -> Stats {
    let c = counts(messages, delivered, 3, messages - delivered);
    Stats {
        from: String::new(),
        to: String::new(),
        refreshed_at: Some(0),
        summary: StatsSummary {
            counts: c,
            delivery_rate: c.delivery_rate(),
            delay_p50: Some(2.0),
            delay_p95: Some(600.0),
        },
        by_month: vec![],
        by_day: vec![],
        by_weekday: vec![row("Mon", c), row("Sun", counts(1, 1, 0, 0))],
        by_hour: (0..24).map(|h| row(&format!("{h:02}"), c)).collect(),
        by_recipient_domain: vec![row("dest.example", c)],
        by_relay_host: vec![row("mx.dest.example", c)],
        by_sender: vec![row(sender, c)],
        smtp_errors: vec![SmtpErrorRow {
            code: Some(554),
            dsn: "5.7.1".into(),
            count: 4,
        }],
        categories: vec![CategoryRow {
            category: "invalid-mailbox".parse().unwrap(),
            count: 2,
            refused: 0,
        }],
        by_mta_host: Vec::new(),
    }
}

/// The week of Monday 2026-11-16 to Sunday 2026-11-22, with mail-borne text in a sender.
fn report(sender: &str) -> WeeklyReport {
    WeeklyReport {
        week: ReportWeek::ending_on(datetime!(2026-11-23 07:00 UTC)),
        host: "mx1.example.net".into(),
        this: stats(120, 110, sender),
        previous: stats(100, 99, "old@example.com"),
        notices: [("warning".to_string(), 3), ("receipt".to_string(), 5)].into(),
        archived_messages: 1234,
        archived_bytes: 5_600_000,
        base_url: Some("https://mail.example.net/mailtrail".into()),
    }
}

#[test]
fn text_part_compares_the_weeks() {
    let text = report("alice@example.com").to_text();
    assert!(text.starts_with("mailtrail weekly summary for mx1.example.net\n"));
    assert!(text.contains("2026-11-16 to 2026-11-22 (compared with 2026-11-09 to 2026-11-15)"));
    let line = |label: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no {label} line in:\n{text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(line("Messages"), "Messages 120 100 +20.0 %");
    assert_eq!(line("Delivered"), "Delivered 110 99 +11.1 %");
    // A share moves in percentage points.
    assert_eq!(line("Delivery rate"), "Delivery rate 91.7 % 99.0 % -7.3 pt");
    assert_eq!(line("Median delay"), "Median delay 2.0 s 2.0 s =");
    assert!(text.contains("Notices sent to senders: 5 receipt, 3 warning"));
    assert!(text.contains("Archive now: 1,234 copies, 5.6 MB"));
    // Seven days in order from the first, each with its date; the week's Monday had mail.
    let days: Vec<&str> = text
        .lines()
        .filter(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words.len() == 7 && words[1].starts_with("2026-11-")
        })
        .collect();
    assert_eq!(days.len(), 7, "{text}");
    assert!(
        days[0].trim_start().starts_with("Mon 2026-11-16"),
        "{days:?}"
    );
    assert!(
        days[6].trim_start().starts_with("Sun 2026-11-22"),
        "{days:?}"
    );
    assert!(
        days[1].split_whitespace().skip(2).all(|n| n == "0"),
        "{days:?}"
    );
    assert!(text.contains("invalid-mailbox"));
    assert!(
        text.contains("https://mail.example.net/mailtrail/stats?period=2026-11-16..2026-11-23")
    );
}

#[test]
fn html_part_escapes_what_came_from_mail() {
    let html = report("<script>alert(1)</script>@evil.example")
        .to_html()
        .into_string();
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;@evil.example"));
    assert!(html.contains("src=\"cid:days\""));
}

#[test]
fn message_is_text_and_html_with_inline_png_charts() {
    let weekly = report("alice@example.com");
    let message = weekly
        .message("mailtrail@example.net", &["ops@example.net".into()])
        .unwrap()
        .formatted();
    let parsed = MessageParser::default().parse(&message).expect("parses");
    assert_eq!(
        parsed.subject(),
        Some("mailtrail weekly summary for mx1.example.net, 2026-11-16 to 2026-11-22")
    );
    assert_eq!(
        parsed.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-generated")
    );
    assert_eq!(
        parsed.content_type().unwrap().subtype(),
        Some("alternative")
    );
    assert_eq!(
        parsed.body_text(0).unwrap().replace("\r\n", "\n"),
        weekly.to_text()
    );
    let html = parsed.body_html(0).unwrap();
    let mut images = Vec::new();
    for part in &parsed.parts {
        if let PartType::InlineBinary(bytes) | PartType::Binary(bytes) = &part.body {
            assert_eq!(part.content_type().unwrap().ctype(), "image");
            assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
            let cid = part.content_id().expect("inline images have a Content-ID");
            assert!(html.contains(&format!("cid:{cid}")), "{cid} not referenced");
            images.push(cid.to_string());
        }
    }
    images.sort();
    assert_eq!(images, ["categories", "days", "hours"]);
}

#[test]
fn nothing_from_the_host_name_breaks_the_subject() {
    let mut weekly = report("alice@example.com");
    weekly.host = "mx1\r\nBcc: victim@example.org".into();
    assert!(!weekly.subject().contains(['\r', '\n']));
    let message = weekly
        .message("mailtrail@example.net", &["ops@example.net".into()])
        .unwrap()
        .formatted();
    let parsed = MessageParser::default().parse(&message).unwrap();
    assert!(parsed.header("Bcc").is_none());
    assert!(
        weekly
            .message(
                "mailtrail@example.net",
                &["ops@example.net\r\nBcc: x@y".into()]
            )
            .is_err()
    );
}
