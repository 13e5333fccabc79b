//! Messages as the milter records them (the envelope, its recipients, the archived copy's
//! name and state) and as the CLI lists them.

use super::{
    Store, StoreError,
    counters::add_counters,
    rows::{self, Arg, Dialect, ENVELOPE_RECIPIENT_COLUMNS, MESSAGE_COLUMNS},
};
use crate::{
    config::Receipts,
    model::envelope::{ArchiveState, Envelope},
};
use rusqlite::{OptionalExtension, params, params_from_iter};
use serde::Serialize;
use time::OffsetDateTime;

/// The state of a copy that is in the archive: the only one the sweep and the reconcile change.
const STORED: &str = ArchiveState::Stored.as_str();

/// A stored message: its row id and envelope.
#[derive(Clone, Debug, Serialize)]
pub struct StoredMessage {
    pub id: i64,
    /// The host that recorded it, read from the fleet database; `None` on this host's store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(flatten)]
    pub envelope: Envelope,
}

/// Filters for listing messages; all optional, combined with AND.
#[derive(Clone, Debug, Default)]
pub struct MessageFilter {
    pub since: Option<OffsetDateTime>,
    /// Substring of MAIL FROM, case-insensitive.
    pub from: Option<String>,
    /// Substring of any recipient, case-insensitive.
    pub to: Option<String>,
    /// Substring of the subject, case-insensitive.
    pub subject: Option<String>,
    pub limit: Option<u32>,
}

impl Store {
    /// Inserts envelopes in one transaction (one sync for a whole batch); returns their ids.
    /// Commits envelope rows; returns their ids.
    pub fn insert_envelopes(&mut self, envelopes: &[&Envelope]) -> Result<Vec<i64>, StoreError> {
        self.record_envelopes(envelopes, &[])
    }

    /// Commits envelope rows, and `counters` in the same transaction: what the counters say of
    /// the milter survives a crash exactly as the rows do.
    pub fn record_envelopes(
        &mut self,
        envelopes: &[&Envelope],
        counters: &[(&str, u64)],
    ) -> Result<Vec<i64>, StoreError> {
        let tx = self.write_transaction()?;
        add_counters(&tx, counters)?;
        let mut ids = Vec::with_capacity(envelopes.len());
        {
            let mut log_row = tx.prepare_cached(
                "SELECT id FROM message WHERE queue_id = ?1 AND source = 'log' AND removed_at IS NULL
                   AND arrived_at BETWEEN ?2 - ?3 AND ?2 + ?3 ORDER BY id DESC LIMIT 1",
            )?;
            let skew = crate::model::correlation::CLOCK_SKEW_SECS;
            for e in envelopes {
                // The log follower may have seen this queue id first (postfix logs message-id=
                // before the milter's end-of-message): the milter's record takes over that row.
                let existing: Option<i64> = match &e.queue_id {
                    Some(qid) => log_row
                        .query_row(params![qid, e.arrived_at.unix_timestamp(), skew], |row| {
                            row.get(0)
                        })
                        .optional()?,
                    None => None,
                };
                ids.push(write_envelope(&tx, existing, e)?);
            }
        }
        tx.commit()?;
        Ok(ids)
    }

