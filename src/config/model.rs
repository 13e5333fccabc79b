//! The validated configuration: what the rest of mailtrail reads.

use std::{collections::BTreeMap, fmt, net::SocketAddr, path::PathBuf, time::Duration};

/// Where the milter listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    Inet(SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Inet(addr) => write!(f, "inet:{addr}"),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// What the milter answers when mailtrail itself fails on a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Let the mail through; the failure is logged and counted.
    Continue,
    /// Ask the client to retry later: for sites that must archive everything.
    Tempfail,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MilterConfig {
    pub listen: ListenAddr,
    pub on_error: OnError,
    /// Recipients recorded per message; more are counted, not stored.
    pub max_recipients: usize,
    /// Headers recorded per message; the archive copy still holds all of them.
    pub max_headers: usize,
    /// MTA connections at once; more are closed at once (logged and counted), so the MTA
    /// applies its default action without waiting.
    pub max_connections: usize,
    /// A connection silent this long is closed: longer than any wait the MTA's own timeouts
    /// allow between two milter commands (postfix `smtpd_timeout` and `milter_content_timeout`,
    /// 300 s each; sendmail's `T=E:5m`).
    pub idle_timeout: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ArchiveConfig {
    /// Keep copies in the Maildir (`false` when only `bcc` is wanted).
    pub maildir: bool,
    pub dir: PathBuf,
    pub retention: Duration,
    /// Larger messages are recorded but not archived.
    pub max_message_size: u64,
    /// Senders whose mail is never copied.
    pub exclude: Vec<AddressPattern>,
    /// A mailbox the MTA delivers an extra copy of every message to.
    pub bcc: Option<String>,
    pub sweep_interval: Duration,
}

/// Where the MTA's log is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogSource {
    /// A file followed as it grows, across rotation.
    File(PathBuf),
    /// The systemd journal, through `journalctl --follow --output=json`.
    Journald,
    /// Standard input (e.g. piped from another log shipper).
    Stdin,
    /// Delivery tracking off.
    Off,
}

impl fmt::Display for LogSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogSource::File(path) => write!(f, "file:{}", path.display()),
            LogSource::Journald => f.write_str("journald"),
            LogSource::Stdin => f.write_str("stdin"),
            LogSource::Off => f.write_str("off"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct MaillogConfig {
    pub source: LogSource,
    /// Postfix `syslog_name`s besides `postfix` and any `postfix-NAME`.
    pub syslog_names: Vec<String>,
    /// Raw log lines are kept this long for the raw-log pages.
    pub raw_retention: Duration,
    pub poll_interval: Duration,
}

/// Sender notices and the policy tick that decides them.
#[derive(Clone, Debug, PartialEq)]
pub struct NotifyConfig {
    /// Off by default: mailtrail sends nothing to senders until the operator says so.
    pub enabled: bool,
    /// The SMTP server notices are submitted to (usually the local MTA).
    pub smtp_host: String,
    pub smtp_port: u16,
    /// This host's name in `Reporting-MTA` and `MAILER-DAEMON@`.
    pub reporting_mta: String,
    pub language: Language,
    /// How often the policy is applied to every open message.
    pub tick: Duration,
}

/// The status pages: where they listen and who may log in.
#[derive(Clone, Debug, PartialEq)]
pub struct WebConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// Mark the session cookie `Secure` (set when a TLS proxy sits in front; implied by `tls`).
    pub secure_cookie: bool,
    /// How often the daemon refreshes the statistics rollups.
    pub stats_refresh: Duration,
    /// Serve HTTPS instead of HTTP.
    pub tls: Option<WebTls>,
    pub users: Vec<WebUser>,
}

/// The certificate and key the pages are served with over HTTPS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebTls {
    /// PEM file: the server certificate, then any intermediates.
    pub cert: PathBuf,
    /// PEM file: the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// A login of the status pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebUser {
    pub name: String,
    /// An argon2id PHC string, as printed by `mailtrail hash-password`.
    pub password_hash: String,
    /// Lower-case sender domains this user may see; empty: every message.
    pub domains: Vec<String>,
}

impl WebUser {
    /// Whether this user may see a message sent by `mail_from`.
    pub fn may_see(&self, mail_from: &str) -> bool {
        self.domains.is_empty()
            || mail_from.rsplit_once('@').is_some_and(|(_, domain)| {
                self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
            })
    }
}

