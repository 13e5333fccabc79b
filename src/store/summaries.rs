//! Message summaries: lists of messages, each with its worst recipient state, filtered and
//! counted, and the totals behind `/metrics`. Every list takes a domain scope so a user limited
//! to some sender domains never gets another domain's rows.

use super::{
    Store, StoreError,
    messages::{like_pattern, text_filters},
    rows::{self, Arg, Dialect},
};
use crate::{bounce::Category, model::status::RecipientStatus};
use rusqlite::params_from_iter;
use serde::Serialize;
use std::collections::BTreeMap;

/// Which sender domains a reader may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DomainScope {
    All,
    /// Lower-case domains; the sender's domain must be one of them.
    Only(Vec<String>),
}

impl DomainScope {
    /// Appends `AND <sender column in scope>` to `sql`.
    pub(super) fn restrict(
        &self,
        dialect: Dialect,
        column: &str,
        sql: &mut String,
        args: &mut Vec<Arg>,
    ) {
        let DomainScope::Only(domains) = self else {
            return;
        };
        if domains.is_empty() {
            sql.push_str(" AND 1 = 0");
            return;
        }
        // `%@example.com` matches what follows the last `@` exactly (LIKE is ASCII
        // case-insensitive), so `x@sub.example.com` and `x@example.com.evil` stay out.
        let terms: Vec<String> = domains
            .iter()
            .map(|d| {
                let pattern = like_pattern(d);
                args.push(format!("%@{}", &pattern[1..pattern.len() - 1]).into());
                format!("{column} {} ? ESCAPE '\\'", dialect.like())
            })
            .collect();
        sql.push_str(&format!(" AND ({})", terms.join(" OR ")));
    }
}

/// Where the live page stopped: the largest message id it has shown, of each host on the
/// fleet's dashboard (ids are a host's own: each host's only grow as its batches arrive in
/// order), of the one store on a host. Written `42` or `relay1:42,relay2:7` (the event
/// stream's `Last-Event-ID`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveCursor(BTreeMap<Option<String>, i64>);

impl LiveCursor {
    /// The cursor moved past `rows`.
    pub fn advance(&mut self, rows: &[MessageSummary]) {
        for m in rows {
            let last = self.0.entry(m.host.clone()).or_insert(m.id);
            *last = (*last).max(m.id);
        }
    }

    /// `AND` the condition "past this cursor" to `sql`.
    fn restrict(&self, dialect: Dialect, sql: &mut String, args: &mut Vec<Arg>) {
        for (host, id) in &self.0 {
            match (dialect, host) {
                (Dialect::Sqlite, None) => sql.push_str(" AND m.id > ?"),
                // Another store's position says nothing here.
                (Dialect::Sqlite, Some(_)) | (Dialect::Postgres, None) => continue,
                (Dialect::Postgres, Some(host)) => {
                    sql.push_str(" AND NOT (m.host = ? AND m.id <= ?)");
                    args.push(host.clone().into());
                }
            }
            args.push((*id).into());
        }
    }
}

impl std::fmt::Display for LiveCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(host, id)| match host {
                Some(host) => format!("{host}:{id}"),
                None => id.to_string(),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl std::str::FromStr for LiveCursor {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut cursor = LiveCursor::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (host, id) = match part.rsplit_once(':') {
                Some((host, id)) => (Some(host.to_string()), id),
                None => (None, part),
            };
            cursor.0.insert(host, id.parse()?);
        }
        Ok(cursor)
    }
}

/// Filters of the message lists; all combined with AND.
#[derive(Clone, Debug)]
pub struct SummaryFilter {
    pub scope: DomainScope,
    /// Unix seconds: messages that arrived at or after.
    pub since: i64,
    /// Only rows past this cursor (the live page's new rows).
    pub after: LiveCursor,
    /// Substrings, case-insensitive.
    pub from: Option<String>,
    pub to: Option<String>,
    pub subject: Option<String>,
    /// Summary status: that of the message's worst recipient.
    pub status: Option<RecipientStatus>,
    pub category: Option<Category>,
    /// Only the messages of this MTA host (the fleet database; none match on one host's store).
    pub host: Option<String>,
    pub limit: u32,
    pub offset: u32,
}

impl SummaryFilter {
    pub fn new(scope: DomainScope, since: i64) -> Self {
        SummaryFilter {
            scope,
            since,
            after: LiveCursor::default(),
            from: None,
            to: None,
            subject: None,
            status: None,
            category: None,
            host: None,
            limit: 100,
            offset: 0,
        }
    }
}