    /// Messages matching `filter`, newest first.
    pub fn list_messages(&self, filter: &MessageFilter) -> Result<Vec<StoredMessage>, StoreError> {
        // A hand-over row stays listed only while it holds the archive copy (a content filter
        // re-injected the message the milter saw); the next hop's row is the message.
        let mut sql = String::from(
            "SELECT id FROM message m WHERE (m.handed_to IS NULL OR m.archive_state = ?)",
        );
        let mut args: Vec<Arg> = vec![STORED.to_string().into()];
        if let Some(since) = filter.since {
            sql.push_str(" AND arrived_at >= ?");
            args.push(since.unix_timestamp().into());
        }
        text_filters(
            Dialect::Sqlite,
            filter.from.as_deref(),
            filter.to.as_deref(),
            filter.subject.as_deref(),
            &mut sql,
            &mut args,
        );
        sql.push_str(" ORDER BY arrived_at DESC, id DESC");
        if let Some(limit) = filter.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        let ids: Vec<i64> = self
            .conn
            .prepare(&sql)?
            .query_map(params_from_iter(args), |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        ids.into_iter()
            .filter_map(|id| self.message(id).transpose())
            .collect()
    }

    /// One message by row id.
    pub fn message(&self, id: i64) -> Result<Option<StoredMessage>, StoreError> {
        let dialect = Dialect::Sqlite;
        let mut select = self.conn.prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM message WHERE {}",
            dialect.keyed("id")
        ))?;
        let mut found = select.query([id])?;
        let Some(row) = found.next()? else {
            return Ok(None);
        };
        let mut message = rows::stored_message(row)?;
        let mut select = self.conn.prepare_cached(&format!(
            "SELECT {ENVELOPE_RECIPIENT_COLUMNS} FROM recipient WHERE {} ORDER BY position",
            dialect.keyed("message")
        ))?;
        let mut recipients = select.query([id])?;
        while let Some(row) = recipients.next()? {
            message
                .envelope
                .recipients
                .push(rows::envelope_recipient(row)?);
        }
        Ok(Some(message))
    }

    /// Messages with this queue id, newest first (postfix reuses short ids).
    pub fn messages_by_queue_id(&self, queue_id: &str) -> Result<Vec<StoredMessage>, StoreError> {
        let ids: Vec<i64> = self
            .conn
            .prepare_cached(
                "SELECT id FROM message WHERE queue_id = ?1 ORDER BY arrived_at DESC, id DESC",
            )?
            .query_map([queue_id], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        ids.into_iter()
            .filter_map(|id| self.message(id).transpose())
            .collect()
    }

    /// The row that handed the message over to `queue_id` on this host (sendmail's submission
    /// program, the hop before a content filter), arrived up to the correlation window before
    /// `arrived_at`: it holds the milter's envelope and copy of the same message.
    pub fn handed_over_to(
        &self,
        queue_id: &str,
        arrived_at: i64,
    ) -> Result<Option<StoredMessage>, StoreError> {
        let (sql, (from, to)) = rows::handed_over_to_statement(Dialect::Sqlite, arrived_at);
        let id: Option<i64> = self
            .conn
            .query_row(&sql, params![queue_id, from, to], |row| row.get(0))
            .optional()?;
        Ok(match id {
            Some(id) => self.message(id)?,
            None => None,
        })
    }

    /// When the newest message with an archive copy arrived (unix seconds).
    pub fn newest_archived_at(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.conn.query_row(
            "SELECT max(arrived_at) FROM message WHERE archive_state = ?1",
            [STORED],
            |row| row.get(0),
        )?)
    }

    /// Which of `names` some message records as its archive copy.
    pub fn known_archive_names(
        &self,
        names: &[String],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let mut known = std::collections::HashSet::new();
        let mut find = self
            .conn
            .prepare_cached("SELECT 1 FROM message WHERE archive_name = ?1")?;
        for name in names {
            if find.exists([name])? {
                known.insert(name.clone());
            }
        }
        Ok(known)
    }

    /// (id, archive name) of messages arrived at or after `since` (unix seconds) whose copy is
    /// recorded as stored.
    pub fn stored_copies_since(&self, since: i64) -> Result<Vec<(i64, String)>, StoreError> {
        Ok(self
            .conn
            .prepare(
                "SELECT id, archive_name FROM message
                 WHERE archive_state = ?2 AND arrived_at >= ?1 AND archive_name IS NOT NULL",
            )?
            .query_map(params![since, STORED], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?)
    }

    /// Records that these messages' copies are not in the archive after all.
    pub fn mark_archive_failed(&mut self, ids: &[i64]) -> Result<usize, StoreError> {
        let tx = self.write_transaction()?;
        let mut changed = 0;
        {
            let mut update = tx.prepare_cached(
                "UPDATE message SET archive_state = ?2 WHERE id = ?1 AND archive_state = ?3",
            )?;
            for id in ids {
                changed += update.execute(params![id, ArchiveState::Failed.as_str(), STORED])?;
            }
        }
        tx.commit()?;
        Ok(changed)
    }

    /// Records that the retention sweep deleted these archive copies.
    pub fn mark_archive_expired(&mut self, names: &[String]) -> Result<usize, StoreError> {
        let tx = self.write_transaction()?;
        let mut changed = 0;
        {
            let mut update = tx.prepare_cached(
                "UPDATE message SET archive_state = ?2 WHERE archive_name = ?1 AND archive_state = ?3",
            )?;
            for name in names {
                changed += update.execute(params![name, ArchiveState::Expired.as_str(), STORED])?;
            }
        }
        tx.commit()?;
        Ok(changed)
    }
}

