//! The suppression list's statements. Every change (an entry added, learned, lifted, removed or
//! expired) takes the next number of one counter, and removals stay as tombstones for a day,
//! so the daemon's in-memory index follows every writer — itself, the command line, the
//! pages — by asking for the changes past the last number it applied.

use super::{Store, StoreError, named, summaries::DomainScope};
use crate::{
    bounce::Category,
    config::SuppressionConfig,
    model::status::DeliveryStatus,
    suppression::{
        NewSuppression, Source, Suppression,
        learn::{Lesson, lesson},
        sender_domain_of,
    },
};
use rusqlite::{OptionalExtension, Transaction, params, params_from_iter};

/// Removed entries are kept this long, for indexes that have not yet applied the removal (the
/// daemon's applies it within seconds; one that was down reloads the whole list).
const TOMBSTONE_SECS: i64 = 86_400;
/// Attempts read per learning round.
pub const LEARN_BATCH: u64 = 5_000;

/// One change to the list, for the in-memory index.
#[derive(Clone, Debug, PartialEq)]
pub enum SuppressionChange {
    Live(Suppression),
    Gone {
        sender_domain: String,
        target: String,
    },
}

/// An entry as it travels between a host and the fleet database: its state after its last
/// change (`removed_at` for a removal), and the host that made it.
#[derive(Clone, Debug, PartialEq)]
pub struct SharedSuppression {
    pub entry: Suppression,
    pub removed_at: Option<i64>,
    pub host: String,
}

impl SharedSuppression {
    /// When it last changed: a newer change wins, on every host and in the fleet database.
    pub fn changed_at(&self) -> i64 {
        self.removed_at.unwrap_or(self.entry.created_at)
    }
}

/// What a learning round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Learned {
    pub attempts: u64,
    pub suppressed: u64,
    pub lifted: u64,
    pub strikes: u64,
}

/// Which entries a list shows.
#[derive(Clone, Debug)]
pub struct SuppressionFilter {
    pub scope: DomainScope,
    /// One sender domain (or `*`: the entries for every sender).
    pub sender_domain: Option<String>,
    /// A substring of the suppressed address.
    pub target: Option<String>,
    pub limit: u32,
    pub offset: u32,
}

impl SuppressionFilter {
    pub fn new(scope: DomainScope) -> Self {
        SuppressionFilter {
            scope,
            sender_domain: None,
            target: None,
            limit: u32::MAX,
            offset: 0,
        }
    }
}

const COLUMNS: &str = "id, sender_domain, target, source, category, dsn, reply, queue_id, reason,
    created_at, expires_at";

fn entry(row: &rusqlite::Row) -> rusqlite::Result<Suppression> {
    let source: String = row.get(3)?;
    Ok(Suppression {
        id: row.get(0)?,
        sender_domain: row.get(1)?,
        target: row.get(2)?,
        source: Source::parse(&source).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                3,
                rusqlite::types::Type::Text,
                format!("unknown source `{source}`").into(),
            )
        })?,
        category: match row.get::<_, Option<String>>(4)? {
            Some(_) => Some(named::<Category>(row, 4)?),
            None => None,
        },
        dsn: row.get(5)?,
        reply: row.get(6)?,
        queue_id: row.get(7)?,
        reason: row.get(8)?,
        created_at: row.get(9)?,
        expires_at: row.get(10)?,
    })
}

/// The next change number.
fn next_change(tx: &Transaction) -> Result<i64, StoreError> {
    Ok(tx.query_row(
        "UPDATE suppression_state SET value = value + 1 WHERE name = 'changes' RETURNING value",
        [],
        |row| row.get(0),
    )?)
}

/// Marks the live entry (sender domain, target) removed; `learned_only` spares manual ones.
fn remove_entry(
    tx: &Transaction,
    sender_domain: &str,
    target: &str,
    now: i64,
    learned_only: bool,
) -> Result<bool, StoreError> {
    let change = next_change(tx)?;
    let removed = tx.execute(
        "UPDATE suppression SET removed_at = ?4, changed = ?5, origin = NULL
        WHERE sender_domain = ?1 AND target = ?2 AND removed_at IS NULL
            AND (NOT ?3 OR source = 'learned')",
        params![sender_domain, target, learned_only, now, change],
    )?;
    Ok(removed > 0)
}

impl Store {
    /// Adds (or replaces) entries by hand, all or none.
    pub fn suppression_add(
        &mut self,
        entries: &[NewSuppression],
        now: i64,
    ) -> Result<usize, StoreError> {
        let tx = self.write_transaction()?;
        for e in entries {
            let change = next_change(&tx)?;
            tx.execute(
                "INSERT INTO suppression (sender_domain, target, source, reason, created_at, changed)
                VALUES (?1, ?2, 'manual', ?3, ?4, ?5)
                ON CONFLICT (sender_domain, target) DO UPDATE SET source = 'manual',
                    category = NULL, dsn = NULL, reply = NULL, queue_id = NULL,
                    reason = excluded.reason, created_at = excluded.created_at,
                    expires_at = NULL, removed_at = NULL, changed = excluded.changed,
                    origin = NULL",
                params![e.sender_domain, e.target, e.reason, now, change],
            )?;
        }
        tx.commit()?;
        Ok(entries.len())
    }