/// The weekly summary e-mail (`[report]`).
#[derive(Clone, Debug, PartialEq)]
pub struct ReportConfig {
    /// Off by default, like every mail mailtrail itself sends.
    pub enabled: bool,
    /// Who gets it; checked addresses.
    pub recipients: Vec<String>,
    /// `From:`; `None`: `mailtrail@` the reporting host (`notify.reporting_mta`).
    pub from: Option<String>,
    /// When it goes out, in the server's local time. It covers the seven days before that
    /// day, compared with the seven days before those.
    pub weekday: time::Weekday,
    pub at: time::Time,
    /// Where the status pages are reached from a mail client (links in the report); `None`:
    /// no links.
    pub base_url: Option<String>,
}

/// `[suppression]`: the list of recipients each sender domain must not mail again.
#[derive(Clone, Debug, PartialEq)]
pub struct SuppressionConfig {
    pub mode: crate::suppression::Mode,
    /// Categories of a permanent failure that suppress the recipient at once.
    pub categories: Vec<crate::bounce::Category>,
    /// `full-mailbox` suppresses after this many permanent failures in a row; 0: never.
    pub full_mailbox_after: u32,
    /// Learned entries expire after this long.
    pub keep: Duration,
    /// Enforced only for senders of these policy modes; empty: every mode.
    pub modes: Vec<String>,
}

impl Default for SuppressionConfig {
    fn default() -> Self {
        use crate::bounce::Category;
        SuppressionConfig {
            mode: crate::suppression::Mode::Off,
            categories: vec![
                Category::InvalidMailbox,
                Category::InvalidDomain,
                Category::InactiveMailbox,
            ],
            full_mailbox_after: 3,
            keep: Duration::from_secs(90 * 24 * 3600),
            modes: Vec::new(),
        }
    }
}

impl SuppressionConfig {
    /// Whether mail of a sender in policy `mode` is refused for suppressed recipients.
    pub fn refuses_for(&self, mode: &str) -> bool {
        self.mode == crate::suppression::Mode::Refuse
            && (self.modes.is_empty() || self.modes.iter().any(|m| m == mode))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct StoreConfig {
    pub path: PathBuf,
}

/// A sender's delivery promise (see DESIGN.md, "retry policy").
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Policy {
    #[serde(with = "humantime_serde")]
    pub retry_every: Duration,
    /// `None`: this mode never sends a delay warning.
    #[serde(with = "humantime_serde::option")]
    pub warn_after: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub give_up_after: Duration,
}

impl Policy {
    pub fn normal() -> Self {
        Policy {
            retry_every: Duration::from_secs(10 * 60),
            warn_after: Some(Duration::from_secs(30 * 60)),
            give_up_after: Duration::from_secs(4 * 3600),
        }
    }

    pub fn bulk() -> Self {
        Policy {
            retry_every: Duration::from_secs(30 * 60),
            warn_after: None,
            give_up_after: Duration::from_secs(24 * 3600),
        }
    }
}

/// An address or a whole domain, as written by the operator: `user@example.com` or `@example.com`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddressPattern {
    Address(String),
    Domain(String),
}

impl AddressPattern {
    /// Parses `user@example.com` or `@example.com`; compares case-insensitively.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().to_ascii_lowercase();
        if let Some(domain) = text.strip_prefix('@') {
            (!domain.is_empty() && !domain.contains('@'))
                .then(|| AddressPattern::Domain(domain.into()))
        } else {
            let (local, domain) = text.rsplit_once('@')?;
            (!local.is_empty() && !domain.is_empty()).then_some(AddressPattern::Address(text))
        }
    }

    pub fn matches(&self, address: &str) -> bool {
        match self {
            AddressPattern::Address(a) => a.eq_ignore_ascii_case(address),
            AddressPattern::Domain(d) => address
                .rsplit_once('@')
                .is_some_and(|(_, domain)| domain.eq_ignore_ascii_case(d)),
        }
    }
}

/// What a `[[sender]]` entry matches on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SenderMatch {
    Pattern(AddressPattern),
    SaslUser(String),
}

/// Whether and how a sender gets return receipts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Receipts {
    #[default]
    Off,
    /// mailtrail sends a receipt once every recipient reached a final state.
    On,
    /// The destination servers send them: the milter asks for `NOTIFY=SUCCESS,FAILURE,DELAY`.
    Dsn,
}

