//! A private sendmail instance per test, from Debian's sendmail-bin unpacked (not installed) by
//! `scripts/e2e-sendmail.sh` into `target/e2e-sendmail/root`.
//!
//! Debian's sendmail cannot be installed next to postfix (both are the machine's
//! mail-transport-agent), so the unpacked binary runs from the temp dir with a `.cf` built here
//! with m4: own queue directory, pid and status files, an SMTP daemon on a free loopback port,
//! every message relayed to the scripted server, and `INPUT_MAIL_FILTER` without `F=` (on a
//! milter failure sendmail goes on as if there were no milter).
//!
//! Two things of the machine would get in the way, and are replaced for this process only, in
//! private namespaces made with `unshare --uts --mount` (nothing outside them changes):
//! - sendmail wants a fully qualified hostname before it reads its config and otherwise sleeps
//!   60 s: the UTS namespace gets the hostname `sm.test.example`, the mount namespace a private
//!   `/etc/hosts` that names it;
//! - sendmail logs only to syslog (`/dev/log`), and there is no syslog daemon here: the mount
//!   namespace gets a private `/dev` whose `log` is a datagram socket this harness reads into
//!   `<dir>/maillog`, so tests read sendmail's log like postfix's.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::postfix::tail;
use super::util::{free_port, port_open, signal, wait_for, wait_until};

/// The hostname of the instance (`$j`); it appears in its `Received:` headers.
pub const SM_HOSTNAME: &str = "sm.test.example";

/// Environment variable naming the unpacked tree (default: `target/e2e-sendmail/root`).
pub const ROOT_ENV: &str = "MAILTRAIL_E2E_SENDMAIL_ROOT";