    /// Removes an entry (learned or manual); false when there was none.
    pub fn suppression_remove(
        &mut self,
        sender_domain: &str,
        target: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let tx = self.write_transaction()?;
        let removed = remove_entry(&tx, sender_domain, target, now, false)?;
        tx.commit()?;
        Ok(removed)
    }

    /// The live entries that `filter` shows, newest first.
    pub fn suppression_list(
        &self,
        filter: &SuppressionFilter,
        now: i64,
    ) -> Result<Vec<Suppression>, StoreError> {
        let mut sql = format!(
            "SELECT {COLUMNS} FROM suppression
            WHERE removed_at IS NULL AND (expires_at IS NULL OR expires_at > ?)"
        );
        let mut args: Vec<rusqlite::types::Value> = vec![now.into()];
        if let DomainScope::Only(domains) = &filter.scope {
            // A scoped user's own sender domains; entries for every sender are the operators'.
            sql.push_str(&format!(
                " AND sender_domain IN ({})",
                vec!["?"; domains.len()].join(", ")
            ));
            args.extend(domains.iter().map(|d| d.clone().into()));
        }
        if let Some(domain) = &filter.sender_domain {
            sql.push_str(" AND sender_domain = ?");
            args.push(domain.clone().into());
        }
        if let Some(target) = &filter.target {
            sql.push_str(" AND instr(target, ?) > 0");
            args.push(target.to_ascii_lowercase().into());
        }
        sql.push_str(" ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?");
        args.push(i64::from(filter.limit).into());
        args.push(i64::from(filter.offset).into());
        let mut statement = self.conn.prepare(&sql)?;
        let rows = statement
            .query_map(params_from_iter(args), entry)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// One entry, live or not.
    pub fn suppression_entry(
        &self,
        sender_domain: &str,
        target: &str,
    ) -> Result<Option<Suppression>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM suppression
                    WHERE sender_domain = ?1 AND target = ?2 AND removed_at IS NULL"
                ),
                params![sender_domain, target],
                entry,
            )
            .optional()?)
    }

    /// The changes numbered past `after`, in order, at most `limit`; with the last number.
    pub fn suppression_changes(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<(Vec<SuppressionChange>, i64), StoreError> {
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS}, removed_at, changed FROM suppression
            WHERE changed > ?1 ORDER BY changed LIMIT ?2"
        ))?;
        let mut last = after;
        let changes = statement
            .query_map(params![after, limit as i64], |row| {
                let removed: Option<i64> = row.get(11)?;
                let changed: i64 = row.get(12)?;
                let e = entry(row)?;
                Ok((
                    changed,
                    match removed {
                        Some(_) => SuppressionChange::Gone {
                            sender_domain: e.sender_domain,
                            target: e.target,
                        },
                        None => SuppressionChange::Live(e),
                    },
                ))
            })?
            .map(|r| {
                r.map(|(changed, change)| {
                    last = last.max(changed);
                    change
                })
            })
            .collect::<Result<_, _>>()?;
        Ok((changes, last))
    }

    /// Learns from the delivery attempts recorded since the last round (a batch of them), in
    /// one transaction with the position: each attempt teaches once. A failure so old that
    /// its entry would have expired by `now` (history, when the list is first turned on)
    /// teaches nothing.
    pub fn suppression_learn(
        &mut self,
        rules: &SuppressionConfig,
        now: i64,
    ) -> Result<Learned, StoreError> {
        // Most rounds find nothing new: they read, and leave the write lock to the writers.
        let newer: bool = self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM attempt WHERE id >
                (SELECT value FROM suppression_state WHERE name = 'learned_attempt'))",
            [],
            |row| row.get(0),
        )?;
        if !newer {
            return Ok(Learned::default());
        }
        let tx = self.write_transaction()?;
        let position: i64 = tx.query_row(
            "SELECT value FROM suppression_state WHERE name = 'learned_attempt'",
            [],
            |row| row.get(0),
        )?;
        let attempts: Vec<AttemptSeen> = tx
            .prepare_cached(
                "SELECT a.id, a.at, a.status, a.category, a.dsn, a.reply, r.address, m.mail_from,
                    m.queue_id
                FROM attempt a JOIN recipient r ON r.id = a.recipient
                    JOIN message m ON m.id = r.message
                WHERE a.id > ?1 ORDER BY a.id LIMIT ?2",
            )?
            .query_map(params![position, LEARN_BATCH as i64], |row| {
                Ok(AttemptSeen {
                    id: row.get(0)?,
                    at: row.get(1)?,
                    status: row.get(2)?,
                    category: row.get(3)?,
                    dsn: row.get(4)?,
                    reply: row.get::<_, Option<String>>(5)?.unwrap_or_default(),
                    address: row.get(6)?,
                    mail_from: row.get(7)?,
                    queue_id: row.get(8)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut learned = Learned::default();
        let mut last = position;
        for AttemptSeen {
            id,
            at,
            status,
            category,
            dsn,
            reply,
            address,
            mail_from,
            queue_id,
        } in attempts
        {
            last = id;
            learned.attempts += 1;
            let (Ok(status), Some(sender_domain)) = (
                status.parse::<DeliveryStatus>(),
                sender_domain_of(&mail_from),
            ) else {
                continue;
            };
            let category = category.and_then(|c| c.parse::<Category>().ok());
            let Some(target) = crate::suppression::Target::of_recipient(&address) else {
                continue;
            };
            let target = target.to_string();
            let learn = Learnt {
                sender_domain: &sender_domain,
                target: &target,
                at,
                category,
                dsn: dsn.as_deref(),
                reply: &reply,
                queue_id: queue_id.as_deref(),
                expires_at: at.saturating_add(rules.keep.as_secs() as i64),
            };
            match lesson(rules, status, category, &mail_from, &address) {
                Lesson::Suppress | Lesson::Strike { .. } if learn.expires_at <= now => {}
                Lesson::Suppress => {
                    learned.suppressed += u64::from(learn.suppress(&tx)?);
                }
                Lesson::Strike { needed } => {
                    let failures: i64 = tx.query_row(
                        "INSERT INTO suppression_strike (sender_domain, target, failures, last_at)
                        VALUES (?1, ?2, 1, ?3)
                        ON CONFLICT (sender_domain, target) DO UPDATE SET
                            failures = failures + 1, last_at = excluded.last_at
                        RETURNING failures",
                        params![sender_domain, target, at],
                        |row| row.get(0),
                    )?;
                    learned.strikes += 1;
                    if failures >= i64::from(needed) {
                        learned.suppressed += u64::from(learn.suppress(&tx)?);
                        tx.execute(
                            "DELETE FROM suppression_strike WHERE sender_domain = ?1 AND target = ?2",
                            params![sender_domain, target],
                        )?;
                    }
                }
                Lesson::Lift => {
                    tx.execute(
                        "DELETE FROM suppression_strike WHERE sender_domain = ?1 AND target = ?2",
                        params![sender_domain, target],
                    )?;
                    if remove_entry(&tx, &sender_domain, &target, at, true)? {
                        learned.lifted += 1;
                    }
                }
                Lesson::Nothing => {}
            }
        }
        tx.execute(
            "UPDATE suppression_state SET value = ?1 WHERE name = 'learned_attempt'",
            [last],
        )?;
        tx.commit()?;
        Ok(learned)
    }

    /// This host's changes not yet sent to the fleet database (at most `limit`), with the
    /// position to mark once they are.
    pub fn suppression_unsent(
        &self,
        host: &str,
        limit: usize,
    ) -> Result<(Vec<SharedSuppression>, i64), StoreError> {
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS}, removed_at, changed FROM suppression
            WHERE origin IS NULL
                AND changed > (SELECT value FROM suppression_state WHERE name = 'fleet_sent')
            ORDER BY changed LIMIT ?1"
        ))?;
        let mut last = self.suppression_position("fleet_sent")?;
        let rows = statement
            .query_map([limit as i64], |row| {
                Ok((
                    entry(row)?,
                    row.get::<_, Option<i64>>(11)?,
                    row.get::<_, i64>(12)?,
                ))
            })?
            .map(|r| {
                r.map(|(entry, removed_at, changed)| {
                    last = last.max(changed);
                    SharedSuppression {
                        entry,
                        removed_at,
                        host: host.to_string(),
                    }
                })
            })
            .collect::<Result<_, _>>()?;
        Ok((rows, last))
    }

    /// Marks this host's changes up to `position` as sent.
    pub fn suppression_sent(&mut self, position: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE suppression_state SET value = max(value, ?1) WHERE name = 'fleet_sent'",
            [position],
        )?;
        Ok(())
    }

    /// The fleet database's position up to which other hosts' changes were taken.
    pub fn suppression_taken(&self) -> Result<i64, StoreError> {
        self.suppression_position("fleet_taken")
    }

    fn suppression_position(&self, name: &str) -> Result<i64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT value FROM suppression_state WHERE name = ?1",
            [name],
            |row| row.get(0),
        )?)
    }

    /// Takes other hosts' changes from the fleet database, in one transaction with the
    /// position they came up to (`None`: more follow at the same position). A change replaces
    /// the entry here only when it is newer — in the same second, a removal is newer than an
    /// addition, as in the fleet database — so every host ends with the same latest state.
    pub fn suppression_take(
        &mut self,
        changes: &[SharedSuppression],
        position: Option<i64>,
    ) -> Result<usize, StoreError> {
        let tx = self.write_transaction()?;
        let mut taken = 0;
        for c in changes {
            let e = &c.entry;
            let change = next_change(&tx)?;
            taken += tx.execute(
                "INSERT INTO suppression (sender_domain, target, source, category, dsn, reply,
                    queue_id, reason, created_at, expires_at, removed_at, changed, origin)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                ON CONFLICT (sender_domain, target) DO UPDATE SET source = excluded.source,
                    category = excluded.category, dsn = excluded.dsn, reply = excluded.reply,
                    queue_id = excluded.queue_id, reason = excluded.reason,
                    created_at = excluded.created_at, expires_at = excluded.expires_at,
                    removed_at = excluded.removed_at, changed = excluded.changed,
                    origin = excluded.origin
                WHERE (coalesce(excluded.removed_at, excluded.created_at),
                        excluded.removed_at IS NOT NULL)
                    > (coalesce(suppression.removed_at, suppression.created_at),
                        suppression.removed_at IS NOT NULL)",
                params![
                    e.sender_domain,
                    e.target,
                    e.source.as_str(),
                    e.category.map(Category::as_str),
                    e.dsn,
                    e.reply,
                    e.queue_id,
                    e.reason,
                    e.created_at,
                    e.expires_at,
                    c.removed_at,
                    change,
                    c.host
                ],
            )?;
        }
        if let Some(position) = position {
            tx.execute(
                "UPDATE suppression_state SET value = ?1 WHERE name = 'fleet_taken'",
                [position],
            )?;
        }
        tx.commit()?;
        Ok(taken)
    }

    /// Ends the learned entries whose time ran out, and forgets removals older than a day
    /// (with `fleet`, only those already sent to the fleet database); returns how many entries
    /// expired.
    pub fn suppression_expire(&mut self, now: i64, fleet: bool) -> Result<usize, StoreError> {
        let tx = self.write_transaction()?;
        let due: Vec<(String, String)> = tx
            .prepare(
                "SELECT sender_domain, target FROM suppression
                WHERE removed_at IS NULL AND expires_at <= ?1",
            )?
            .query_map([now], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (sender_domain, target) in &due {
            remove_entry(&tx, sender_domain, target, now, false)?;
        }
        tx.execute(
            "DELETE FROM suppression WHERE removed_at < ?1
                AND (NOT ?2 OR origin IS NOT NULL
                    OR changed <= (SELECT value FROM suppression_state WHERE name = 'fleet_sent'))",
            params![now - TOMBSTONE_SECS, fleet],
        )?;
        tx.commit()?;
        Ok(due.len())
    }
}

