//! Writing what the MTA log says: one transaction per batch of lines, together with the read
//! position, so a crash neither loses nor repeats an event.

use super::{Store, StoreError, messages::receipts_str};
use crate::{
    bounce::Category,
    config::Receipts,
    model::{
        correlation::{CLOCK_SKEW_SECS, QUEUE_ID_WINDOW_SECS},
        status::{DeliveryStatus, RecipientStatus},
    },
};
use rusqlite::{CachedStatement, OptionalExtension, Statement, Transaction, params};

/// What the log tells about a message as a whole.
#[derive(Debug, Default)]
pub struct LogMessageFields<'a> {
    pub sender: Option<&'a str>,
    pub size: Option<u64>,
    pub nrcpt: Option<u32>,
    pub message_id: Option<&'a str>,
    pub client_host: Option<&'a str>,
    pub client_ip: Option<&'a str>,
    pub sasl_user: Option<&'a str>,
    /// The sender's mode, for messages the milter never saw.
    pub mode: Option<&'a str>,
    /// The sender's receipts, for messages the milter never saw (the next hop of a content
    /// filter, mail that passed while mailtrail was down).
    pub receipts: Option<Receipts>,
    /// The queue id the message went on under on this host (a local hop): this row is then
    /// neither listed nor counted, the next hop's is.
    pub handed_to: Option<&'a str>,
}

/// One delivery attempt for one recipient.
#[derive(Debug)]
pub struct AttemptRow<'a> {
    pub at: i64,
    pub status: DeliveryStatus,
    pub relay_host: Option<&'a str>,
    pub relay_ip: Option<&'a str>,
    pub relay_port: Option<u16>,
    pub dsn: Option<&'a str>,
    pub smtp_code: Option<u16>,
    pub reply: &'a str,
    pub stage: Option<&'a str>,
    pub delay: Option<f64>,
    pub delays: Option<&'a str>,
    pub category: Option<Category>,
}

/// A refused SMTP command (`NOQUEUE: reject`, sendmail `ruleset=`, milter-reject, postscreen).
#[derive(Debug)]
pub struct RejectRow<'a> {
    pub at: i64,
    pub mta_host: Option<&'a str>,
    pub source: &'a str,
    pub code: Option<u16>,
    pub dsn: Option<&'a str>,
    pub client_host: Option<&'a str>,
    pub client_ip: Option<&'a str>,
    pub sender: Option<&'a str>,
    pub recipient: Option<&'a str>,
    pub helo: Option<&'a str>,
    pub stage: Option<&'a str>,
    pub reason: &'a str,
    pub category: Option<Category>,
}

/// A message first seen in a batch's log lines, written once with everything the batch said.
#[derive(Debug)]
pub struct NewLogMessage<'a> {
    pub queue_id: &'a str,
    pub arrived_at: i64,
    pub mta_host: Option<&'a str>,
    pub fields: LogMessageFields<'a>,
    pub removed_at: Option<i64>,
}

/// A recipient first seen in a batch, with the state its attempts in that batch left it in.
#[derive(Debug)]
pub struct NewRecipient<'a> {
    pub position: i64,
    pub address: &'a str,
    pub orig_to: Option<&'a str>,
    pub status: RecipientStatus,
    pub dsn: Option<&'a str>,
    pub reply: Option<&'a str>,
    pub category: Option<Category>,
    pub attempts: i64,
    pub last_attempt_at: Option<i64>,
    pub final_at: Option<i64>,
}

/// The writes of one batch of log lines; nothing is visible until [`LogBatch::commit`].
pub struct LogBatch<'a> {
    tx: Transaction<'a>,
}

impl Store {
    pub fn log_batch(&mut self) -> Result<LogBatch<'_>, StoreError> {
        Ok(LogBatch {
            tx: self.write_transaction()?,
        })
    }

    /// The saved read position of a log source, as written by [`LogBatch::save_position`].
    pub fn log_position(&self, source: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT position FROM log_position WHERE source = ?1",
                [source],
                |row| row.get(0),
            )
            .optional()?)
    }
}

