//! A private postfix instance per test: own config, queue and data directories under a temp
//! dir, its own log file, smtpd on a free loopback port, every message relayed to a scripted
//! server, milters pointed at mailtrail's port, and retry timings of a few seconds.
//!
//! Needs root (postfix start) and Debian's `postfix` package; installs nothing. The instance is
//! stopped (`postfix stop`, then SIGKILL for whatever of it is left) and its directory removed
//! when the [`Postfix`] guard is dropped, also when a test panics.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::util::{free_port, pid_alive, pids_with_env, signal, wait_for, wait_until};

/// The hostname the instance uses (`myhostname`); it appears in its `Received:` headers.
pub const MYHOSTNAME: &str = "mx.test.example";

/// Settings for [`Postfix::start`].
#[derive(Clone, Debug)]
pub struct PostfixConfig {
    /// Where all outbound mail goes (`relayhost = [127.0.0.1]:PORT`).
    pub relay_port: u16,
    /// `smtpd_milters` and `non_smtpd_milters` = `inet:127.0.0.1:PORT`; `None` for no milter.
    pub milter_port: Option<u16>,
    /// Extra `main.cf` settings, written last (so they override the defaults here).
    pub main_cf: Vec<(String, String)>,
    /// `maillog_file`; `None` for `maillog` in the instance's directory.
    pub maillog_file: Option<PathBuf>,
}

impl PostfixConfig {
    pub fn new(relay_port: u16, milter_port: Option<u16>) -> PostfixConfig {
        PostfixConfig {
            relay_port,
            milter_port,
            main_cf: Vec::new(),
            maillog_file: None,
        }
    }

    /// Relays to `relay_port`, with `mailtrail` as the milter, logging to the file that
    /// mailtrail follows ([`Mailtrail::mta_log_path`](super::mailtrail::Mailtrail::mta_log_path)),
    /// so mailtrail tracks every delivery of the instance.
    pub fn for_mailtrail(
        relay_port: u16,
        mailtrail: &super::mailtrail::Mailtrail,
    ) -> PostfixConfig {
        let mut c = PostfixConfig::new(relay_port, Some(mailtrail.milter_port()));
        c.maillog_file = Some(mailtrail.mta_log_path());
        c
    }

    /// Adds or overrides one `main.cf` parameter.
    pub fn set(mut self, key: &str, value: &str) -> PostfixConfig {
        self.main_cf.push((key.to_string(), value.to_string()));
        self
    }
}

