//! Deliveries as tracking recorded them: per recipient its final state and every attempt, and
//! totals over all attempts (they are written by a [`super::LogBatch`]).

use super::{
    Store, StoreError,
    rows::{self, ATTEMPT_COLUMNS, DELIVERY_COLUMNS, Dialect},
};
use crate::{
    bounce::Category,
    model::status::{DeliveryStatus, RecipientStatus},
};
use rusqlite::params;
use serde::Serialize;
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// One delivery attempt of one recipient, as the MTA logged it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Attempt {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    #[serde(serialize_with = "DeliveryStatus::serialize_name")]
    pub status: DeliveryStatus,
    pub relay_host: Option<String>,
    pub relay_ip: Option<String>,
    pub relay_port: Option<u16>,
    pub dsn: Option<String>,
    pub smtp_code: Option<u16>,
    /// The MTA's text: the remote reply or its own reason.
    pub reply: String,
    /// The SMTP command the reply answered (connect, rcpt-to, data, ...).
    pub stage: Option<String>,
    /// Seconds since the message arrived.
    pub delay: Option<f64>,
    /// Bounce category; none for `sent`.
    pub category: Option<Category>,
}

/// One recipient of a message: its current state and its attempts, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecipientDelivery {
    pub address: String,
    /// The address before alias or virtual rewriting, when the MTA logged one.
    pub orig_to: Option<String>,
    pub status: RecipientStatus,
    /// The category of the attempt that set the status.
    pub category: Option<Category>,
    pub dsn: Option<String>,
    pub reply: Option<String>,
    /// How many attempts were logged.
    pub attempts: u32,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_attempt_at: Option<OffsetDateTime>,
    /// When the recipient reached a final state (sent, bounced, expired).
    #[serde(with = "time::serde::rfc3339::option")]
    pub final_at: Option<OffsetDateTime>,
    pub attempt_list: Vec<Attempt>,
}

impl Store {
    /// The recipients of message row `message` in RCPT order, each with its attempts.
    pub fn deliveries(&self, message: i64) -> Result<Vec<RecipientDelivery>, StoreError> {
        let dialect = Dialect::Sqlite;
        let mut select = self.conn.prepare_cached(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM recipient WHERE {} ORDER BY position, id",
            dialect.keyed("message")
        ))?;
        let mut recipients = Vec::new();
        let mut found = select.query([message])?;
        while let Some(row) = found.next()? {
            recipients.push(rows::recipient_delivery(row)?);
        }
        let mut select = self.conn.prepare_cached(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempt WHERE {} ORDER BY at, id",
            dialect.keyed("recipient")
        ))?;
        for (id, recipient) in &mut recipients {
            let mut found = select.query(params![*id])?;
            while let Some(row) = found.next()? {
                recipient.attempt_list.push(rows::attempt(row)?);
            }
        }
        Ok(recipients.into_iter().map(|(_, r)| r).collect())
    }

    /// The number of attempts recorded, by status (sent, deferred, bounced, expired); statuses
    /// without attempts are absent.
    pub fn attempt_counts(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        Ok(self
            .conn
            .prepare("SELECT status, COUNT(*) FROM attempt GROUP BY status")?
            .query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)))?
            .collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests;
