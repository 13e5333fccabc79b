//! The list in memory, for the milter's RCPT answer: a lookup never waits on disk or on the
//! store. The daemon loads it whole at start and then applies each change the store records
//! (`store::suppression`), a second or two after it is written, by whichever process wrote it.
//!
//! Sized for a million entries: an entry is its address's bytes in an arena and a 20-byte
//! slot, grouped under its sender domain, so no key repeats the domain of the sender.

use super::{ALL_SENDERS, Source, Suppression, Target};
use crate::bounce::Category;
use foldhash::fast::RandomState;
use hashbrown::HashTable;
use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasher;

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

/// One sender domain's entries: every key's bytes back to back in one arena, and a hash
/// table of small fixed-size slots pointing into it. A million entries of typical addresses
/// take some 65 MB this way; a map of boxed strings took 117 MB (an allocation per key).
struct SenderEntries {
    arena: String,
    table: HashTable<Slot>,
    /// Bytes of removed keys still in the arena; compacted when they are most of it.
    garbage: usize,
}

#[derive(Clone, Copy)]
struct Slot {
    start: u32,
    len: u16,
    /// A `*@domain` entry (the key is the domain).
    whole_domain: bool,
    mark: Mark,
}

impl SenderEntries {
    fn new() -> Self {
        SenderEntries {
            arena: String::new(),
            table: HashTable::new(),
            garbage: 0,
        }
    }

    fn get(&self, hasher: &RandomState, whole_domain: bool, key: &str) -> Option<Mark> {
        self.table
            .find(hash(hasher, whole_domain, key), |slot| {
                slot.whole_domain == whole_domain && slot_key(&self.arena, slot) == key
            })
            .map(|slot| slot.mark)
    }

    /// True when the key is new.
    fn insert(&mut self, hasher: &RandomState, whole_domain: bool, key: &str, mark: Mark) -> bool {
        let Ok(len) = u16::try_from(key.len()) else {
            return false; // Longer than any address: never looked up.
        };
        let arena = &self.arena;
        let entry = self.table.entry(
            hash(hasher, whole_domain, key),
            |slot| slot.whole_domain == whole_domain && slot_key(arena, slot) == key,
            |slot| hash(hasher, slot.whole_domain, slot_key(arena, slot)),
        );
        match entry {
            hashbrown::hash_table::Entry::Occupied(mut occupied) => {
                occupied.get_mut().mark = mark;
                false
            }
            hashbrown::hash_table::Entry::Vacant(vacant) => {
                let start = self.arena.len() as u32;
                vacant.insert(Slot {
                    start,
                    len,
                    whole_domain,
                    mark,
                });
                self.arena.push_str(key);
                true
            }
        }
    }

    /// True when the key was there.
    fn remove(&mut self, hasher: &RandomState, whole_domain: bool, key: &str) -> bool {
        let arena = &self.arena;
        let Ok(found) = self
            .table
            .find_entry(hash(hasher, whole_domain, key), |slot| {
                slot.whole_domain == whole_domain && slot_key(arena, slot) == key
            })
        else {
            return false;
        };
        let (slot, _) = found.remove();
        self.garbage += usize::from(slot.len);
        if self.garbage > self.arena.len() / 2 {
            self.compact();
        }
        true
    }

    /// Copies the live keys to a new arena.
    fn compact(&mut self) {
        let mut arena = String::with_capacity(self.arena.len() - self.garbage);
        for slot in self.table.iter_mut() {
            let key = slot_key(&self.arena, slot);
            slot.start = arena.len() as u32;
            arena.push_str(key);
        }
        self.arena = arena;
        self.garbage = 0;
    }

    fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

fn slot_key<'a>(arena: &'a str, slot: &Slot) -> &'a str {
    &arena[slot.start as usize..slot.start as usize + usize::from(slot.len)]
}

fn hash(hasher: &RandomState, whole_domain: bool, key: &str) -> u64 {
    hasher.hash_one((whole_domain, key))
}

/// Every live entry, by sender domain.
#[derive(Default)]
pub struct SuppressionIndex {
    senders: HashMap<Box<str>, SenderEntries>,
    /// Seeded per process: keys come from mail.
    hasher: RandomState,
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
            .or_insert_with(SenderEntries::new);
        let (whole_domain, key) = match &target {
            Target::Address(a) => (false, a.as_str()),
            Target::Domain(d) => (true, d.as_str()),
        };
        if sender.insert(&self.hasher, whole_domain, key, Mark::of(entry)) {
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
        let (whole_domain, key) = match &target {
            Target::Address(a) => (false, a.as_str()),
            Target::Domain(d) => (true, d.as_str()),
        };
        if sender.remove(&self.hasher, whole_domain, key) {
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
            for (whole_domain, wanted) in [(false, recipient.as_ref()), (true, domain)] {
                let mark = sender.get(&self.hasher, whole_domain, wanted);
                if let Some(mark) = mark.filter(|m| m.live_at(now)) {
                    return Some(Hit {
                        sender_domain: key.to_string(),
                        whole_domain,
                        mark,
                    });
                }
            }
        }
        None
    }
}
