//! Scheduled reports (the weekly summary): each recorded when it falls due and marked once sent,
//! and the few figures a report needs beside the statistics rollups.

use super::{Store, StoreError, rows::Columns};
use rusqlite::params;
use std::collections::BTreeMap;

/// Where one scheduled report stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportRecord {
    /// Unix seconds it fell due.
    pub due_at: i64,
    pub sent_at: Option<i64>,
    pub attempts: u32,
    /// Another sender (a second dashboard on the fleet database) is sending it now.
    pub taken: bool,
}

// The statements of the report ledger, the same in this host's store and in the fleet database
// (the dashboard's reports), written with `?` (see `Dialect::numbered`).

/// (kind, due_at, now)
pub(crate) const RECORD_DUE_SQL: &str =
    "INSERT INTO report (kind, due_at, recorded_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING";
/// (kind, due_at)
pub(crate) const RECORD_SQL: &str =
    "SELECT sent_at, attempts FROM report WHERE kind = ? AND due_at = ?";
/// (now, kind, due_at)
pub(crate) const SENT_SQL: &str = "UPDATE report SET sent_at = ?, attempts = attempts + 1,
    last_error = NULL WHERE kind = ? AND due_at = ?";
/// (error, kind, due_at)
pub(crate) const FAILED_SQL: &str =
    "UPDATE report SET attempts = attempts + 1, last_error = ? WHERE kind = ? AND due_at = ?";
/// (from, to)
pub(crate) const NOTICES_SENT_SQL: &str =
    "SELECT kind, COUNT(*) FROM notice WHERE sent_at >= ? AND sent_at < ? GROUP BY kind";

pub(crate) fn record_of(due_at: i64, row: &impl Columns) -> Result<ReportRecord, StoreError> {
    Ok(ReportRecord {
        due_at,
        sent_at: row.opt_int(0)?,
        attempts: row.int(1)?.try_into().unwrap_or(u32::MAX),
        taken: false,
    })
}

impl Store {
    /// Records report `kind` due at `due_at` unless it is already, and returns its record.
    pub fn record_report_due(
        &mut self,
        kind: &str,
        due_at: i64,
        now: i64,
    ) -> Result<ReportRecord, StoreError> {
        let tx = self.write_transaction()?;
        tx.execute(RECORD_DUE_SQL, params![kind, due_at, now])?;
        let record = {
            let mut select = tx.prepare_cached(RECORD_SQL)?;
            let mut rows = select.query(params![kind, due_at])?;
            let row = rows.next()?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
            record_of(due_at, row)?
        };
        tx.commit()?;
        Ok(record)
    }

    /// The record of report `kind` due at `due_at`, if it was recorded.
    pub fn report_record(
        &self,
        kind: &str,
        due_at: i64,
    ) -> Result<Option<ReportRecord>, StoreError> {
        let mut select = self.conn.prepare_cached(RECORD_SQL)?;
        let mut rows = select.query(params![kind, due_at])?;
        rows.next()?.map(|row| record_of(due_at, row)).transpose()
    }

    /// Marks the report sent (`error: None`) or counts a failed attempt.
    pub fn finish_report_attempt(
        &mut self,
        kind: &str,
        due_at: i64,
        now: i64,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let tx = self.write_transaction()?;
        match error {
            None => tx.execute(SENT_SQL, params![now, kind, due_at])?,
            Some(e) => tx.execute(FAILED_SQL, params![e, kind, due_at])?,
        };
        tx.commit()?;
        Ok(())
    }

    /// Sender notices sent in `[from, to)` (unix seconds), by kind.
    pub fn notices_sent_between(
        &self,
        from: i64,
        to: i64,
    ) -> Result<BTreeMap<String, u64>, StoreError> {
        let mut stmt = self.conn.prepare_cached(NOTICES_SENT_SQL)?;
        let rows = stmt
            .query_map(params![from, to], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64))
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests;
