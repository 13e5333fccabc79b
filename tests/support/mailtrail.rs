//! mailtrail as the real binary (`CARGO_BIN_EXE_mailtrail`), with a config file and a state
//! directory of its own, started and stopped (SIGTERM) by a guard, and its inspection commands
//! (`archive ls --json`, `archive show --json`, `counters --json`) as typed helpers.
//!
//! The daemon follows the MTA log file [`Mailtrail::mta_log_path`] (inside its own directory,
//! polled every 100 ms): [`super::postfix::PostfixConfig::for_mailtrail`] makes postfix log
//! there. Nothing reads the machine's own `/var/log/mail.log`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::Deserialize;

use super::util::{free_port, port_open, signal, wait_until};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_mailtrail");

/// One recipient of an [`ArchivedMessage`].
#[derive(Clone, Debug, Deserialize)]
pub struct ArchivedRecipient {
    pub address: String,
    /// ESMTP arguments of its RCPT TO.
    pub args: Vec<String>,
}

/// Where delivery of one recipient stands, as in `archive ls --json` and `archive show --json`
/// (`attempt_list` only in `show`).
#[derive(Clone, Debug, Deserialize)]
pub struct Delivery {
    pub address: String,
    pub orig_to: Option<String>,
    /// pending, deferred, sent, bounced or expired.
    pub status: String,
    pub category: Option<String>,
    pub dsn: Option<String>,
    pub attempts: u32,
    pub final_at: Option<String>,
    #[serde(default)]
    pub attempt_list: Vec<DeliveryAttempt>,
}

/// One attempt in `archive show --json`.
#[derive(Clone, Debug, Deserialize)]
pub struct DeliveryAttempt {
    /// RFC 3339.
    pub at: String,
    pub status: String,
    pub relay_host: Option<String>,
    pub relay_ip: Option<String>,
    pub relay_port: Option<u16>,
    pub dsn: Option<String>,
    pub smtp_code: Option<u16>,
    pub reply: String,
    pub stage: Option<String>,
    pub category: Option<String>,
}

/// One entry of `mailtrail archive ls --json`, or `archive show --json` (the fields the tests
/// use; there are more).
#[derive(Clone, Debug, Deserialize)]
pub struct ArchivedMessage {
    pub id: i64,
    pub queue_id: Option<String>,
    /// RFC 3339.
    pub arrived_at: String,
    pub mail_from: String,
    pub recipients: Vec<ArchivedRecipient>,
    pub subject: Option<String>,
    pub size: i64,
    pub message_id: Option<String>,
    pub archive_path: Option<PathBuf>,
    /// `stored`, `too-large`, `excluded`, `disabled`, `failed`, `expired`.
    pub archive_state: String,
    pub helo: Option<String>,
    pub client_addr: Option<String>,
    /// Per recipient: status, category, attempts (and in `show`, the attempts themselves).
    pub deliveries: Vec<Delivery>,
}

impl ArchivedMessage {
    /// The archived copy's bytes (panics if there is none or it cannot be read).
    pub fn read_archive(&self) -> Vec<u8> {
        let path = self
            .archive_path
            .as_ref()
            .unwrap_or_else(|| panic!("message {} has no archive_path: {self:?}", self.id));
        std::fs::read(path).unwrap_or_else(|e| panic!("read archive copy {}: {e}", path.display()))
    }

    /// The recipient addresses, sorted.
    pub fn recipient_addresses(&self) -> Vec<String> {
        let mut v: Vec<String> = self.recipients.iter().map(|r| r.address.clone()).collect();
        v.sort();
        v
    }

    /// The Message-ID without angle brackets.
    pub fn message_id_bare(&self) -> Option<&str> {
        self.message_id
            .as_deref()
            .map(|m| m.trim_matches(['<', '>']))
    }
}

/// File name of the followed MTA log inside the daemon's directory.
const MTA_LOG: &str = "mta.log";

/// A mailtrail daemon with its own state directory and milter port; stopped when dropped.
pub struct Mailtrail {
    dir: tempfile::TempDir,
    config: PathBuf,
    milter_port: u16,
    child: Option<Child>,
    /// `RLIMIT_NOFILE` for the daemon (what a systemd unit without `LimitNOFILE` gives: 1024).
    pub file_limit: Option<u64>,
}

