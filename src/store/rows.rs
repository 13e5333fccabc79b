//! The rows the pages read, for both databases: each statement's columns and their mapping to
//! a typed record are written once here. [`Dialect`] holds what differs: how parameters are
//! written, which `LIKE` is case-insensitive, and how a row is keyed — by its id in this host's
//! SQLite store, by host and id in the fleet's PostgreSQL database.

use super::{
    StoreError, deliveries::Attempt, deliveries::RecipientDelivery, messages::StoredMessage,
    notices::MessageNotice, summaries::MessageSummary, timestamp,
};
use crate::model::envelope::{ArchiveState, Envelope, Recipient};
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The case-insensitive `LIKE` (SQLite's `LIKE` is, for ASCII).
    pub(crate) fn like(self) -> &'static str {
        match self {
            Dialect::Sqlite => "LIKE",
            Dialect::Postgres => "ILIKE",
        }
    }

    /// `SUM(column)` as a 64-bit integer (PostgreSQL sums `bigint` into `numeric`).
    pub(crate) fn sum(self, column: &str) -> String {
        match self {
            Dialect::Sqlite => format!("SUM({column})"),
            Dialect::Postgres => format!("SUM({column})::bigint"),
        }
    }

    /// Rows of `alias` that belong to message `m` through `column` (recipients, notices): in
    /// the fleet database a local id is unique only within its host.
    pub(crate) fn of_message(self, alias: &str, column: &str) -> String {
        match self {
            Dialect::Sqlite => format!("{alias}.{column} = m.id"),
            Dialect::Postgres => format!("{alias}.host = m.host AND {alias}.{column} = m.id"),
        }
    }

    /// The condition selecting the rows whose `column` is the key: `column = ?1` here; in the
    /// fleet database `host = $1 AND column = $2`.
    pub(crate) fn keyed(self, column: &str) -> String {
        match self {
            Dialect::Sqlite => format!("{column} = ?1"),
            Dialect::Postgres => format!("host = $1 AND {column} = $2"),
        }
    }

    /// `sql` written with `?` for each parameter, in this dialect (`$1`, `$2`, ... for
    /// PostgreSQL). The statements built here hold no `?` of their own.
    pub(crate) fn numbered(self, sql: String) -> String {
        match self {
            Dialect::Sqlite => sql,
            Dialect::Postgres => {
                let mut out = String::with_capacity(sql.len() + 16);
                let mut n = 0;
                for c in sql.chars() {
                    if c == '?' {
                        n += 1;
                        out.push_str(&format!("${n}"));
                    } else {
                        out.push(c);
                    }
                }
                out
            }
        }
    }
}

/// A parameter of a statement built at run time, bound the same way in both databases.
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    Int(i64),
    Text(String),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(v)
    }
}

impl rusqlite::ToSql for Arg {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Arg::Int(v) => v.to_sql(),
            Arg::Text(v) => v.to_sql(),
        }
    }
}

impl Arg {
    pub(crate) fn postgres(&self) -> &(dyn tokio_postgres::types::ToSql + Sync) {
        match self {
            Arg::Int(v) => v,
            Arg::Text(v) => v,
        }
    }
}

/// A result row of either database, read by column position.
pub trait Columns {
    fn int(&self, column: usize) -> Result<i64, StoreError>;
    fn opt_int(&self, column: usize) -> Result<Option<i64>, StoreError>;
    fn text(&self, column: usize) -> Result<String, StoreError>;
    fn opt_text(&self, column: usize) -> Result<Option<String>, StoreError>;
    fn opt_real(&self, column: usize) -> Result<Option<f64>, StoreError>;
    fn blob(&self, column: usize) -> Result<Vec<u8>, StoreError>;

    /// One of a typed value's stored names (a status, a category, a kind); any other text is
    /// an error, never a default.
    fn named<T>(&self, column: usize) -> Result<T, StoreError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        let text = self.text(column)?;
        text.parse().map_err(|e: T::Err| StoreError::Value {
            column,
            message: e.to_string(),
        })
    }

    fn opt_named<T>(&self, column: usize) -> Result<Option<T>, StoreError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.opt_text(column)? {
            None => Ok(None),
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|e: T::Err| StoreError::Value {
                    column,
                    message: e.to_string(),
                }),
        }
    }
}

impl Columns for rusqlite::Row<'_> {
    fn int(&self, column: usize) -> Result<i64, StoreError> {
        Ok(self.get(column)?)
    }
    fn opt_int(&self, column: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.get(column)?)
    }
    fn text(&self, column: usize) -> Result<String, StoreError> {
        Ok(self.get(column)?)
    }
    fn opt_text(&self, column: usize) -> Result<Option<String>, StoreError> {
        Ok(self.get(column)?)
    }
    fn opt_real(&self, column: usize) -> Result<Option<f64>, StoreError> {
        Ok(self.get(column)?)
    }
    fn blob(&self, column: usize) -> Result<Vec<u8>, StoreError> {
        Ok(self.get(column)?)
    }
}