/// One row of a message list.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MessageSummary {
    pub id: i64,
    pub queue_id: Option<String>,
    /// Unix seconds.
    pub arrived_at: i64,
    pub mail_from: String,
    pub subject: Option<String>,
    pub size: u64,
    /// The first recipient, and how many there are in all.
    pub first_recipient: Option<String>,
    pub recipients: u32,
    /// The worst recipient state ([`RecipientStatus::worst`]).
    pub status: RecipientStatus,
    /// The category of that worst recipient's last failure.
    pub category: Option<Category>,
    /// The MTA host that recorded it, on the fleet's pages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// Totals for `/metrics`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Totals {
    pub messages: u64,
    /// Bytes of messages whose copy is in the archive now.
    pub archived_messages: u64,
    pub archived_bytes: u64,
    /// (status, count) of every recorded attempt.
    pub attempts: Vec<(String, u64)>,
    /// (status, count) of recipients' current states.
    pub recipients: Vec<(String, u64)>,
}

/// A count of matching messages that stops at a cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct MessageCount {
    /// The matches, or the cap when there are more.
    pub count: u64,
    /// More messages match than `count`.
    pub capped: bool,
}

impl Store {
    /// Messages matching `filter`, newest first, with their summary state.
    pub fn message_summaries(
        &self,
        filter: &SummaryFilter,
    ) -> Result<Vec<MessageSummary>, StoreError> {
        let (sql, args) = summaries_statement(filter, Dialect::Sqlite);
        let mut select = self.conn.prepare(&sql)?;
        let mut found = select.query(params_from_iter(args))?;
        let mut summaries = Vec::new();
        while let Some(row) = found.next()? {
            summaries.push(rows::message_summary(row)?);
        }
        Ok(summaries)
    }

    /// How many messages match `filter` (its limit and offset ignored), exactly: a scan of
    /// every match, for the CLI. Pages use [`Store::count_summaries_upto`].
    pub fn count_summaries(&self, filter: &SummaryFilter) -> Result<u64, StoreError> {
        let (where_sql, args) = match_query(filter, Dialect::Sqlite);
        let sql = format!("SELECT COUNT(*) FROM message m WHERE {where_sql}");
        let n: i64 = self
            .conn
            .prepare(&sql)?
            .query_row(params_from_iter(args), |row| row.get(0))?;
        Ok(n as u64)
    }

    /// How many messages match `filter`, counting no further than `cap`: a pager needs "more
    /// than a page's worth", and counting a million matches costs a scan of all of them.
    pub fn count_summaries_upto(
        &self,
        filter: &SummaryFilter,
        cap: u64,
    ) -> Result<MessageCount, StoreError> {
        let (sql, args) = count_upto_statement(filter, cap, Dialect::Sqlite);
        let n: i64 = self
            .conn
            .prepare(&sql)?
            .query_row(params_from_iter(args), |row| row.get(0))?;
        Ok(MessageCount::capped(n, cap))
    }

    /// Totals over the whole store, for `/metrics` and reports: as of the last statistics
    /// refresh ([`Store::refresh_stats`] counts them), so a scrape never scans the tables.
    pub fn totals(&self) -> Result<Totals, StoreError> {
        let mut totals = Totals::default();
        let mut stmt = self.conn.prepare_cached(
            "SELECT name, value FROM stats_state WHERE name GLOB 'total.*' ORDER BY name",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let name: String = row.get(0)?;
            let value = row.get::<_, i64>(1)?.max(0) as u64;
            match name.trim_start_matches("total.").split_once('.') {
                None if name == "total.messages" => totals.messages = value,
                None if name == "total.archived_messages" => totals.archived_messages = value,
                None if name == "total.archived_bytes" => totals.archived_bytes = value,
                Some(("attempts", status)) => totals.attempts.push((status.to_string(), value)),
                Some(("recipients", status)) => totals.recipients.push((status.to_string(), value)),
                _ => {}
            }
        }
        Ok(totals)
    }
}

