//! Reliability against hostile and broken input, through the real binary (`mailtrail run`):
//! bad log lines, slow and idle clients of the pages and the milter, crash leftovers.

mod support;

use std::time::Duration;

use indymilter_test::{Actions, Status};
use support::mailtrail::Mailtrail;
use support::milter_client::{self, Mail};

const T: Duration = Duration::from_secs(30);

/// Malformed and unknown log lines are counted in `mailtrail counters`, never fatal, and
/// nothing of them is stored: no recipient with a NUL byte, no raw line of junk.
#[test]
fn bad_log_lines_are_counted_and_never_stored() {
    let mut mt = Mailtrail::configure();
    // Recent stamps: raw lines are kept for 7 days.
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let good = [
        "STAMP mx postfix/qmgr[2]: 3F1A2B4C5D: from=<a@example.com>, size=100, nrcpt=1 (queue active)",
        "STAMP mx postfix/smtp[3]: 3F1A2B4C5D: to=<bob@example.net>, relay=mx.example.net[192.0.2.7]:25, delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
        "STAMP mx postfix/qmgr[2]: 3F1A2B4C5D: removed",
    ];
    let bad = [
        // A NUL in the recipient: once stored as `bob@\0…`.
        "STAMP mx postfix/smtp[3]: 4A1A2B4C5D: to=<bob@\0evil.example>, relay=none, delay=1, dsn=4.4.1, status=deferred (x)",
        // Junk after a valid header.
        "STAMP mx postfix/smtp[3]: \u{1}\u{2}%%%% garbage ==== (",
        // A stamp that is no date.
        "Feb 31 25:61:00 mx postfix/qmgr[2]: 3F1A2B4C5E: removed",
        "\0\0\0\0",
    ];
    let good = good.map(|l| l.replace("STAMP", &now));
    let bad = bad.map(|l| l.replace("STAMP", &now));
    let mut text = String::new();
    for line in good.iter().chain(&bad) {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(mt.mta_log_path(), text).unwrap();
    mt.start();
    let counters = mt.wait_counter("log_lines", (good.len() + bad.len()) as u64, T);
    assert_eq!(
        counters["log_lines_unknown"],
        bad.len() as u64,
        "{counters:?}"
    );
    assert_eq!(counters["log_events"], good.len() as u64, "{counters:?}");
    assert!(mt.is_running());

    let store = rusqlite::Connection::open(mt.store_path()).unwrap();
    let addresses: Vec<String> = store
        .prepare("SELECT address FROM recipient")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(addresses, ["bob@example.net"]);
    let raw: Vec<String> = store
        .prepare("SELECT line FROM raw_line ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(raw, good);
}

/// Whether the server ends the connection within `within`: its end of the stream (or a reset)
/// arrives, or whatever it answers before closing (hyper may answer a header timeout). A read
/// that times out means the connection is still open.
fn closed_by_server(c: &mut std::net::TcpStream, within: Duration) -> bool {
    use std::io::{ErrorKind, Read};
    c.set_read_timeout(Some(within)).unwrap();
    let mut answer = Vec::new();
    match c.read_to_end(&mut answer) {
        Ok(_) => true,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

/// Raises this test process's own file limit to its hard limit: the tests below hold more
/// connections than a default soft limit allows.
fn raise_own_file_limit(want: u64) {
    let mut rlimit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut rlimit), 0);
        rlimit.rlim_cur = rlimit.rlim_max.min(want.max(rlimit.rlim_cur));
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit), 0);
    }
    assert!(
        rlimit.rlim_cur >= want,
        "this test needs {want} open files, the hard limit is {}",
        rlimit.rlim_max
    );
}