impl LogBatch<'_> {
    /// The message a log line with `queue_id` at `at` belongs to: the newest not yet removed
    /// from the queue (postfix reuses short ids after removal). Created when the milter never saw
    /// it (local pickup, milter off, or a line logged before the milter's row was committed).
    pub fn message_for(
        &self,
        queue_id: &str,
        at: i64,
        mta_host: Option<&str>,
    ) -> Result<i64, StoreError> {
        if let Some(id) = self.find_message(queue_id, at)? {
            return Ok(id);
        }
        self.tx
            .prepare_cached(
                "INSERT INTO message (queue_id, arrived_at, mta_host, mail_from, size, archive_state,
                    mode, receipts, source)
                 VALUES (?1, ?2, ?3, '', 0, 'not-seen', 'normal', 'off', 'log')",
            )?
            .execute(params![queue_id, at, mta_host])?;
        Ok(self.tx.last_insert_rowid())
    }

    /// The stored message a log line with `queue_id` at `at` belongs to, if any (see
    /// [`LogBatch::message_for`]).
    pub fn find_message(&self, queue_id: &str, at: i64) -> Result<Option<i64>, StoreError> {
        Ok(self
            .tx
            .prepare_cached(
                "SELECT id FROM message WHERE queue_id = ?1 AND removed_at IS NULL
                   AND arrived_at BETWEEN ?2 AND ?3 ORDER BY id DESC LIMIT 1",
            )?
            .query_row(
                params![queue_id, at - QUEUE_ID_WINDOW_SECS, at + CLOCK_SKEW_SECS],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Fills in what the log knows. The milter's own record wins where both know a field.
    pub fn set_message_fields(&self, message: i64, f: &LogMessageFields) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "UPDATE message SET
                    mail_from = CASE WHEN source = 'log' AND ?2 IS NOT NULL THEN ?2 ELSE mail_from END,
                    size = CASE WHEN source = 'log' AND ?3 IS NOT NULL THEN ?3 ELSE size END,
                    nrcpt = COALESCE(?4, nrcpt),
                    message_id = COALESCE(message_id, ?5),
                    client_name = COALESCE(client_name, ?6),
                    client_addr = COALESCE(client_addr, ?7),
                    sasl_user = COALESCE(sasl_user, ?8),
                    mode = CASE WHEN source = 'log' AND ?9 IS NOT NULL THEN ?9 ELSE mode END,
                    handed_to = COALESCE(handed_to, ?10),
                    receipts = CASE WHEN source = 'log' AND ?11 IS NOT NULL THEN ?11 ELSE receipts END
                 WHERE id = ?1",
            )?
            .execute(params![
                message,
                f.sender,
                f.size.map(|s| s as i64),
                f.nrcpt,
                f.message_id,
                f.client_host,
                f.client_ip,
                f.sasl_user,
                f.mode,
                f.handed_to,
                f.receipts.map(receipts_str),
            ])?;
        Ok(())
    }

    /// The recipient row a delivery line is about: matched on the address, then on the original
    /// address the milter recorded (aliases and virtual rewrites); created when new.
    pub fn recipient_for(
        &self,
        message: i64,
        to: &str,
        orig_to: Option<&str>,
    ) -> Result<i64, StoreError> {
        let mut find = self.tx.prepare_cached(
            "SELECT id FROM recipient WHERE message = ?1 AND address = ?2 COLLATE NOCASE
             ORDER BY position LIMIT 1",
        )?;
        if let Some(id) = find
            .query_row(params![message, to], |row| row.get(0))
            .optional()?
        {
            return Ok(id);
        }
        if let Some(orig) = orig_to
            && let Some(id) = find
                .query_row(params![message, orig], |row| row.get::<_, i64>(0))
                .optional()?
        {
            // The milter saw the original address; keep it and learn the final one.
            self.tx
                .prepare_cached(
                    "UPDATE recipient SET orig_to = address, address = ?2 WHERE id = ?1",
                )?
                .execute(params![id, to])?;
            return Ok(id);
        }
        self.tx
            .prepare_cached(
                "INSERT INTO recipient (message, position, address, orig_to)
                 VALUES (?1, (SELECT COALESCE(MAX(position) + 1, 0) FROM recipient WHERE message = ?1), ?2, ?3)",
            )?
            .execute(params![message, to, orig_to])?;
        Ok(self.tx.last_insert_rowid())
    }

    /// Records an attempt and moves the recipient to its state. A final state (sent, bounced,
    /// expired) is never overwritten by a later deferral logged out of order.
    pub fn record_attempt(&self, recipient: i64, a: &AttemptRow) -> Result<(), StoreError> {
        let mut insert = self.tx.prepare_cached(INSERT_ATTEMPT)?;
        insert_attempt(&mut insert, recipient, a)?;
        self.set_outcome(recipient, a, 1)
    }

    /// The recipient's state after `a`; `attempts` is what `a` adds to its attempt count.
    fn set_outcome(&self, recipient: i64, a: &AttemptRow, attempts: i64) -> Result<(), StoreError> {
        // The rule is RecipientStatus::after: an attempt replaces an open state (?9, ?10), and
        // a final attempt (?6) any state.
        let is_final = a.status.recipient_status().is_final();
        let [open1, open2] = RecipientStatus::OPEN.map(RecipientStatus::as_str);
        self.tx
            .prepare_cached(
                "UPDATE recipient SET
                    attempts = attempts + ?8,
                    last_attempt_at = MAX(COALESCE(last_attempt_at, ?2), ?2),
                    status = CASE WHEN status IN (?9, ?10) OR ?6 THEN ?3 ELSE status END,
                    dsn = CASE WHEN status IN (?9, ?10) OR ?6 THEN ?4 ELSE dsn END,
                    reply = CASE WHEN status IN (?9, ?10) OR ?6 THEN ?5 ELSE reply END,
                    category = CASE WHEN status IN (?9, ?10) OR ?6 THEN ?7 ELSE category END,
                    final_at = CASE WHEN ?6 THEN COALESCE(final_at, ?2) ELSE final_at END
                 WHERE id = ?1",
            )?
            .execute(params![
                recipient,
                a.at,
                a.status.as_str(),
                a.dsn,
                a.reply,
                is_final,
                a.category.map(Category::as_str),
                attempts,
                open1,
                open2
            ])?;
        Ok(())
    }

    /// A writer of whole new rows with its statements prepared once, for the many rows at a
    /// batch's end (looking a cached statement up by its text, and returning it, for every row
    /// cost as much as binding it).
    pub fn row_writer(&self) -> Result<RowWriter<'_>, StoreError> {
        Ok(RowWriter {
            tx: &self.tx,
            message: self.tx.prepare_cached(INSERT_LOG_MESSAGE)?,
            recipient: self.tx.prepare_cached(INSERT_RECIPIENT)?,
            attempt: self.tx.prepare_cached(INSERT_ATTEMPT)?,
            reject: self.tx.prepare_cached(INSERT_REJECT)?,
            raw_line: self.tx.prepare_cached(INSERT_RAW_LINE)?,
        })
    }

    /// The MTA gave up on the message: every recipient not yet final gets an `expired` attempt.
    pub fn expire_pending(
        &self,
        message: i64,
        at: i64,
        reason: &str,
        category: Category,
    ) -> Result<usize, StoreError> {
        self.finish_pending(
            message,
            &AttemptRow {
                at,
                status: DeliveryStatus::Expired,
                relay_host: None,
                relay_ip: None,
                relay_port: None,
                dsn: Some("4.4.7"),
                smtp_code: None,
                reply: reason,
                stage: None,
                delay: None,
                delays: None,
                category: Some(category),
            },
        )
    }

    /// Records `final_attempt` (a final status) for every recipient of `message` not yet final:
    /// the MTA gave up on it. Returns how many recipients it finished.
    pub fn finish_pending(
        &self,
        message: i64,
        final_attempt: &AttemptRow,
    ) -> Result<usize, StoreError> {
        let pending = self.pending_recipients(message)?;
        for &recipient in &pending {
            self.record_attempt(recipient, final_attempt)?;
        }
        Ok(pending.len())
    }

    /// The MTA refused `message` as a whole after queueing it (a milter or cleanup reject at
    /// the end of DATA): every recipient not yet final takes `outcome`'s state, but no attempt
    /// row is added — nothing was attempted, and the refusal is counted once, as a reject.
    pub fn refuse_pending(&self, message: i64, outcome: &AttemptRow) -> Result<usize, StoreError> {
        let pending = self.pending_recipients(message)?;
        for &recipient in &pending {
            self.set_outcome(recipient, outcome, 0)?;
        }
        Ok(pending.len())
    }

    fn pending_recipients(&self, message: i64) -> Result<Vec<i64>, StoreError> {
        Ok(self
            .tx
            .prepare_cached(&OPEN_RECIPIENTS)?
            .query_map([message], |row| row.get(0))?
            .collect::<Result<_, _>>()?)
    }

    /// The message left the MTA's queue; its queue id may now be reused.
    pub fn mark_removed(&self, message: i64, at: i64) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "UPDATE message SET removed_at = ?2 WHERE id = ?1 AND removed_at IS NULL",
            )?
            .execute(params![message, at])?;
        Ok(())
    }

    /// A notification the MTA itself sent about the message (bounce, delay warning).
    pub fn add_mta_notice(
        &self,
        message: i64,
        at: i64,
        kind: &str,
        notice_queue_id: Option<&str>,
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached("INSERT INTO mta_notice (message, at, kind, notice_queue_id) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![message, at, kind, notice_queue_id])?;
        Ok(())
    }

    pub fn insert_reject(&self, r: &RejectRow) -> Result<(), StoreError> {
        let mut insert = self.tx.prepare_cached(INSERT_REJECT)?;
        insert_reject(&mut insert, r)
    }

    pub fn insert_raw_line(
        &self,
        at: i64,
        queue_id: Option<&str>,
        line: &str,
    ) -> Result<(), StoreError> {
        let mut insert = self.tx.prepare_cached(INSERT_RAW_LINE)?;
        insert_raw_line(&mut insert, at, queue_id, line)
    }

    /// Saves where reading stopped, in the same transaction as the events read up to there.
    pub fn save_position(&self, source: &str, position: &str) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO log_position (source, position) VALUES (?1, ?2)
                 ON CONFLICT(source) DO UPDATE SET position = excluded.position",
            )?
            .execute(params![source, position])?;
        Ok(())
    }

    /// Adds to the named counters with the batch: exact across a crash, like its position.
    pub fn add_counters(&self, deltas: &[(&str, u64)]) -> Result<(), StoreError> {
        super::counters::add_counters(&self.tx, deltas)
    }

    pub fn commit(self) -> Result<(), StoreError> {
        Ok(self.tx.commit()?)
    }
}

