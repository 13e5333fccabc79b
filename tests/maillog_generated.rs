//! Generated logs (shared/data/tools): per-status delivery counts from the parser must equal
//! counts taken from the raw text, in every output format; the formats agree with each other.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use mailtrail::maillog::{
    DeliveryStatus, Event, Header, ParseOutcome, Parser, ParserOptions, open_import,
};
use std::io::BufRead;
use time::macros::{datetime, offset};

const TOOLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/tools");
const LINES: &str = "50000";
// A low message rate stretches 50,000 lines over a week, so 5-day expiries appear.
const RATE: &str = "1500";

fn generate(dir: &Path, tool: &str, name: &str, extra: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let status = Command::new("python3")
        .arg(format!("{TOOLS}/{tool}"))
        .args(["--lines", LINES, "--msgs-per-day", RATE, "-o"])
        .arg(&out)
        .args(extra)
        .status()
        .expect("python3 runs");
    assert!(status.success(), "{tool} {extra:?} failed");
    out
}

fn parser() -> Parser {
    // The generators write May 2026 in +02:00.
    Parser::new(ParserOptions {
        now: datetime!(2026-11-23 12:00 UTC),
        syslog_names: vec!["postfix".into()],
        default_offset: offset!(+2),
    })
}

#[derive(Default, Debug, PartialEq, Eq)]
struct Counts {
    sent: usize,
    deferred: usize,
    bounced: usize,
    expired: usize,
    noqueue_rejects: usize,
    rejects: usize,
    notifications: usize,
    unknown: usize,
}

fn parse_file(path: &Path) -> (Counts, Vec<(Header, Event)>) {
    let mut p = parser();
    let mut c = Counts::default();
    let mut events = Vec::new();
    for line in open_import(path).expect("open").lines() {
        let line = line.expect("utf-8 line");
        match p.parse(&line) {
            ParseOutcome::Event(h, ev) => {
                match &ev {
                    Event::Delivery(d) => match d.status {
                        DeliveryStatus::Sent => c.sent += 1,
                        DeliveryStatus::Deferred => c.deferred += 1,
                        DeliveryStatus::Bounced => c.bounced += 1,
                        DeliveryStatus::Expired => c.expired += 1,
                    },
                    Event::Expired { .. } => c.expired += 1,
                    Event::Reject(r) => {
                        c.rejects += 1;
                        if r.queue_id.is_none() {
                            c.noqueue_rejects += 1;
                        }
                    }
                    Event::Notification { .. } => c.notifications += 1,
                    _ => {}
                }
                events.push((h, ev));
            }
            ParseOutcome::Ignored(_) => {}
            ParseOutcome::Unknown => {
                eprintln!("unknown: {line}");
                c.unknown += 1;
            }
        }
    }
    (c, events)
}

/// Counting on the raw text only, the way `grep -c` would.
fn grep_postfix(path: &Path) -> Counts {
    let text = std::fs::read_to_string(path).expect("read");
    let count = |pat: &str| text.lines().filter(|l| l.contains(pat)).count();
    Counts {
        sent: count("status=sent"),
        deferred: count("status=deferred"),
        bounced: count("status=bounced"),
        expired: count("status=expired"),
        noqueue_rejects: count("NOQUEUE: reject:"),
        rejects: count("NOQUEUE: reject:")
            + count("milter-reject:")
            + text
                .lines()
                .filter(|l| !l.contains("NOQUEUE") && l.contains("]: reject: "))
                .count(),
        notifications: count(" notification: "),
        unknown: 0,
    }
}

fn grep_sendmail(path: &Path) -> Counts {
    let text = std::fs::read_to_string(path).expect("read");
    let count = |pat: &str| text.lines().filter(|l| l.contains(pat)).count();
    let failed = text
        .lines()
        .filter(|l| {
            l.contains(": to=")
                && l.contains(" stat=")
                && !l.contains("stat=Sent")
                && !l.contains("stat=Deferred")
        })
        .count();
    let notices = text
        .lines()
        .filter(|l| {
            (l.contains(": DSN: ")
                || l.contains(": sender notify: ")
                || l.contains(": postmaster notify: ")
                || l.contains(": return to sender: "))
                && !l.contains("Cannot send message for")
        })
        .count();
    Counts {
        sent: count("stat=Sent"),
        deferred: count("stat=Deferred"),
        bounced: failed,
        expired: count("Cannot send message for"),
        // check_relay runs before a queue id exists.
        noqueue_rejects: count("]: ruleset="),
        // `<x>... User unknown` answered to a client (not the same text inside a to= reply).
        rejects: count("reject=")
            + text
                .lines()
                .filter(|l| l.contains(">... User unknown") && !l.contains(" to="))
                .count(),
        notifications: notices,
        unknown: 0,
    }
}