impl fmt::Display for SenderMatch {
    /// As written in the file: `match = "..."` or `sasl_user = "..."`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SenderMatch::Pattern(AddressPattern::Address(a)) => write!(f, "match = {a:?}"),
            SenderMatch::Pattern(AddressPattern::Domain(d)) => write!(f, "match = \"@{d}\""),
            SenderMatch::SaslUser(u) => write!(f, "sasl_user = {u:?}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SenderRule {
    pub matcher: SenderMatch,
    pub mode: String,
    pub receipts: Receipts,
}

/// The policy a message gets, resolved once at arrival and stored with it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SenderPolicy {
    pub mode: String,
    pub receipts: Receipts,
}

/// Which MTA mailtrail controls (retry and remove by queue id).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MtaKind {
    #[default]
    Postfix,
    Sendmail,
}

/// The placeholder in `[mta]` command lists that becomes the queue id.
pub const QUEUE_ID_PLACEHOLDER: &str = "{queue_id}";

/// How mailtrail asks the MTA to retry or drop one queued message (see `src/mta`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MtaConfig {
    pub kind: MtaKind,
    /// postfix `-c DIR` / sendmail `-C FILE`, added after the program name of the MTA's own
    /// tools (`postqueue`, `postsuper`, `sendmail`).
    pub config_dir: Option<PathBuf>,
    /// argv of the retry command; every element may contain `{queue_id}`.
    pub retry: Vec<String>,
    /// argv of the remove command.
    pub remove: Vec<String>,
    /// A command still running after this long is killed and counts as failed.
    pub timeout: Duration,
}

impl MtaConfig {
    pub fn defaults(kind: MtaKind) -> MtaConfig {
        let argv = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        let (retry, remove) = match kind {
            MtaKind::Postfix => (
                argv(&["postqueue", "-i", QUEUE_ID_PLACEHOLDER]),
                argv(&["postsuper", "-d", QUEUE_ID_PLACEHOLDER]),
            ),
            MtaKind::Sendmail => (
                argv(&["sendmail", "-qI{queue_id}"]),
                argv(&[
                    "sh",
                    "-c",
                    SENDMAIL_REMOVE_SCRIPT,
                    "mailtrail-remove",
                    QUEUE_ID_PLACEHOLDER,
                    SENDMAIL_QUEUE_DIR,
                ]),
            ),
        };
        MtaConfig {
            kind,
            config_dir: None,
            retry,
            remove,
            timeout: Duration::from_secs(30),
        }
    }
}

/// sendmail has no command that deletes one queued message without bouncing it
/// (`-O Timeout.queuereturn=now` would mail the sender a second, MTA-made failure notice). So
/// the default removes its queue files, under the lock a queue runner takes: sendmail on Linux
/// locks `qfID` with flock(2), and `flock -n` fails (the command fails, mailtrail retries later)
/// while a runner is delivering it; a missing `qfID` fails too. `$1` is the checked queue id,
/// `$2` the queue directory (the last element of the default list: change it when
/// `QueueDirectory` is not /var/spool/mqueue; queue groups and qf/df subdirectories need a
/// command of their own).
pub const SENDMAIL_REMOVE_SCRIPT: &str = "cd -- \"$2\" && test -e \"qf$1\" && \
     exec flock -n \"qf$1\" rm -f -- \"qf$1\" \"df$1\" \"xf$1\"";

/// Where Debian's sendmail queues mail; the default `mta.remove` works there.
pub const SENDMAIL_QUEUE_DIR: &str = "/var/spool/mqueue";

/// The `[[sender]]` entry that decided a sender's policy.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MatchedRule {
    /// 0-based position among the `[[sender]]` entries, as in error messages (`sender[2]`).
    pub index: usize,
    pub matcher: String,
}

/// A sender's policy and where it came from; `rule: None` is the default.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SenderExplanation {
    pub policy: SenderPolicy,
    pub rule: Option<MatchedRule>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The file this was read from; `None` for built-in defaults.
    pub source: Option<PathBuf>,
    pub state_dir: PathBuf,
    pub milter: MilterConfig,
    pub archive: ArchiveConfig,
    pub store: StoreConfig,
    pub maillog: MaillogConfig,
    pub notify: NotifyConfig,
    pub web: WebConfig,
    /// `[fleet]`: ship this host's records to the fleet database; `None` keeps them local.
    pub fleet: Option<FleetConfig>,
    pub report: ReportConfig,
    pub suppression: SuppressionConfig,
    /// Extra bounce classification rules, tried before the built-in ones.
    pub bounce_rules: Option<PathBuf>,
    /// Named modes; `normal` and `bulk` always exist.
    pub policies: BTreeMap<String, Policy>,
    pub senders: Vec<SenderRule>,
    pub mta: MtaConfig,
}

pub const DEFAULT_MODE: &str = "normal";

