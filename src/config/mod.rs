//! Configuration: the file as written (`format`), each value's type and parse error (`params`),
//! the file turned into the validated model one table at a time (`parse`, errors in `error`),
//! the model and its defaults (`model`, here), and live reloading on SIGHUP (`reload`).

mod error;
mod format;
mod model;
mod params;
mod parse;
mod password;
mod reload;
pub mod users;

pub use error::ConfigError;
pub use model::*;
pub use params::{Interval, ListenSocket, ParseParamError, ServerAddr, TimeOfDay, Weekday};
pub use parse::{load, parse, web_user_line};
pub use password::{DUMMY_HASH, PasswordError, hash_password, verify_password};
pub use reload::{ConfigHandle, Source};

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

/// Where the configuration lives unless `--config` says otherwise.
pub const DEFAULT_PATH: &str = "/etc/mailtrail/mailtrail.toml";
/// The SQLite file and the Maildir, relative to the state directory.
pub const DB_FILE: &str = "mailtrail.db";
pub const ARCHIVE_DIR: &str = "archive";

impl Config {
    /// Built-in defaults: what `mailtrail run` uses with no configuration file.
    pub fn defaults() -> Config {
        let state_dir = default_state_dir();
        Config {
            source: None,
            milter: MilterConfig {
                listen: ListenAddr::Inet(([127, 0, 0, 1], 8899).into()),
                on_error: OnError::Continue,
                max_recipients: 1000,
                max_headers: 1000,
                max_connections: 200,
                idle_timeout: Duration::from_secs(330),
            },
            archive: ArchiveConfig {
                maildir: true,
                dir: state_dir.join(ARCHIVE_DIR),
                retention: Duration::from_secs(7 * 24 * 3600),
                max_message_size: 50 * 1000 * 1000,
                exclude: Vec::new(),
                bcc: None,
                sweep_interval: Duration::from_secs(3600),
            },
            store: StoreConfig {
                path: state_dir.join(DB_FILE),
            },
            maillog: MaillogConfig {
                source: LogSource::File("/var/log/mail.log".into()),
                syslog_names: vec!["postfix".into()],
                raw_retention: Duration::from_secs(7 * 24 * 3600),
                poll_interval: Duration::from_millis(250),
            },
            notify: NotifyConfig {
                enabled: false,
                smtp_host: "127.0.0.1".into(),
                smtp_port: 25,
                reporting_mta: hostname::get()
                    .ok()
                    .and_then(|h| h.into_string().ok())
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "localhost".into()),
                language: Language::En,
                tick: Duration::from_secs(30),
            },
            report: ReportConfig {
                enabled: false,
                recipients: Vec::new(),
                from: None,
                weekday: time::Weekday::Monday,
                at: time::Time::from_hms(7, 0, 0).expect("a valid time"),
                base_url: None,
            },
            web: WebConfig {
                enabled: true,
                listen: ([127, 0, 0, 1], 8025).into(),
                secure_cookie: false,
                stats_refresh: Duration::from_secs(300),
                tls: None,
                users: Vec::new(),
            },
            fleet: None,
            suppression: SuppressionConfig::default(),
            bounce_rules: None,
            policies: BTreeMap::from([
                ("normal".to_string(), Policy::normal()),
                ("bulk".to_string(), Policy::bulk()),
            ]),
            senders: Vec::new(),
            mta: MtaConfig::defaults(MtaKind::Postfix),
            state_dir,
        }
    }
}

/// `$STATE_DIRECTORY` when systemd sets it (the first entry if several), else `./mailtrail-data`.
fn default_state_dir() -> PathBuf {
    std::env::var_os("STATE_DIRECTORY")
        .and_then(|dirs| {
            let first = dirs
                .to_string_lossy()
                .split(':')
                .next()
                .map(str::to_owned)?;
            (!first.is_empty()).then(|| PathBuf::from(first))
        })
        .unwrap_or_else(|| PathBuf::from("mailtrail-data"))
}

#[cfg(test)]
mod tests;
