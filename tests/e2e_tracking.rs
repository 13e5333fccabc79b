//! Delivery tracking against a real postfix: mailtrail (the real binary) is the milter and
//! follows the instance's log file; a scripted SMTP server answers each recipient its own way.
//! What the store says (through `archive show --json` and `archive show`) is compared with what
//! the server answered and what postfix logged. Needs root and Debian's postfix.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::mailtrail::{ArchivedMessage, Delivery, Mailtrail};
use support::message::message_id;
use support::postfix::{Postfix, PostfixConfig, tail};
use support::smtp_server::{Reply, ScriptedServer};
use support::submit;
use support::util::{free_port, wait_for};

const T: Duration = Duration::from_secs(40);
const FROM: &str = "sender@client.test.example";

const OK: &str = "ok@remote.test.example";
const GREY: &str = "grey@remote.test.example";
const FULL: &str = "full@remote.test.example";
const UNKNOWN: &str = "unknown@remote.test.example";
/// Routed (transport_maps) to a loopback port nothing listens on.
const REFUSED: &str = "refused@down.test.example";

/// How long postfix keeps trying: long enough for the greylisted recipient's third try (retries
/// come 1–2 s apart), short enough to see the others expire within the test.
const LIFETIME: &str = "10s";

/// The statuses, categories and DSNs of a recipient's attempts, oldest first.
fn timeline(d: &Delivery) -> Vec<(String, Option<String>, Option<String>)> {
    d.attempt_list
        .iter()
        .map(|a| (a.status.clone(), a.category.clone(), a.dsn.clone()))
        .collect()
}

fn step(
    status: &str,
    category: Option<&str>,
    dsn: &str,
) -> (String, Option<String>, Option<String>) {
    (
        status.to_string(),
        category.map(str::to_string),
        Some(dsn.to_string()),
    )
}

fn is_final(status: &str) -> bool {
    matches!(status, "sent" | "bounced" | "expired")
}