impl Config {
    /// Resolves the policy for a message: the most specific `[[sender]]` rule wins
    /// (exact address, then SASL user, then domain); otherwise the `normal` mode.
    pub fn sender_policy(&self, mail_from: &str, sasl_user: Option<&str>) -> SenderPolicy {
        self.explain_sender(mail_from, sasl_user).policy
    }

    /// [`Config::sender_policy`] with the rule that decided it, for operators asking why a
    /// sender got (or did not get) a notice.
    pub fn explain_sender(&self, mail_from: &str, sasl_user: Option<&str>) -> SenderExplanation {
        let rank = |rule: &SenderRule| match &rule.matcher {
            SenderMatch::Pattern(p @ AddressPattern::Address(_)) if p.matches(mail_from) => Some(0),
            SenderMatch::SaslUser(user) if sasl_user == Some(user.as_str()) => Some(1),
            SenderMatch::Pattern(p @ AddressPattern::Domain(_)) if p.matches(mail_from) => Some(2),
            _ => None,
        };
        // min_by_key keeps the first of equals: the earlier rule wins a tie.
        let matched = self
            .senders
            .iter()
            .enumerate()
            .filter_map(|(index, rule)| rank(rule).map(|r| (r, index, rule)))
            .min_by_key(|(r, _, _)| *r);
        match matched {
            Some((_, index, rule)) => SenderExplanation {
                policy: SenderPolicy {
                    mode: rule.mode.clone(),
                    receipts: rule.receipts,
                },
                rule: Some(MatchedRule {
                    index,
                    matcher: rule.matcher.to_string(),
                }),
            },
            None => SenderExplanation {
                policy: SenderPolicy {
                    mode: DEFAULT_MODE.into(),
                    receipts: Receipts::Off,
                },
                rule: None,
            },
        }
    }

    pub fn policy(&self, mode: &str) -> Option<&Policy> {
        self.policies.get(mode)
    }

    /// The longest `give_up_after` of any mode: how long a message may stay open.
    pub fn longest_give_up_after(&self) -> std::time::Duration {
        self.policies
            .values()
            .map(|p| p.give_up_after)
            .max()
            .unwrap_or_default()
    }

    /// Whether a sender's mail must not be archived.
    pub fn archive_excluded(&self, mail_from: &str) -> bool {
        self.archive.exclude.iter().any(|p| p.matches(mail_from))
    }
}

/// The language of a notice's readable part and subject.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    En,
    It,
}

/// `[fleet]`: this host as one of several whose records meet in one PostgreSQL database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetConfig {
    pub database: FleetDatabase,
    /// The name this host's records carry: `[fleet] host`, or the system's short host name.
    pub host: HostLabel,
    /// The fleet's shared secret: the dashboard's key to each host's archived copies.
    pub token: Option<FleetToken>,
    /// Where the dashboard asks for this host's archived copies.
    pub url: String,
    /// PEM certificates trusted for the database's TLS besides the system's roots (an
    /// internal CA).
    pub ca: Option<std::path::PathBuf>,
}

/// A PostgreSQL connection string, checked when the configuration is read. Shown (in logs,
/// `Debug`) without its password.
#[derive(Clone, PartialEq, Eq)]
pub struct FleetDatabase(pub(super) String);

impl FleetDatabase {
    pub fn connection(&self) -> tokio_postgres::Config {
        // Checked by its FromStr when the configuration was read.
        self.0.parse().expect("a checked connection string")
    }
}

impl std::fmt::Display for FleetDatabase {
    /// `HOST:PORT/DATABASE as USER`, never the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let config = self.connection();
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(name)) => name.clone(),
            Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
            None => "?".into(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        write!(
            f,
            "{host}:{port}/{} as {}",
            config.get_dbname().unwrap_or("(user's database)"),
            config.get_user().unwrap_or("(login user)")
        )
    }
}

impl std::fmt::Debug for FleetDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FleetDatabase({self})")
    }
}

/// One DNS label, lower case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostLabel(pub String);

impl HostLabel {
    /// The system's host name up to its first dot, when that is a label; else `mta`.
    pub fn from_system() -> HostLabel {
        hostname::get()
            .ok()
            .and_then(|name| {
                let name = name.to_string_lossy().into_owned();
                name.split('.').next().and_then(|short| short.parse().ok())
            })
            .unwrap_or_else(|| HostLabel("mta".into()))
    }
}

/// The fleet's shared secret; never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct FleetToken(pub(super) String);

impl FleetToken {
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for FleetToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FleetToken(…)")
    }
}
