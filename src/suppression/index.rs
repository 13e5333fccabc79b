//! The list in memory, for the milter's RCPT answer: a lookup never waits on disk or on the
//! store. The daemon loads it whole at start and then applies each change the store records
//! (`store::suppression`), a second or two after it is written, by whichever process wrote it.
//!
//! Sized for a million entries: an entry is its address (one allocation) and a 12-byte
//! [`Mark`], grouped under its sender domain, so no key repeats the domain of the sender.

use super::{ALL_SENDERS, Source, Suppression, Target};
use crate::bounce::Category;
use std::borrow::Cow;
use std::collections::HashMap;

/// What the milter needs of an entry to refuse with a reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    /// Unix seconds (to 2106).
    since: u32,
    /// Unix seconds; `u32::MAX`: until removed.
    expires: u32,
    /// Index into [`Category::ALL`]; `u8::MAX`: none.
    category: u8,
    manual: bool,
}

impl Mark {
    fn of(s: &Suppression) -> Mark {
        let seconds = |t: i64| t.clamp(0, i64::from(u32::MAX - 1)) as u32;
        Mark {
            since: seconds(s.created_at),
            expires: s.expires_at.map_or(u32::MAX, seconds),
            category: s
                .category
                .and_then(|c| Category::ALL.iter().position(|x| *x == c))
                .map_or(u8::MAX, |i| i as u8),
            manual: s.source == Source::Manual,
        }
    }

    fn live_at(&self, now: i64) -> bool {
        self.expires == u32::MAX || now < i64::from(self.expires)
    }

    pub fn since(&self) -> i64 {
        i64::from(self.since)
    }

    pub fn category(&self) -> Option<Category> {
        Category::ALL.get(usize::from(self.category)).copied()
    }

    pub fn source(&self) -> Source {
        match self.manual {
            true => Source::Manual,
            false => Source::Learned,
        }
    }
}

/// The entry a recipient matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    /// The entry's sender domain: the sender's, or [`ALL_SENDERS`].
    pub sender_domain: String,
    /// Whether the entry is the recipient's whole domain (`*@example.com`).
    pub whole_domain: bool,
    pub mark: Mark,
}

impl Hit {
    /// The RCPT reply's text (after `550 5.7.1`). Nothing in it comes from the mail: the
    /// address is the client's own, and MTAs treat `%` and line ends in milter replies in
    /// their own ways.
    pub fn reply_text(&self) -> String {
        let date = time::OffsetDateTime::from_unix_timestamp(self.mark.since())
            .map(|t| t.date().to_string())
            .unwrap_or_default();
        let reason = match (self.mark.source(), self.mark.category()) {
            (Source::Manual, _) => "added by an operator".to_string(),
            (Source::Learned, Some(c)) => format!("earlier mail failed permanently: {c}"),
            (Source::Learned, None) => "earlier mail failed permanently".to_string(),
        };
        let whom = match self.whole_domain {
            true => "this domain",
            false => "this recipient",
        };
        let senders = match self.sender_domain.as_str() {
            ALL_SENDERS => "every sender".to_string(),
            domain => domain.to_string(),
        };
        format!(
            "{whom} is on mailtrail's suppression list for mail from {senders} since {date} ({reason})"
        )
    }
}

#[derive(Default)]
struct SenderEntries {
    addresses: HashMap<Box<str>, Mark>,
    domains: HashMap<Box<str>, Mark>,
}

impl SenderEntries {
    fn is_empty(&self) -> bool {
        self.addresses.is_empty() && self.domains.is_empty()
    }
}

/// Every live entry, by sender domain.
#[derive(Default)]
pub struct SuppressionIndex {
    senders: HashMap<Box<str>, SenderEntries>,
    len: usize,
}

impl SuppressionIndex {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds or replaces an entry.
    pub fn insert(&mut self, entry: &Suppression) {
        let Ok(target) = Target::parse(&entry.target) else {
            return; // The store holds only parsed targets; anything else matches nothing.
        };
        let sender = self
            .senders
            .entry(entry.sender_domain.as_str().into())
            .or_default();
        let (map, key) = match target {
            Target::Address(a) => (&mut sender.addresses, a),
            Target::Domain(d) => (&mut sender.domains, d),
        };
        if map.insert(key.into_boxed_str(), Mark::of(entry)).is_none() {
            self.len += 1;
        }
    }

    /// Removes an entry, if present.
    pub fn remove(&mut self, sender_domain: &str, target: &str) {
        let Ok(target) = Target::parse(target) else {
            return;
        };
        let Some(sender) = self.senders.get_mut(sender_domain) else {
            return;
        };
        let removed = match &target {
            Target::Address(a) => sender.addresses.remove(a.as_str()),
            Target::Domain(d) => sender.domains.remove(d.as_str()),
        };
        if removed.is_some() {
            self.len -= 1;
        }
        if sender.is_empty() {
            self.senders.remove(sender_domain);
        }
    }

    /// The live entry that suppresses mail from `sender_domain` (lower-case) to `recipient`:
    /// the sender's own entries first, then those for every sender; an address before its
    /// domain.
    pub fn lookup(&self, sender_domain: &str, recipient: &str, now: i64) -> Option<Hit> {
        let recipient: Cow<str> = match recipient.bytes().any(|b| b.is_ascii_uppercase()) {
            true => Cow::Owned(recipient.to_ascii_lowercase()),
            false => Cow::Borrowed(recipient),
        };
        let (_, domain) = recipient.rsplit_once('@')?;
        for key in [sender_domain, ALL_SENDERS] {
            let Some(sender) = self.senders.get(key) else {
                continue;
            };
            let found = [
                (false, sender.addresses.get(recipient.as_ref())),
                (true, sender.domains.get(domain)),
            ];
            for (whole_domain, mark) in found {
                if let Some(mark) = mark.filter(|m| m.live_at(now)) {
                    return Some(Hit {
                        sender_domain: key.to_string(),
                        whole_domain,
                        mark: *mark,
                    });
                }
            }
        }
        None
    }
}
