//! The running milter, driven over a real socket by indymilter-test as an MTA would.

mod support;

use indymilter_test::{Actions, MacroStage, Status, TestConnection};
use mailtrail::{
    config::{ConfigHandle, Source},
    model::envelope::ArchiveState,
    store::{MessageFilter, Store, StoredMessage},
};
use std::{
    path::{Path, PathBuf},
    time::Duration,
};
use support::milter_client::{self, Mail};
use tokio::sync::oneshot;

/// A mailtrail daemon on a loopback port with its own state directory.
struct Daemon {
    dir: tempfile::TempDir,
    config_path: PathBuf,
    port: u16,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), mailtrail::RunError>>>,
}

impl Daemon {
    async fn start(extra_config: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config_path = dir.path().join("mailtrail.toml");
        std::fs::write(
            &config_path,
            format!(
                "[web]\nenabled = false\n[state]\ndir = \"{}\"\n[maillog]\nsource = \"off\"\n[milter]\nlisten = \"inet:127.0.0.1:{port}\"\n{extra_config}",
                dir.path().join("state").display()
            ),
        )
        .unwrap();
        let source = Source::File(config_path.clone());
        let handle = ConfigHandle::new(source.clone(), source.load().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = oneshot::channel();
        let task = tokio::spawn(mailtrail::run(
            handle,
            time::UtcOffset::UTC,
            stopped,
            move || {
                let _ = ready_tx.send(());
            },
        ));
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .expect("daemon ready in time")
            .expect("daemon started");
        Daemon {
            dir,
            config_path,
            port,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the daemon the way SIGTERM does; all counters are flushed after this.
    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
            self.task.take().unwrap().await.unwrap().unwrap();
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn store(&self) -> Store {
        Store::open(&self.state().join("mailtrail.db")).unwrap()
    }

    fn messages(&self) -> Vec<StoredMessage> {
        let mut all = self
            .store()
            .list_messages(&MessageFilter::default())
            .unwrap();
        all.reverse(); // oldest first
        all
    }

    fn archived(&self, m: &StoredMessage) -> Vec<u8> {
        let name = m.envelope.archive_name.as_ref().expect("archive name");
        let path = self.state().join("archive/new").join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn counter(&self, name: &str) -> u64 {
        self.store()
            .counters()
            .unwrap()
            .get(name)
            .copied()
            .unwrap_or(0)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn connected(daemon: &Daemon) -> TestConnection {
    connected_offering(daemon, Actions::ADD_RCPT).await
}

async fn connected_offering(daemon: &Daemon, actions: Actions) -> TestConnection {
    milter_client::connect(daemon.port, actions).await
}

const SIMPLE_HEADERS: &[(&[u8], &[u8])] = &[
    (b"From", b" Alice <alice@example.com>"),
    (b"To", b" bob@dest.example"),
    (b"Subject", b" =?UTF-8?B?R3LDvMOfZSBhdXMgWsO8cmljaA==?="),
    (b"Message-ID", b" <m1@example.com>"),
    (b"X-Folded", b" first line\n\tsecond line"),
    (b"X-Tight", b"no-space-after-colon"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_transaction_is_archived_byte_for_byte_with_every_envelope_field() {
    let mut daemon = Daemon::start("").await;
    let mut conn = connected(&daemon).await;
    let mail = Mail {
        queue_id: "4ABC123DEF",
        from: "alice@example.com",
        rcpts: &[
            "bob@dest.example",
            "carol@dest.example",
            "dave@other.example",
        ],
        headers: SIMPLE_HEADERS,
        body: &[b"Hello Bob,\r\n", b"\r\nbye\r\n"],
    };
    let (_, status) = mail.send(&mut conn).await;
    assert_eq!(status, Status::Continue);
    conn.close().await.unwrap();
    daemon.stop().await;

    let messages = daemon.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    let e = &m.envelope;
    assert_eq!(e.queue_id.as_deref(), Some("4ABC123DEF"));
    assert_eq!(e.mta_host.as_deref(), Some("mx.example.net"));
    assert_eq!(e.client_name.as_deref(), Some("client.example.org"));
    assert_eq!(e.client_addr.as_deref(), Some("192.0.2.10"));
    assert_eq!(e.helo.as_deref(), Some("helo.example.org"));
    assert_eq!(e.sasl_user.as_deref(), Some("alice"));
    assert_eq!(e.mail_from, "alice@example.com");
    assert_eq!(e.mail_args, vec!["SIZE=12345", "BODY=8BITMIME"]);
    let rcpts: Vec<&str> = e.recipients.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(rcpts, mail.rcpts);
    assert!(
        e.recipients
            .iter()
            .all(|r| r.args == vec!["NOTIFY=SUCCESS,FAILURE"])
    );
    assert_eq!(e.subject.as_deref(), Some("Grüße aus Zürich"));
    assert_eq!(e.message_id.as_deref(), Some("<m1@example.com>"));
    assert_eq!(e.mode, "normal");
    assert_eq!(e.archive_state, ArchiveState::Stored);
    let age = time::OffsetDateTime::now_utc() - e.arrived_at;
    assert!(
        age < time::Duration::minutes(1),
        "arrival time is now, not {}",
        e.arrived_at
    );

    let mut expected = mail.expected_copy();
    // Folded header lines reach the milter with a bare LF; the copy uses CRLF throughout.
    let folded = b"first line\n\tsecond";
    let at = expected
        .windows(folded.len())
        .position(|w| w == folded)
        .unwrap();
    expected.splice(at + 10..at + 11, *b"\r\n");
    let copy = daemon.archived(m);
    assert_eq!(
        String::from_utf8_lossy(&copy),
        String::from_utf8_lossy(&expected)
    );
    assert_eq!(e.size, copy.len() as u64);
    assert_eq!(daemon.counter("messages_archived"), 1);
    assert_eq!(daemon.counter("archive_errors"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_on_one_connection_and_after_abort_start_clean() {
    let mut daemon =
        Daemon::start("[[sender]]\nmatch = \"@bulk.example\"\nmode = \"bulk\"\n").await;
    let mut conn = connected(&daemon).await;

    // An aborted transaction leaves nothing behind.
    conn.mail(["<ghost@example.com>"]).await.unwrap();
    conn.rcpt(["<ghost-rcpt@dest.example>"]).await.unwrap();
    conn.abort().await.unwrap();

    let first = Mail {
        queue_id: "AAA1",
        from: "one@example.com",
        rcpts: &["r1@dest.example"],
        headers: &[(b"Subject", b" first")],
        body: &[b"one\r\n"],
    };
    let second = Mail {
        queue_id: "BBB2",
        from: "news@bulk.example",
        rcpts: &["r2@dest.example", "r3@dest.example"],
        headers: &[(b"Subject", b" second")],
        body: &[b"two\r\n"],
    };
    assert_eq!(first.send(&mut conn).await.1, Status::Continue);
    assert_eq!(second.send(&mut conn).await.1, Status::Continue);
    conn.close().await.unwrap();
    daemon.stop().await;

    let messages = daemon.messages();
    assert_eq!(messages.len(), 2, "the aborted transaction is not recorded");
    let (a, b) = (&messages[0].envelope, &messages[1].envelope);
    assert_eq!(
        (a.queue_id.as_deref(), a.mail_from.as_str()),
        (Some("AAA1"), "one@example.com")
    );
    assert_eq!(a.recipients.len(), 1);
    assert_eq!(a.recipients[0].address, "r1@dest.example");
    assert_eq!(a.subject.as_deref(), Some("first"));
    assert_eq!(a.mode, "normal");
    assert_eq!(
        (b.queue_id.as_deref(), b.mail_from.as_str()),
        (Some("BBB2"), "news@bulk.example")
    );
    assert_eq!(
        b.recipients
            .iter()
            .map(|r| r.address.as_str())
            .collect::<Vec<_>>(),
        vec!["r2@dest.example", "r3@dest.example"]
    );
    assert_eq!(b.subject.as_deref(), Some("second"));
    assert_eq!(b.mode, "bulk");
    // Connection facts carry over to every message of the connection.
    assert_eq!(b.helo.as_deref(), Some("helo.example.org"));
    assert_eq!(daemon.archived(&messages[0]), first.expected_copy());
    assert_eq!(daemon.archived(&messages[1]), second.expected_copy());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_megabyte_body_in_64k_chunks() {
    let mut daemon = Daemon::start("").await;
    let mut conn = connected(&daemon).await;
    let body: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| match i % 80 {
            78 => b'\r',
            79 => b'\n',
            n => b'a' + (n + i / 80) as u8 % 26,
        })
        .collect();
    let chunks: Vec<&[u8]> = body.chunks(64 * 1024).collect();
    let mail = Mail {
        queue_id: "BIG1",
        from: "alice@example.com",
        rcpts: &["bob@dest.example"],
        headers: &[(b"Subject", b" big")],
        body: &chunks,
    };
    assert_eq!(mail.send(&mut conn).await.1, Status::Continue);
    conn.close().await.unwrap();
    daemon.stop().await;
    let messages = daemon.messages();
    let copy = daemon.archived(&messages[0]);
    assert_eq!(copy.len(), mail.expected_copy().len());
    assert!(copy == mail.expected_copy(), "5 MB copy differs");
    assert_eq!(messages[0].envelope.size, copy.len() as u64);
    // Nothing is left behind in tmp/.
    assert_eq!(
        std::fs::read_dir(daemon.state().join("archive/tmp"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_bit_and_malformed_headers_are_kept_as_received() {
    let mut daemon = Daemon::start("").await;
    let mut conn = connected(&daemon).await;
    let mail = Mail {
        queue_id: "8BIT1",
        from: "alice@example.com",
        rcpts: &["bob@dest.example"],
        headers: &[
            (b"Subject", b" caf\xe9 \xff\xfe raw latin-1"),
            (b"X-Broken", b" =?UTF-8?Q?unterminated"),
            (b"From", b" <<<>>> @@"),
            (b"Message-ID", b" not-an-id"),
            (b"X-Empty", b""),
            (b"X-Ctl", b" bell\x07 and\rCR"),
        ],
        body: &[b"\xe4\xf6\xfc 8-bit body\r\n"],
    };
    assert_eq!(mail.send(&mut conn).await.1, Status::Continue);
    conn.close().await.unwrap();
    daemon.stop().await;
    let messages = daemon.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(daemon.archived(&messages[0]), mail.expected_copy());
    let subject = messages[0].envelope.subject.clone().unwrap();
    assert!(
        subject.contains("caf") && subject.contains("raw latin-1"),
        "{subject:?}"
    );
    assert!(!subject.contains(['\r', '\n']));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwritable_archive_answers_continue_and_counts_the_error() {
    let mut daemon = Daemon::start("").await;
    break_archive(&daemon.state());
    let mut conn = connected(&daemon).await;
    let mail = Mail {
        queue_id: "ERR1",
        from: "alice@example.com",
        rcpts: &["bob@dest.example"],
        headers: &[(b"Subject", b" x")],
        body: &[b"x\r\n"],
    };
    assert_eq!(mail.send(&mut conn).await.1, Status::Continue);
    conn.close().await.unwrap();
    daemon.stop().await;
    assert_eq!(daemon.counter("archive_errors"), 1);
    let messages = daemon.messages();
    assert_eq!(messages.len(), 1, "the envelope is still recorded");
    assert_eq!(messages[0].envelope.archive_state, ArchiveState::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwritable_archive_with_tempfail_answers_tempfail() {
    let mut daemon = Daemon::start("on_error = \"tempfail\"\n").await;
    break_archive(&daemon.state());
    let mut conn = connected(&daemon).await;
    let mail = Mail {
        queue_id: "ERR2",
        from: "alice@example.com",
        rcpts: &["bob@dest.example"],
        headers: &[(b"Subject", b" x")],
        body: &[b"x\r\n"],
    };
    match mail.send(&mut conn).await.1 {
        Status::Tempfail { message } => {
            let text = message.unwrap().into_string().unwrap();
            assert!(text.starts_with("451 4.3.0"), "{text}");
        }
        other => panic!("expected tempfail, got {other:?}"),
    }
    conn.close().await.unwrap();
    daemon.stop().await;
    assert_eq!(daemon.counter("archive_errors"), 1);
}

/// Makes `tmp/` unusable: the next copy cannot be created. (Permissions would not stop root.)
fn break_archive(state: &Path) {
    let tmp = state.join("archive/tmp");
    std::fs::remove_dir(&tmp).unwrap();
    std::fs::write(&tmp, b"not a directory").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_exclusions_and_bcc() {
    let mut daemon = Daemon::start(
        "max_recipients = 2\n[archive]\nmax_message_size = 100\nexclude = [\"@secret.example\"]\nbcc = \"archive@example.com\"\n",
    )
    .await;
    let mut conn = connected(&daemon).await;
    let big = Mail {
        queue_id: "LIM1",
        from: "alice@example.com",
        rcpts: &["a@d.example", "b@d.example", "c@d.example"],
        headers: &[(b"Subject", b" large")],
        body: &[&[b'x'; 200]],
    };
    let (actions, status) = big.send(&mut conn).await;
    assert_eq!(status, Status::Continue);
    assert!(actions.has_add_recipient("<archive@example.com>", indymilter_test::any()));
    let secret = Mail {
        queue_id: "LIM2",
        from: "boss@secret.example",
        rcpts: &["a@d.example"],
        headers: &[(b"Subject", b" private")],
        body: &[b"hush\r\n"],
    };
    let (actions, status) = secret.send(&mut conn).await;
    assert_eq!(status, Status::Continue);
    assert!(!actions.has_add_recipient("<archive@example.com>", indymilter_test::any()));
    conn.close().await.unwrap();
    daemon.stop().await;

    let messages = daemon.messages();
    let (big_row, secret_row) = (&messages[0].envelope, &messages[1].envelope);
    assert_eq!(big_row.archive_state, ArchiveState::TooLarge);
    assert_eq!(big_row.archive_name, None);
    assert_eq!(big_row.size, big.expected_copy().len() as u64);
    assert_eq!(big_row.recipients.len(), 2);
    assert_eq!(big_row.recipients_dropped, 1);
    assert_eq!(secret_row.archive_state, ArchiveState::Excluded);
    assert_eq!(secret_row.subject.as_deref(), Some("private"));
    assert_eq!(
        std::fs::read_dir(daemon.state().join("archive/new"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(daemon.counter("messages_too_large"), 1);
    assert_eq!(daemon.counter("messages_excluded"), 1);
    assert_eq!(daemon.counter("recipients_dropped"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packet_ends_one_connection_not_the_daemon() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut daemon = Daemon::start("").await;
    for garbage in [
        &b"\x00\x00\x00\x05Zjunk"[..],
        &b"\xff\xff\xff\xffO"[..],
        &b"\x00\x00\x00\x01"[..],
        &b"GET / HTTP/1.0\r\n\r\n"[..],
    ] {
        let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", daemon.port))
            .await
            .unwrap();
        raw.write_all(garbage).await.unwrap();
        let _ = raw.shutdown().await;
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut sink)).await;
    }
    // The daemon still serves a proper MTA.
    let mut conn = connected(&daemon).await;
    let mail = Mail {
        queue_id: "AFTER1",
        from: "alice@example.com",
        rcpts: &["bob@dest.example"],
        headers: &[(b"Subject", b" still here")],
        body: &[b"ok\r\n"],
    };
    assert_eq!(mail.send(&mut conn).await.1, Status::Continue);
    conn.close().await.unwrap();
    daemon.stop().await;
    assert_eq!(daemon.messages().len(), 1);
}

#[test]
fn expiry_removes_only_old_copies_and_marks_their_rows() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut daemon = runtime.block_on(Daemon::start(""));
    runtime.block_on(async {
        let mut conn = connected(&daemon).await;
        let mail = Mail {
            queue_id: "NEW1",
            from: "alice@example.com",
            rcpts: &["bob@dest.example"],
            headers: &[(b"Subject", b" fresh")],
            body: &[b"x\r\n"],
        };
        assert_eq!(mail.send(&mut conn).await.1, Status::Continue);
        conn.close().await.unwrap();
        daemon.stop().await;
    });
    // An eight-day-old copy, named as the Maildir writer names them, and its envelope row.
    let old_secs = time::OffsetDateTime::now_utc().unix_timestamp() - 8 * 86400;
    let old_name = format!("{old_secs}.#0M1P1.host,S=3");
    std::fs::write(daemon.state().join("archive/new").join(&old_name), b"old").unwrap();
    let mut store = daemon.store();
    let mut old = daemon.messages()[0].envelope.clone();
    old.queue_id = Some("OLD1".into());
    old.archive_name = Some(old_name.clone());
    store.insert_envelopes(&[&old]).unwrap();

    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailtrail"))
            .arg("--config")
            .arg(&daemon.config_path)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let dry = run(&["archive", "expire", "--dry-run"]);
    assert!(
        dry.contains(&old_name) && dry.contains("1 copies would delete"),
        "{dry}"
    );
    assert!(
        daemon.state().join("archive/new").join(&old_name).exists(),
        "dry run deletes nothing"
    );

    let done = run(&["archive", "expire"]);
    assert!(done.contains("1 copies deleted, 1 kept"), "{done}");
    let names: Vec<String> = std::fs::read_dir(daemon.state().join("archive/new"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 1);
    assert_ne!(names[0], old_name);
    let states: Vec<(Option<String>, ArchiveState)> = daemon
        .messages()
        .into_iter()
        .map(|m| (m.envelope.queue_id, m.envelope.archive_state))
        .collect();
    assert_eq!(
        states,
        vec![
            (Some("NEW1".into()), ArchiveState::Stored),
            (Some("OLD1".into()), ArchiveState::Expired)
        ]
    );
}

/// MAIL FROM `from` (with SASL user `auth`), RCPT TOs with the given ESMTP arguments, the given
/// headers and a one-line body; returns what the milter did at end-of-message.
async fn transaction(
    conn: &mut TestConnection,
    queue_id: &str,
    (from, auth): (&str, &str),
    rcpts: &[&[&str]],
    headers: &[(&str, &str)],
) -> indymilter_test::EomActions {
    conn.macros(MacroStage::Mail, [("{auth_authen}", auth)])
        .await
        .unwrap();
    // No answer at MAIL, headers, end of headers and body (negotiated NOREPLY_*); RCPT answers.
    assert_eq!(conn.mail([from]).await.unwrap(), Status::Noreply);
    for rcpt in rcpts {
        assert_eq!(
            conn.rcpt(rcpt.iter().copied()).await.unwrap(),
            Status::Continue
        );
    }
    for (name, value) in headers {
        assert_eq!(conn.header(*name, *value).await.unwrap(), Status::Noreply);
    }
    assert_eq!(conn.eoh().await.unwrap(), Status::Noreply);
    assert_eq!(
        conn.body(b"hello\r\n".to_vec()).await.unwrap(),
        Status::Noreply
    );
    conn.macros(MacroStage::Eom, [("i", queue_id)])
        .await
        .unwrap();
    let (actions, status) = conn.eom().await.unwrap();
    assert_eq!(status, Status::Continue);
    actions
}

const DSN_CONFIG: &str = "[[sender]]\nmatch = \"@dsn.example\"\nreceipts = \"dsn\"\n\
    [[sender]]\nsasl_user = \"bouncer\"\nreceipts = \"dsn\"\n";
const NOTIFY_ALL: &str = "NOTIFY=SUCCESS,FAILURE,DELAY";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dsn_receipts_re_add_recipients_without_notify() {
    let mut daemon = Daemon::start(DSN_CONFIG).await;
    let mut conn = connected_offering(
        &daemon,
        Actions::ADD_RCPT | Actions::DELETE_RCPT | Actions::ADD_RCPT_EXT,
    )
    .await;
    assert!(
        conn.negotiated_actions()
            .contains(Actions::DELETE_RCPT | Actions::ADD_RCPT_EXT)
    );
    let actions = transaction(
        &mut conn,
        "DSN1",
        ("<alice@dsn.example>", "alice"),
        &[
            &["<plain@d.example>"],
            &["<orcpt@d.example>", "ORCPT=rfc822;orig@d.example"],
            &["<own@d.example>", "notify=NEVER"],
        ],
        &[("Subject", " with receipts")],
    )
    .await;
    // Each recipient without NOTIFY: deleted, then re-added with its other arguments kept.
    assert!(actions.has_delete_recipient("<plain@d.example>"));
    assert!(actions.has_add_recipient("<plain@d.example>", Some(NOTIFY_ALL)));
    assert!(actions.has_delete_recipient("<orcpt@d.example>"));
    assert!(actions.has_add_recipient(
        "<orcpt@d.example>",
        Some("ORCPT=rfc822;orig@d.example NOTIFY=SUCCESS,FAILURE,DELAY")
    ));
    // The client's own NOTIFY (any case) is its choice: left alone.
    assert!(!actions.has_delete_recipient("<own@d.example>"));
    assert!(!actions.has_add_recipient("<own@d.example>", indymilter_test::any()));

    // Other senders, the null sender (even under a dsn SASL user) and notices: untouched.
    for (qid, from, auth, headers) in [
        ("DSN2", "<carol@other.example>", "carol", &[][..]),
        ("DSN3", "<>", "bouncer", &[][..]),
        (
            "DSN4",
            "<alice@dsn.example>",
            "alice",
            &[("X-Mailtrail-Notice", " delay")][..],
        ),
    ] {
        let actions =
            transaction(&mut conn, qid, (from, auth), &[&["<x@d.example>"]], headers).await;
        assert!(
            !actions.has_delete_recipient(indymilter_test::any()),
            "{qid}"
        );
        assert!(
            !actions.has_add_recipient(indymilter_test::any(), indymilter_test::any()),
            "{qid}"
        );
    }
    conn.close().await.unwrap();
    daemon.stop().await;

    // The rows keep the arguments as the client sent them.
    let messages = daemon.messages();
    assert_eq!(messages.len(), 4);
    assert_eq!(
        messages[0].envelope.receipts,
        mailtrail::config::Receipts::Dsn
    );
    assert!(messages[0].envelope.recipients[0].args.is_empty());
    assert_eq!(messages[2].envelope.mail_from, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dsn_receipts_need_the_mta_to_offer_recipient_rewriting() {
    let mut daemon = Daemon::start(DSN_CONFIG).await;
    // ADD_RCPT_EXT missing: nothing is asked for, nothing deleted, mail flows.
    let mut conn = connected_offering(&daemon, Actions::ADD_RCPT | Actions::DELETE_RCPT).await;
    assert!(!conn.negotiated_actions().contains(Actions::DELETE_RCPT));
    let actions = transaction(
        &mut conn,
        "NOEXT1",
        ("<alice@dsn.example>", "alice"),
        &[&["<plain@d.example>"]],
        &[],
    )
    .await;
    assert!(!actions.has_delete_recipient(indymilter_test::any()));
    conn.close().await.unwrap();
    daemon.stop().await;
    assert_eq!(daemon.messages().len(), 1);

    // Without any dsn sender the milter does not ask for the rewrite actions at all.
    let mut daemon = Daemon::start("").await;
    let conn = connected_offering(
        &daemon,
        Actions::ADD_RCPT | Actions::DELETE_RCPT | Actions::ADD_RCPT_EXT,
    )
    .await;
    assert_eq!(conn.negotiated_actions(), Actions::empty());
    conn.close().await.unwrap();
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_are_recognised_by_their_marker_header() {
    let mut daemon = Daemon::start("").await;
    let mut conn = connected(&daemon).await;
    for (qid, from, headers) in [
        (
            "NOTE1",
            "<>",
            &[("Subject", " Delayed"), ("x-MAILTRAIL-notice", " warning")][..],
        ),
        (
            "NOTE2",
            "<alice@example.com>",
            &[("Subject", " ordinary")][..],
        ),
        // Only the header name counts, not the text.
        ("NOTE3", "<>", &[("Subject", " X-Mailtrail-Notice: no")][..]),
    ] {
        transaction(
            &mut conn,
            qid,
            (from, "alice"),
            &[&["<b@d.example>"]],
            headers,
        )
        .await;
    }
    conn.close().await.unwrap();
    daemon.stop().await;

    let rows: Vec<_> = daemon
        .messages()
        .into_iter()
        .map(|m| {
            (
                m.envelope.queue_id.unwrap(),
                m.envelope.mail_from,
                m.envelope.is_notice,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("NOTE1".to_string(), String::new(), true),
            ("NOTE2".to_string(), "alice@example.com".to_string(), false),
            ("NOTE3".to_string(), String::new(), false),
        ]
    );
}