/// Connections that never finish their request headers, more of them than the daemon has file
/// descriptors (1,024, as systemd gives a unit without `LimitNOFILE`): once they stopped the
/// whole daemon ("milter stopped: Too many open files"). The milter must go on answering, the
/// slow clients be cut off, and the pages answer again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_web_requests_never_stop_the_milter() {
    use std::io::{Read, Write};
    raise_own_file_limit(1500);
    let web_port = support::util::free_port();
    let mut mt =
        Mailtrail::configure_with_web(&format!("[web]\nlisten = \"127.0.0.1:{web_port}\"\n"));
    mt.file_limit = Some(1024);
    mt.start();
    support::util::wait_until(
        T,
        "the web pages to listen",
        || support::util::port_open(web_port),
        || mt.log(),
    );
    let mut slow = Vec::new();
    for _ in 0..1100 {
        let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", web_port)) else {
            continue;
        };
        // The kernel completes connections the daemon has not accepted yet; writing succeeds.
        let _ = c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-a: ");
        slow.push(c);
    }
    assert!(slow.len() > 1024, "only {} connections opened", slow.len());

    // The milter still answers, and records the message.
    let mut conn = milter_client::connect(mt.milter_port(), Actions::empty()).await;
    let mail = Mail {
        queue_id: "4SLOWWEB1",
        from: "alice@example.com",
        rcpts: &["bob@example.net"],
        headers: &[(&b"Subject"[..], &b" through a crowd"[..])],
        body: &[&b"hello\r\n"[..]],
    };
    assert_eq!(mail.send(&mut conn).await.1, Status::Continue);
    mt.wait_counter("messages_recorded", 1, T);
    assert!(mt.is_running(), "{}", mt.log());

    // The slow clients are cut off after the header timeout: each read ends (EOF or reset).
    let started = std::time::Instant::now();
    let cut = slow
        .iter_mut()
        .take(50)
        .map(|c| closed_by_server(c, Duration::from_secs(30)))
        .filter(|closed| *closed)
        .count();
    assert_eq!(cut, 50);
    assert!(started.elapsed() < Duration::from_secs(30));
    drop(slow);

    // The pages answer again.
    let mut c = std::net::TcpStream::connect(("127.0.0.1", web_port)).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    c.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(mt.is_running());
}

/// Idle MTA connections up to `max_connections` once made a valid message wait until it timed
/// out, and stayed open for two hours. A full house now closes new connections at once (logged
/// and counted, the MTA applies its default action), and idle ones are closed after
/// `idle_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_milter_connections_time_out_and_a_full_house_is_counted() {
    let mut mt = Mailtrail::configure();
    let config = std::fs::read_to_string(mt.config_path()).unwrap().replace(
        "[milter]\n",
        "[milter]\nmax_connections = 5\nidle_timeout = \"4s\"\n",
    );
    std::fs::write(mt.config_path(), config).unwrap();
    mt.start();
    // The harness's own probes of the port (connect, close) are counted until the daemon has
    // read their end: let them go first.
    std::thread::sleep(Duration::from_secs(1));
    let idle: Vec<std::net::TcpStream> = (0..5)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", mt.milter_port())).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));

    // A sixth connection is closed at once, not left waiting.
    let started = std::time::Instant::now();
    let mut sixth = std::net::TcpStream::connect(("127.0.0.1", mt.milter_port())).unwrap();
    sixth
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert!(closed_by_server(&mut sixth, Duration::from_secs(10)));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    mt.wait_counter("milter_connections_refused", 1, T);
    assert!(mt.log().contains("milter.max_connections"), "{}", mt.log());

    // The idle ones are closed after idle_timeout...
    for mut c in idle {
        assert!(closed_by_server(&mut c, Duration::from_secs(10)));
    }
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    // ...and a message goes through.
    let mut conn = milter_client::connect(mt.milter_port(), Actions::empty()).await;
    let mail = Mail {
        queue_id: "4IDLEMLT1",
        from: "alice@example.com",
        rcpts: &["bob@example.net"],
        headers: &[(&b"Subject"[..], &b" after the idle ones"[..])],
        body: &[&b"hello\r\n"[..]],
    };
    assert_eq!(mail.send(&mut conn).await.1, Status::Continue);
    mt.wait_counter("messages_recorded", 1, T);
}