/// A message only the log knows of (see [`LogBatch::message_for`] for the defaults the milter
/// would otherwise have filled in).
const INSERT_LOG_MESSAGE: &str = "INSERT INTO message (queue_id, arrived_at, mta_host, mail_from,
        size, archive_state, mode, receipts, source, nrcpt, message_id, client_name, client_addr,
        sasl_user, removed_at, handed_to)
    VALUES (?1, ?2, ?3, ?4, ?5, 'not-seen', ?6, ?14, 'log', ?7, ?8, ?9, ?10, ?11, ?12, ?13)";
const INSERT_RECIPIENT: &str = "INSERT INTO recipient (message, position, address, orig_to,
        status, dsn, reply, category, attempts, last_attempt_at, final_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
/// A message's recipients in a state of [`RecipientStatus::OPEN`] (literals: the partial index).
static OPEN_RECIPIENTS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let [open1, open2] = RecipientStatus::OPEN;
    format!("SELECT id FROM recipient WHERE message = ?1 AND status IN ('{open1}', '{open2}')")
});

const INSERT_ATTEMPT: &str = "INSERT INTO attempt (recipient, at, status, relay_host, relay_ip,
        relay_port, dsn, smtp_code, reply, stage, delay, delays, category)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

const INSERT_REJECT: &str = "INSERT INTO reject (at, mta_host, source, code, dsn, client_host,
        client_ip, sender, recipient, helo, stage, reason, category)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";