/// One message, five recipients, five fates: sent at once; greylisted twice then sent; mailbox
/// full until the message expires; user unknown (bounced); connection refused until it expires.
/// The store holds, for the one message row the milter created (archive copy stored), each
/// recipient's attempts as the server answered them and postfix logged them, the final states
/// and the bounce categories.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_recipients_five_fates() {
    let mt = Mailtrail::start_new();
    let server = ScriptedServer::start();
    server
        .script(OK, Reply::Accept)
        .script(GREY, Reply::Greylist { tries: 2 })
        .script(FULL, Reply::MailboxFull)
        .script(UNKNOWN, Reply::UserUnknown);
    let closed_port = free_port();
    let maps = tempfile::tempdir().unwrap();
    let transport = maps.path().join("transport");
    std::fs::write(
        &transport,
        format!("down.test.example smtp:[127.0.0.1]:{closed_port}\n"),
    )
    .unwrap();
    let pf = Postfix::start(
        PostfixConfig::for_mailtrail(server.port(), &mt)
            .set("maximal_queue_lifetime", LIFETIME)
            .set("bounce_queue_lifetime", LIFETIME)
            .set(
                "transport_maps",
                &format!("texthash:{}", transport.display()),
            ),
    );

    let id = message_id("five-fates");
    let rcpts = [OK, GREY, FULL, UNKNOWN, REFUSED];
    submit::send(
        pf.smtpd_port(),
        submit::simple_message(FROM, &rcpts, "five fates", &id, "tracking test\n"),
    )
    .await;
    let qid = pf.wait_queue_id(&id, T);
    // Expiry empties the queue: every recipient has had its last try.
    pf.wait_queue_empty(T);

    let row = wait_for(
        T,
        &format!("<{id}> in archive ls"),
        || mt.find_message(&id),
        || format!("{:#?}", mt.archive_ls()),
    );
    // The follower reads the log every 100 ms: wait until it stored all five final states.
    let shown: ArchivedMessage = wait_for(
        T,
        "every recipient of the message to reach a final state in the store",
        || {
            let m = mt.archive_show(row.id);
            (m.deliveries.len() == rcpts.len() && m.deliveries.iter().all(|d| is_final(&d.status)))
                .then_some(m)
        },
        || {
            format!(
                "{:#?}\nmaillog tail:\n{}\nmailtrail log tail:\n{}",
                mt.archive_show(row.id).deliveries,
                tail(&pf.maillog(), 40),
                tail(&mt.log(), 20)
            )
        },
    );
    let report = format!(
        "{:#?}\nmaillog:\n{}",
        shown.deliveries,
        pf.log_lines_for(&qid).join("\n")
    );

    // One message row for the queue id: the milter's, with its archive copy; the log's lines
    // joined it instead of creating a second one.
    let same_qid: Vec<i64> = mt
        .archive_ls()
        .iter()
        .filter(|m| m.queue_id.as_deref() == Some(qid.as_str()))
        .map(|m| m.id)
        .collect();
    assert_eq!(same_qid, [row.id], "rows with queue id {qid}");
    assert_eq!(shown.archive_state, "stored");
    assert_eq!(shown.queue_id.as_deref(), Some(qid.as_str()));
    assert_eq!(shown.mail_from, FROM);
    assert_eq!(
        shown.read_archive(),
        row.read_archive(),
        "show and ls name the same copy"
    );
    let by: BTreeMap<&str, &Delivery> = shown
        .deliveries
        .iter()
        .map(|d| (d.address.as_str(), d))
        .collect();
    assert_eq!(
        by.keys().copied().collect::<Vec<_>>(),
        {
            let mut v = rcpts.to_vec();
            v.sort();
            v
        },
        "{report}"
    );
    // The recipients in RCPT order, as the milter recorded them.
    assert_eq!(
        shown
            .deliveries
            .iter()
            .map(|d| d.address.as_str())
            .collect::<Vec<_>>(),
        rcpts,
        "{report}"
    );
    for d in &shown.deliveries {
        assert_eq!(
            d.attempts as usize,
            d.attempt_list.len(),
            "{}: attempts counter = attempt rows\n{report}",
            d.address
        );
        assert!(d.final_at.is_some(), "{}: final_at\n{report}", d.address);
    }
    // What the server answered each recipient, in order.
    let answered = |rcpt: &str| -> Vec<Option<u16>> {
        server
            .rcpt_attempts()
            .into_iter()
            .filter(|a| a.rcpt.eq_ignore_ascii_case(rcpt))
            .map(|a| a.code)
            .collect()
    };

    // 250 at once.
    let ok = by[OK];
    assert_eq!(answered(OK), [Some(250)]);
    assert_eq!(ok.status, "sent", "{report}");
    assert_eq!(ok.category, None, "{report}");
    assert_eq!(timeline(ok), [step("sent", None, "2.0.0")], "{report}");
    let a = &ok.attempt_list[0];
    assert_eq!(a.relay_ip.as_deref(), Some("127.0.0.1"), "{report}");
    assert_eq!(a.relay_port, Some(server.port()), "{report}");
    assert!(a.reply.starts_with("250 "), "{report}");

    // 451 twice, then 250: two deferrals categorised as greylisting, then sent.
    let grey = by[GREY];
    assert_eq!(answered(GREY), [Some(451), Some(451), Some(250)]);
    assert_eq!(grey.status, "sent", "{report}");
    assert_eq!(grey.category, None, "{report}");
    assert_eq!(
        timeline(grey),
        [
            step("deferred", Some("greylisting-issues"), "4.7.1"),
            step("deferred", Some("greylisting-issues"), "4.7.1"),
            step("sent", None, "2.0.0"),
        ],
        "{report}"
    );
    let first = &grey.attempt_list[0];
    assert_eq!(first.smtp_code, Some(451), "{report}");
    assert!(
        first.reply.contains("451 4.7.1 Greylisting in effect"),
        "{report}"
    );
    assert_eq!(first.stage.as_deref(), Some("rcpt-to"), "{report}");

    // 452 on every try until the lifetime ran out: full-mailbox deferrals, then expired.
    let full = by[FULL];
    let tries = answered(FULL);
    assert!(
        tries.len() >= 2 && tries.iter().all(|c| *c == Some(452)),
        "{tries:?}"
    );
    assert_eq!(full.status, "expired", "{report}");
    assert_eq!(
        full.category.as_deref(),
        Some("message-expired"),
        "{report}"
    );
    let mut want: Vec<_> = tries
        .iter()
        .map(|_| step("deferred", Some("full-mailbox"), "4.2.2"))
        .collect();
    want.push(step("expired", Some("message-expired"), "4.4.7"));
    assert_eq!(
        timeline(full),
        want,
        "one deferral per 452 answered\n{report}"
    );

    // 550 5.1.1: bounced at once, invalid mailbox.
    let unknown = by[UNKNOWN];
    assert_eq!(answered(UNKNOWN), [Some(550)]);
    assert_eq!(unknown.status, "bounced", "{report}");
    assert_eq!(
        unknown.category.as_deref(),
        Some("invalid-mailbox"),
        "{report}"
    );
    assert_eq!(
        timeline(unknown),
        [step("bounced", Some("invalid-mailbox"), "5.1.1")],
        "{report}"
    );
    assert_eq!(unknown.attempt_list[0].smtp_code, Some(550), "{report}");

    // Connection refused on every try: connection-error deferrals, then expired. As many
    // deferrals as postfix logged for it.
    let refused = by[REFUSED];
    let logged = pf
        .log_lines_for(&qid)
        .iter()
        .filter(|l| l.contains(&format!("to=<{REFUSED}>")) && l.contains(" status=deferred "))
        .count();
    assert!(logged >= 1, "{report}");
    assert_eq!(refused.status, "expired", "{report}");
    let mut want: Vec<_> = (0..logged)
        .map(|_| step("deferred", Some("connection-error"), "4.4.1"))
        .collect();
    want.push(step("expired", Some("message-expired"), "4.4.7"));
    assert_eq!(timeline(refused), want, "{report}");
    assert!(
        refused.attempt_list[0].reply.contains(&format!(
            "127.0.0.1[127.0.0.1]:{closed_port}: Connection refused"
        )),
        "{report}"
    );

    // The text view: each recipient's state and category, and the timeline under it.
    let text = mt.command(&["archive", "show", &row.id.to_string()]);
    // Shown with the output of a failed test (and with --nocapture).
    eprintln!("mailtrail archive show {}:\n{text}", row.id);
    let delivery = text
        .split_once("\nDelivery:\n")
        .unwrap_or_else(|| panic!("no Delivery: section in\n{text}"))
        .1;
    for (rcpt, state) in [
        (OK, "sent, 1 attempt,"),
        (GREY, "sent, 3 attempts,"),
        (FULL, "expired [message-expired],"),
        (UNKNOWN, "bounced [invalid-mailbox], 1 attempt,"),
        (REFUSED, "expired [message-expired],"),
    ] {
        assert!(
            delivery.contains(&format!("  <{rcpt}>  {state}")),
            "{rcpt} {state:?} in\n{delivery}"
        );
    }
    assert_eq!(
        delivery.matches("  deferred  ").count(),
        2 + tries.len() + logged,
        "{delivery}"
    );
    assert!(delivery.contains("greylisting-issues"), "{delivery}");
    assert!(delivery.contains("full-mailbox"), "{delivery}");
    assert!(delivery.contains("connection-error"), "{delivery}");

    // ls --json carries the same states.
    let listed = mt.find_message(&id).unwrap();
    let states: Vec<(&str, &str, Option<&str>)> = listed
        .deliveries
        .iter()
        .map(|d| (d.address.as_str(), d.status.as_str(), d.category.as_deref()))
        .collect();
    assert_eq!(
        states,
        [
            (OK, "sent", None),
            (GREY, "sent", None),
            (FULL, "expired", Some("message-expired")),
            (UNKNOWN, "bounced", Some("invalid-mailbox")),
            (REFUSED, "expired", Some("message-expired")),
        ]
    );
    assert!(listed.deliveries.iter().all(|d| d.attempt_list.is_empty()));
    mt.assert_recorded_without_errors(1);
}
