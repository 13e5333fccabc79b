//! The `mailtrail` binary as an operator uses it: inspection commands, export, check-config,
//! and the daemon's answers to SIGHUP and SIGTERM.

use mailtrail::{
    archive::Archive,
    config::Receipts,
    model::envelope::{ArchiveState, Envelope, Recipient},
    store::Store,
};
use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_mailtrail");

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Setup {
    fn new(extra: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("mailtrail.toml");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(
            &config,
            format!(
                "[state]\ndir = \"{}\"\n[milter]\nlisten = \"inet:127.0.0.1:{port}\"\n[maillog]\nsource = \"off\"\n{extra}\n[web]\nenabled = false\n",
                dir.path().join("state").display()
            ),
        )
        .unwrap();
        Setup { dir, config }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Archives `raw` and records it, as the milter would.
    fn record(&self, queue_id: &str, from: &str, subject: &str, raw: &[u8]) -> i64 {
        let archive = Arc::new(Archive::open(&self.state().join("archive")).unwrap());
        let mut spool = archive.spool(u64::MAX);
        spool.append(raw);
        let name = spool.store().unwrap();
        let envelope = Envelope {
            queue_id: Some(queue_id.into()),
            arrived_at: time::OffsetDateTime::now_utc(),
            mta_host: None,
            client_name: None,
            client_addr: None,
            helo: None,
            sasl_user: None,
            mail_from: from.into(),
            mail_args: vec![],
            recipients: vec![Recipient {
                address: "bob@dest.example".into(),
                args: vec![],
            }],
            recipients_dropped: 0,
            size: raw.len() as u64,
            message_id: None,
            subject: Some(subject.into()),
            archive_name: Some(name),
            archive_state: ArchiveState::Stored,
            mode: "normal".into(),
            receipts: Receipts::Off,
            is_notice: false,
        };
        let mut store = Store::open(&self.state().join("mailtrail.db")).unwrap();
        store.insert_envelopes(&[&envelope]).unwrap()[0]
    }
}

const FIRST: &[u8] = b"From: Alice <alice@example.com>\r\nSubject: first\r\n\r\nFrom the start\r\n>From quoted\r\nbye\r\n";
const SECOND: &[u8] = b"Subject: second \x1b[31mred\r\n\r\nbody two\r\n";

#[test]
fn ls_show_and_export() {
    let s = Setup::new("");
    let first = s.record("AAA111", "alice@example.com", "first", FIRST);
    let second = s.record("BBB222", "bob@example.org", "second \u{1b}[31mred", SECOND);

    let (ok, out, err) = s.run(&["archive", "ls"]);
    assert!(ok, "{err}");
    assert!(out.contains("AAA111") && out.contains("BBB222"), "{out}");
    assert!(
        !out.contains('\u{1b}'),
        "control characters from mail reach the terminal: {out:?}"
    );

    let (ok, out, _) = s.run(&["archive", "ls", "--from", "alice", "--json"]);
    assert!(ok);
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["queue_id"], "AAA111");
    let path = listed[0]["archive_path"].as_str().unwrap();
    assert_eq!(std::fs::read(path).unwrap(), FIRST);

    let (ok, out, _) = s.run(&["archive", "show", "BBB222", "--raw"]);
    assert!(ok);
    assert_eq!(out.as_bytes(), SECOND);
    let (ok, out, _) = s.run(&["archive", "show", &first.to_string(), "--headers"]);
    assert!(ok);
    assert_eq!(
        out,
        "From: Alice <alice@example.com>\r\nSubject: first\r\n\r\n"
    );
    let (ok, out, _) = s.run(&["archive", "show", "AAA111"]);
    assert!(ok);
    assert!(
        out.contains("Queue id:    AAA111") && out.contains("From the start"),
        "{out}"
    );
    let (ok, _, err) = s.run(&["archive", "show", "NOPE"]);
    assert!(
        !ok && err.contains("no message with id or queue id NOPE"),
        "{err}"
    );

    // .eml export: one file per message, unchanged.
    let eml_dir = s.dir.path().join("eml");
    let (ok, out, err) = s.run(&[
        "archive",
        "export",
        &first.to_string(),
        "BBB222",
        "--eml",
        eml_dir.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let mut files: Vec<Vec<u8>> = out.lines().map(|p| std::fs::read(p).unwrap()).collect();
    files.sort();
    let mut expected = vec![FIRST.to_vec(), SECOND.to_vec()];
    expected.sort();
    assert_eq!(files, expected);

    // mbox export: mboxrd quoting and LF line ends, readable back by a mail parser.
    let mbox = s.dir.path().join("out.mbox");
    let (ok, _, err) = s.run(&[
        "archive",
        "export",
        "AAA111",
        &second.to_string(),
        "--mbox",
        mbox.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&mbox).unwrap();
    let separators: Vec<&str> = text.lines().filter(|l| l.starts_with("From ")).collect();
    assert_eq!(separators.len(), 2, "{text}");
    assert!(separators[0].starts_with("From alice@example.com "));
    assert!(
        text.contains("\n>From the start\n>>From quoted\n"),
        "{text}"
    );
    assert!(!text.contains('\r'));

    // A typo exports nothing.
    let (ok, _, err) = s.run(&[
        "archive",
        "export",
        "AAA111",
        "NOPE",
        "--eml",
        s.dir.path().join("x").to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("NOPE"));
    assert!(!s.dir.path().join("x").exists());
}

#[test]
fn check_config_names_file_line_and_key() {
    let s = Setup::new("[archive]\nretention = \"a week\"\n");
    let (ok, _, err) = s.run(&["check-config"]);
    assert!(!ok);
    let config = s.config.display().to_string();
    // Six lines of [state], [milter] and [maillog] come first.
    assert!(
        err.contains(&format!("{config}:8: archive.retention:")),
        "{err}"
    );
    let good = Setup::new("");
    let (ok, out, _) = good.run(&["check-config"]);
    assert!(ok);
    assert!(
        out.contains("policy normal: retry every 10m, warn after 30m, give up after 4h"),
        "{out}"
    );
}

/// Reads the daemon's stderr until a line contains `needle`.
fn wait_for_line(lines: &mut impl Iterator<Item = String>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    for line in lines.by_ref() {
        if line.contains(needle) {
            return line;
        }
        assert!(Instant::now() < deadline, "no line with {needle:?}");
    }
    panic!("the daemon's output ended before {needle:?}");
}

fn signal(pid: u32, sig: &str) {
    assert!(
        Command::new("kill")
            .args(["-s", sig, &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn sighup_reloads_or_keeps_and_sigterm_exits_zero() {
    let s = Setup::new("");
    let mut daemon = Command::new(BIN)
        .arg("--config")
        .arg(&s.config)
        .arg("run")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = daemon.id();
    let mut lines = BufReader::new(daemon.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok);
    wait_for_line(&mut lines, "milter listening on");

    let good = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        format!("{good}[archive]\nretention = \"soon\"\n"),
    )
    .unwrap();
    signal(pid, "HUP");
    let line = wait_for_line(&mut lines, "configuration not reloaded");
    assert!(line.contains("archive.retention"), "{line}");

    std::fs::write(&s.config, format!("{good}[archive]\nretention = \"2d\"\n")).unwrap();
    signal(pid, "HUP");
    wait_for_line(&mut lines, "configuration reloaded");

    signal(pid, "TERM");
    wait_for_line(&mut lines, "stopped");
    let status = daemon.wait().unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0");
    assert!(Path::new(&s.state()).join("mailtrail.db").exists());
}

/// One HTTP/1.1 request over a plain socket; returns the whole response text.
fn http(port: u16, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// `mailtrail hash-password` of `password` (given on standard input).
fn hash_password(password: &str) -> String {
    let mut child = Command::new(BIN)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let line = format!("{password}\n");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(line.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn hash_password_then_log_in_to_the_daemons_web_pages() {
    let hash = hash_password("pa ss");
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");

    let web_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = Setup::new("");
    let text = std::fs::read_to_string(&s.config).unwrap().replace(
        "enabled = false",
        &format!("listen = \"127.0.0.1:{web_port}\""),
    );
    std::fs::write(
        &s.config,
        format!("{text}[[web.user]]\nname = \"ops\"\npassword_hash = \"{hash}\"\n"),
    )
    .unwrap();
    let mut daemon = Command::new(BIN)
        .arg("--config")
        .arg(&s.config)
        .arg("run")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = daemon.id();
    let mut lines = BufReader::new(daemon.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok);
    // In either order: the web server is up, and the daemon's first statistics refresh is done.
    let (mut web_up, mut refreshed) = (false, false);
    while !(web_up && refreshed) {
        let line = lines.next().expect("the daemon's output ended");
        web_up |= line.contains("web pages on");
        refreshed |= line.contains("statistics refreshed");
    }

    let health = http(
        web_port,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let body = "name=ops&password=pa+ss";
    let login = http(
        web_port,
        &format!(
            "POST /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(login.starts_with("HTTP/1.1 303"), "{login}");
    let cookie = login
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .expect("session cookie")
        .to_string();
    let today = http(
        web_port,
        &format!(
            "GET /today.json HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(today.starts_with("HTTP/1.1 200"), "{today}");
    assert!(today.contains("\"messages\":[]"), "{today}");
    let stats = http(
        web_port,
        &format!(
            "GET /stats.json HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(stats.starts_with("HTTP/1.1 200"), "{stats}");
    assert!(!stats.contains("\"refreshed_at\":null"), "{stats}");
    assert!(stats.contains("\"refreshed_at\":"), "{stats}");

    signal(pid, "TERM");
    wait_for_line(&mut lines, "stopped");
    assert_eq!(daemon.wait().unwrap().code(), Some(0));
}

#[test]
fn status_lists_and_stats_tables_from_the_binary() {
    let s = Setup::new("");
    s.record("AAA111", "alice@example.com", "first", FIRST);
    s.record("BBB222", "bob@example.org", "second \u{1b}[31mred", SECOND);

    let (ok, out, err) = s.run(&["status"]);
    assert!(ok, "{err}");
    assert!(out.contains("AAA111") && out.contains("BBB222"), "{out}");
    assert!(out.contains("2 of 2 messages"), "{out}");
    assert!(!out.contains('\u{1b}'), "{out:?}");
    let header = out.lines().next().unwrap();
    assert!(
        header.starts_with("time") && header.contains("status"),
        "{out}"
    );
    for list in ["--today", "--week", "--live"] {
        let (ok, out, err) = s.run(&["status", list, "--json"]);
        assert!(ok, "{list}: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["total"], 2, "{list}");
        assert_eq!(v["messages"].as_array().unwrap().len(), 2, "{list}");
    }
    let (ok, _, err) = s.run(&["status", "--live", "--week"]);
    assert!(!ok && err.contains("cannot be used with"), "{err}");

    // No refresh yet: `stats` refreshes first.
    let (ok, out, err) = s.run(&["stats", "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["summary"]["messages"], 2);
    assert_eq!(v["summary"]["recipients"], 2);
    assert_eq!(v["summary"]["bytes"], (FIRST.len() + SECOND.len()) as u64);
    assert!(v["refreshed_at"].is_i64());
    let (ok, out, err) = s.run(&["stats"]);
    assert!(ok, "{err}");
    for title in [
        "Summary",
        "By month",
        "By hour",
        "By sender",
        "Bounce categories",
    ] {
        assert!(out.contains(&format!("\n{title}\n")), "{title}: {out}");
    }
    // Aligned: the value column of the summary ends in the same place on every line.
    let summary: Vec<&str> = out
        .lines()
        .skip_while(|l| *l != "Summary")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(
        summary
            .iter()
            .any(|l| l.starts_with("Messages") && l.ends_with(" 2")),
        "{out}"
    );
    let width = summary[0].chars().count();
    assert!(
        summary.iter().all(|l| l.chars().count() == width),
        "{summary:?}"
    );
    assert!(out.contains("alice@example.com"), "{out}");

    let (ok, out, _) = s.run(&["stats", "--period", "1999-01", "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["from"].as_str(), v["summary"]["messages"].as_u64()),
        (Some("1999-01-01"), Some(0))
    );
    let (ok, _, err) = s.run(&["stats", "--period", "soon"]);
    assert!(!ok && err.contains("unknown period \"soon\""), "{err}");

    // A new row (a message recorded, a log imported) is in the next `stats` at once.
    s.record("CCC333", "carol@example.com", "third", FIRST);
    let summary = |field: &str| {
        let (ok, out, err) = s.run(&["stats", "--json"]);
        assert!(ok, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["summary"][field].as_u64().unwrap()
    };
    assert_eq!(summary("messages"), 3);
    // A changed row (a size the log filled in later) waits for the refresh after [web]
    // stats_refresh (5m).
    let bytes = summary("bytes");
    rusqlite::Connection::open(s.state().join("mailtrail.db"))
        .unwrap()
        .execute(
            "UPDATE message SET size = size + 1000 WHERE queue_id = 'CCC333'",
            [],
        )
        .unwrap();
    assert_eq!(summary("bytes"), bytes);
    let config = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        config.replace("[web]\n", "[web]\nstats_refresh = \"1s\"\n"),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(summary("bytes"), bytes + 1000);
}

/// Sendmail's submission program hands locally submitted mail to the daemon on 127.0.0.1
/// (`stat=Sent (QID2 Message accepted for delivery)`), which then delivers it as QID2. That
/// hand-over is no delivery: the import and the statistics count each delivery once — `sent`
/// equals the daemon's own `stat=Sent` lines, counted here from the text — and the submission's
/// row is marked as handed over instead of being a second message.
#[test]
fn sendmail_submission_hop_is_one_message_with_one_delivery() {
    let s = Setup::new("");
    let log = s.dir.path().join("sendmail.log");
    let generator = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/tools/gen_sendmail_log.py"
    );
    let status = Command::new("python3")
        .args([generator, "--lines", "200000", "--seed", "4243", "-o"])
        .arg(&log)
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    let is_hop = |l: &&str| {
        l.contains("stat=Sent (")
            && l.contains("Message accepted for delivery")
            && l.contains("relay=[127.0.0.1] [127.0.0.1]")
    };
    let hops = text.lines().filter(is_hop).count();
    // One delivery per recipient of a `to=<a>,<b>` line.
    let recipients = |l: &str| {
        let to = l.split_once(": to=").map_or("", |(_, rest)| rest);
        to.split_once(", ")
            .map_or(to, |(list, _)| list)
            .split(',')
            .count()
    };
    let sent_lines: Vec<&str> = text.lines().filter(|l| l.contains("stat=Sent")).collect();
    let delivered: usize = sent_lines
        .iter()
        .filter(|l| !is_hop(l))
        .map(|l| recipients(l))
        .sum();
    let sent_lines = sent_lines.len();
    assert!(hops > 1000, "{hops} hand-overs in the generated log");

    let (ok, out, err) = s.run(&["import", log.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("deliveries: sent {delivered},")),
        "want sent {delivered} ({sent_lines} Sent lines, {hops} hand-overs): {out}"
    );

    let db = rusqlite::Connection::open(s.state().join("mailtrail.db")).unwrap();
    let handed: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM message WHERE handed_to IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(handed, hops as i64);
    // No attempt was recorded for a hand-over.
    let hop_attempts: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM attempt a JOIN recipient r ON r.id = a.recipient
             JOIN message m ON m.id = r.message WHERE m.handed_to IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(hop_attempts, 0);

    // The statistics count each delivery once, and each message once.
    let (ok, out, err) = s.run(&["stats", "--period", "2026", "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["summary"]["delivered"], delivered as u64,
        "{}",
        v["summary"]
    );
    let all: i64 = db
        .query_row("SELECT COUNT(*) FROM message", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        v["summary"]["messages"],
        all - hops as i64,
        "{}",
        v["summary"]
    );
}

/// `mailtrail user …` with the password on standard input.
fn user_cmd(s: &Setup, args: &[&str], password: &str) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&s.config)
        .arg("user")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let _ = child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{password}\n").as_bytes());
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn login(port: u16, name: &str, password: &str) -> String {
    let body = format!("name={name}&password={password}");
    http(
        port,
        &format!(
            "POST /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// A first run with no user anywhere makes `admin` with a random password, said once on one
/// log line, and only its hash is kept; `mailtrail user` manages the users file while the
/// daemon runs, and says clearly what it cannot do.
#[test]
fn a_first_run_makes_an_admin_and_user_manages_the_rest() {
    let web_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = Setup::new("");
    let text = std::fs::read_to_string(&s.config).unwrap().replace(
        "enabled = false",
        &format!("listen = \"127.0.0.1:{web_port}\""),
    );
    let hash = hash_password("ops pw");
    std::fs::write(
        &s.config,
        format!("{text}[[web.user]]\nname = \"ops\"\npassword_hash = \"{hash}\"\n"),
    )
    .unwrap();
    // A user of the configuration file is not the users file's to change.
    let (ok, _, err) = user_cmd(&s, &["add", "ops"], "secret");
    assert!(!ok);
    assert!(
        err.contains("user `ops` is defined in") && err.contains("mailtrail.toml:"),
        "{err}"
    );
    std::fs::write(&s.config, &text).unwrap();

    let start = || {
        let mut daemon = Command::new(BIN)
            .arg("--config")
            .arg(&s.config)
            .arg("run")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(daemon.stderr.take().unwrap())
            .lines()
            .map_while(Result::ok);
        (daemon, lines)
    };
    let (daemon, mut lines) = start();
    let first = wait_for_line(&mut lines, "first run");
    let password = first
        .split("with password ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the password on the line")
        .to_string();
    assert!(
        first.contains(&format!("http://127.0.0.1:{web_port}/ as admin")),
        "{first}"
    );
    wait_for_line(&mut lines, "web pages on");
    let users_file = std::fs::read_to_string(s.state().join("users.toml")).unwrap();
    assert!(!users_file.contains(&password), "only the hash is kept");
    assert!(users_file.contains("$argon2id$"), "{users_file}");
    assert!(login(web_port, "admin", &password).starts_with("HTTP/1.1 303"));
    assert!(login(web_port, "admin", "wrong").starts_with("HTTP/1.1 401"));

    // Users added while the daemon runs can log in at once.
    let (ok, out, err) = user_cmd(&s, &["add", "alice", "--domain", "A.example"], "alice pw");
    assert!(ok, "{err}");
    assert!(out.contains("user alice added"), "{out}");
    assert!(login(web_port, "alice", "alice+pw").starts_with("HTTP/1.1 303"));
    let (ok, _, err) = user_cmd(&s, &["add", "alice"], "again");
    assert!(!ok && err.contains("user `alice` exists already"), "{err}");
    let (ok, _, err) = user_cmd(&s, &["passwd", "bob"], "x");
    assert!(!ok && err.contains("no user `bob`"), "{err}");
    let (ok, _, _) = user_cmd(&s, &["passwd", "alice"], "new pw");
    assert!(ok);
    assert!(login(web_port, "alice", "alice+pw").starts_with("HTTP/1.1 401"));
    assert!(login(web_port, "alice", "new+pw").starts_with("HTTP/1.1 303"));
    let (_, listed, _) = user_cmd(&s, &["list", "--json"], "");
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[1]["name"], "alice");
    assert_eq!(listed[1]["domains"][0], "a.example");
    let (ok, _, _) = user_cmd(&s, &["remove", "alice"], "");
    assert!(ok);
    assert!(login(web_port, "alice", "new+pw").starts_with("HTTP/1.1 401"));

    let mut daemon = daemon;
    signal(daemon.id(), "TERM");
    wait_for_line(&mut lines, "stopped");
    assert_eq!(daemon.wait().unwrap().code(), Some(0));
    // The next start makes no second admin and says no password.
    let (mut daemon, mut lines) = start();
    let mut seen = Vec::new();
    loop {
        let line = lines.next().expect("the daemon's output ended");
        assert!(!line.contains("first run"), "{line}");
        if line.contains("web pages on") {
            break;
        }
        seen.push(line);
    }
    assert!(login(web_port, "admin", &password).starts_with("HTTP/1.1 303"));
    signal(daemon.id(), "TERM");
    wait_for_line(&mut lines, "stopped");
    assert_eq!(daemon.wait().unwrap().code(), Some(0));
}