/// A running private postfix instance; stopped and removed on drop.
pub struct Postfix {
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    maillog: PathBuf,
    smtpd_port: u16,
    stopped: bool,
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

impl Postfix {
    /// Writes the configuration and starts the instance; returns once smtpd accepts connections.
    pub fn start(config: PostfixConfig) -> Postfix {
        let dir = tempfile::Builder::new()
            .prefix("mailtrail-e2e-postfix.")
            .tempdir()
            .expect("temp dir for postfix");
        let root = dir.path().to_path_buf();
        for sub in ["etc", "queue", "data"] {
            std::fs::create_dir(root.join(sub)).unwrap();
        }
        // mktemp makes 0700; the postfix user must get through to its queue and data dirs.
        set_mode(&root, 0o755);
        chown_postfix(&root.join("data"));

        let smtpd_port = free_port();
        // master.cf: Debian's, with smtpd on our port and no chroot (the chroot would need
        // copies of /etc files inside the queue directory).
        let master = ["/etc/postfix/master.cf", "/etc/postfix/master.cf.proto"]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
            .expect("read /etc/postfix/master.cf (is Debian's postfix package installed?)");
        let mut master_out = String::new();
        let mut saw_smtpd = false;
        for line in master.lines() {
            let mut fields: Vec<&str> = line.split_whitespace().collect();
            let is_service = !line.starts_with(['#', ' ', '\t']) && fields.len() >= 8;
            if !is_service {
                master_out.push_str(line);
                master_out.push('\n');
                continue;
            }
            let port_service = format!("127.0.0.1:{smtpd_port}");
            if fields[0] == "smtp" && fields[1] == "inet" {
                fields[0] = &port_service;
                saw_smtpd = true;
            }
            fields[4] = "n";
            master_out.push_str(&fields.join(" "));
            master_out.push('\n');
        }
        assert!(
            saw_smtpd,
            "no 'smtp inet' service in /etc/postfix/master.cf"
        );
        std::fs::write(root.join("etc/master.cf"), master_out).unwrap();

        let r = root.display();
        let maillog = config
            .maillog_file
            .clone()
            .unwrap_or_else(|| root.join("maillog"));
        let mut main_cf = vec![
            ("compatibility_level", "3.6".to_string()),
            ("queue_directory", format!("{r}/queue")),
            ("data_directory", format!("{r}/data")),
            ("command_directory", "/usr/sbin".into()),
            ("daemon_directory", "/usr/lib/postfix/sbin".into()),
            ("meta_directory", "/etc/postfix".into()),
            ("shlib_directory", "no".into()),
            ("mail_owner", "postfix".into()),
            ("setgid_group", "postdrop".into()),
            ("myhostname", MYHOSTNAME.into()),
            ("mydomain", "test.example".into()),
            ("myorigin", "$myhostname".into()),
            ("mydestination", "".into()),
            ("inet_interfaces", "loopback-only".into()),
            ("inet_protocols", "ipv4".into()),
            ("mynetworks", "127.0.0.0/8".into()),
            ("relayhost", format!("[127.0.0.1]:{}", config.relay_port)),
            ("smtp_tls_security_level", "none".into()),
            ("smtpd_tls_security_level", "none".into()),
            ("alias_maps", "".into()),
            ("alias_database", "".into()),
            ("local_recipient_maps", "".into()),
            ("maillog_file", maillog.display().to_string()),
            // Without it 'postfix start' exits 1 silently for a log file under /tmp.
            ("maillog_file_prefixes", "/tmp, /var, /dev/stdout".into()),
            ("queue_run_delay", "1s".into()),
            // Not 1s: qmgr takes a deferred message back once its time is at most a second
            // away, so with 1s it could take it back before the delivery agent that deferred it
            // had let go of the queue file; qmgr then logs "skipped, still being delivered" and
            // parks the message for a fixed 60 s. 2s leaves the agent a second to let go.
            ("minimal_backoff_time", "2s".into()),
            ("maximal_backoff_time", "3s".into()),
            // Room for a few hundred parallel submissions from one client address.
            ("smtpd_client_connection_count_limit", "0".into()),
            ("smtpd_client_connection_rate_limit", "0".into()),
            ("milter_default_action", "accept".into()),
        ];
        if let Some(p) = config.milter_port {
            main_cf.push(("smtpd_milters", format!("inet:127.0.0.1:{p}")));
            main_cf.push(("non_smtpd_milters", format!("inet:127.0.0.1:{p}")));
        }
        let mut text = String::new();
        for (k, v) in &main_cf {
            text.push_str(&format!("{k} = {v}\n"));
        }
        for (k, v) in &config.main_cf {
            text.push_str(&format!("{k} = {v}\n"));
        }
        std::fs::write(root.join("etc/main.cf"), text).unwrap();

        let pf = Postfix {
            dir: Some(dir),
            root,
            maillog,
            smtpd_port,
            stopped: false,
        };
        let out = run(Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(pf.config_dir())
            .arg("start"));
        assert!(
            out.status.success(),
            "postfix start failed ({}): {}{}\nmaillog:\n{}\n(to see a silent fatal error: \
             maillog_file = /dev/stdout and 'postfix -c DIR start-fg')",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            pf.maillog()
        );
        wait_until(
            Duration::from_secs(20),
            "postfix smtpd to accept connections",
            || super::util::port_open(smtpd_port),
            || pf.maillog(),
        );
        pf
    }

    /// The instance's root (temp) directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `config_directory` (for `-c` / `-C` / `MAIL_CONFIG`).
    pub fn config_dir(&self) -> PathBuf {
        self.root.join("etc")
    }

    /// The port smtpd listens on (127.0.0.1).
    pub fn smtpd_port(&self) -> u16 {
        self.smtpd_port
    }

    /// Path of the instance's log file.
    pub fn maillog_path(&self) -> PathBuf {
        self.maillog.clone()
    }

    /// The whole log so far (empty if none yet).
    pub fn maillog(&self) -> String {
        std::fs::read_to_string(self.maillog_path()).unwrap_or_default()
    }