/// An attempt as the learner reads it.
struct AttemptSeen {
    id: i64,
    at: i64,
    status: String,
    category: Option<String>,
    dsn: Option<String>,
    reply: String,
    address: String,
    mail_from: String,
    queue_id: Option<String>,
}

/// A permanent failure to learn from.
struct Learnt<'a> {
    sender_domain: &'a str,
    target: &'a str,
    at: i64,
    category: Option<Category>,
    dsn: Option<&'a str>,
    reply: &'a str,
    queue_id: Option<&'a str>,
    expires_at: i64,
}

impl Learnt<'_> {
    /// Suppresses the recipient for the sender's domain; a manual entry stays as it is. True
    /// when an entry was written.
    fn suppress(&self, tx: &Transaction) -> Result<bool, StoreError> {
        let change = next_change(tx)?;
        let written = tx.execute(
            "INSERT INTO suppression (sender_domain, target, source, category, dsn, reply,
                queue_id, created_at, expires_at, changed)
            VALUES (?1, ?2, 'learned', ?3, ?4, ?5, ?6, ?7, ?8, ?9)
            ON CONFLICT (sender_domain, target) DO UPDATE SET source = 'learned',
                category = excluded.category, dsn = excluded.dsn, reply = excluded.reply,
                queue_id = excluded.queue_id, reason = NULL, created_at = excluded.created_at,
                expires_at = excluded.expires_at, removed_at = NULL, changed = excluded.changed,
                origin = NULL
            WHERE suppression.source = 'learned' OR suppression.removed_at IS NOT NULL",
            params![
                self.sender_domain,
                self.target,
                self.category.map(Category::as_str),
                self.dsn,
                self.reply,
                self.queue_id,
                self.at,
                self.expires_at,
                change
            ],
        )?;
        Ok(written > 0)
    }
}

#[cfg(test)]
mod tests;
