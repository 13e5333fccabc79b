//! The MTA's log lines as they were read, kept `maillog.raw_retention` (written by a
//! [`super::LogBatch`]); a scoped reader sees only the lines of its domains' messages.

use super::{
    DomainScope, Store, StoreError,
    messages::like_pattern,
    rows::{Arg, Columns, Dialect},
};
use crate::model::correlation::CLOCK_SKEW_SECS;
use rusqlite::params_from_iter;
use serde::Serialize;

/// Which raw log lines a reader asks for.
#[derive(Clone, Debug)]
pub struct RawFilter {
    pub scope: DomainScope,
    /// Unix seconds: lines logged at or after.
    pub since: i64,
    /// A case-insensitive substring.
    pub text: Option<String>,
    pub queue_id: Option<String>,
    /// One MTA host's lines (the fleet database; none on one host's store).
    pub host: Option<String>,
    pub limit: u32,
}

/// Raw log lines of `filter`, oldest first ([`raw_line`] reads them). A scoped reader only gets
/// lines of queue ids that belong to messages of its domains.
pub(crate) fn raw_lines_statement(dialect: Dialect, filter: &RawFilter) -> (String, Vec<Arg>) {
    let host = match dialect {
        Dialect::Sqlite => "NULL",
        Dialect::Postgres => "host",
    };
    let mut sql = format!("SELECT id, at, queue_id, line, {host} FROM raw_line WHERE at >= ?");
    let mut args: Vec<Arg> = vec![filter.since.into()];
    if let Some(text) = &filter.text {
        sql.push_str(&format!(" AND line {} ? ESCAPE '\\'", dialect.like()));
        args.push(like_pattern(text).into());
    }
    if let Some(qid) = &filter.queue_id {
        sql.push_str(" AND queue_id = ?");
        args.push(qid.clone().into());
    }
    if let Some(host) = &filter.host {
        match dialect {
            Dialect::Sqlite => sql.push_str(" AND 1 = 0"),
            Dialect::Postgres => {
                sql.push_str(" AND host = ?");
                args.push(host.clone().into());
            }
        }
    }
    if matches!(filter.scope, DomainScope::Only(_)) {
        // A line belongs to the newest message with its queue id (on its host) that arrived
        // before it (postfix reuses short ids): that message's sender decides. Lines without a
        // queue id (connects, rejects) belong to no domain and stay hidden.
        let same_host = match dialect {
            Dialect::Sqlite => "",
            Dialect::Postgres => " AND m.host = raw_line.host",
        };
        sql.push_str(" AND queue_id IS NOT NULL");
        filter.scope.restrict(
            dialect,
            &format!(
                "(SELECT m.mail_from FROM message m WHERE m.queue_id = raw_line.queue_id{same_host}
                    AND m.arrived_at <= raw_line.at + {CLOCK_SKEW_SECS}
                  ORDER BY m.arrived_at DESC, m.id DESC LIMIT 1)"
            ),
            &mut sql,
            &mut args,
        );
    }
    sql.push_str(" ORDER BY at, id LIMIT ?");
    args.push(i64::from(filter.limit).into());
    (dialect.numbered(sql), args)
}

/// One row of [`raw_lines_statement`].
pub(crate) fn raw_line(row: &impl Columns) -> Result<RawLine, StoreError> {
    Ok(RawLine {
        id: row.int(0)?,
        at: row.int(1)?,
        queue_id: row.opt_text(2)?,
        line: row.text(3)?,
        host: row.opt_text(4)?,
    })
}

/// One stored MTA log line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RawLine {
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    pub queue_id: Option<String>,
    pub line: String,
    /// The MTA host that logged it, on the fleet's pages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl Store {
    /// Raw log lines since `since`, oldest first. `text` is a case-insensitive substring; a
    /// scoped reader only gets lines of queue ids that belong to messages of its domains.
    pub fn raw_lines(&self, filter: &RawFilter) -> Result<Vec<RawLine>, StoreError> {
        let (sql, args) = raw_lines_statement(Dialect::Sqlite, filter);
        let mut select = self.conn.prepare(&sql)?;
        let mut found = select.query(params_from_iter(args))?;
        let mut lines = Vec::new();
        while let Some(row) = found.next()? {
            lines.push(raw_line(row)?);
        }
        Ok(lines)
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
