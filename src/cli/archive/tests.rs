use super::*;
use crate::store::Attempt;

fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap()
}

#[test]
fn deliveries_are_printed_with_a_timeline_and_without_control_characters() {
    let attempt = |secs, status: &str, dsn: &str, reply: &str, category: Option<&str>| Attempt {
        at: at(secs),
        status: status.parse().unwrap(),
        relay_host: Some("mx.dest.example".into()),
        relay_ip: Some("192.0.2.25".into()),
        relay_port: Some(25),
        dsn: Some(dsn.into()),
        smtp_code: None,
        reply: reply.into(),
        stage: Some("rcpt-to".into()),
        delay: None,
        category: category.map(|c| c.parse().unwrap()),
    };
    let deliveries = [
        RecipientDelivery {
            address: "grey@dest.example".into(),
            orig_to: None,
            status: "sent".parse().unwrap(),
            category: None,
            dsn: Some("2.0.0".into()),
            reply: Some("250 ok".into()),
            attempts: 2,
            last_attempt_at: Some(at(1_800_000_060)),
            final_at: Some(at(1_800_000_060)),
            attempt_list: vec![
                attempt(
                    1_800_000_000,
                    "deferred",
                    "4.7.1",
                    "451 4.7.1 Greylisted\x1b[2J\r\nX-Evil: 1",
                    Some("greylisting-issues"),
                ),
                attempt(1_800_000_060, "sent", "2.0.0", "250 ok", None),
            ],
        },
        RecipientDelivery {
            address: "evil\x07@dest.example".into(),
            orig_to: Some("alias@dest.example".into()),
            status: "pending".parse().unwrap(),
            category: None,
            dsn: None,
            reply: None,
            attempts: 0,
            last_attempt_at: None,
            final_at: None,
            attempt_list: Vec::new(),
        },
    ];
    let mut out = Vec::new();
    write_deliveries(&deliveries, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text,
        "\nDelivery:\n\
         \x20 <grey@dest.example>  sent, 2 attempts, final 2027-01-15 08:01:00\n\
         \x20   2027-01-15 08:00:00  deferred  mx.dest.example[192.0.2.25]:25  4.7.1  greylisting-issues\n\
         \x20                        451 4.7.1 Greylisted?[2J??X-Evil: 1\n\
         \x20   2027-01-15 08:01:00  sent      mx.dest.example[192.0.2.25]:25  2.0.0  -\n\
         \x20                        250 ok\n\
         \x20 <evil?@dest.example> (to <alias@dest.example>)  pending, 0 attempts\n"
    );
    assert!(!text.chars().any(|c| c.is_control() && c != '\n'));

    let mut none = Vec::new();
    write_deliveries(&[], &mut none).unwrap();
    assert!(
        none.is_empty(),
        "nothing printed for a message without recipients"
    );
}
