//! The suppression list: recipients a sender's domain must not mail again, because their
//! mailbox or domain is gone (learned from permanent failures) or an operator said so. This
//! module holds what an entry is, how an address or pattern is written, what a delivery
//! attempt teaches ([`learn`]) and the in-memory index the milter asks at RCPT ([`index`]);
//! the SQL is in `store::suppression`, the enforcement in the milter.

pub mod import;
pub mod index;
pub mod learn;

use crate::bounce::Category;
use serde::Serialize;
use std::fmt;

/// The sender domain of an entry that holds for every sender.
pub const ALL_SENDERS: &str = "*";

/// What an entry suppresses: one address, or every address of a domain (`*@example.com`).
/// Written lower-case: a suppression that a change of case evades would be none, and no mail
/// system delivers two mailboxes that differ only by case to different people.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Address(String),
    Domain(String),
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("`{0}` is not a mail address (user@example.com) or a domain pattern (*@example.com)")]
    NotAnAddress(String),
    #[error("`{0}` would match every address: give a domain (*@example.com)")]
    EveryAddress(String),
    #[error("`{0}` is not a sender domain (example.com, or * for every sender)")]
    NotADomain(String),
}

impl Target {
    /// Parses `user@example.com`, `<User@Example.COM>` or `*@example.com`.
    pub fn parse(text: &str) -> Result<Target, TargetError> {
        let bare = crate::model::address::strip_brackets(text).to_ascii_lowercase();
        let wrong = || TargetError::NotAnAddress(clip(text));
        let (local, domain) = bare.rsplit_once('@').ok_or_else(wrong)?;
        if local == "*" {
            if domain == "*" || domain.is_empty() {
                return Err(TargetError::EveryAddress(clip(text)));
            }
            return match is_domain(domain) {
                true => Ok(Target::Domain(domain.to_string())),
                false => Err(wrong()),
            };
        }
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local
                .contains(|c: char| c.is_whitespace() || c.is_control() || "<>*,;\"".contains(c));
        match local_ok && is_domain(domain) {
            true => Ok(Target::Address(bare)),
            false => Err(wrong()),
        }
    }

    /// The recipient's own address as a target; `None` for what no entry can match (no `@`).
    pub fn of_recipient(address: &str) -> Option<Target> {
        let bare = crate::model::address::strip_brackets(address).to_ascii_lowercase();
        bare.contains('@').then_some(Target::Address(bare))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Address(a) => f.write_str(a),
            Target::Domain(d) => write!(f, "*@{d}"),
        }
    }
}

/// A sender domain as an entry keeps it: lower-case, or [`ALL_SENDERS`].
pub fn parse_sender_domain(text: &str) -> Result<String, TargetError> {
    let text = text.trim().trim_start_matches('@').to_ascii_lowercase();
    if text == ALL_SENDERS {
        return Ok(text);
    }
    match is_domain(&text) {
        true => Ok(text),
        false => Err(TargetError::NotADomain(clip(&text))),
    }
}

/// An entry's sender domain as the pages and the command line write it.
pub fn sender_label(domain: &str) -> &str {
    match domain {
        ALL_SENDERS => "every sender",
        domain => domain,
    }
}

/// The domain of a sender address, lower-case; `None` for the null sender.
pub fn sender_domain_of(mail_from: &str) -> Option<String> {
    let (_, domain) = mail_from.rsplit_once('@')?;
    (!domain.is_empty()).then(|| domain.trim_end_matches('>').to_ascii_lowercase())
}

/// Whether the recipient is never suppressed: `postmaster@` any domain (RFC 5321 4.5.1: it
/// must always be reachable).
pub fn is_exempt(recipient: &str) -> bool {
    let bare = crate::model::address::strip_brackets(recipient);
    bare.rsplit_once('@')
        .map_or(bare.as_str(), |(local, _)| local)
        .eq_ignore_ascii_case("postmaster")
}

/// A DNS name or an address literal (`[192.0.2.1]`): what may follow the `@`.
fn is_domain(domain: &str) -> bool {
    if let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        let literal = literal.strip_prefix("ipv6:").unwrap_or(literal);
        return literal.parse::<std::net::IpAddr>().is_ok();
    }
    domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// Input quoted in an error, cut short and without control characters.
