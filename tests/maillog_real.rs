//! Every line of the real logs in ../shared/data/logs parses into the expected fields or is
//! counted as deliberately ignored; none panics.

use std::collections::BTreeMap;

use mailtrail::maillog::{
    DeliveryStatus, Event, NotificationKind, ParseOutcome, Parser, ParserOptions, SmtpStage,
};
use serde_json::Value;
use time::macros::{datetime, offset};

const LOGS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/logs");

fn read(rel: &str) -> String {
    let path = format!("{LOGS}/{rel}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn parser(now: time::OffsetDateTime) -> Parser {
    Parser::new(ParserOptions {
        now,
        syslog_names: vec!["postfix".into()],
        default_offset: offset!(UTC),
    })
}

/// A short label per outcome for the printed tallies.
fn label(o: &ParseOutcome) -> String {
    match o {
        ParseOutcome::Event(_, Event::Other { kind, .. }) => format!("other:{kind}"),
        ParseOutcome::Event(_, Event::Delivery(d)) => format!("delivery:{}", d.status.as_str()),
        ParseOutcome::Event(_, e) => {
            let dbg = format!("{e:?}");
            dbg.split([' ', '(', '{']).next().unwrap_or("").to_owned()
        }
        ParseOutcome::Ignored(why) => format!("ignored:{why}"),
        ParseOutcome::Unknown => "unknown".into(),
    }
}

fn print_tally(name: &str, tally: &BTreeMap<String, usize>) {
    println!("== {name}");
    for (k, v) in tally {
        println!("  {v:>6} {k}");
    }
}

fn stage_from_grok(s: &str) -> SmtpStage {
    match s {
        "RCPT" | "RCPT TO" => SmtpStage::RcptTo,
        "MAIL" | "MAIL FROM" => SmtpStage::MailFrom,
        "DATA" => SmtpStage::Data,
        "END-OF-MESSAGE" | "end of DATA" => SmtpStage::EndOfData,
        "CONNECT" => SmtpStage::Connect,
        "HELO" | "EHLO" => SmtpStage::Helo,
        _ => SmtpStage::Unknown,
    }
}

/// postfix-grok-patterns: the syslog program each grok pattern is written for.
fn grok_program(pattern: &str) -> String {
    let name = pattern
        .trim_start_matches("^%{POSTFIX_")
        .split('}')
        .next()
        .unwrap_or("");
    let svc = match name {
        "TLS_FEATURES" | "DELAYS" => "smtp".to_owned(),
        "COMMAND_COUNTER_DATA" => "smtpd".to_owned(),
        "SCRIPT" => "postfix-script".to_owned(),
        other => other.to_ascii_lowercase().replace('_', "-"),
    };
    format!("postfix/{svc}")
}

#[test]
fn grok_cases() {
    let mut p = parser(datetime!(2026-06-01 0:00 UTC));
    let mut tally = BTreeMap::new();
    let mut checked_fields = 0;
    for (n, line) in read("postfix-grok-patterns/cases.jsonl")
        .lines()
        .enumerate()
    {
        let case: Value = serde_json::from_str(line).expect("cases.jsonl is JSON");
        let data = case["data"].as_str().expect("data");
        let r = &case["results"];
        let prog = grok_program(case["pattern"].as_str().expect("pattern"));
        let full = format!("May 31 06:26:22 mail {prog}[4242]: {data}");
        let out = p.parse(&full);
        *tally.entry(label(&out)).or_insert(0) += 1;
        let ParseOutcome::Event(h, ev) = out else {
            panic!("case {n} not parsed: {full} -> {out:?}");
        };
        assert_eq!(h.program, prog);
        assert_eq!(h.pid, Some(4242));
        assert_eq!(h.host, "mail");
        let s = |k: &str| r.get(format!("postfix_{k}")).and_then(Value::as_str);
        let u = |k: &str| r.get(format!("postfix_{k}")).and_then(Value::as_u64);
        if let Some(q) = s("queueid").filter(|q| *q != "NOQUEUE") {
            assert_eq!(ev.queue_id(), Some(q), "queue id of case {n}: {data}");
            checked_fields += 1;
        }
        match &ev {
            Event::Delivery(d) => {
                if let Some(st) = s("status") {
                    assert_eq!(d.status.as_str(), st, "status of {data}");
                }
                let resp = s("smtp_response")
                    .or(s("local_response"))
                    .or(s("pipe_response"))
                    .or(s("error_response"));
                if let Some(resp) = resp {
                    assert!(
                        resp.contains(&d.reply),
                        "reply {:?} not in {resp:?}",
                        d.reply
                    );
                }
                assert!(
                    data.contains(&format!("to=<{}>", d.to))
                        || data.contains(&format!("to={},", d.to))
                );
                checked_fields += 2;
            }
            Event::Reject(rej) => {
                if let Some(ip) = s("client_ip") {
                    assert_eq!(rej.client_ip.as_deref(), Some(ip), "{data}");
                }
                if let Some(port) = u("client_port") {
                    assert_eq!(rej.client_port.map(u64::from), Some(port), "{data}");
                }
                if let Some(c) = u("status_code") {
                    assert_eq!(rej.code.map(u64::from), Some(c), "{data}");
                }
                if let Some(d) = s("status_code_enhanced") {
                    assert_eq!(rej.dsn.as_deref(), Some(d), "{data}");
                }
                if let Some(st) = s("smtp_stage") {
                    assert_eq!(rej.stage, stage_from_grok(st), "{data}");
                }
                if let Some(m) = s("status_message") {
                    assert!(rej.reason.contains(m), "{data}");
                }
                checked_fields += 1;
            }
            Event::Client {
                client_host,
                client_ip,
                client_port,
                ..
            } => {
                if let Some(ip) = s("client_ip") {
                    assert_eq!(client_ip, ip);
                }
                if let Some(hn) = s("client_hostname") {
                    assert_eq!(client_host, hn);
                }
                if let Some(port) = u("client_port") {
                    assert_eq!(client_port.map(u64::from), Some(port));
                }
                checked_fields += 1;
            }
            Event::MessageId { message_id, .. } => {
                assert_eq!(Some(message_id.as_str()), s("message-id"));
                checked_fields += 1;
            }
            Event::Notification {
                notice_queue_id,
                kind,
                ..
            } => {
                assert_eq!(notice_queue_id.as_deref(), s("bounce_queueid"));
                let want = match (s("bounce_recipient"), s("bounce_reason")) {
                    (Some("postmaster"), _) => NotificationKind::PostmasterNotify,
                    (_, Some("delay")) => NotificationKind::Delay,
                    (_, Some("delivery status")) => NotificationKind::Success,
                    _ => NotificationKind::NonDelivery,
                };
                assert_eq!(*kind, want);
                checked_fields += 1;
            }
            Event::Expired { from, .. } => {
                assert_eq!(from.as_deref(), s("from"));
                assert_eq!(s("status"), Some("expired"));
                checked_fields += 1;
            }
            Event::Queued { size, .. } => {
                assert!(size.is_some());
            }
            _ => {}
        }
    }
    print_tally("postfix-grok-patterns", &tally);
    println!("  field checks: {checked_fields}");
    assert!(!tally.contains_key("unknown"));
    assert!(checked_fields > 100);
}

/// fail2ban logs: `# failJSON` before a line gives its time and (when it matches) the
/// offending client address.
#[test]
fn fail2ban_logs() {
    for file in ["postfix.log", "sendmail-auth.log", "sendmail-reject.log"] {
        let mut tally = BTreeMap::new();
        let mut expect: Option<Value> = None;
        let mut checked = 0;
        for line in read(&format!("fail2ban/{file}")).lines() {
            if let Some(j) = line.strip_prefix("# failJSON: ") {
                expect = serde_json::from_str(j).ok();
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            // fail2ban dates each line on its own against its test clock (2005-08-14 10:00 UTC),
            // and its files are not in time order: a fresh parser per line does the same.
            let mut p = parser(datetime!(2005-08-14 10:00 UTC));
            let out = p.parse(line);
            *tally.entry(label(&out)).or_insert(0) += 1;
            let Some(exp) = expect.take() else { continue };
            if line.trim().is_empty() {
                continue;
            }
            let ParseOutcome::Event(h, ev) = &out else {
                panic!("{file}: not parsed: {line} -> {out:?}");
            };
            // fail2ban writes single-digit days unpadded ("2005-03-7"); compare numerically.
            if let Some(t) = exp["time"].as_str() {
                let (date, clock) = t.split_once('T').expect("T");
                let mut d = date.split('-').map(|x| x.parse::<i32>().expect("number"));
                let (y, m, day) = (d.next().unwrap(), d.next().unwrap(), d.next().unwrap());
                assert_eq!(
                    (
                        h.time.year(),
                        u8::from(h.time.month()) as i32,
                        h.time.day() as i32
                    ),
                    (y, m, day),
                    "{line}"
                );
                assert_eq!(
                    format!(
                        "{:02}:{:02}:{:02}",
                        h.time.hour(),
                        h.time.minute(),
                        h.time.second()
                    ),
                    clock,
                    "{line}"
                );
            }
            if exp["match"].as_bool() == Some(true) {
                if let (Event::Reject(r), Some(host)) = (ev, exp["host"].as_str()) {
                    assert_eq!(r.client_ip.as_deref(), Some(host), "{line}");
                } else if let Some(host) = exp["host"].as_str() {
                    // AUTH failures, postscreen and smtpd session noise: the address is in the text.
                    assert!(line.contains(host), "{line}");
                }
            }
            checked += 1;
        }
        print_tally(&format!("fail2ban/{file}"), &tally);
        println!("  failJSON checks: {checked}");
        assert!(checked > 5);
        assert!(!tally.contains_key("unknown"), "{file}");
    }
}

#[test]
fn fail2ban_reject_fields() {
    let mut p = parser(datetime!(2005-12-31 12:00 UTC));
    let line = "Feb 25 03:01:10 kismet sm-acceptingconnections[27713]: s1P819mk027713: ruleset=check_rcpt, arg1=<asservnew@freemailhost.ru>, relay=128-68-136-133.broadband.corbina.ru [128.68.136.133], reject=550 5.7.1 <asservnew@freemailhost.ru>... Relaying denied. Proper authentication required.";
    let ParseOutcome::Event(h, Event::Reject(r)) = p.parse(line) else {
        panic!("not a reject")
    };
    assert_eq!(h.program, "sm-acceptingconnections");
    assert_eq!(r.queue_id.as_deref(), Some("s1P819mk027713"));
    assert_eq!(r.to.as_deref(), Some("asservnew@freemailhost.ru"));
    assert_eq!(
        r.client_host.as_deref(),
        Some("128-68-136-133.broadband.corbina.ru")
    );
    assert_eq!(r.client_ip.as_deref(), Some("128.68.136.133"));
    assert_eq!((r.code, r.dsn.as_deref()), (Some(550), Some("5.7.1")));
    assert_eq!(r.stage, SmtpStage::RcptTo);
    assert!(
        r.reason
            .ends_with("Relaying denied. Proper authentication required.")
    );
}

/// logwatch `#TD` lines: message texts per program; Q lines lost their queue id upstream,
/// so one is put back, and column-aligning spaces are collapsed.
#[test]
fn logwatch_td_lines() {
    const QID: &str = "4A2B3C4D5E";
    let mut p = parser(datetime!(2026-06-01 0:00 UTC));
    let mut tally = BTreeMap::new();
    let mut checked = 0;
    for raw in read("logwatch/postfix-logwatch-TD-lines.txt").lines() {
        let Some(rest) = raw.strip_prefix("#TD") else {
            continue;
        };
        let (tag, text) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let code: String = tag.chars().take_while(|c| c.is_ascii_lowercase()).collect();
        let has_qid = tag[code.len()..].starts_with('Q');
        let prog = match code.as_str() {
            "s" => "postfix/smtp",
            "sd" | "" => "postfix/smtpd",
            "c" => "postfix/cleanup",
            "b" => "postfix/bounce",
            "q" => "postfix/qmgr",
            "l" => "postfix/local",
            "v" => "postfix/virtual",
            "p" => "postfix/pickup",
            "ps" => "postfix/postsuper",
            "pp" => "postfix/pipe",
            "m" => "postfix/master",
            "pg" => "postgrey",
            "spf" => "policyd-spf",
            "pfw" => "postfwd",
            other => panic!("unexpected TD tag {other}"),
        };
        let action = [
            "reject:",
            "reject_warning:",
            "warn:",
            "discard:",
            "hold:",
            "milter-reject:",
        ]
        .iter()
        .any(|a| text.starts_with(a));
        let msg = if has_qid {
            format!("{QID}: {text}")
        } else if action {
            format!("NOQUEUE: {text}")
        } else {
            text.clone()
        };
        let line = format!("May 31 06:26:22 mail {prog}[77]: {msg}");
        let out = p.parse(&line);
        *tally.entry(label(&out)).or_insert(0) += 1;
        if !prog.starts_with("postfix/") {
            assert_eq!(out, ParseOutcome::Ignored("other program"), "{line}");
            continue;
        }
        let ParseOutcome::Event(_, ev) = &out else {
            panic!("TD line not parsed: {line} -> {out:?}");
        };
        if has_qid {
            assert_eq!(ev.queue_id(), Some(QID), "{line}");
        }
        // Cross-check the interesting fields against the text itself.
        let word_after = |key: &str| -> Option<String> {
            let i = text.find(key)?;
            Some(
                text[i + key.len()..]
                    .split([',', ' ', '>'])
                    .next()?
                    .trim_start_matches('<')
                    .to_owned(),
            )
        };
        if text.contains("to=") && text.contains(" status=") && has_qid {
            let status = word_after(" status=").expect("status");
            match (ev, status.as_str()) {
                (
                    Event::Delivery(d),
                    "sent" | "deferred" | "bounced" | "expired" | "SOFTBOUNCE",
                ) => {
                    let want = match status.as_str() {
                        "sent" => DeliveryStatus::Sent,
                        "bounced" => DeliveryStatus::Bounced,
                        "expired" => DeliveryStatus::Expired,
                        _ => DeliveryStatus::Deferred,
                    };
                    assert_eq!(d.status, want, "{line}");
                    assert_eq!(Some(d.to.clone()), word_after("to="), "{line}");
                    if let Some(relay) = word_after("relay=") {
                        let host = relay.split('[').next().unwrap_or("");
                        // `relay=none`: no host reached, none stored.
                        let want = (host != "none").then_some(host);
                        assert_eq!(d.relay_host.as_deref(), want, "{line}");
                    }
                    checked += 1;
                }
                (Event::Other { kind: "verify", .. }, _) => {}
                (Event::Queued { .. } | Event::Expired { .. }, _) => {}
                other => panic!("unexpected {other:?} for {line}"),
            }
        }
        if text.starts_with("client=") && has_qid {
            let Event::Client { client_ip, .. } = ev else {
                panic!("{line}")
            };
            let ip = text
                .split('[')
                .nth(1)
                .and_then(|s| s.split(']').next())
                .unwrap_or("");
            assert_eq!(client_ip, ip);
            checked += 1;
        }
        if text.starts_with("reject:") && msg.starts_with("NOQUEUE") {
            let Event::Reject(r) = ev else {
                panic!("{line}")
            };
            let code: Option<u16> = text
                .split(": ")
                .nth(2)
                .and_then(|s| s.get(..3))
                .and_then(|c| c.parse().ok());
            assert_eq!(r.code, code, "{line}");
            if let Some(to) = word_after(" to=") {
                assert_eq!(r.to.as_deref(), Some(to.as_str()), "{line}");
            }
            checked += 1;
        }
    }
    print_tally("logwatch TD lines", &tally);
    println!("  field checks: {checked}");
    assert!(checked > 40);
    assert!(!tally.contains_key("unknown"));
}

/// Parse-Syslog-Mail logs: complete real syslog files of sendmail 8.12 and postfix 2.x.
#[test]
fn parse_syslog_mail_logs() {
    let files = [
        "cpan-rt-28807.log",
        "postfix-plain.log",
        "sendmail-custom-dsn.log",
        "sendmail-done.log",
        "sendmail-plain.log",
        "sendmail-ruleset.log",
        "technoids.log",
    ];
    let mut total = BTreeMap::new();
    for f in files {
        let mut p = parser(datetime!(2005-12-31 12:00 UTC));
        let mut tally = BTreeMap::new();
        for line in read(&format!("parse-syslog-mail/{f}")).lines() {
            let out = p.parse(line);
            let l = label(&out);
            // Every line of these files is a syslog line of a mail program.
            assert!(!matches!(out, ParseOutcome::Unknown), "{f}: {line}");
            *tally.entry(l.clone()).or_insert(0) += 1;
            *total.entry(l).or_insert(0usize) += 1;
        }
        print_tally(&format!("parse-syslog-mail/{f}"), &tally);
    }
    print_tally("parse-syslog-mail total", &total);

    // Spot checks of the fields on known lines.
    let mut p = parser(datetime!(2005-12-31 12:00 UTC));
    let log = read("parse-syslog-mail/postfix-plain.log");
    let mut lines = log.lines();
    let ParseOutcome::Event(
        h,
        Event::Other {
            kind: "pickup",
            queue_id,
        },
    ) = p.parse(lines.next().unwrap())
    else {
        panic!()
    };
    assert_eq!(
        (h.host.as_str(), queue_id.as_deref()),
        ("fangorn", Some("0D7037A4"))
    );
    assert_eq!(h.time, datetime!(2005-02-20 04:05:39 UTC));
    let ParseOutcome::Event(_, Event::MessageId { message_id, .. }) =
        p.parse(lines.next().unwrap())
    else {
        panic!()
    };
    assert_eq!(message_id, "20050220030539.0D7037A4@fangorn.maddingue.net");
    let ParseOutcome::Event(
        _,
        Event::Queued {
            from, size, nrcpt, ..
        },
    ) = p.parse(lines.next().unwrap())
    else {
        panic!()
    };
    assert_eq!(
        (from.as_str(), size, nrcpt),
        ("root@fangorn.maddingue.net", Some(567), Some(1))
    );
    let ParseOutcome::Event(_, Event::Delivery(d)) = p.parse(lines.next().unwrap()) else {
        panic!()
    };
    assert_eq!(
        (d.to.as_str(), d.orig_to.as_deref(), d.relay_host.as_deref()),
        ("postfix@fangorn.maddingue.net", Some("root"), Some("local"))
    );
    assert_eq!(
        (d.status, d.reply.as_str(), d.delay_secs),
        (DeliveryStatus::Sent, "delivered to mailbox", Some(0.0))
    );

    let log = read("parse-syslog-mail/sendmail-custom-dsn.log");
    let mut kinds = BTreeMap::new();
    for line in log.lines() {
        if let ParseOutcome::Event(_, ev) = p.parse(line) {
            match ev {
                Event::Notification {
                    kind,
                    notice_queue_id,
                    ..
                } => {
                    assert!(notice_queue_id.is_some(), "{line}");
                    *kinds.entry(format!("{kind:?}")).or_insert(0) += 1;
                }
                Event::Expired {
                    notice_queue_id,
                    reason,
                    ..
                } => {
                    assert_eq!(notice_queue_id.as_deref(), Some("j4IIMlJ5000376"));
                    assert_eq!(reason, "Cannot send message for 4 days");
                    *kinds.entry("Expired".into()).or_insert(0) += 1;
                }
                _ => {}
            }
        }
    }
    println!("sendmail-custom-dsn notifications: {kinds:?}");
    assert_eq!(kinds.get("Expired"), Some(&1));
    assert_eq!(kinds.get("Success"), Some(&1));
    assert_eq!(kinds.get("Delay"), Some(&1));
    assert!(kinds.get("PostmasterNotify").copied().unwrap_or(0) >= 5);
    assert_eq!(kinds.get("ReturnToSender"), Some(&1));

    let done = read("parse-syslog-mail/sendmail-done.log");
    let mut it = done.lines();
    let ParseOutcome::Event(
        h,
        Event::Queued {
            from,
            client_host,
            client_ip,
            message_id,
            nrcpt,
            ..
        },
    ) = p.parse(it.next().unwrap())
    else {
        panic!()
    };
    assert_eq!(h.program, "sm-mta");
    assert_eq!(from, "kweek@glurpp.baf");
    assert_eq!(client_host.as_deref(), Some("mx1.glurpp.baf"));
    assert_eq!(client_ip.as_deref(), Some("62.210.95.136"));
    assert_eq!(
        message_id.as_deref(),
        Some("200508081028.j78ASkKG011031@blanditiis.crunch.zap")
    );
    assert_eq!(nrcpt, Some(1));
    let ParseOutcome::Event(_, Event::Delivery(d)) = p.parse(it.next().unwrap()) else {
        panic!()
    };
    assert_eq!(
        (d.to.as_str(), d.agent.as_str(), d.status, d.delay_secs),
        ("kweek@glurpp", "cyrusv2", DeliveryStatus::Sent, Some(1.0))
    );
}

/// Hostile input never panics.
#[test]
fn garbage_never_panics() {
    let mut p = parser(datetime!(2026-01-05 0:00 UTC));
    let mut seeds: Vec<String> = vec![
        "".into(),
        "<".into(),
        "<1".into(),
        "<12>".into(),
        "May".into(),
        "May 31".into(),
        "May 31 06:26:22".into(),
        "May 31 06:26:22 h".into(),
        "May 31 06:26:22 h p".into(),
        "May 31 06:26:22 h p[".into(),
        "May 31 06:26:22 h p[1]".into(),
        "2026-".into(),
        "2026-05-31T06:26:22.".into(),
        "2026-05-31T06:26:22+".into(),
        "2026-05-31T06:26:22+02:".into(),
        "Feb 30 06:26:22 h postfix/smtp[1]: ABCDE12345: to=<".into(),
        "May 31 06:26:22 h postfix/smtp[1]: ABCDE12345: to=<a>, status=sent (((".into(),
        "May 31 06:26:22 h postfix/smtp[1]: ABCDE12345: to=<a>, status=sent )))".into(),
        "May 31 06:26:22 h postfix/smtpd[1]: NOQUEUE: reject: RCPT from [: ; from=<".into(),
        "May 31 06:26:22 h postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[1.2.3.4]: 5".into(),
        "May 31 06:26:22 h sm-mta[1]: abcdefgh1234: to=, stat=".into(),
        "May 31 06:26:22 h sm-mta[1]: abcdefgh1234: abcdefgh1235: DSN: ".into(),
        "May 31 06:26:22 h sm-mta[1]: ruleset=, reject=".into(),
        "May 31 06:26:22 h sm-mta[1]: abcdefgh1234[: x".into(),
        "May 31 06:26:22 h postfix/qmgr[1]: message repeated 99999999999 times: [".into(),
        "May 31 06:26:22 h postfix/qmgr[1]: ABCDE12345: from=<x, size=-1, nrcpt=\u{0}".into(),
        "May 31 06:26:22 h postfix/smtp[1]: ABCDE12345: to=<é>, relay=ü[é]:99999, delay=é, status=sent (said: ".into(),
    ];
    // Every prefix of a few real lines, cut at every char boundary.
    for l in [
        "May 31 06:26:22 mail postfix/smtp[1350]: 77462600A67: to=<support@lohefa.net>, relay=mx2.lohefa.net[62.85.143.156]:25, delay=2.5, delays=0.94/0/1.2/0.31, dsn=5.1.1, status=bounced (host mx[1.2.3.4] said: 550 5.1.1 <x@y>: user unknown (in reply to RCPT TO command))",
        "2026-05-31T06:26:22.123+02:00 mail sm-mta[2034]: 64JM07JY002032: to=<a@b>,<c@d>, ctladdr=<hatel@mail.example.org> (1366/100), delay=1+00:00:02, xdelay=00:00:01, mailer=esmtp, pri=130947, relay=mx.kadakol.net. [217.227.61.86], dsn=4.2.0, reply=451 4.7.1 Greylisting in action, please come back later, stat=Deferred: 451 4.7.1 Greylisting",
        "<22>May  1 00:03:44 mail postfix/postscreen[1698]: NOQUEUE: reject: RCPT from [203.35.74.150]:22287: 550 5.7.1 Service unavailable; client [203.35.74.150] blocked using zen.spamhaus.org; from=<noreply@nicu.io>, to=<m@example.org>, proto=ESMTP, helo=<mta31.kuge.es>",
    ] {
        for (i, _) in l.char_indices() {
            seeds.push(l[..i].to_owned());
            seeds.push(l[i..].to_owned());
        }
    }
    for s in &seeds {
        let _ = p.parse(s);
    }
}