    /// `postqueue -j`: one JSON object per queued message.
    pub fn queue(&self) -> Vec<serde_json::Value> {
        let out = run(Command::new("/usr/sbin/postqueue")
            .arg("-c")
            .arg(self.config_dir())
            .arg("-j"));
        assert!(
            out.status.success(),
            "postqueue -j failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("postqueue -j line is JSON"))
            .collect()
    }

    /// Waits until the queue is empty (every message delivered, bounced or removed).
    pub fn wait_queue_empty(&self, timeout: Duration) {
        wait_until(
            timeout,
            "the postfix queue to drain",
            || self.queue().is_empty(),
            || {
                format!(
                    "queue: {:#?}\nmaillog tail:\n{}",
                    self.queue(),
                    tail(&self.maillog(), 40)
                )
            },
        );
    }

    /// `postqueue -f`: retry every deferred message now.
    pub fn flush(&self) {
        let out = run(Command::new("/usr/sbin/postqueue")
            .arg("-c")
            .arg(self.config_dir())
            .arg("-f"));
        assert!(out.status.success(), "postqueue -f failed");
    }

    /// The queue id that cleanup logged for Message-ID `message_id` (with or without brackets):
    /// the `QUEUEID: message-id=<...>` line.
    pub fn queue_id_for_message_id(&self, message_id: &str) -> Option<String> {
        let needle = format!(": message-id=<{}>", message_id.trim_matches(['<', '>']));
        self.maillog().lines().find_map(|l| {
            let at = l.find(&needle)?;
            let before = &l[..at];
            let id = before.rsplit(' ').next()?;
            (before.contains("/cleanup[") && !id.is_empty()).then(|| id.to_string())
        })
    }

    /// Waits until cleanup logged Message-ID `message_id` and returns the queue id.
    pub fn wait_queue_id(&self, message_id: &str, timeout: Duration) -> String {
        wait_for(
            timeout,
            &format!("cleanup to log message-id=<{message_id}>"),
            || self.queue_id_for_message_id(message_id),
            || tail(&self.maillog(), 40),
        )
    }

    /// Every log line about queue id `queue_id`.
    pub fn log_lines_for(&self, queue_id: &str) -> Vec<String> {
        let needle = format!(" {queue_id}: ");
        self.maillog()
            .lines()
            .filter(|l| l.contains(&needle))
            .map(str::to_string)
            .collect()
    }

    /// Waits until the log has a line about `queue_id` containing `text` and returns it.
    pub fn wait_log_line(&self, queue_id: &str, text: &str, timeout: Duration) -> String {
        wait_for(
            timeout,
            &format!("a log line for {queue_id} containing {text:?}"),
            || {
                self.log_lines_for(queue_id)
                    .into_iter()
                    .find(|l| l.contains(text))
            },
            || tail(&self.maillog(), 40),
        )
    }

    /// Submits `message` through postfix's `sendmail` command (the pickup path, which goes
    /// through `non_smtpd_milters`), as `sendmail -C DIR -f FROM -- RCPT...`.
    pub fn sendmail(&self, from: &str, rcpts: &[&str], message: &[u8]) {
        use std::io::Write;
        let mut child = Command::new("/usr/sbin/sendmail")
            .arg("-C")
            .arg(self.config_dir())
            .arg("-i")
            .arg("-f")
            .arg(from)
            .arg("--")
            .args(rcpts)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run /usr/sbin/sendmail");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(message)
            .expect("write the message to sendmail");
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "sendmail failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the instance: `postfix stop`, then waits for its master to exit and kills
    /// whatever process of this instance is left.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let master_pid = std::fs::read_to_string(self.root.join("queue/pid/master.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        let _ = Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(self.config_dir())
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            let master_gone = master_pid.is_none_or(|p| !pid_alive(p));
            if master_gone && pids_with_env("MAIL_CONFIG", &self.config_dir()).is_empty() {
                return;
            }
            std::thread::sleep(super::util::POLL);
        }
        if let Some(p) = master_pid.filter(|p| pid_alive(*p)) {
            signal(p, libc::SIGKILL);
        }
        for p in pids_with_env("MAIL_CONFIG", &self.config_dir()) {
            signal(p, libc::SIGKILL);
        }
    }

    /// Keeps the instance's directory after the test (for debugging); returns its path.
    pub fn keep(&mut self) -> PathBuf {
        if let Some(d) = self.dir.take() {
            return d.keep();
        }
        self.root.clone()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "--- maillog of the failed test's postfix ({}), last 60 lines ---\n{}",
                self.maillog_path().display(),
                tail(&self.maillog(), 60)
            );
        }
        if std::env::var_os(KEEP_ENV).is_some() {
            let path = self.keep();
            eprintln!(
                "{KEEP_ENV} set: postfix instance kept in {}",
                path.display()
            );
        }
    }
}

/// Set this environment variable to keep the instances' directories after the tests.
pub const KEEP_ENV: &str = "MAILTRAIL_E2E_KEEP";

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown_postfix(path: &Path) {
    let out = run(Command::new("chown").arg("postfix").arg(path));
    assert!(
        out.status.success(),
        "chown postfix {}: {} (the e2e tests run as root)",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}
