//! The configuration file as written: one serde struct per table, every value kept with its
//! span (for errors that name the line). Nothing here is checked; `parse` turns it into the
//! model.

use std::collections::BTreeMap;
use toml::Spanned;

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) state: Option<RawState>,
    pub(super) milter: Option<RawMilter>,
    pub(super) archive: Option<RawArchive>,
    pub(super) store: Option<RawStore>,
    pub(super) maillog: Option<RawMaillog>,
    pub(super) notify: Option<RawNotify>,
    pub(super) web: Option<RawWeb>,
    pub(super) fleet: Option<Spanned<RawFleet>>,
    pub(super) report: Option<RawReport>,
    pub(super) bounce: Option<RawBounce>,
    pub(super) suppression: Option<RawSuppression>,
    #[serde(default)]
    pub(super) policy: BTreeMap<String, Spanned<RawPolicy>>,
    #[serde(default)]
    pub(super) sender: Vec<Spanned<RawSender>>,
    pub(super) mta: Option<RawMta>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMta {
    pub(super) kind: Option<Spanned<String>>,
    pub(super) config_dir: Option<Spanned<String>>,
    pub(super) retry: Option<Spanned<Vec<String>>>,
    pub(super) remove: Option<Spanned<Vec<String>>>,
    pub(super) timeout: Option<Spanned<String>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    pub(super) dir: Option<Spanned<String>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMilter {
    pub(super) listen: Option<Spanned<String>>,
    pub(super) on_error: Option<Spanned<String>>,
    pub(super) max_recipients: Option<Spanned<i64>>,
    pub(super) max_headers: Option<Spanned<i64>>,
    pub(super) max_connections: Option<Spanned<i64>>,
    pub(super) idle_timeout: Option<Spanned<String>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawArchive {
    pub(super) maildir: Option<bool>,
    pub(super) dir: Option<Spanned<String>>,
    pub(super) retention: Option<Spanned<String>>,
    pub(super) max_message_size: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub(super) exclude: Vec<Spanned<String>>,
    pub(super) bcc: Option<Spanned<String>>,
    pub(super) sweep_interval: Option<Spanned<String>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    pub(super) path: Option<Spanned<String>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMaillog {
    pub(super) source: Option<Spanned<String>>,
    pub(super) syslog_names: Option<Vec<String>>,
    pub(super) raw_retention: Option<Spanned<String>>,
    pub(super) poll_interval: Option<Spanned<String>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    pub(super) enabled: Option<bool>,
    pub(super) smtp: Option<Spanned<String>>,
    pub(super) reporting_mta: Option<Spanned<String>>,
    pub(super) language: Option<Spanned<String>>,
    pub(super) tick: Option<Spanned<String>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWeb {
    pub(super) enabled: Option<bool>,
    pub(super) listen: Option<Spanned<String>>,
    pub(super) secure_cookie: Option<bool>,
    pub(super) stats_refresh: Option<Spanned<String>>,
    pub(super) tls_cert: Option<Spanned<String>>,
    pub(super) tls_key: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) user: Vec<Spanned<RawWebUser>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReport {
    pub(super) enabled: Option<Spanned<bool>>,
    pub(super) recipients: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) from: Option<Spanned<String>>,
    pub(super) weekday: Option<Spanned<String>>,
    pub(super) time: Option<Spanned<String>>,
    pub(super) base_url: Option<Spanned<String>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebUser {
    pub(super) name: Option<Spanned<String>>,
    pub(super) password_hash: Option<Spanned<String>>,
    pub(super) domains: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSuppression {
    pub(super) mode: Option<Spanned<String>>,
    pub(super) categories: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) full_mailbox_after: Option<Spanned<i64>>,
    pub(super) keep: Option<Spanned<String>>,
    pub(super) modes: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBounce {
    pub(super) rules: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    pub(super) retry_every: Option<Spanned<String>>,
    pub(super) warn_after: Option<Spanned<String>>,
    pub(super) give_up_after: Option<Spanned<String>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSender {
    #[serde(rename = "match")]
    pub(super) pattern: Option<Spanned<String>>,
    pub(super) sasl_user: Option<Spanned<String>>,
    pub(super) mode: Option<Spanned<String>>,
    pub(super) receipts: Option<Spanned<toml::Value>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFleet {
    pub(super) database: Option<Spanned<String>>,
    pub(super) host: Option<Spanned<String>>,
    pub(super) token: Option<Spanned<String>>,
    pub(super) url: Option<Spanned<String>>,
    pub(super) ca: Option<Spanned<String>>,
}