/// Writes an envelope into a new row, or over `existing`, a row the log follower created (what
/// the log added is kept: it only fills columns the milter does not write). Returns the row id.
fn write_envelope(
    tx: &rusqlite::Transaction,
    existing: Option<i64>,
    e: &Envelope,
) -> Result<i64, StoreError> {
    // A NULL id makes SQLite pick a new one.
    tx.prepare_cached(
        "INSERT INTO message (id, queue_id, arrived_at, mta_host, client_name, client_addr, helo,
            sasl_user, mail_from, mail_args, recipients_dropped, size, message_id, subject,
            archive_name, archive_state, mode, receipts, is_notice, source)
         VALUES (?18, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
            ?19, 'milter')
         ON CONFLICT (id) DO UPDATE SET queue_id = excluded.queue_id, arrived_at = excluded.arrived_at,
            mta_host = excluded.mta_host, client_name = excluded.client_name,
            client_addr = excluded.client_addr, helo = excluded.helo, sasl_user = excluded.sasl_user,
            mail_from = excluded.mail_from, mail_args = excluded.mail_args,
            recipients_dropped = excluded.recipients_dropped, size = excluded.size,
            message_id = excluded.message_id, subject = excluded.subject,
            archive_name = excluded.archive_name, archive_state = excluded.archive_state,
            mode = excluded.mode, receipts = excluded.receipts, is_notice = excluded.is_notice,
            source = 'milter'",
    )?
    .execute(params![
        e.queue_id,
        e.arrived_at.unix_timestamp(),
        e.mta_host,
        e.client_name,
        e.client_addr,
        e.helo,
        e.sasl_user,
        e.mail_from,
        e.mail_args.join(" "),
        e.recipients_dropped,
        e.size as i64,
        e.message_id,
        e.subject,
        e.archive_name,
        e.archive_state.as_str(),
        e.mode,
        receipts_str(e.receipts),
        existing,
        e.is_notice,
    ])?;
    let id = existing.unwrap_or_else(|| tx.last_insert_rowid());
    for (position, r) in e.recipients.iter().enumerate() {
        let args = r.args.join(" ");
        // Delivery lines may have created the recipient already (under its original address too).
        let updated = match existing {
            Some(_) => tx
                .prepare_cached(
                    "UPDATE recipient SET position = ?3, args = ?4
                     WHERE message = ?1 AND (address = ?2 COLLATE NOCASE OR orig_to = ?2 COLLATE NOCASE)",
                )?
                .execute(params![id, r.address, position as i64, args])?,
            None => 0,
        };
        if updated == 0 {
            tx.prepare_cached(
                "INSERT INTO recipient (message, position, address, args) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![id, position as i64, r.address, args])?;
        }
    }
    Ok(id)
}

pub(super) fn receipts_str(r: Receipts) -> &'static str {
    match r {
        Receipts::Off => "off",
        Receipts::On => "on",
        Receipts::Dsn => "dsn",
    }
}

pub(super) fn parse_receipts(text: &str) -> Receipts {
    match text {
        "on" => Receipts::On,
        "dsn" => Receipts::Dsn,
        _ => Receipts::Off,
    }
}

/// Appends `AND` conditions on `message m` for the substrings an operator filters a list on:
/// sender, any recipient, subject (ASCII case-insensitive, wildcards taken literally).
pub(super) fn text_filters(
    dialect: Dialect,
    from: Option<&str>,
    to: Option<&str>,
    subject: Option<&str>,
    sql: &mut String,
    args: &mut Vec<Arg>,
) {
    let like = dialect.like();
    if let Some(from) = from {
        sql.push_str(&format!(" AND m.mail_from {like} ? ESCAPE '\\'"));
        args.push(like_pattern(from).into());
    }
    if let Some(to) = to {
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM recipient r WHERE {} AND r.address {like} ? ESCAPE '\\')",
            dialect.of_message("r", "message")
        ));
        args.push(like_pattern(to).into());
    }
    if let Some(subject) = subject {
        sql.push_str(&format!(" AND m.subject {like} ? ESCAPE '\\'"));
        args.push(like_pattern(subject).into());
    }
}

/// `%text%` with LIKE's wildcards escaped, so user text matches literally.
pub(super) fn like_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}
