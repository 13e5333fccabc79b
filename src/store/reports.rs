//! Scheduled reports (the weekly summary): each recorded when it falls due and marked once sent,
//! and the few figures a report needs beside the statistics rollups.

use super::{Store, StoreError};
use rusqlite::{OptionalExtension, params};
use std::collections::BTreeMap;

/// Where one scheduled report stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportRecord {
    /// Unix seconds it fell due.
    pub due_at: i64,
    pub sent_at: Option<i64>,
    pub attempts: u32,
}

const RECORD_SQL: &str = "SELECT sent_at, attempts FROM report WHERE kind = ?1 AND due_at = ?2";

fn record_of(due_at: i64, row: &rusqlite::Row) -> rusqlite::Result<ReportRecord> {
    Ok(ReportRecord {
        due_at,
        sent_at: row.get(0)?,
        attempts: row.get(1)?,
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
        tx.execute(
            "INSERT OR IGNORE INTO report (kind, due_at, recorded_at) VALUES (?1, ?2, ?3)",
            params![kind, due_at, now],
        )?;
        let record = tx.query_row(RECORD_SQL, params![kind, due_at], |row| {
            record_of(due_at, row)
        })?;
        tx.commit()?;
        Ok(record)
    }

    /// The record of report `kind` due at `due_at`, if it was recorded.
    pub fn report_record(
        &self,
        kind: &str,
        due_at: i64,
    ) -> Result<Option<ReportRecord>, StoreError> {
        Ok(self
            .conn
            .query_row(RECORD_SQL, params![kind, due_at], |row| {
                record_of(due_at, row)
            })
            .optional()?)
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
            None => tx.execute(
                "UPDATE report SET sent_at = ?3, attempts = attempts + 1, last_error = NULL
                 WHERE kind = ?1 AND due_at = ?2",
                params![kind, due_at, now],
            )?,
            Some(e) => tx.execute(
                "UPDATE report SET attempts = attempts + 1, last_error = ?3
                 WHERE kind = ?1 AND due_at = ?2",
                params![kind, due_at, e],
            )?,
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
        let mut stmt = self.conn.prepare_cached(
            "SELECT kind, COUNT(*) FROM notice WHERE sent_at >= ?1 AND sent_at < ?2 GROUP BY kind",
        )?;
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