impl Mailtrail {
    /// Writes a config (state dir and milter port of its own, web pages off) without starting
    /// the daemon.
    pub fn configure() -> Mailtrail {
        Mailtrail::configure_with_web("[web]\nenabled = false\n")
    }

    /// [`Mailtrail::configure`] with `web` as the config's `[web]` section (and its
    /// `[[web.user]]` entries).
    pub fn configure_with_web(web: &str) -> Mailtrail {
        let dir = tempfile::Builder::new()
            .prefix("mailtrail-e2e-daemon.")
            .tempdir()
            .expect("temp dir for mailtrail");
        let milter_port = free_port();
        let state = dir.path().join("state");
        let config = dir.path().join("mailtrail.toml");
        let mta_log = dir.path().join(MTA_LOG);
        std::fs::write(
            &config,
            format!(
                "[state]\ndir = \"{}\"\n\n[milter]\nlisten = \"inet:127.0.0.1:{milter_port}\"\n\n\
                 [maillog]\nsource = \"file:{}\"\npoll_interval = \"100ms\"\n\n{web}",
                state.display(),
                mta_log.display()
            ),
        )
        .unwrap();
        Mailtrail {
            dir,
            config,
            milter_port,
            child: None,
            file_limit: None,
        }
    }

    /// [`Mailtrail::configure`] and [`Mailtrail::start`].
    pub fn start_new() -> Mailtrail {
        let mut m = Mailtrail::configure();
        m.start();
        m
    }