const INSERT_RAW_LINE: &str = "INSERT INTO raw_line (at, queue_id, line) VALUES (?1, ?2, ?3)";

fn insert_reject(stmt: &mut Statement, r: &RejectRow) -> Result<(), StoreError> {
    stmt.execute(params![
        r.at,
        r.mta_host,
        r.source,
        r.code,
        r.dsn,
        r.client_host,
        r.client_ip,
        r.sender,
        r.recipient,
        r.helo,
        r.stage,
        r.reason,
        r.category.map(Category::as_str),
    ])?;
    Ok(())
}

fn insert_raw_line(
    stmt: &mut Statement,
    at: i64,
    queue_id: Option<&str>,
    line: &str,
) -> Result<(), StoreError> {
    stmt.execute(params![at, queue_id, line])?;
    Ok(())
}

fn insert_attempt(stmt: &mut Statement, recipient: i64, a: &AttemptRow) -> Result<(), StoreError> {
    stmt.execute(params![
        recipient,
        a.at,
        a.status.as_str(),
        a.relay_host,
        a.relay_ip,
        a.relay_port,
        a.dsn,
        a.smtp_code,
        a.reply,
        a.stage,
        a.delay,
        a.delays,
        a.category.map(Category::as_str),
    ])?;
    Ok(())
}

