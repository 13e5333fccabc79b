//! The MTA's log lines as they were read, kept `maillog.raw_retention` (written by a
//! [`super::LogBatch`]); a scoped reader sees only the lines of its domains' messages.

use super::{
    DomainScope, Store, StoreError,
    messages::like_pattern,
    rows::{Arg, Dialect},
};
use crate::model::correlation::CLOCK_SKEW_SECS;
use rusqlite::params_from_iter;
use serde::Serialize;

/// One stored MTA log line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RawLine {
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    pub queue_id: Option<String>,
    pub line: String,
}

impl Store {
    /// Raw log lines since `since`, oldest first. `text` is a case-insensitive substring; a
    /// scoped reader only gets lines of queue ids that belong to messages of its domains.
    pub fn raw_lines(
        &self,
        scope: &DomainScope,
        since: i64,
        text: Option<&str>,
        queue_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RawLine>, StoreError> {
        let mut sql = String::from("SELECT id, at, queue_id, line FROM raw_line WHERE at >= ?");
        let mut args: Vec<Arg> = vec![since.into()];
        if let Some(text) = text {
            sql.push_str(" AND line LIKE ? ESCAPE '\\'");
            args.push(like_pattern(text).into());
        }
        if let Some(qid) = queue_id {
            sql.push_str(" AND queue_id = ?");
            args.push(qid.to_string().into());
        }
        if matches!(scope, DomainScope::Only(_)) {
            // A line belongs to the newest message with its queue id that arrived before it
            // (postfix reuses short ids): that message's sender decides. Lines without a queue
            // id (connects, rejects) belong to no domain and stay hidden.
            sql.push_str(" AND queue_id IS NOT NULL");
            scope.restrict(
                Dialect::Sqlite,
                &format!(
                    "(SELECT m.mail_from FROM message m WHERE m.queue_id = raw_line.queue_id
                        AND m.arrived_at <= raw_line.at + {CLOCK_SKEW_SECS}
                      ORDER BY m.arrived_at DESC, m.id DESC LIMIT 1)"
                ),
                &mut sql,
                &mut args,
            );
        }
        sql.push_str(" ORDER BY at, id LIMIT ?");
        args.push(i64::from(limit).into());
        let rows = self
            .conn
            .prepare(&sql)?
            .query_map(params_from_iter(args), |row| {
                Ok(RawLine {
                    id: row.get(0)?,
                    at: row.get(1)?,
                    queue_id: row.get(2)?,
                    line: row.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Unix seconds of the newest MTA log line kept; none when none is.
    pub fn newest_log_line_at(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT MAX(at) FROM raw_line", [], |row| row.get(0))?)
    }

    /// Deletes raw log lines older than `before` (unix seconds); returns how many.
    pub fn expire_raw_lines(&mut self, before: i64) -> Result<usize, StoreError> {
        Ok(self
            .conn
            .execute("DELETE FROM raw_line WHERE at < ?1", [before])?)
    }
}
