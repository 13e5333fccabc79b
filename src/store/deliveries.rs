//! Deliveries as tracking recorded them: per recipient its final state and every attempt, and
//! totals over all attempts (they are written by a [`super::LogBatch`]).

use super::{Store, StoreError, named, named_opt, timestamp};
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
        let mut recipients: Vec<(i64, RecipientDelivery)> = self
            .conn
            .prepare_cached(
                "SELECT id, address, orig_to, status, category, dsn, reply, attempts,
                    last_attempt_at, final_at
                 FROM recipient WHERE message = ?1 ORDER BY position, id",
            )?
            .query_map([message], |row| {
                Ok((
                    row.get(0)?,
                    RecipientDelivery {
                        address: row.get(1)?,
                        orig_to: row.get(2)?,
                        status: named(row, 3)?,
                        category: named_opt(row, 4)?,
                        dsn: row.get(5)?,
                        reply: row.get(6)?,
                        attempts: row.get::<_, i64>(7)?.try_into().unwrap_or(u32::MAX),
                        last_attempt_at: row.get::<_, Option<i64>>(8)?.map(timestamp),
                        final_at: row.get::<_, Option<i64>>(9)?.map(timestamp),
                        attempt_list: Vec::new(),
                    },
                ))
            })?
            .collect::<Result<_, _>>()?;
        let mut attempts = self.conn.prepare_cached(
            "SELECT at, status, relay_host, relay_ip, relay_port, dsn, smtp_code, reply, stage,
                delay, category
             FROM attempt WHERE recipient = ?1 ORDER BY at, id",
        )?;
        for (id, r) in &mut recipients {
            r.attempt_list = attempts
                .query_map(params![*id], |row| {
                    Ok(Attempt {
                        at: timestamp(row.get(0)?),
                        status: named(row, 1)?,
                        relay_host: row.get(2)?,
                        relay_ip: row.get(3)?,
                        relay_port: row.get(4)?,
                        dsn: row.get(5)?,
                        smtp_code: row.get(6)?,
                        reply: row.get(7)?,
                        stage: row.get(8)?,
                        delay: row.get(9)?,
                        category: named_opt(row, 10)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
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
