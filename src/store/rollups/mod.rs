//! The statistics rollups in SQL: tables per local day (and hour) and sender domain, filled by
//! [`Store::refresh_stats`] from the message, attempt and reject tables, and read by
//! [`Store::stats`] — pages, CLI and reports never scan the raw tables. What the figures mean,
//! the periods and how a period's rows are summed up are in [`crate::stats`].
//!
//! Refresh: days are recomputed whole. A refresh recomputes the days of rows added since the
//! last one (id watermarks of message, attempt and reject; an attempt also dirties the day its
//! message arrived, whose recipient count it may change), plus today and yesterday of both the
//! last refresh and this one (rows are updated — a sender or size filled in by later log lines —
//! only while a message is young). A changed UTC offset, or no refresh yet, rebuilds all days.

mod refresh;

use super::{
    DomainScope, Store, StoreError,
    rows::{Arg, Columns, Dialect},
};
use crate::stats::{Dimension, KeyedRow, Stats, StatsAssembler, StatsCounts, StatsPeriod};
use refresh::STATE_REFRESHED_AT;
use rusqlite::{OptionalExtension, params_from_iter};
use std::collections::BTreeSet;

/// The `sender_domain` of the rows that total every domain: no domain after an address's last
/// `@` can contain an `@`.
const ALL_DOMAINS: &str = "@";

