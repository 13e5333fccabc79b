//! The suppression list against a real postfix (Debian's package): mailtrail is its milter and
//! follows its log; the scripted remote server answers `550 5.1.1` for one address. The bounce
//! teaches the list, the milter refuses that address at RCPT for the sender's domain only, an
//! operator's `suppress remove` lifts it, and the refusal is counted under `suppression-list`.
//! Needs root and Debian's postfix.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::mailtrail::Mailtrail;
use support::postfix::{Postfix, PostfixConfig, tail};
use support::smtp_server::{Reply, ScriptedServer};
use support::util::{wait_for, wait_until};

const T: Duration = Duration::from_secs(60);
const UNKNOWN: &str = "unknown@remote.test.example";
const OK: &str = "ok@remote.test.example";

/// One SMTP reply (its lines joined), read from `r`.
fn reply(r: &mut impl BufRead) -> String {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).expect("SMTP reply");
        assert!(!line.is_empty(), "connection closed after: {text}");
        text.push_str(line.trim_end());
        if line.as_bytes().get(3) != Some(&b'-') {
            return text;
        }
        text.push(' ');
    }
}

/// A session with postfix's smtpd: MAIL FROM `from`, a RCPT TO per recipient; when one was
/// accepted and `send` is true, a short message. Returns the RCPT replies.
fn session(port: u16, from: &str, rcpts: &[&str], send: bool) -> Vec<String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(T)).unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let say = |w: &mut TcpStream, r: &mut BufReader<TcpStream>, line: &str| {
        write!(w, "{line}\r\n").unwrap();
        reply(r)
    };
    assert!(reply(&mut r).starts_with("220"));
    assert!(say(&mut w, &mut r, "EHLO client.test.example").starts_with("250"));
    let mail = say(&mut w, &mut r, &format!("MAIL FROM:<{from}>"));
    assert!(mail.starts_with("250"), "{mail}");
    let replies: Vec<String> = rcpts
        .iter()
        .map(|to| say(&mut w, &mut r, &format!("RCPT TO:<{to}>")))
        .collect();
    if send && replies.iter().any(|r| r.starts_with("250")) {
        assert!(say(&mut w, &mut r, "DATA").starts_with("354"));
        let end = say(
            &mut w,
            &mut r,
            &format!("From: <{from}>\r\nSubject: suppression test\r\n\r\nhello\r\n."),
        );
        assert!(end.starts_with("250"), "{end}");
    }
    say(&mut w, &mut r, "QUIT");
    replies
}

fn entries(mt: &Mailtrail) -> serde_json::Value {
    serde_json::from_str(&mt.command(&["suppress", "list", "--json"])).unwrap()
}

#[test]
fn a_hard_bounce_suppresses_the_address_for_its_sender_domain_until_removed() {
    let mut mt = Mailtrail::configure_with_web(
        "[web]\nenabled = false\n\n[suppression]\nmode = \"refuse\"\n",
    );
    mt.start();
    let server = ScriptedServer::start();
    server
        .script(UNKNOWN, Reply::UserUnknown)
        .script(OK, Reply::Accept);
    let pf = Postfix::start(PostfixConfig::for_mailtrail(server.port(), &mt));
    let port = pf.smtpd_port();

    // The first message is accepted, and its delivery to UNKNOWN bounces (550 5.1.1).
    let first = session(port, "news@shop.example", &[UNKNOWN, OK], true);
    assert!(first.iter().all(|r| r.starts_with("250")), "{first:?}");
    let learned = wait_for(
        T,
        "the bounce to be learned",
        || {
            let list = entries(&mt);
            (list.as_array().unwrap().len() == 1).then_some(list)
        },
        || format!("{}\n{}", tail(&pf.maillog(), 20), tail(&mt.log(), 20)),
    );
    let entry = &learned[0];
    assert_eq!(entry["sender_domain"], "shop.example");
    assert_eq!(entry["address"], UNKNOWN);
    assert_eq!(entry["source"], "learned");
    assert_eq!(entry["category"], "invalid-mailbox");
    assert_eq!(entry["dsn"], "5.1.1");
    assert!(entry["queue_id"].as_str().is_some_and(|q| !q.is_empty()));

    // The next message from that domain (another sender) is refused for UNKNOWN at RCPT, with
    // the list's reason and date; its other recipient still goes.
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let refused = wait_for(
        T,
        "the learned entry to be enforced at RCPT",
        || {
            let replies = session(port, "offers@shop.example", &[UNKNOWN, OK], false);
            replies[0].starts_with("550").then_some(replies)
        },
        || tail(&mt.log(), 20),
    );
    assert!(refused[0].starts_with("550 5.7.1 "), "{refused:?}");
    for words in [
        "suppression list",
        "shop.example",
        "invalid-mailbox",
        today.as_str(),
    ] {
        assert!(refused[0].contains(words), "{words} in {refused:?}");
    }
    assert!(refused[1].starts_with("250"), "{refused:?}");
    // Another sender domain still reaches the address.
    let other = session(port, "someone@other.example", &[UNKNOWN], false);
    assert!(other[0].starts_with("250"), "{other:?}");
    // Postmaster is never suppressed, even by a pattern for the whole domain.
    mt.command(&[
        "suppress",
        "add",
        "*@remote.test.example",
        "--domain",
        "blocked.example",
    ]);
    let postmaster = wait_for(
        T,
        "the pattern to be enforced",
        || {
            let replies = session(
                port,
                "a@blocked.example",
                &[OK, "postmaster@remote.test.example"],
                false,
            );
            replies[0].starts_with("550").then_some(replies)
        },
        || tail(&mt.log(), 20),
    );
    assert!(postmaster[1].starts_with("250"), "{postmaster:?}");

    // An operator lifts it: accepted again.
    let removed = mt.command(&["suppress", "remove", UNKNOWN, "--domain", "shop.example"]);
    assert!(removed.contains("removed"), "{removed}");
    wait_until(
        T,
        "the removal to be enforced",
        || session(port, "offers@shop.example", &[UNKNOWN], false)[0].starts_with("250"),
        || tail(&mt.log(), 20),
    );

    // postfix logged the milter's refusals; the follower recorded them, and the statistics
    // count them under suppression-list.
    wait_until(
        T,
        "postfix's milter-reject lines to be followed",
        || {
            let stats: serde_json::Value =
                serde_json::from_str(&mt.command(&["stats", "--period", "this-month", "--json"]))
                    .unwrap();
            stats["categories"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["category"] == "suppression-list" && c["refused"].as_u64() >= Some(2))
        },
        || {
            format!(
                "{}\n{}",
                mt.command(&["stats", "--period", "this-month", "--json"]),
                tail(&pf.maillog(), 30)
            )
        },
    );
    let counters = mt.counters();
    assert!(counters["suppression_refused"] >= 2, "{counters:?}");
    assert!(counters["suppression_learned"] >= 1, "{counters:?}");
}