/// The totals [`Store::totals`] serves, counted from the tables (a full scan of each:
/// done by the statistics refresh in the background, not per request). `(name, value)` pairs
/// for `stats_state`.
pub(super) fn count_totals(conn: &rusqlite::Connection) -> Result<Vec<(String, i64)>, StoreError> {
    let count = |sql: &str| -> Result<i64, StoreError> {
        Ok(conn.prepare_cached(sql)?.query_row([], |row| row.get(0))?)
    };
    // Each count reads an index where one exists (COUNT(*) the smallest; each state its partial
    // index); only the archive sums and the attempt statuses read their table.
    let (archived_messages, archived_bytes): (i64, i64) = conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM message WHERE archive_state = ?1",
        [crate::model::envelope::ArchiveState::Stored.as_str()],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let mut out = vec![
        (
            "total.messages".to_string(),
            count("SELECT COUNT(*) FROM message WHERE handed_to IS NULL")?,
        ),
        ("total.archived_messages".to_string(), archived_messages),
        ("total.archived_bytes".to_string(), archived_bytes),
    ];
    let mut stmt = conn
        .prepare_cached("SELECT status, COUNT(*) FROM attempt GROUP BY status ORDER BY status")?;
    let attempts = stmt
        .query_map([], |row| {
            Ok((
                format!("total.attempts.{}", row.get::<_, String>(0)?),
                row.get(1)?,
            ))
        })?
        .collect::<Result<Vec<(String, i64)>, _>>()?;
    out.extend(attempts);
    // A recipient is pending, deferred, bounced, expired or sent: the last is the rest.
    let mut sent = count("SELECT COUNT(*) FROM recipient")?;
    let unsent = RecipientStatus::WORST_FIRST
        .into_iter()
        .filter(|s| *s != RecipientStatus::Sent);
    for status in unsent {
        let n = count(&format!(
            "SELECT COUNT(*) FROM recipient WHERE status = '{status}'"
        ))?;
        sent -= n;
        out.push((format!("total.recipients.{status}"), n));
    }
    out.push((format!("total.recipients.{}", RecipientStatus::Sent), sent));
    Ok(out)
}

impl MessageCount {
    /// `n` matches counted up to one past `cap`.
    pub(crate) fn capped(n: i64, cap: u64) -> MessageCount {
        let n = n.max(0) as u64;
        MessageCount {
            count: n.min(cap),
            capped: n > cap,
        }
    }
}

/// A page of a message list, newest first ([`rows::message_summary`] reads its rows).
pub(crate) fn summaries_statement(filter: &SummaryFilter, dialect: Dialect) -> (String, Vec<Arg>) {
    let (where_sql, mut args) = match_query(filter, dialect);
    let of_message = dialect.of_message("r", "message");
    let host = match dialect {
        Dialect::Sqlite => "NULL",
        Dialect::Postgres => "m.host",
    };
    let sql = format!(
        "SELECT m.id, m.queue_id, m.arrived_at, m.mail_from, m.subject, m.size,
            (SELECT r.address FROM recipient r WHERE {of_message} ORDER BY r.position, r.id LIMIT 1)
                AS first_recipient,
            (SELECT COUNT(*) FROM recipient r WHERE {of_message}) AS recipients,
            {worst_status} AS status,
            {worst_category} AS category,
            {host} AS host
         FROM message m WHERE {where_sql}
         ORDER BY m.arrived_at DESC, m.id DESC LIMIT ? OFFSET ?",
        worst_status = worst_status(dialect),
        worst_category = worst_category(dialect),
    );
    args.push(i64::from(filter.limit).into());
    args.push(i64::from(filter.offset).into());
    (dialect.numbered(sql), args)
}

/// How many messages match `filter`, counted up to one past `cap`.
pub(crate) fn count_upto_statement(
    filter: &SummaryFilter,
    cap: u64,
    dialect: Dialect,
) -> (String, Vec<Arg>) {
    let (where_sql, mut args) = match_query(filter, dialect);
    let sql = format!(
        "SELECT COUNT(*) FROM (SELECT 1 FROM message m WHERE {where_sql} LIMIT ?) AS matches"
    );
    args.push(
        i64::try_from(cap.saturating_add(1))
            .unwrap_or(i64::MAX)
            .into(),
    );
    (dialect.numbered(sql), args)
}

/// The summary status of message `m`: its worst recipient's state ([`RecipientStatus::worst`]),
/// `pending` without any.
fn worst_status(dialect: Dialect) -> String {
    format!(
        "COALESCE((SELECT r.status FROM recipient r WHERE {}
            ORDER BY {}, r.last_attempt_at DESC LIMIT 1), '{}')",
        dialect.of_message("r", "message"),
        severity_order("r.status"),
        RecipientStatus::Pending
    )
}

/// The category of message `m`'s worst recipient's last failure.
fn worst_category(dialect: Dialect) -> String {
    format!(
        "(SELECT r.category FROM recipient r WHERE {}
            ORDER BY {}, r.last_attempt_at DESC LIMIT 1)",
        dialect.of_message("r", "message"),
        severity_order("r.status")
    )
}