/// After a crash the archive and the store may disagree: an unfinished file in `tmp/`, a
/// complete copy in `new/` whose record never committed, a record whose copy's rename was
/// lost. A start mends all three and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_reconciles_the_archive_with_the_store() {
    let mut mt = Mailtrail::configure();
    mt.start();
    let mut conn = milter_client::connect(mt.milter_port(), Actions::empty()).await;
    for (qid, subject) in [
        ("4RECON001", &b" kept"[..]),
        ("4RECON002", &b" lost rename"[..]),
    ] {
        let mail = Mail {
            queue_id: qid,
            from: "alice@example.com",
            rcpts: &["bob@example.net"],
            headers: &[(&b"Subject"[..], subject)],
            body: &[&b"hello\r\n"[..]],
        };
        assert_eq!(mail.send(&mut conn).await.1, Status::Continue);
    }
    drop(conn);
    let listed = mt.wait_for_archived(2, T);
    assert!(mt.stop());

    let archive = mt.archive_dir();
    let lost = listed
        .iter()
        .find(|m| m.queue_id.as_deref() == Some("4RECON002"))
        .unwrap();
    let lost_file = mt
        .archive_files()
        .into_iter()
        .find(|p| {
            std::fs::read(p)
                .unwrap()
                .windows(11)
                .any(|w| w == b"lost rename")
        })
        .unwrap();
    std::fs::remove_file(&lost_file).unwrap();
    std::fs::write(
        archive.join("tmp/1795435200.M1P1.crashed"),
        b"Subject: half",
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let orphan = archive.join(format!("new/{now}.M2P2.crashed"));
    std::fs::write(
        &orphan,
        b"Subject: complete, never acknowledged\r\n\r\nbody\r\n",
    )
    .unwrap();

    mt.start();
    assert!(
        mt.log().contains(
            "archive reconciled at start: 1 unfinished copies removed from tmp/, 1 copies without a record (never acknowledged to the MTA) removed, 1 records whose copy is missing marked failed"
        ),
        "{}",
        mt.log()
    );
    assert_eq!(std::fs::read_dir(archive.join("tmp")).unwrap().count(), 0);
    assert!(!orphan.exists());
    assert_eq!(mt.archive_files().len(), 1, "{:?}", mt.archive_files());
    let shown = mt.archive_show(lost.id);
    assert_eq!(shown.archive_state, "failed");
    assert!(mt.is_running());
}

/// Live, through the follower and the store: sendmail's submission program hands a message to
/// the daemon on 127.0.0.1, which delivers it. One message is listed, with one delivery; the
/// submission's row is marked as handed over. (The 200,000-line import is `tests/cli.rs`.)
#[test]
fn a_submission_hop_followed_live_is_one_message_with_one_delivery() {
    let mut mt = Mailtrail::configure();
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let lines = [
        "STAMP mail sendmail[2017]: 64JM0hmH002017: from=alice, size=8327, class=0, nrcpts=1, msgid=<m1@mail.example.org>, relay=alice@localhost",
        "STAMP mail sm-mta[2037]: 64JM0hdj002037: from=<alice@mail.example.org>, size=8627, class=0, nrcpts=1, msgid=<m1@mail.example.org>, bodytype=8BITMIME, proto=ESMTP, daemon=MTA-v4, relay=localhost [127.0.0.1]",
        "STAMP mail sendmail[2017]: 64JM0hmH002017: to=info@pike.de, ctladdr=alice (1248/100), delay=00:00:00, xdelay=00:00:00, mailer=relay, pri=38327, relay=[127.0.0.1] [127.0.0.1], dsn=2.0.0, stat=Sent (64JM0hdj002037 Message accepted for delivery)",
        "STAMP mail sm-mta[2040]: 64JM0hdj002037: to=<info@pike.de>, ctladdr=<alice@mail.example.org> (1248/100), delay=00:00:02, xdelay=00:00:02, mailer=esmtp, pri=128627, relay=mx.pike.de. [192.0.2.8], dsn=2.0.0, stat=Sent (OK id=1abc)",
    ];
    let mut text = String::new();
    for line in lines {
        text.push_str(&line.replace("STAMP", &now));
        text.push('\n');
    }
    std::fs::write(mt.mta_log_path(), text).unwrap();
    mt.start();
    mt.wait_counter("log_lines", lines.len() as u64, T);

    let out = mt.command(&["status", "--today", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let listed = v["messages"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{out}");
    assert_eq!(listed[0]["queue_id"], "64JM0hdj002037", "{out}");
    assert_eq!(listed[0]["status"], "sent", "{out}");

    let db = rusqlite::Connection::open(mt.store_path()).unwrap();
    let handed: String = db
        .query_row(
            "SELECT handed_to FROM message WHERE queue_id = '64JM0hmH002017'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(handed, "64JM0hdj002037");
    let attempts: i64 = db
        .query_row("SELECT COUNT(*) FROM attempt", [], |r| r.get(0))
        .unwrap();
    assert_eq!(attempts, 1);
}

/// An SMTP server that takes a whole message and never answers its end of data: a notice
/// handed over, not yet accepted. Returns its port and the Message-IDs of what it took.
fn smtp_server_that_never_accepts() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let taken = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = taken.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut out = stream.try_clone().unwrap();
                let mut lines = BufReader::new(stream).lines();
                let _ = out.write_all(b"220 slow.test ESMTP\r\n");
                while let Some(Ok(line)) = lines.next() {
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 slow.test\r\n",
                        "DATA" => b"354 go on\r\n",
                        _ => b"250 ok\r\n",
                    };
                    let _ = out.write_all(reply);
                    if verb == "DATA" {
                        let mut id = String::new();
                        for line in lines.by_ref().map_while(Result::ok) {
                            if line == "." {
                                break;
                            }
                            if let Some(v) = line.strip_prefix("Message-ID: ") {
                                id = v.trim().to_string();
                            }
                        }
                        seen.lock().unwrap().push(id);
                        // Never answers: the client waits for its 250 until it is killed.
                        for _ in lines.by_ref() {}
                        return;
                    }
                }
            });
        }
    });
    (port, taken)
}