    /// Starts `mailtrail run --config FILE`; returns once the milter port accepts connections.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "mailtrail is already running");
        // This start's lines only: a restart appends to the same log.
        let log_start = std::fs::metadata(self.log_path()).map_or(0, |m| m.len() as usize);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut command = Command::new(BIN);
        command
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(limit) = self.file_limit {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    let rlimit = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    match libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) {
                        0 => Ok(()),
                        _ => Err(std::io::Error::last_os_error()),
                    }
                });
            }
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));
        self.child = Some(child);
        let port = self.milter_port;
        // A milter on a unix socket (a benchmark's choice) has no port to wait for.
        let on_tcp =
            std::fs::read_to_string(&self.config).is_ok_and(|c| c.contains("listen = \"inet:"));
        let log_path = self.log_path();
        let child = self.child.as_mut().unwrap();
        wait_until(
            Duration::from_secs(20),
            "mailtrail's milter port to accept connections",
            || {
                if let Some(status) = child.try_wait().unwrap() {
                    panic!(
                        "mailtrail exited at start ({status}):\n{}",
                        std::fs::read_to_string(&log_path).unwrap_or_default()
                    );
                }
                // Bound before it serves: the log line comes once it answers.
                (port_open(port) || !on_tcp)
                    && std::fs::read_to_string(&log_path).is_ok_and(|log| {
                        log[log_start.min(log.len())..].contains("milter listening on")
                    })
            },
            || std::fs::read_to_string(&log_path).unwrap_or_default(),
        );
    }

    /// Stops the daemon with SIGTERM and waits for it to exit (SIGKILL after 10 s); returns
    /// whether it exited on its own.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        signal(child.id() as i32, libc::SIGTERM);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(super::util::POLL);
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    pub fn milter_port(&self) -> u16 {
        self.milter_port
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The state directory (`[state] dir`).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The archive Maildir (`<state dir>/archive`).
    pub fn archive_dir(&self) -> PathBuf {
        self.state_dir().join("archive")
    }

    /// Files in the archive Maildir's `new/` and `cur/`.
    pub fn archive_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(rd) = std::fs::read_dir(self.archive_dir().join(sub)) {
                files.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_file()));
            }
        }
        files.sort();
        files
    }

    /// The MTA log file the daemon follows (`[maillog] source = "file:..."`); it need not
    /// exist before the daemon starts.
    pub fn mta_log_path(&self) -> PathBuf {
        self.dir.path().join(MTA_LOG)
    }

    /// The store (`<state dir>/mailtrail.db`), for tests that read it with the library.
    pub fn store_path(&self) -> PathBuf {
        self.state_dir().join("mailtrail.db")
    }

    /// The daemon's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the daemon with SIGKILL (no shutdown of any kind) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id() as i32, libc::SIGKILL);
            let _ = child.wait();
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("mailtrail.log")
    }

    /// The daemon's stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Runs `mailtrail ARGS... --config FILE` and returns its stdout (panics on failure).
    pub fn command(&self, args: &[&str]) -> String {
        let out = Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .unwrap_or_else(|e| panic!("run {BIN} {args:?}: {e}"));
        assert!(
            out.status.success(),
            "mailtrail {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("mailtrail prints UTF-8")
    }

    /// `mailtrail archive ls --json` (every message: `--limit` well above any test's count).
    pub fn archive_ls(&self) -> Vec<ArchivedMessage> {
        let out = self.command(&["archive", "ls", "--json", "--limit", "1000000"]);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("archive ls --json is not the expected JSON ({e}):\n{out}"))
    }

    /// The `archive ls` entry with Message-ID `message_id` (with or without brackets).
    pub fn find_message(&self, message_id: &str) -> Option<ArchivedMessage> {
        let want = message_id.trim_matches(['<', '>']);
        self.archive_ls()
            .into_iter()
            .find(|m| m.message_id_bare() == Some(want))
    }

    /// Waits until `archive ls` lists at least `n` messages and returns them.
    pub fn wait_for_archived(&self, n: usize, timeout: Duration) -> Vec<ArchivedMessage> {
        super::util::wait_for(
            timeout,
            &format!("{n} message(s) in mailtrail archive ls"),
            || {
                let all = self.archive_ls();
                (all.len() >= n).then_some(all)
            },
            || {
                format!(
                    "{} listed; daemon log tail:\n{}",
                    self.archive_ls().len(),
                    super::postfix::tail(&self.log(), 40)
                )
            },
        )
    }

    /// `mailtrail archive show ID --json`: the message with every recipient's attempts.
    pub fn archive_show(&self, id: i64) -> ArchivedMessage {
        let out = self.command(&["archive", "show", &id.to_string(), "--json"]);
        serde_json::from_str(&out).unwrap_or_else(|e| {
            panic!("archive show --json is not the expected JSON ({e}):\n{out}")
        })
    }

    /// `mailtrail counters --json`.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        let out = self.command(&["counters", "--json"]);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("counters --json is not the expected JSON ({e}):\n{out}"))
    }

    /// Waits until counter `name` reaches at least `value` (counters reach the store about
    /// once a second) and returns all counters.
    pub fn wait_counter(&self, name: &str, value: u64, timeout: Duration) -> BTreeMap<String, u64> {
        super::util::wait_for(
            timeout,
            &format!("mailtrail counter {name} to reach {value}"),
            || {
                let c = self.counters();
                (c.get(name).copied().unwrap_or(0) >= value).then_some(c)
            },
            || format!("{:?}", self.counters()),
        )
    }

    /// The error counters (`*_errors`: archive_errors, store_errors, ...).
    pub fn error_counters(&self) -> BTreeMap<String, u64> {
        self.counters()
            .into_iter()
            .filter(|(k, _)| k.ends_with("_errors"))
            .collect()
    }

    /// Waits until mailtrail's counters show `recorded` messages recorded, then panics unless
    /// exactly that many were recorded and archived and every error counter (`*_errors`:
    /// archive_errors, store_errors) is 0. Counters reach the store about once a second, in
    /// the same flush for a message's record and its errors, so waiting for the record count
    /// covers the errors of those messages too.
    pub fn assert_recorded_without_errors(&self, recorded: u64) {
        let counters = self.wait_counter("messages_recorded", recorded, Duration::from_secs(30));
        assert!(
            counters.contains_key("archive_errors") && counters.contains_key("store_errors"),
            "counters --json lacks archive_errors/store_errors: {counters:?}"
        );
        assert_eq!(counters["messages_recorded"], recorded, "{counters:?}");
        assert_eq!(
            counters.get("messages_archived"),
            Some(&recorded),
            "{counters:?}"
        );
        let nonzero: Vec<_> = counters
            .iter()
            .filter(|(k, v)| k.ends_with("_errors") && **v != 0)
            .collect();
        assert!(
            nonzero.is_empty(),
            "mailtrail counted errors: {nonzero:?}\ndaemon log tail:\n{}",
            super::postfix::tail(&self.log(), 40)
        );
    }
}

impl Drop for Mailtrail {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "--- log of the failed test's mailtrail, last 40 lines ---\n{}",
                super::postfix::tail(&self.log(), 40)
            );
        }
    }
}