impl Store {
    /// Unix seconds of the last [`Store::refresh_stats`]; none before the first.
    pub fn stats_refreshed_at(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT value FROM stats_state WHERE name = ?1",
                [STATE_REFRESHED_AT],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Statistics of `period` for the sender domains `scope` allows, from the rollups only.
    pub fn stats(&self, period: &StatsPeriod, scope: &DomainScope) -> Result<Stats, StoreError> {
        let domains = scope_domains(scope);
        let mut stats = StatsAssembler::new(*period);
        let (sql, args) = hour_rows_statement(Dialect::Sqlite, period, &domains, None);
        let mut select = self.conn.prepare_cached(&sql)?;
        let mut rows = select.query(params_from_iter(args))?;
        while let Some(row) = rows.next()? {
            add_hour_row(&mut stats, row)?;
        }
        stats.finish(self.stats_refreshed_at()?, |dim| {
            let (sql, args) = keyed_rows_statement(Dialect::Sqlite, dim, period, &domains, None);
            let mut select = self.conn.prepare_cached(&sql)?;
            let mut rows = select.query(params_from_iter(args))?;
            let mut keyed = Vec::new();
            while let Some(row) = rows.next()? {
                keyed.push(keyed_row(row)?);
            }
            Ok(keyed)
        })
    }
}

/// The `stats_hour` rows of the period and domains (and host, in the fleet database):
/// [`add_hour_row`] reads them.
pub(crate) fn hour_rows_statement(
    dialect: Dialect,
    period: &StatsPeriod,
    domains: &[String],
    host: Option<&str>,
) -> (String, Vec<Arg>) {
    let (from, to) = period.days();
    let mut args: Vec<Arg> = vec![from.into(), to.into()];
    let mut sql = format!(
        "SELECT day, hour, messages, recipients, bytes, sent, deferred, bounced, expired,
            rejected, delay_hist
         FROM stats_hour WHERE day >= ? AND day < ? AND sender_domain IN ({})",
        domain_marks(domains, &mut args)
    );
    host_condition(dialect, host, &mut sql, &mut args);
    (dialect.numbered(sql), args)
}

/// Adds one row of [`hour_rows_statement`].
pub(crate) fn add_hour_row(
    stats: &mut StatsAssembler,
    row: &impl Columns,
) -> Result<(), StoreError> {
    let counts = counts_from_row(row, 2)?;
    stats.add_hour(row.int(0)?, row.int(1)?, &counts, &row.blob(10)?);
    Ok(())
}

/// The rows of dimension `dim` summed over the period and domains (and host): whole months from
/// the month sums, the days around them from the day rows. [`keyed_row`] reads them.
pub(crate) fn keyed_rows_statement(
    dialect: Dialect,
    dim: Dimension,
    period: &StatsPeriod,
    domains: &[String],
    host: Option<&str>,
) -> (String, Vec<Arg>) {
    let ranges = period.keyed_ranges();
    let columns =
        "key, key2, messages, recipients, bytes, sent, deferred, bounced, expired, rejected";
    let mut args: Vec<Arg> = Vec::new();
    let mut part = |table: &str, period_column: &str, range: (i64, i64)| {
        args.push(dim.as_str().to_string().into());
        let mut sql = format!(
            "SELECT {columns} FROM {table} WHERE dimension = ? AND sender_domain IN ({})",
            domain_marks(domains, &mut args)
        );
        sql.push_str(&format!(
            " AND {period_column} >= ? AND {period_column} < ?"
        ));
        args.push(range.0.into());
        args.push(range.1.into());
        host_condition(dialect, host, &mut sql, &mut args);
        sql
    };
    let head = part("stats_key", "day", ranges.head);
    let tail = part("stats_key", "day", ranges.tail);
    let months = part("stats_key_month", "month", ranges.months);
    let sql = format!(
        "SELECT key, key2, {} FROM ({head} UNION ALL {tail} UNION ALL {months}) AS rows
         GROUP BY key, key2",
        sums(dialect)
    );
    (dialect.numbered(sql), args)
}

/// Each MTA host's totals of the period and domains, from the hourly rollups (the fleet
/// database's rows carry a host; [`counts_from_row`] from column 1 reads them).
pub(crate) fn by_host_statement(
    period: &StatsPeriod,
    domains: &[String],
    host: Option<&str>,
) -> (String, Vec<Arg>) {
    let dialect = Dialect::Postgres;
    let (from, to) = period.days();
    let mut args: Vec<Arg> = vec![from.into(), to.into()];
    let mut sql = format!(
        "SELECT host, {} FROM stats_hour WHERE day >= ? AND day < ? AND sender_domain IN ({})",
        sums(dialect),
        domain_marks(domains, &mut args)
    );
    host_condition(dialect, host, &mut sql, &mut args);
    sql.push_str(" GROUP BY host ORDER BY host");
    (dialect.numbered(sql), args)
}

/// The eight counters of the rollup tables, in [`counts_from_row`]'s order.
const COUNTERS: [&str; 8] = [
    "messages",
    "recipients",
    "bytes",
    "sent",
    "deferred",
    "bounced",
    "expired",
    "rejected",
];

/// `SUM(...)` of each of [`COUNTERS`].
fn sums(dialect: Dialect) -> String {
    COUNTERS.map(|column| dialect.sum(column)).join(", ")
}

/// One row of [`keyed_rows_statement`].
pub(crate) fn keyed_row(row: &impl Columns) -> Result<KeyedRow, StoreError> {
    Ok((row.text(0)?, row.text(1)?, counts_from_row(row, 2)?))
}

/// `?, ?, ...` for `domains`, pushed to `args`.
fn domain_marks(domains: &[String], args: &mut Vec<Arg>) -> String {
    args.extend(domains.iter().cloned().map(Arg::from));
    vec!["?"; domains.len()].join(", ")
}

/// Only `host`'s rows: none in this host's store, which holds no other host's.
fn host_condition(dialect: Dialect, host: Option<&str>, sql: &mut String, args: &mut Vec<Arg>) {
    let Some(host) = host else { return };
    match dialect {
        Dialect::Sqlite => sql.push_str(" AND 1 = 0"),
        Dialect::Postgres => {
            sql.push_str(" AND host = ?");
            args.push(host.to_string().into());
        }
    }
}

/// The `sender_domain` values of the rows a scope may read.
pub(crate) fn scope_domains(scope: &DomainScope) -> Vec<String> {
    let mut domains: Vec<String> = match scope {
        DomainScope::All => vec![ALL_DOMAINS.to_string()],
        // A configured "domain" with an `@` would otherwise reach the all-domain rows.
        DomainScope::Only(list) => list
            .iter()
            .filter(|d| !d.contains('@'))
            .map(|d| d.to_ascii_lowercase())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    };
    if domains.is_empty() {
        // Matches no row: every stored domain is a real one or `@`.
        domains.push("@@".to_string());
    }
    domains
}

/// The eight counters of a rollup row, from column `first` on.
pub(crate) fn counts_from_row(row: &impl Columns, first: usize) -> Result<StatsCounts, StoreError> {
    let n = |i: usize| row.int(first + i).map(|v| v.max(0) as u64);
    Ok(StatsCounts {
        messages: n(0)?,
        recipients: n(1)?,
        bytes: n(2)?,
        delivered: n(3)?,
        deferred: n(4)?,
        bounced: n(5)?,
        expired: n(6)?,
        rejected: n(7)?,
    })
}

#[cfg(test)]
mod tests;