/// A real `kill -9` of the daemon while a notice is being submitted (recorded as due, handed to
/// the SMTP server, not yet accepted): after the restart it is sent, once, with the same
/// Message-ID, so a receiver that got the first copy can tell the second is the same notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_interrupted_by_kill_9_is_sent_once_after_the_restart() {
    let (slow_port, taken) = smtp_server_that_never_accepts();
    let section = |smtp_port: u16| {
        format!(
            "[web]\nenabled = false\n\n[notify]\nenabled = true\nsmtp = \"127.0.0.1:{smtp_port}\"\n\
             tick = \"1s\"\nreporting_mta = \"relay.test\"\n\n[mta]\nretry = [\"true\", \"{{queue_id}}\"]\n\
             remove = [\"true\", \"{{queue_id}}\"]\n\n[[sender]]\nmatch = \"boss@example.com\"\nreceipts = true\n"
        )
    };
    let mut mt = Mailtrail::configure_with_web(&section(slow_port));
    std::fs::write(mt.mta_log_path(), "").unwrap();
    mt.start();
    let mut conn = milter_client::connect(mt.milter_port(), Actions::empty()).await;
    let mail = Mail {
        queue_id: "4B7C9D2E1F",
        from: "boss@example.com",
        rcpts: &["bob@example.net"],
        headers: &[(&b"Subject"[..], &b" quarterly figures"[..])],
        body: &[&b"hello\r\n"[..]],
    };
    assert_eq!(mail.send(&mut conn).await.1, Status::Continue);
    drop(conn);
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let log = [
        "STAMP mx postfix/qmgr[2]: 4B7C9D2E1F: from=<boss@example.com>, size=300, nrcpt=1 (queue active)",
        "STAMP mx postfix/smtp[3]: 4B7C9D2E1F: to=<bob@example.net>, relay=mx.example.net[192.0.2.7]:25, delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
    ]
    .map(|l| format!("{}\n", l.replace("STAMP", &now)))
    .concat();
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(mt.mta_log_path())
        .unwrap()
        .write_all(log.as_bytes())
        .unwrap();

    // The receipt is recorded as due and handed over; the server holds its answer.
    support::util::wait_for(
        T,
        "the receipt at the server that never accepts",
        || (!taken.lock().unwrap().is_empty()).then_some(()),
        || mt.log(),
    );
    mt.kill();
    let db = rusqlite::Connection::open(mt.store_path()).unwrap();
    let unsent: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM notice WHERE kind = 'receipt' AND sent_at IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(unsent, 1, "recorded as due, not sent, at the kill");

    let server = support::smtp_server::ScriptedServer::start();
    let config = std::fs::read_to_string(mt.config_path()).unwrap();
    std::fs::write(
        mt.config_path(),
        config.replace(
            &format!("127.0.0.1:{slow_port}"),
            &format!("127.0.0.1:{}", server.port()),
        ),
    )
    .unwrap();
    mt.start();
    let received = server.wait_for_messages(1, T);
    // A few more ticks: nothing is sent twice.
    std::thread::sleep(Duration::from_secs(4));
    let received_after = server.messages();
    assert_eq!(received_after.len(), 1, "one receipt, once");
    let first_id = taken.lock().unwrap()[0].clone();
    assert!(first_id.starts_with("<mailtrail.receipt."), "{first_id}");
    assert_eq!(
        received[0].header("Message-ID").as_deref(),
        Some(first_id.as_str())
    );
    assert_eq!(received[0].mail_from, "", "a notice has a null return path");
    assert_eq!(received[0].rcpt_to, ["boss@example.com"]);
    let (sent, rows): (i64, i64) = db
        .query_row(
            "SELECT COUNT(sent_at), COUNT(*) FROM notice WHERE kind = 'receipt'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((sent, rows), (1, 1));
    assert!(mt.is_running());
}

