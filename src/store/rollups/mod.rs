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

use super::{DomainScope, Store, StoreError};
use crate::stats::{Dimension, KeyedRow, Stats, StatsAssembler, StatsCounts, StatsPeriod};
use refresh::STATE_REFRESHED_AT;
use rusqlite::{OptionalExtension, params_from_iter, types::Value};
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
        self.each_hour_row(period, &domains, |day, hour, counts, delays| {
            stats.add_hour(day, hour, counts, delays)
        })?;
        stats.finish(self.stats_refreshed_at()?, |dim| {
            self.keyed_rows(dim, period, &domains)
        })
    }

    /// Calls `f` with (day, hour, counters, encoded delays) of each `stats_hour` row of the
    /// period and domains.
    fn each_hour_row(
        &self,
        period: &StatsPeriod,
        domains: &[Value],
        mut f: impl FnMut(i64, i64, &StatsCounts, &[u8]),
    ) -> Result<(), StoreError> {
        let (from, to) = period.days();
        let marks = vec!["?"; domains.len()].join(", ");
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT day, hour, messages, recipients, bytes, sent, deferred, bounced, expired,
                rejected, delay_hist
             FROM stats_hour WHERE day >= ? AND day < ? AND sender_domain IN ({marks})"
        ))?;
        let mut args: Vec<Value> = vec![from.into(), to.into()];
        args.extend(domains.iter().cloned());
        let mut rows = stmt.query(params_from_iter(args))?;
        while let Some(row) = rows.next()? {
            let counts = counts_from_row(row, 2)?;
            f(
                row.get(0)?,
                row.get(1)?,
                &counts,
                row.get_ref(10)?.as_blob().unwrap_or(&[]),
            );
        }
        Ok(())
    }

    /// The rows of dimension `dim` summed over the period and domains: whole months from the
    /// month sums, the days around them from the day rows.
    fn keyed_rows(
        &self,
        dim: Dimension,
        period: &StatsPeriod,
        domains: &[Value],
    ) -> Result<Vec<KeyedRow>, StoreError> {
        let ranges = period.keyed_ranges();
        // Numbered: the same domains are bound once for three subqueries.
        let marks = (8..8 + domains.len())
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let columns =
            "key, key2, messages, recipients, bytes, sent, deferred, bounced, expired, rejected";
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT key, key2, SUM(messages), SUM(recipients), SUM(bytes), SUM(sent),
                SUM(deferred), SUM(bounced), SUM(expired), SUM(rejected)
             FROM (
                SELECT {columns} FROM stats_key WHERE dimension = ?1
                    AND sender_domain IN ({marks}) AND day >= ?2 AND day < ?3
                UNION ALL
                SELECT {columns} FROM stats_key WHERE dimension = ?1
                    AND sender_domain IN ({marks}) AND day >= ?4 AND day < ?5
                UNION ALL
                SELECT {columns} FROM stats_key_month WHERE dimension = ?1
                    AND sender_domain IN ({marks}) AND month >= ?6 AND month < ?7
             )
             GROUP BY key, key2"
        ))?;
        let mut args: Vec<Value> = vec![
            dim.as_str().to_string().into(),
            ranges.head.0.into(),
            ranges.head.1.into(),
            ranges.tail.0.into(),
            ranges.tail.1.into(),
            ranges.months.0.into(),
            ranges.months.1.into(),
        ];
        args.extend(domains.iter().cloned());
        let rows = stmt
            .query_map(params_from_iter(args), |row| {
                Ok((row.get(0)?, row.get(1)?, counts_from_row(row, 2)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

/// The `sender_domain` values of the rows a scope may read.
fn scope_domains(scope: &DomainScope) -> Vec<Value> {
    let mut domains: Vec<Value> = match scope {
        DomainScope::All => vec![ALL_DOMAINS.to_string().into()],
        // A configured "domain" with an `@` would otherwise reach the all-domain rows.
        DomainScope::Only(list) => list
            .iter()
            .filter(|d| !d.contains('@'))
            .map(|d| d.to_ascii_lowercase())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(Value::from)
            .collect(),
    };
    if domains.is_empty() {
        // Matches no row: every stored domain is a real one or `@`.
        domains.push(Value::Text(String::new() + "@@"));
    }
    domains
}

/// The eight counters of a rollup row, from column `first` on.
fn counts_from_row(row: &rusqlite::Row, first: usize) -> rusqlite::Result<StatsCounts> {
    let n = |i: usize| row.get::<_, i64>(first + i).map(|v| v.max(0) as u64);
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