/// See [`LogBatch::row_writer`].
pub struct RowWriter<'t> {
    tx: &'t Transaction<'t>,
    message: CachedStatement<'t>,
    recipient: CachedStatement<'t>,
    attempt: CachedStatement<'t>,
    reject: CachedStatement<'t>,
    raw_line: CachedStatement<'t>,
}

impl RowWriter<'_> {
    /// Inserts a message only the log knows of; returns its row id.
    pub fn insert_log_message(&mut self, m: &NewLogMessage) -> Result<i64, StoreError> {
        let f = &m.fields;
        self.message.execute(params![
            m.queue_id,
            m.arrived_at,
            m.mta_host,
            f.sender.unwrap_or(""),
            f.size.map_or(0, |s| s as i64),
            f.mode.unwrap_or("normal"),
            f.nrcpt,
            f.message_id,
            f.client_host,
            f.client_ip,
            f.sasl_user,
            m.removed_at,
            f.handed_to,
            receipts_str(f.receipts.unwrap_or(Receipts::Off)),
        ])?;
        Ok(self.tx.last_insert_rowid())
    }

    /// Inserts a recipient with its state already computed; returns its row id.
    pub fn insert_recipient(&mut self, message: i64, r: &NewRecipient) -> Result<i64, StoreError> {
        self.recipient.execute(params![
            message,
            r.position,
            r.address,
            r.orig_to,
            r.status.as_str(),
            r.dsn,
            r.reply,
            r.category.map(Category::as_str),
            r.attempts,
            r.last_attempt_at,
            r.final_at,
        ])?;
        Ok(self.tx.last_insert_rowid())
    }

    /// Inserts an attempt row only, for a recipient whose state was written with it.
    pub fn insert_attempt(&mut self, recipient: i64, a: &AttemptRow) -> Result<(), StoreError> {
        insert_attempt(&mut self.attempt, recipient, a)
    }

    pub fn insert_reject(&mut self, r: &RejectRow) -> Result<(), StoreError> {
        insert_reject(&mut self.reject, r)
    }

    /// A raw log line: an import keeping recent lines writes one per line.
    pub fn insert_raw_line(
        &mut self,
        at: i64,
        queue_id: Option<&str>,
        line: &str,
    ) -> Result<(), StoreError> {
        insert_raw_line(&mut self.raw_line, at, queue_id, line)
    }
}