/// Where `scripts/e2e-sendmail.sh` unpacked sendmail.
pub fn sendmail_root() -> PathBuf {
    let root = std::env::var_os(ROOT_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/e2e-sendmail/root"));
    assert!(
        root.join("usr/libexec/sendmail/sendmail").is_file()
            && root.join("usr/share/sendmail/cf/m4/cf.m4").is_file(),
        "sendmail is not unpacked in {}: run scripts/e2e-sendmail.sh (scripts/test.sh does)",
        root.display()
    );
    root
}

/// The short hostname written in log lines, as a syslog daemon writes the host's name.
pub const LOG_HOST: &str = "sm";

/// A datagram from glibc's syslog(3), `<PRI>Mmm dd hh:mm:ss sendmail[pid]: text`, as a syslog
/// daemon writes it to a file: `Mmm dd hh:mm:ss sm sendmail[pid]: text\n`.
fn syslog_file_line(datagram: &[u8]) -> Vec<u8> {
    let msg = match datagram.iter().position(|b| *b == b'>') {
        Some(i) if datagram.first() == Some(&b'<') => &datagram[i + 1..],
        _ => datagram,
    };
    let msg = msg.strip_suffix(b"\n").unwrap_or(msg);
    let mut line = Vec::with_capacity(msg.len() + 8);
    // The timestamp is the first 15 bytes ("Nov 23 19:21:05").
    if msg.len() > 16 && msg[15] == b' ' {
        line.extend_from_slice(&msg[..16]);
        line.extend_from_slice(LOG_HOST.as_bytes());
        line.push(b' ');
        line.extend_from_slice(&msg[16..]);
    } else {
        line.extend_from_slice(msg);
    }
    line.push(b'\n');
    line
}

/// A running private sendmail; stopped and removed on drop.
pub struct Sendmail {
    dir: tempfile::TempDir,
    smtp_port: u16,
    child: Option<Child>,
    log_stop: Arc<AtomicBool>,
    log_thread: Option<std::thread::JoinHandle<()>>,
}

impl Sendmail {
    /// Builds the `.cf`, starts `sendmail -bD -q1s` (foreground daemon, queue run every
    /// second) and returns once its SMTP port accepts connections.
    pub fn start(relay_port: u16, milter_port: Option<u16>) -> Sendmail {
        let root = sendmail_root();
        let dir = tempfile::Builder::new()
            .prefix("mailtrail-e2e-sendmail.")
            .tempdir()
            .expect("temp dir for sendmail");
        let d = dir.path();
        std::fs::create_dir(d.join("queue")).unwrap();
        std::fs::create_dir(d.join("dev")).unwrap();
        // sendmail keeps delivery statistics only in a file that exists.
        std::fs::write(d.join("statistics"), b"").unwrap();
        for n in ["null", "zero", "random", "urandom", "log"] {
            std::fs::write(d.join("dev").join(n), b"").unwrap();
        }
        std::fs::write(
            d.join("hosts"),
            format!("127.0.0.1 {SM_HOSTNAME} localhost\n::1 {SM_HOSTNAME} localhost\n"),
        )
        .unwrap();
        std::fs::write(d.join("service.switch"), "hosts files\naliases files\n").unwrap();

        let smtp_port = free_port();
        let cf_dir = root.join("usr/share/sendmail/cf");
        let milter = milter_port
            .map(|p| {
                format!(
                    "INPUT_MAIL_FILTER(`mailtrail', `S=inet:{p}@127.0.0.1, T=C:5s;S:10s;R:10s;E:30s')dnl\n"
                )
            })
            .unwrap_or_default();
        let dd = d.display();
        let mc = format!(
            "divert(-1)\n\
             divert(0)dnl\n\
             include(`{cf}/m4/cf.m4')dnl\n\
             VERSIONID(`mailtrail e2e')dnl\n\
             OSTYPE(`linux')dnl\n\
             define(`confDOMAIN_NAME', `{SM_HOSTNAME}')dnl\n\
             define(`confDONT_PROBE_INTERFACES', `True')dnl\n\
             define(`QUEUE_DIR', `{dd}/queue')dnl\n\
             define(`STATUS_FILE', `{dd}/statistics')dnl\n\
             define(`confPID_FILE', `{dd}/sendmail.pid')dnl\n\
             define(`confHOST_STATUS_DIRECTORY', `')dnl\n\
             define(`ALIAS_FILE', `')dnl\n\
             define(`confSERVICE_SWITCH_FILE', `{dd}/service.switch')dnl\n\
             define(`confHOSTS_FILE', `{dd}/hosts')dnl\n\
             define(`confBIND_OPTS', `-DNSRCH -DEFNAMES')dnl\n\
             define(`confTO_IDENT', `0')dnl\n\
             define(`confMIN_QUEUE_AGE', `0')dnl\n\
             define(`confDELIVERY_MODE', `background')dnl\n\
             define(`confPRIVACY_FLAGS', `authwarnings')dnl\n\
             define(`confLOG_LEVEL', `14')dnl\n\
             define(`SMART_HOST', `esmtp:[127.0.0.1]')dnl\n\
             define(`ESMTP_MAILER_ARGS', `TCP $h {relay_port}')dnl\n\
             FEATURE(`nocanonify')dnl\n\
             FEATURE(`promiscuous_relay')dnl\n\
             FEATURE(`accept_unresolvable_domains')dnl\n\
             FEATURE(`accept_unqualified_senders')dnl\n\
             DAEMON_OPTIONS(`Family=inet, Name=MTA, Port={smtp_port}, Addr=127.0.0.1')dnl\n\
             {milter}\
             MAILER(`smtp')dnl\n",
            cf = cf_dir.display(),
        );
        std::fs::write(d.join("e2e.mc"), &mc).unwrap();
        let out = Command::new("m4")
            .arg(d.join("e2e.mc"))
            .output()
            .expect("run m4 (apt-get install m4; scripts/e2e-sendmail.sh does)");
        assert!(
            out.status.success(),
            "m4 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(d.join("e2e.cf"), &out.stdout).unwrap();

        // The syslog socket, read into <dir>/maillog.
        let sock = UnixDatagram::bind(d.join("log.sock")).expect("bind the syslog socket");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let log_stop = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&log_stop);
        let mut log = std::fs::File::create(d.join("maillog")).unwrap();
        let log_thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while !stop.load(Ordering::SeqCst) {
                if let Ok(n) = sock.recv(&mut buf) {
                    let _ = log.write_all(&syslog_file_line(&buf[..n]));
                }
            }
        });

        let sendmail = root.join("usr/libexec/sendmail/sendmail");
        let script = format!(
            "set -e\n\
             hostname {SM_HOSTNAME}\n\
             mount --bind {dd}/hosts /etc/hosts\n\
             for n in null zero random urandom; do mount --bind /dev/$n {dd}/dev/$n; done\n\
             mount --bind {dd}/log.sock {dd}/dev/log\n\
             mount --rbind {dd}/dev /dev\n\
             exec {sm} -C {dd}/e2e.cf -bD -q1s\n",
            sm = sendmail.display(),
        );
        let console = std::fs::File::create(d.join("console.log")).unwrap();
        let child = Command::new("unshare")
            .args([
                "--uts",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                &script,
            ])
            .stdin(Stdio::null())
            .stdout(console.try_clone().unwrap())
            .stderr(console)
            .process_group(0)
            .spawn()
            .expect("run unshare (util-linux)");
        let mut sm = Sendmail {
            dir,
            smtp_port,
            child: Some(child),
            log_stop,
            log_thread: Some(log_thread),
        };
        let console_path = sm.dir.path().join("console.log");
        let child = sm.child.as_mut().unwrap();
        wait_until(
            Duration::from_secs(20),
            "sendmail to accept SMTP connections",
            || {
                if let Some(status) = child.try_wait().unwrap() {
                    panic!(
                        "sendmail exited at start ({status}):\n{}",
                        std::fs::read_to_string(&console_path).unwrap_or_default()
                    );
                }
                port_open(smtp_port)
            },
            || std::fs::read_to_string(&console_path).unwrap_or_default(),
        );
        sm
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The port the SMTP daemon listens on (127.0.0.1).
    pub fn smtp_port(&self) -> u16 {
        self.smtp_port
    }

    /// The log, as a syslog daemon writes it: `Mmm dd hh:mm:ss sm sendmail[pid]: text`.
    pub fn maillog(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// The queue id of the `QUEUEID: from=<...>, ..., msgid=<MESSAGE-ID>, ...` log line.
    pub fn queue_id_for_message_id(&self, message_id: &str) -> Option<String> {
        let needle = format!(", msgid=<{}>", message_id.trim_matches(['<', '>']));
        self.maillog().lines().find_map(|l| {
            if !l.contains(&needle) {
                return None;
            }
            let (_, rest) = l.split_once("]: ")?;
            let (qid, what) = rest.split_once(": ")?;
            what.starts_with("from=").then(|| qid.to_string())
        })
    }

    /// Waits until the log has the `from=` line for `message_id`; returns its queue id.
    pub fn wait_queue_id(&self, message_id: &str, timeout: Duration) -> String {
        wait_for(
            timeout,
            &format!("sendmail to log msgid=<{message_id}>"),
            || self.queue_id_for_message_id(message_id),
            || tail(&self.maillog(), 40),
        )
    }

    /// Waits until the log has a line about `queue_id` containing `text` and returns it.
    pub fn wait_log_line(&self, queue_id: &str, text: &str, timeout: Duration) -> String {
        wait_for(
            timeout,
            &format!("a sendmail log line for {queue_id} containing {text:?}"),
            || {
                self.log_lines_for(queue_id)
                    .into_iter()
                    .find(|l| l.contains(text))
            },
            || tail(&self.maillog(), 40),
        )
    }

    /// Every log line about `queue_id`.
    pub fn log_lines_for(&self, queue_id: &str) -> Vec<String> {
        let needle = format!("]: {queue_id}: ");
        self.maillog()
            .lines()
            .filter(|l| l.contains(&needle))
            .map(str::to_string)
            .collect()
    }

    /// Queue control files (`qf*`) still in the queue directory.
    pub fn queued(&self) -> Vec<String> {
        std::fs::read_dir(self.dir.path().join("queue"))
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.starts_with("qf"))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until no message is queued.
    pub fn wait_queue_empty(&self, timeout: Duration) {
        wait_until(
            timeout,
            "the sendmail queue to drain",
            || self.queued().is_empty(),
            || format!("queued: {:?}\n{}", self.queued(), tail(&self.maillog(), 40)),
        );
    }

    /// Stops the daemon: SIGTERM to its process group, SIGKILL after 5 s.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pgid = child.id() as i32;
        signal(-pgid, libc::SIGTERM);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(super::util::POLL);
        }
        // Whatever of the group is left (queue runners, SMTP children).
        signal(-pgid, libc::SIGKILL);
        let _ = child.wait();
        self.log_stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.log_thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Sendmail {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "--- log of the failed test's sendmail, last 60 lines ---\n{}\n--- console ---\n{}",
                tail(&self.maillog(), 60),
                std::fs::read_to_string(self.dir.path().join("console.log")).unwrap_or_default()
            );
        }
    }
}