/// An `ORDER BY` term ranking `column` worst first (the fleet database's `recipient_rank`
/// index holds it for `status`), in [`RecipientStatus::WORST_FIRST`]'s order.
fn severity_order(column: &str) -> String {
    let mut sql = format!("CASE {column}");
    for status in RecipientStatus::WORST_FIRST {
        sql.push_str(&format!(" WHEN '{status}' THEN {}", status.severity()));
    }
    sql.push_str(&format!(" ELSE {} END", RecipientStatus::WORST_FIRST.len()));
    sql
}

/// Whether message `m` has a recipient in state `status`.
fn has_recipient(status: RecipientStatus, dialect: Dialect) -> String {
    format!(
        "EXISTS (SELECT 1 FROM recipient r WHERE {} AND r.status = '{status}')",
        dialect.of_message("r", "message")
    )
}

/// The condition "the summary status of `m` is `status`" without ranking every recipient: the
/// worst state wins ([`RecipientStatus::worst`]), so a message is in `status` when a recipient
/// is and none is in a worse one; one without recipients is `Pending`. The rare states
/// (bounced, expired, deferred) start from their recipients instead of testing every message
/// of the period. States are literals, so SQLite can use the partial index.
fn status_condition(status: RecipientStatus, dialect: Dialect) -> String {
    let worse = &RecipientStatus::WORST_FIRST[..status.severity()];
    let of_message = dialect.of_message("r", "message");
    let none_worse = || -> String {
        worse
            .iter()
            .map(|w| format!(" AND NOT {}", has_recipient(*w, dialect)))
            .collect()
    };
    match status {
        RecipientStatus::Pending => format!(
            "({} OR NOT EXISTS (SELECT 1 FROM recipient r WHERE {of_message})){}",
            has_recipient(status, dialect),
            none_worse()
        ),
        // The best state: every other one is worse, tested in one subquery.
        RecipientStatus::Sent => format!(
            "{} AND NOT EXISTS (SELECT 1 FROM recipient r WHERE {of_message}
                AND r.status IN ({}))",
            has_recipient(status, dialect),
            worse
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => match dialect {
            Dialect::Sqlite => format!(
                "m.id IN (SELECT r.message FROM recipient r WHERE r.status = '{status}'){}",
                none_worse()
            ),
            Dialect::Postgres => format!(
                "(m.host, m.id) IN (SELECT r.host, r.message FROM recipient r
                    WHERE r.status = '{status}'){}",
                none_worse()
            ),
        },
    }
}

/// The WHERE condition (on `message m`) of the list filters, with its arguments, written with
/// `?` ([`Dialect::numbered`] numbers them).
fn match_query(filter: &SummaryFilter, dialect: Dialect) -> (String, Vec<Arg>) {
    // A row handed over to a next hop on this host is not the message: the next hop's is.
    let mut sql = String::from("m.arrived_at >= ? AND m.handed_to IS NULL");
    let mut args: Vec<Arg> = vec![filter.since.into()];
    filter
        .scope
        .restrict(dialect, "m.mail_from", &mut sql, &mut args);
    if let Some(host) = &filter.host {
        match dialect {
            // This host's store holds no other host's messages.
            Dialect::Sqlite => sql.push_str(" AND 1 = 0"),
            Dialect::Postgres => {
                sql.push_str(" AND m.host = ?");
                args.push(host.clone().into());
            }
        }
    }
    filter.after.restrict(dialect, &mut sql, &mut args);
    text_filters(
        dialect,
        filter.from.as_deref(),
        filter.to.as_deref(),
        filter.subject.as_deref(),
        &mut sql,
        &mut args,
    );
    if let Some(status) = filter.status {
        sql.push_str(" AND ");
        sql.push_str(&status_condition(status, dialect));
    }
    if let Some(category) = filter.category {
        if dialect == Dialect::Postgres {
            // The messages with a recipient in the category first (an index holds them): the
            // worst recipient's is then checked on those alone.
            // A recipient's attempts come after its message arrived, so one whose last
            // attempt is older than the period (by more than a day: clocks and time zones
            // differ) is not one of its messages'; the exact test on the message follows.
            sql.push_str(
                " AND (m.host, m.id) IN (SELECT r.host, r.message FROM recipient r
                    WHERE r.category = ? AND (r.last_attempt_at >= ? OR r.last_attempt_at IS NULL))",
            );
            args.push(category.as_str().to_string().into());
            args.push((filter.since - 86_400).into());
        }
        sql.push_str(&format!(" AND {} = ?", worst_category(dialect)));
        args.push(category.as_str().to_string().into());
    }
    (sql, args)
}

#[cfg(test)]
mod tests;
