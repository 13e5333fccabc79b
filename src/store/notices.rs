//! Notices: each recorded as due before it is sent and marked once sent, and the open messages,
//! with their recipients' states, that the policy tick decides them for.

use super::{
    Store, StoreError,
    messages::{parse_receipts, receipts_str},
    named,
    rows::{self, Dialect, NOTICE_COLUMNS},
};
use crate::{
    config::Receipts,
    model::{envelope::ArchiveState, notice::NoticeKind, status::RecipientStatus},
};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use std::sync::LazyLock;
use time::OffsetDateTime;

/// A recipient as the policy sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyRecipient {
    pub address: String,
    /// ESMTP arguments of its RCPT TO (for `ORCPT=`).
    pub args: Vec<String>,
    pub status: RecipientStatus,
    pub last_attempt_at: Option<OffsetDateTime>,
    pub reply: Option<String>,
    pub dsn: Option<String>,
    /// The relay of the last attempt.
    pub remote_mta: Option<String>,
}

/// A message the policy may still have to act on.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyMessage {
    pub id: i64,
    pub queue_id: Option<String>,
    pub arrived_at: OffsetDateTime,
    pub sender: String,
    pub mode: String,
    pub receipts: Receipts,
    pub is_notice: bool,
    /// The MTA logged its removal from the queue.
    pub removed: bool,
    /// The MTA log reported on the message (queued or attempted): without that, recipients that
    /// look pending may just be unknown, and nothing may be decided about them.
    pub seen_in_log: bool,
    pub retry_requested_at: Option<OffsetDateTime>,
    pub message_id: Option<String>,
    /// The archive copy, when there is one (its headers go into notices).
    pub archive_name: Option<String>,
    pub recipients: Vec<PolicyRecipient>,
    /// Kinds of notices already recorded (due or sent).
    pub notices: Vec<NoticeKind>,
}

/// A notice recorded as due and not yet sent.
#[derive(Clone, Debug, PartialEq)]
pub struct DueNotice {
    pub id: i64,
    pub message: i64,
    pub kind: NoticeKind,
    pub recipients: Vec<String>,
    pub due_at: OffsetDateTime,
    pub attempts: u32,
}

/// Open messages, and delivered ones still owed a receipt. The states are
/// [`RecipientStatus::OPEN`]'s, as literals so SQLite uses the partial index `recipient_status`.
/// A row handed over to a next hop on this host is not one: its recipients stay pending there
/// (the hand-over is no delivery), and the next hop's row carries the promise.
static POLICY_MESSAGES: LazyLock<String> = LazyLock::new(|| {
    let [open1, open2] = RecipientStatus::OPEN;
    format!(
        "SELECT m.id FROM message m WHERE m.arrived_at >= ?1 AND m.handed_to IS NULL AND (
            EXISTS (SELECT 1 FROM recipient r WHERE r.message = m.id
                      AND r.status IN ('{open1}', '{open2}'))
            OR (m.receipts = '{on}'
                AND NOT EXISTS (SELECT 1 FROM notice n WHERE n.message = m.id AND n.kind = '{receipt}')
                AND EXISTS (SELECT 1 FROM recipient r WHERE r.message = m.id AND r.status = '{sent}')))
         ORDER BY m.id",
        on = receipts_str(Receipts::On),
        receipt = NoticeKind::Receipt,
        sent = RecipientStatus::Sent,
    )
});

fn time_of(secs: Option<i64>) -> Option<OffsetDateTime> {
    secs.and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
}

/// A notice mailtrail decided for a message: recorded when due, `sent_at` once submitted.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MessageNotice {
    pub kind: NoticeKind,
    /// The recipients it reports on.
    pub recipients: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub due_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub sent_at: Option<OffsetDateTime>,
    pub attempts: u32,
    /// Why the last submission failed, while unsent.
    pub last_error: Option<String>,
}

impl Store {
    /// The notices of message row `message`, in the order they were decided.
    pub fn message_notices(&self, message: i64) -> Result<Vec<MessageNotice>, StoreError> {
        let mut select = self.conn.prepare_cached(&format!(
            "SELECT {NOTICE_COLUMNS} FROM notice WHERE {} ORDER BY id",
            Dialect::Sqlite.keyed("message")
        ))?;
        let mut notices = Vec::new();
        let mut found = select.query([message])?;
        while let Some(row) = found.next()? {
            notices.push(rows::message_notice(row)?);
        }
        Ok(notices)
    }