fn clip(text: &str) -> String {
    let cleaned: String = text.chars().filter(|c| !c.is_control()).take(100).collect();
    cleaned
}

/// An entry to add by hand, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSuppression {
    /// Lower-case, or [`ALL_SENDERS`].
    pub sender_domain: String,
    /// A [`Target`] written out.
    pub target: String,
    pub reason: Option<String>,
}

impl NewSuppression {
    /// Checks what an operator typed: the address or pattern, the sender domain, a reason
    /// (one line, at most 200 characters).
    pub fn parse(
        target: &str,
        sender_domain: &str,
        reason: Option<&str>,
    ) -> Result<NewSuppression, TargetError> {
        let reason = reason
            .map(|r| {
                r.chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .take(200)
                    .collect::<String>()
                    .trim()
                    .to_string()
            })
            .filter(|r| !r.is_empty());
        Ok(NewSuppression {
            sender_domain: parse_sender_domain(sender_domain)?,
            target: Target::parse(target)?.to_string(),
            reason,
        })
    }
}

/// Where an entry came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// From a permanent failure the log reported; a later delivery lifts it.
    Learned,
    /// Added by an operator (command line, pages, import); only an operator removes it.
    Manual,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Learned => "learned",
            Source::Manual => "manual",
        }
    }

    pub fn parse(text: &str) -> Option<Source> {
        match text {
            "learned" => Some(Source::Learned),
            "manual" => Some(Source::Manual),
            _ => None,
        }
    }
}

/// One entry of the list.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Suppression {
    pub id: i64,
    /// Lower-case, or [`ALL_SENDERS`].
    pub sender_domain: String,
    /// `user@example.com` or `*@example.com`.
    #[serde(rename = "address")]
    pub target: String,
    pub source: Source,
    pub category: Option<Category>,
    pub dsn: Option<String>,
    pub reply: Option<String>,
    pub queue_id: Option<String>,
    /// An operator's words (manual entries).
    pub reason: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; `None`: until removed.
    pub expires_at: Option<i64>,
}

impl Suppression {
    /// Why, in a few words: the category and status code of a learned entry, the operator's
    /// text (or "added by an operator") of a manual one.
    pub fn why(&self) -> String {
        match self.source {
            Source::Learned => match (&self.category, &self.dsn) {
                (Some(c), Some(dsn)) => format!("{c} ({dsn})"),
                (Some(c), None) => c.to_string(),
                (None, _) => "a permanent failure".into(),
            },
            Source::Manual => self
                .reason
                .clone()
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "added by an operator".into()),
        }
    }
}

/// The columns of the list as CSV (`suppress export`, the pages); `suppress import` reads
/// `sender_domain`, `address` and `reason` back.
pub const CSV_COLUMNS: [&str; 11] = [
    "sender_domain",
    "address",
    "source",
    "category",
    "dsn",
    "reason",
    "reply",
    "queue_id",
    "since",
    "expires",
    "id",
];

impl Suppression {
    /// This entry's fields in [`CSV_COLUMNS`]' order, times in `offset`.
    pub fn csv_fields(&self, offset: time::UtcOffset) -> Vec<String> {
        let time = |t: i64| crate::render::local_time(t, offset);
        vec![
            self.sender_domain.clone(),
            self.target.clone(),
            self.source.as_str().into(),
            self.category.map_or(String::new(), |c| c.to_string()),
            self.dsn.clone().unwrap_or_default(),
            self.reason.clone().unwrap_or_default(),
            self.reply.clone().unwrap_or_default(),
            self.queue_id.clone().unwrap_or_default(),
            time(self.created_at),
            self.expires_at.map_or(String::new(), time),
            self.id.to_string(),
        ]
    }
}

/// What `[suppression] mode` says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Nothing learned, nothing enforced.
    #[default]
    Off,
    /// Learned and shown, never refused: to see what `refuse` would do.
    Record,
    /// Recipients on the list are refused at RCPT.
    Refuse,
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(Mode::Off),
            "record" => Ok(Mode::Record),
            "refuse" => Ok(Mode::Refuse),
            _ => Err(format!(
                "unknown mode `{s}`: one of \"off\", \"record\", \"refuse\""
            )),
        }
    }
}

#[cfg(test)]
mod tests;