impl Columns for tokio_postgres::Row {
    fn int(&self, column: usize) -> Result<i64, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn opt_int(&self, column: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn text(&self, column: usize) -> Result<String, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn opt_text(&self, column: usize) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn opt_real(&self, column: usize) -> Result<Option<f64>, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn blob(&self, column: usize) -> Result<Vec<u8>, StoreError> {
        Ok(self.try_get(column)?)
    }
}

fn words(text: String) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

/// A message's envelope columns ([`stored_message`] reads them).
pub(crate) const MESSAGE_COLUMNS: &str =
    "id, queue_id, arrived_at, mta_host, client_name, client_addr, helo, sasl_user,
    mail_from, mail_args, recipients_dropped, size, message_id, subject,
    archive_name, archive_state, mode, receipts, is_notice";

/// A message without its recipients (read apart, [`ENVELOPE_RECIPIENT_COLUMNS`]).
pub(crate) fn stored_message(row: &impl Columns) -> Result<StoredMessage, StoreError> {
    Ok(StoredMessage {
        id: row.int(0)?,
        host: None,
        envelope: Envelope {
            queue_id: row.opt_text(1)?,
            arrived_at: timestamp(row.int(2)?),
            mta_host: row.opt_text(3)?,
            client_name: row.opt_text(4)?,
            client_addr: row.opt_text(5)?,
            helo: row.opt_text(6)?,
            sasl_user: row.opt_text(7)?,
            mail_from: row.text(8)?,
            mail_args: words(row.text(9)?),
            recipients: Vec::new(),
            recipients_dropped: row.int(10)?.try_into().unwrap_or(u32::MAX),
            size: row.int(11)?.max(0) as u64,
            message_id: row.opt_text(12)?,
            subject: row.opt_text(13)?,
            archive_name: row.opt_text(14)?,
            archive_state: ArchiveState::parse(&row.text(15)?).unwrap_or(ArchiveState::Failed),
            mode: row.text(16)?,
            receipts: super::messages::parse_receipts(&row.text(17)?),
            is_notice: row.int(18)? != 0,
        },
    })
}

/// A message's recipients as the milter saw them, in RCPT order.
pub(crate) const ENVELOPE_RECIPIENT_COLUMNS: &str = "address, args";

pub(crate) fn envelope_recipient(row: &impl Columns) -> Result<Recipient, StoreError> {
    Ok(Recipient {
        address: row.text(0)?,
        args: words(row.text(1)?),
    })
}

/// A recipient's delivery state (its attempts are read apart, by its id: column 0).
pub(crate) const DELIVERY_COLUMNS: &str = "id, address, orig_to, status, category, dsn, reply,
    attempts, last_attempt_at, final_at";

pub(crate) fn recipient_delivery(
    row: &impl Columns,
) -> Result<(i64, RecipientDelivery), StoreError> {
    Ok((
        row.int(0)?,
        RecipientDelivery {
            address: row.text(1)?,
            orig_to: row.opt_text(2)?,
            status: row.named(3)?,
            category: row.opt_named(4)?,
            dsn: row.opt_text(5)?,
            reply: row.opt_text(6)?,
            attempts: row.int(7)?.try_into().unwrap_or(u32::MAX),
            last_attempt_at: row.opt_int(8)?.map(timestamp),
            final_at: row.opt_int(9)?.map(timestamp),
            attempt_list: Vec::new(),
        },
    ))
}

pub(crate) const ATTEMPT_COLUMNS: &str =
    "at, status, relay_host, relay_ip, relay_port, dsn, smtp_code, reply, stage, delay, category";

pub(crate) fn attempt(row: &impl Columns) -> Result<Attempt, StoreError> {
    Ok(Attempt {
        at: timestamp(row.int(0)?),
        status: row.named(1)?,
        relay_host: row.opt_text(2)?,
        relay_ip: row.opt_text(3)?,
        relay_port: row.opt_int(4)?.and_then(|p| u16::try_from(p).ok()),
        dsn: row.opt_text(5)?,
        smtp_code: row.opt_int(6)?.and_then(|c| u16::try_from(c).ok()),
        reply: row.text(7)?,
        stage: row.opt_text(8)?,
        delay: row.opt_real(9)?,
        category: row.opt_named(10)?,
    })
}

pub(crate) const NOTICE_COLUMNS: &str = "kind, recipients, due_at, sent_at, attempts, last_error";

pub(crate) fn message_notice(row: &impl Columns) -> Result<MessageNotice, StoreError> {
    Ok(MessageNotice {
        kind: row.named(0)?,
        recipients: row.text(1)?.lines().map(str::to_owned).collect(),
        due_at: timestamp(row.int(2)?),
        sent_at: row.opt_int(3)?.map(timestamp),
        attempts: row.int(4)?.try_into().unwrap_or(u32::MAX),
        last_error: row.opt_text(5)?,
    })
}

/// One row of a message list ([`super::summaries`] builds the statement): column 10 is the
/// host in the fleet database, NULL here.
pub(crate) fn message_summary(row: &impl Columns) -> Result<MessageSummary, StoreError> {
    Ok(MessageSummary {
        id: row.int(0)?,
        queue_id: row.opt_text(1)?,
        arrived_at: row.int(2)?,
        mail_from: row.text(3)?,
        subject: row.opt_text(4)?,
        size: row.int(5)?.max(0) as u64,
        first_recipient: row.opt_text(6)?,
        recipients: row.int(7)?.try_into().unwrap_or(u32::MAX),
        status: row.named(8)?,
        category: row.opt_named(9)?,
        host: row.opt_text(10)?,
    })
}

/// The row that handed a message over to a queue id (`keyed` by it), arrived up to the
/// correlation window before `arrived_at`, with that window's bounds (the next two parameters).
pub(crate) fn handed_over_to_statement(dialect: Dialect, arrived_at: i64) -> (String, (i64, i64)) {
    use crate::model::correlation::{CLOCK_SKEW_SECS, QUEUE_ID_WINDOW_SECS};
    let (from, to) = match dialect {
        Dialect::Sqlite => ("?2", "?3"),
        Dialect::Postgres => ("$3", "$4"),
    };
    (
        format!(
            "SELECT id FROM message WHERE {} AND arrived_at BETWEEN {from} AND {to}
             ORDER BY arrived_at DESC, id DESC LIMIT 1",
            dialect.keyed("handed_to")
        ),
        (
            arrived_at - QUEUE_ID_WINDOW_SECS,
            arrived_at + CLOCK_SKEW_SECS,
        ),
    )
}