#[test]
fn postfix_generated_counts_all_formats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut all = Vec::new();
    for (format, long) in [
        ("syslog", false),
        ("rfc3339", false),
        ("postlog", false),
        ("short-iso", false),
        ("rfc3339", true),
        ("syslog", true),
    ] {
        let mut extra = vec!["--format", format];
        if long {
            extra.push("--long-qids");
        }
        let name = format!("postfix-{format}-{long}.log");
        let path = generate(dir.path(), "gen_postfix_log.py", &name, &extra);
        let want = grep_postfix(&path);
        let (got, events) = parse_file(&path);
        println!("{name}: {got:?}");
        assert_eq!(got, want, "{name}");
        assert!(
            want.sent > 1000 && want.deferred > 100 && want.bounced > 10 && want.expired > 0,
            "{want:?}"
        );
        all.push((format, long, events));
    }
    // Same seed, different stamps: identical events; times equal to the second
    // (syslog and postlog stamps carry no fraction).
    let (_, _, reference) = &all[1]; // rfc3339, short ids
    for (format, long, events) in &all {
        if *long {
            continue;
        }
        assert_eq!(events.len(), reference.len(), "{format}");
        for ((h, e), (rh, re)) in events.iter().zip(reference) {
            assert_eq!(e, re, "{format}");
            assert_eq!(
                h.time.unix_timestamp(),
                rh.time.unix_timestamp(),
                "{format} {e:?}"
            );
            assert_eq!(
                (&h.host, &h.program, h.pid),
                (&rh.host, &rh.program, rh.pid)
            );
        }
    }
    // Long queue ids change only the ids.
    let (_, _, long_events) = &all[4];
    assert_eq!(long_events.len(), reference.len());
    let q = long_events
        .iter()
        .find_map(|(_, e)| e.queue_id())
        .expect("a queue id");
    assert!(q.len() > 12 && q.contains('z'), "{q}");
}

#[test]
fn sendmail_generated_counts_all_formats() {
    let dir = tempfile::tempdir().expect("tempdir");
    for extra in [
        &["--format", "syslog"][..],
        &["--format", "rfc3339"],
        &["--format", "short-iso", "--mta-tag", "sendmail"],
        &["--no-reply-field"],
    ] {
        let name = format!("sendmail{}.log", extra.join(""));
        let path = generate(dir.path(), "gen_sendmail_log.py", &name, extra);
        let want = grep_sendmail(&path);
        let (got, events) = parse_file(&path);
        println!("{name}: {got:?}");
        assert_eq!(got, want, "{name}");
        assert!(
            want.sent > 1000 && want.deferred > 100 && want.bounced > 10 && want.expired > 0,
            "{want:?}"
        );
        // Sendmail bounces carry the remote reply and code (reply= or the stat text).
        let mut by_code: BTreeMap<Option<u16>, usize> = BTreeMap::new();
        for (h, e) in &events {
            assert!(
                h.program == "sm-mta" || h.program == "sendmail",
                "{}",
                h.program
            );
            if let Event::Delivery(d) = e {
                assert!(!d.to.is_empty());
                assert!(d.relay_host.is_some() || d.agent == "local", "{d:?}");
                if d.status == DeliveryStatus::Bounced {
                    *by_code.entry(d.smtp_code).or_default() += 1;
                }
            }
        }
        println!("  bounce codes: {by_code:?}");
        if !extra.contains(&"--no-reply-field") {
            assert_eq!(
                by_code.get(&None),
                None,
                "every bounce has a code when reply= is logged"
            );
        }
    }
}