    /// Messages that arrived since `since` with a recipient not final yet, or with return
    /// receipts on, a delivered recipient and no receipt recorded.
    pub fn policy_messages(&self, since: OffsetDateTime) -> Result<Vec<PolicyMessage>, StoreError> {
        let ids: Vec<i64> = self
            .conn
            .prepare_cached(&POLICY_MESSAGES)?
            .query_map([since.unix_timestamp()], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        ids.into_iter()
            .filter_map(|id| self.policy_message(id).transpose())
            .collect()
    }

    pub fn policy_message(&self, id: i64) -> Result<Option<PolicyMessage>, StoreError> {
        let found = self
            .conn
            .prepare_cached(
                "SELECT queue_id, arrived_at, mail_from, mode, receipts, is_notice, removed_at,
                    retry_requested_at, message_id,
                    CASE WHEN archive_state = ?2 THEN archive_name END,
                    nrcpt IS NOT NULL OR source = 'log' OR EXISTS (SELECT 1 FROM recipient r
                        WHERE r.message = message.id AND r.attempts > 0)
                 FROM message WHERE id = ?1",
            )?
            .query_row(params![id, ArchiveState::Stored.as_str()], |row| {
                let receipts: String = row.get(4)?;
                Ok(PolicyMessage {
                    id,
                    queue_id: row.get(0)?,
                    arrived_at: time_of(row.get(1)?).unwrap_or(OffsetDateTime::UNIX_EPOCH),
                    sender: row.get(2)?,
                    mode: row.get(3)?,
                    receipts: parse_receipts(&receipts),
                    is_notice: row.get(5)?,
                    removed: row.get::<_, Option<i64>>(6)?.is_some(),
                    seen_in_log: row.get(10)?,
                    retry_requested_at: time_of(row.get(7)?),
                    message_id: row.get(8)?,
                    archive_name: row.get(9)?,
                    recipients: Vec::new(),
                    notices: Vec::new(),
                })
            })
            .optional()?;
        let Some(mut message) = found else {
            return Ok(None);
        };
        message.recipients = self
            .conn
            .prepare_cached(
                "SELECT r.address, r.args, r.status, r.last_attempt_at, r.reply, r.dsn,
                    (SELECT a.relay_host FROM attempt a WHERE a.recipient = r.id ORDER BY a.at DESC, a.id DESC LIMIT 1)
                 FROM recipient r WHERE r.message = ?1 ORDER BY r.position, r.id",
            )?
            .query_map([id], |row| {
                let args: String = row.get(1)?;
                Ok(PolicyRecipient {
                    address: row.get(0)?,
                    args: args.split_whitespace().map(str::to_owned).collect(),
                    status: named(row, 2)?,
                    last_attempt_at: time_of(row.get(3)?),
                    reply: row.get(4)?,
                    dsn: row.get(5)?,
                    remote_mta: row.get(6)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        message.notices = self
            .conn
            .prepare_cached("SELECT kind FROM notice WHERE message = ?1 ORDER BY id")?
            .query_map([id], |row| named(row, 0))?
            .collect::<Result<_, _>>()?;
        Ok(Some(message))
    }

    /// Records a notice as due. Returns false when one of this kind was recorded before: each
    /// notice is decided once, whatever happens after.
    pub fn record_notice(
        &mut self,
        message: i64,
        kind: NoticeKind,
        recipients: &[String],
        due_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT INTO notice (message, kind, recipients, due_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (message, kind) DO NOTHING",
            )?
            .execute(params![
                message,
                kind.as_str(),
                recipients.join("\n"),
                due_at.unix_timestamp()
            ])?;
        Ok(inserted == 1)
    }

    /// Notices recorded as due and not sent yet, oldest first (after a crash too).
    pub fn due_notices(&self) -> Result<Vec<DueNotice>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id, message, kind, recipients, due_at, attempts FROM notice
                 WHERE sent_at IS NULL ORDER BY due_at, id",
            )?
            .query_map([], |row| {
                let recipients: String = row.get(3)?;
                Ok(DueNotice {
                    id: row.get(0)?,
                    message: row.get(1)?,
                    kind: named(row, 2)?,
                    recipients: recipients.lines().map(str::to_owned).collect(),
                    due_at: time_of(row.get(4)?).unwrap_or(OffsetDateTime::UNIX_EPOCH),
                    attempts: row.get(5)?,
                })
            })?
            .collect::<Result<_, _>>()?)
    }

    pub fn mark_notice_sent(
        &mut self,
        id: i64,
        at: OffsetDateTime,
        message_id: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE notice SET sent_at = ?2, attempts = attempts + 1, last_error = NULL,
                    notice_message_id = ?3 WHERE id = ?1",
            )?
            .execute(params![id, at.unix_timestamp(), message_id])?;
        Ok(())
    }

    pub fn mark_notice_failed(&mut self, id: i64, error: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE notice SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
            )?
            .execute(params![id, error])?;
        Ok(())
    }

    /// Records why a notice will never be sent, with `attempts` set to the caller's limit so
    /// that it is not tried again.
    pub fn give_up_notice(
        &mut self,
        id: i64,
        error: &str,
        attempts: u32,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE notice SET attempts = ?3, last_error = ?2 WHERE id = ?1")?
            .execute(params![id, error, attempts])?;
        Ok(())
    }

    pub fn set_retry_requested(
        &mut self,
        message: i64,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE message SET retry_requested_at = ?2 WHERE id = ?1")?
            .execute(params![message, at.unix_timestamp()])?;
        Ok(())
    }

    /// mailtrail gave up on the message: every recipient not final gets an `expired` attempt.
    pub fn expire_message(
        &mut self,
        message: i64,
        at: OffsetDateTime,
        reason: &str,
    ) -> Result<usize, StoreError> {
        let batch = self.log_batch()?;
        let expired = batch.expire_pending(
            message,
            at.unix_timestamp(),
            reason,
            crate::bounce::Category::MessageExpired,
        )?;
        batch.commit()?;
        Ok(expired)
    }
}