/// `GET path` on the pages; the status code and the body.
fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    c.read_to_string(&mut reply).unwrap();
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = reply
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(at: &std::path::Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(at).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .expect("mount(8)");
        assert!(
            out.status.success(),
            "mounting a {size} tmpfs at {} (the test needs root): {}",
            at.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk(at.to_path_buf())
    }

    /// Writes a file until the filesystem is full; returns it.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// The archive and the store on a small filesystem that fills up: copies fail and are counted,
/// mail keeps flowing (`continue`), with `on_error = "tempfail"` the client is told to retry,
/// the daemon stays up and `/healthz` says why; once space returns it recovers without a
/// restart, and nothing half-written is left in `tmp/`, `new/` or the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_copies_keeps_mail_flowing_and_recovers() {
    let web_port = support::util::free_port();
    let mut mt =
        Mailtrail::configure_with_web(&format!("[web]\nlisten = \"127.0.0.1:{web_port}\"\n"));
    let disk = SmallDisk::mount(&mt.state_dir(), "8m");
    mt.start();
    support::util::wait_until(
        T,
        "the web pages to listen",
        || support::util::port_open(web_port),
        || mt.log(),
    );
    let body: Vec<u8> = b"0123456789abcdef\r\n".repeat(600); // ~10 KB
    let send = |conn_port: u16, qid: &'static str| {
        let body = body.clone();
        async move {
            let mut conn = milter_client::connect(conn_port, Actions::empty()).await;
            let mail = Mail {
                queue_id: qid,
                from: "alice@example.com",
                rcpts: &["bob@example.net"],
                headers: &[(&b"Subject"[..], &b" while the disk is full"[..])],
                body: &[&body],
            };
            mail.send(&mut conn).await.1
        }
    };
    assert_eq!(send(mt.milter_port(), "4A0000000A").await, Status::Continue);
    assert_eq!(http_get(web_port, "/healthz"), (200, "ok\n".to_string()));

    let filler = disk.fill();
    // on_error = "continue": the mail goes on, the failure is counted and shown.
    for qid in ["4A0000000B", "4A0000000C"] {
        assert_eq!(send(mt.milter_port(), qid).await, Status::Continue);
    }
    let (status, why) = http_get(web_port, "/healthz");
    assert_eq!(status, 503, "{why}");
    assert!(why.contains("failing since"), "{why}");
    assert!(
        why.contains("No space left on device") || why.contains("disk is full"),
        "{why}"
    );
    // on_error = "tempfail", by reload: the client is told to try again later.
    let config = std::fs::read_to_string(mt.config_path()).unwrap();
    std::fs::write(
        mt.config_path(),
        config.replace("[milter]\n", "[milter]\non_error = \"tempfail\"\n"),
    )
    .unwrap();
    support::util::signal(mt.pid().unwrap() as i32, libc::SIGHUP);
    support::util::wait_until(
        T,
        "the reload",
        || mt.log().contains("configuration reloaded"),
        || mt.log(),
    );
    match send(mt.milter_port(), "4A0000000D").await {
        Status::Tempfail { message } => {
            let text = message.unwrap().into_string().unwrap();
            assert!(text.starts_with("451 4.3.0"), "{text}");
        }
        other => panic!("expected tempfail, got {other:?}"),
    }
    assert!(mt.is_running());

    // Space returns: the next message is archived and recorded, without a restart.
    std::fs::remove_file(filler).unwrap();
    assert_eq!(send(mt.milter_port(), "4A0000000E").await, Status::Continue);
    assert_eq!(http_get(web_port, "/healthz"), (200, "ok\n".to_string()));
    let counters = mt.wait_counter("messages_archived", 2, T);
    assert!(
        counters["archive_errors"] + counters["store_errors"] >= 3,
        "{counters:?}"
    );

    // Nothing half-written: tmp/ is empty, and every copy in new/ is whole and has its row.
    let archive = mt.archive_dir();
    assert_eq!(std::fs::read_dir(archive.join("tmp")).unwrap().count(), 0);
    let listed = mt.wait_for_archived(2, T);
    let stored: Vec<_> = listed
        .iter()
        .filter(|m| m.archive_state == "stored")
        .collect();
    assert_eq!(
        stored
            .iter()
            .map(|m| m.queue_id.clone().unwrap())
            .collect::<Vec<_>>(),
        ["4A0000000E", "4A0000000A"]
    );
    assert_eq!(mt.archive_files().len(), 2, "{:?}", mt.archive_files());
    for m in stored {
        let copy = m.read_archive();
        assert!(copy.ends_with(&body), "{} is whole", m.id);
    }
    assert!(mt.is_running());
    assert!(mt.stop());
}
