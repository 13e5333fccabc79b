//! Statistics: rollup tables per local day (and hour) and sender domain, filled by
//! [`Store::refresh_stats`] from the message, attempt and reject tables, and read by
//! [`Store::stats`] — pages, CLI and reports never scan the raw tables.
//!
//! What the counters mean, for a period of local days:
//! - `messages`, `recipients`, `bytes`: messages that arrived in the period, their recipient
//!   rows and their sizes.
//! - `delivered`, `deferred`, `bounced`, `expired`: delivery attempts logged in the period with
//!   that status (a recipient deferred three times counts three deferrals; one delivered
//!   recipient is one `delivered`).
//! - `rejected`: SMTP commands the MTA refused (the reject table) in the period.
//! - `delivery_rate`: delivered / (delivered + bounced + expired), the share of recipients that
//!   reached a final state in the period and were delivered.
//! - `delay_p50`, `delay_p95`: seconds from arrival to delivery of the delivered attempts.
//!
//! Refresh: days are recomputed whole. A refresh recomputes the days of rows added since the
//! last one (id watermarks of message, attempt and reject; an attempt also dirties the day its
//! message arrived, whose recipient count it may change), plus today and yesterday of both the
//! last refresh and this one (rows are updated — a sender or size filled in by later log lines —
//! only while a message is young). A changed UTC offset, or no refresh yet, rebuilds all days.

mod refresh;

use super::{DomainScope, Store, StoreError};
use refresh::STATE_REFRESHED_AT;
use rusqlite::{OptionalExtension, params_from_iter, types::Value};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use time::{Date, Month};

/// The `sender_domain` of the rows that total every domain: no domain after an address's last
/// `@` can contain an `@`.
const ALL_DOMAINS: &str = "@";
/// Rows of the top lists (senders, hosts); the rest is summed into one "other" row.
pub const TOP_ROWS: usize = 50;
/// Days from 1970-01-01 (day 0) to the Julian day number `time` counts from.
const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;

#[derive(Debug, thiserror::Error)]
pub enum StatsPeriodError {
    #[error(
        "unknown period {0:?}: expected this-month, last-month, year, YYYY-MM, YYYY or YYYY-MM-DD..YYYY-MM-DD"
    )]
    Unknown(String),
    #[error("empty period: {from} is not before {to}")]
    Empty { from: Date, to: Date },
    #[error("date out of range in period {0:?}")]
    OutOfRange(String),
}

/// Local days `[from, to)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatsPeriod {
    pub from: Date,
    pub to: Date,
}

fn first_of_month(year: i32, month: Month) -> Option<Date> {
    Date::from_calendar_date(year, month, 1).ok()
}

fn next_month(year: i32, month: Month) -> Option<Date> {
    match month {
        Month::December => first_of_month(year.checked_add(1)?, Month::January),
        m => first_of_month(year, m.next()),
    }
}

impl StatsPeriod {
    /// `[from, to)`; `from` must be before `to`.
    pub fn new(from: Date, to: Date) -> Result<Self, StatsPeriodError> {
        if from < to {
            Ok(StatsPeriod { from, to })
        } else {
            Err(StatsPeriodError::Empty { from, to })
        }
    }

    /// The calendar month of `year`.
    pub fn month(year: i32, month: Month) -> Result<Self, StatsPeriodError> {
        let range = || StatsPeriodError::OutOfRange(format!("{year}-{}", month as u8));
        let from = first_of_month(year, month).ok_or_else(range)?;
        let to = next_month(year, month).ok_or_else(range)?;
        Self::new(from, to)
    }

    /// The calendar year.
    pub fn year(year: i32) -> Result<Self, StatsPeriodError> {
        let range = || StatsPeriodError::OutOfRange(year.to_string());
        let from = first_of_month(year, Month::January).ok_or_else(range)?;
        let to = first_of_month(year.checked_add(1).ok_or_else(range)?, Month::January)
            .ok_or_else(range)?;
        Self::new(from, to)
    }

    /// The month `today` is in.
    pub fn this_month(today: Date) -> Self {
        Self::month(today.year(), today.month()).unwrap_or(StatsPeriod {
            from: today,
            to: today.next_day().unwrap_or(today),
        })
    }

    /// The month before the one `today` is in.
    pub fn last_month(today: Date) -> Self {
        let this = Self::this_month(today);
        let last_day = this.from.previous_day().unwrap_or(this.from);
        Self::this_month(last_day)
    }

    /// The calendar year `today` is in.
    pub fn this_year(today: Date) -> Self {
        Self::year(today.year()).unwrap_or_else(|_| Self::this_month(today))
    }

    /// `this-month`, `last-month`, `year` (this one), `YYYY-MM`, `YYYY` or
    /// `YYYY-MM-DD..YYYY-MM-DD` (end exclusive).
    pub fn parse(text: &str, today: Date) -> Result<Self, StatsPeriodError> {
        let unknown = || StatsPeriodError::Unknown(text.to_string());
        let text = text.trim();
        match text {
            "this-month" => return Ok(Self::this_month(today)),
            "last-month" => return Ok(Self::last_month(today)),
            "year" => return Ok(Self::this_year(today)),
            _ => {}
        }
        let date = |s: &str| {
            Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
                .map_err(|_| unknown())
        };
        if let Some((from, to)) = text.split_once("..") {
            return Self::new(date(from)?, date(to)?);
        }
        let number = |s: &str| -> Result<i32, StatsPeriodError> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(unknown());
            }
            s.parse().map_err(|_| unknown())
        };
        match text.split_once('-') {
            Some((y, m)) if y.len() == 4 && m.len() == 2 => {
                let month = u8::try_from(number(m)?)
                    .ok()
                    .and_then(|m| Month::try_from(m).ok())
                    .ok_or_else(unknown)?;
                Self::month(number(y)?, month)
            }
            None if text.len() == 4 => Self::year(number(text)?),
            _ => Err(unknown()),
        }
    }

    fn days(&self) -> (i64, i64) {
        (day_number(self.from), day_number(self.to))
    }
}

/// Days since 1970-01-01.
fn day_number(date: Date) -> i64 {
    i64::from(date.to_julian_day()) - UNIX_EPOCH_JULIAN_DAY
}

fn date_of(day: i64) -> Date {
    i32::try_from(day + UNIX_EPOCH_JULIAN_DAY)
        .ok()
        .and_then(|j| Date::from_julian_day(j).ok())
        .unwrap_or(Date::MIN)
}

/// The local day and hour of a unix time.
fn local_day_hour(unix: i64, offset_secs: i64) -> (i64, i64) {
    let local = unix + offset_secs;
    (local.div_euclid(86400), local.rem_euclid(86400) / 3600)
}

/// What follows an address's last `@`, lower-cased (ASCII, as the scope's LIKE compares); empty
/// without an `@` (the null sender).
fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default()
}

/// Counters of one rollup row, or of a sum of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StatsCounts {
    pub messages: u64,
    pub recipients: u64,
    pub bytes: u64,
    pub delivered: u64,
    pub deferred: u64,
    pub bounced: u64,
    pub expired: u64,
    pub rejected: u64,
}

impl StatsCounts {
    fn add(&mut self, o: &StatsCounts) {
        self.messages += o.messages;
        self.recipients += o.recipients;
        self.bytes += o.bytes;
        self.delivered += o.delivered;
        self.deferred += o.deferred;
        self.bounced += o.bounced;
        self.expired += o.expired;
        self.rejected += o.rejected;
    }

    /// Every delivery attempt.
    pub fn attempts(&self) -> u64 {
        self.delivered + self.deferred + self.bounced + self.expired
    }

    /// delivered / (delivered + bounced + expired); none without a final attempt.
    pub fn delivery_rate(&self) -> Option<f64> {
        let finals = self.delivered + self.bounced + self.expired;
        (finals > 0).then(|| self.delivered as f64 / finals as f64)
    }

    fn count_attempt(&mut self, status: &str) {
        match status {
            "sent" => self.delivered += 1,
            "deferred" => self.deferred += 1,
            "bounced" => self.bounced += 1,
            "expired" => self.expired += 1,
            _ => {}
        }
    }

    fn from_row(row: &rusqlite::Row, first: usize) -> rusqlite::Result<Self> {
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
}

/// Log-scaled histogram of delivery delays: bucket 0 holds delays under 0.1 s, bucket `b ≥ 1`
/// holds `[0.1·2^((b-1)/8), 0.1·2^(b/8))` s. Percentiles read from it are the bucket's geometric
/// middle, within ±4.5 % of the exact value — exact enough for statistics, and sums of rows
/// merge exactly.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DelayHistogram {
    buckets: BTreeMap<u8, u64>,
}

const HIST_BASE_SECS: f64 = 0.1;
const HIST_BUCKETS_PER_DOUBLING: f64 = 8.0;

impl DelayHistogram {
    pub fn record(&mut self, delay_secs: f64) {
        let bucket = if delay_secs.is_nan() || delay_secs < HIST_BASE_SECS {
            0
        } else {
            let b =
                1.0 + (HIST_BUCKETS_PER_DOUBLING * (delay_secs / HIST_BASE_SECS).log2()).floor();
            b.min(255.0) as u8
        };
        *self.buckets.entry(bucket).or_default() += 1;
    }

    pub fn count(&self) -> u64 {
        self.buckets.values().sum()
    }

    /// The delay at quantile `q` (0..=1), nearest rank; none when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return Some(Self::bucket_value(*b));
            }
        }
        None
    }

    fn bucket_value(b: u8) -> f64 {
        if b == 0 {
            return HIST_BASE_SECS / 2.0;
        }
        HIST_BASE_SECS * ((f64::from(b) - 0.5) / HIST_BUCKETS_PER_DOUBLING).exp2()
    }

    /// (bucket, count as u32 LE) pairs; counts of one rollup row fit easily.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.buckets.len() * 5);
        for (b, n) in &self.buckets {
            out.push(*b);
            out.extend_from_slice(&(u32::try_from(*n).unwrap_or(u32::MAX)).to_le_bytes());
        }
        out
    }

    fn decode_into(&mut self, bytes: &[u8]) {
        for pair in bytes.chunks_exact(5) {
            let n = u32::from_le_bytes([pair[1], pair[2], pair[3], pair[4]]);
            *self.buckets.entry(pair[0]).or_default() += u64::from(n);
        }
    }
}

/// Totals of a period.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StatsSummary {
    #[serde(flatten)]
    pub counts: StatsCounts,
    pub delivery_rate: Option<f64>,
    /// Seconds, from the delay histogram (see [`DelayHistogram`]).
    pub delay_p50: Option<f64>,
    pub delay_p95: Option<f64>,
}

/// One row of a breakdown: its key (month, day, host, sender ...) and counters. `other` marks
/// the remainder of a top list.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatsRow {
    pub key: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub other: bool,
    #[serde(flatten)]
    pub counts: StatsCounts,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SmtpErrorRow {
    /// The reply code; none when the MTA logged none.
    pub code: Option<u16>,
    pub dsn: String,
    pub count: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CategoryRow {
    pub category: String,
    pub count: u64,
}

/// Statistics of one period, as the pages, the CLI and reports show them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stats {
    /// Local days `[from, to)`, `YYYY-MM-DD`.
    pub from: String,
    pub to: String,
    /// Unix seconds of the refresh the rollups come from; none before the first.
    pub refreshed_at: Option<i64>,
    pub summary: StatsSummary,
    /// `YYYY-MM`, every month of the period.
    pub by_month: Vec<StatsRow>,
    /// Day of the month `1`..`31`.
    pub by_day: Vec<StatsRow>,
    /// `Mon`..`Sun`.
    pub by_weekday: Vec<StatsRow>,
    /// `00`..`23`, local time.
    pub by_hour: Vec<StatsRow>,
    /// Top [`TOP_ROWS`] by attempts, then the rest.
    pub by_recipient_domain: Vec<StatsRow>,
    pub by_relay_host: Vec<StatsRow>,
    /// Top [`TOP_ROWS`] by messages, then the rest.
    pub by_sender: Vec<StatsRow>,
    /// Rejected SMTP commands by reply code and DSN, most frequent first.
    pub smtp_errors: Vec<SmtpErrorRow>,
    /// Categories of bounced and expired attempts, most frequent first.
    pub categories: Vec<CategoryRow>,
}

/// What a refresh did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RefreshReport {
    /// Every day was recomputed (first refresh, or the UTC offset changed).
    pub full: bool,
    /// Local days recomputed.
    pub days: usize,
    /// Rows read from the raw tables.
    pub messages: u64,
    pub attempts: u64,
    pub rejects: u64,
}

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// The dimensions of `stats_key`, in the order of their stored names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Dimension {
    /// Bounce categories of bounced and expired attempts.
    Category,
    RcptDomain,
    Relay,
    Sender,
    /// Rejected SMTP commands: reply code and DSN.
    SmtpError,
}

impl Dimension {
    fn as_str(self) -> &'static str {
        match self {
            Dimension::Category => "category",
            Dimension::RcptDomain => "rcpt_domain",
            Dimension::Relay => "relay",
            Dimension::Sender => "sender",
            Dimension::SmtpError => "smtp_error",
        }
    }
}

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
        let (from, to) = period.days();
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
        let marks = vec!["?"; domains.len()].join(", ");

        let mut summary = StatsCounts::default();
        let mut delays = DelayHistogram::default();
        let mut months: BTreeMap<(i32, u8), StatsCounts> = BTreeMap::new();
        let mut month = period.from;
        while month < period.to {
            months.insert((month.year(), month.month() as u8), StatsCounts::default());
            month = next_month(month.year(), month.month()).unwrap_or(period.to);
        }
        let mut by_day = [StatsCounts::default(); 31];
        let mut by_weekday = [StatsCounts::default(); 7];
        let mut by_hour = [StatsCounts::default(); 24];
        {
            let mut stmt = self.conn.prepare_cached(&format!(
                "SELECT day, hour, messages, recipients, bytes, sent, deferred, bounced, expired,
                    rejected, delay_hist
                 FROM stats_hour WHERE day >= ? AND day < ? AND sender_domain IN ({marks})"
            ))?;
            let mut args: Vec<Value> = vec![from.into(), to.into()];
            args.extend(domains.iter().cloned());
            let mut rows = stmt.query(params_from_iter(args))?;
            while let Some(row) = rows.next()? {
                let day: i64 = row.get(0)?;
                let hour: i64 = row.get(1)?;
                let c = StatsCounts::from_row(row, 2)?;
                delays.decode_into(row.get_ref(10)?.as_blob().unwrap_or(&[]));
                summary.add(&c);
                let date = date_of(day);
                if let Some(m) = months.get_mut(&(date.year(), date.month() as u8)) {
                    m.add(&c);
                }
                by_day[usize::from(date.day() - 1)].add(&c);
                by_weekday[usize::from(date.weekday().number_days_from_monday())].add(&c);
                by_hour[hour.clamp(0, 23) as usize].add(&c);
            }
        }
        // Whole months come from the month sums, the days before and after them from the days.
        let first_full = if period.from.day() == 1 {
            period.from
        } else {
            next_month(period.from.year(), period.from.month()).unwrap_or(period.to)
        };
        let end_full = first_of_month(period.to.year(), period.to.month()).unwrap_or(period.to);
        let (months_from, months_to, head_to, tail_from) = if first_full < end_full {
            (
                month_index(first_full),
                month_index(end_full),
                day_number(first_full),
                day_number(end_full),
            )
        } else {
            (0, 0, to, to)
        };
        // Numbered: the same domains are bound once for three subqueries.
        let numbered = (8..8 + domains.len())
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let keyed = |dim: Dimension| -> Result<Vec<(String, String, StatsCounts)>, StoreError> {
            let marks = &numbered;
            let columns = "key, key2, messages, recipients, bytes, sent, deferred, bounced, expired, rejected";
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
                from.into(),
                head_to.into(),
                tail_from.into(),
                to.into(),
                months_from.into(),
                months_to.into(),
            ];
            args.extend(domains.iter().cloned());
            let rows = stmt
                .query_map(params_from_iter(args), |row| {
                    Ok((row.get(0)?, row.get(1)?, StatsCounts::from_row(row, 2)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        };
        let top = |rows: Vec<(String, String, StatsCounts)>, weight: fn(&StatsCounts) -> u64| {
            let mut rows: Vec<StatsRow> = rows
                .into_iter()
                .map(|(key, _, counts)| StatsRow {
                    key,
                    other: false,
                    counts,
                })
                .collect();
            rows.sort_by(|a, b| {
                weight(&b.counts)
                    .cmp(&weight(&a.counts))
                    .then_with(|| a.key.cmp(&b.key))
            });
            if rows.len() > TOP_ROWS {
                let mut rest = StatsCounts::default();
                for r in rows.drain(TOP_ROWS..) {
                    rest.add(&r.counts);
                }
                rows.push(StatsRow {
                    key: "other".into(),
                    other: true,
                    counts: rest,
                });
            }
            rows
        };
        let by_attempts: fn(&StatsCounts) -> u64 = StatsCounts::attempts;
        let mut smtp_errors: Vec<SmtpErrorRow> = keyed(Dimension::SmtpError)?
            .into_iter()
            .map(|(code, dsn, c)| SmtpErrorRow {
                code: code.parse().ok(),
                dsn,
                count: c.rejected,
            })
            .collect();
        smtp_errors.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.code.cmp(&b.code))
                .then_with(|| a.dsn.cmp(&b.dsn))
        });
        let mut categories: Vec<CategoryRow> = keyed(Dimension::Category)?
            .into_iter()
            .map(|(category, _, c)| CategoryRow {
                category,
                count: c.bounced + c.expired,
            })
            .collect();
        categories.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.category.cmp(&b.category))
        });

        let row = |key: String, counts: StatsCounts| StatsRow {
            key,
            other: false,
            counts,
        };
        Ok(Stats {
            from: period.from.to_string(),
            to: period.to.to_string(),
            refreshed_at: self.stats_refreshed_at()?,
            summary: StatsSummary {
                counts: summary,
                delivery_rate: summary.delivery_rate(),
                delay_p50: delays.quantile(0.5),
                delay_p95: delays.quantile(0.95),
            },
            by_month: months
                .into_iter()
                .map(|((y, m), c)| row(format!("{y:04}-{m:02}"), c))
                .collect(),
            by_day: by_day
                .into_iter()
                .enumerate()
                .map(|(i, c)| row((i + 1).to_string(), c))
                .collect(),
            by_weekday: by_weekday
                .into_iter()
                .zip(WEEKDAYS)
                .map(|(c, name)| row(name.to_string(), c))
                .collect(),
            by_hour: by_hour
                .into_iter()
                .enumerate()
                .map(|(h, c)| row(format!("{h:02}"), c))
                .collect(),
            by_recipient_domain: top(keyed(Dimension::RcptDomain)?, by_attempts),
            by_relay_host: top(keyed(Dimension::Relay)?, by_attempts),
            by_sender: top(keyed(Dimension::Sender)?, |c| c.messages),
            smtp_errors,
            categories,
        })
    }
}

/// `year * 12 + month - 1`, as in `stats_key_month`.
fn month_index(date: Date) -> i64 {
    i64::from(date.year()) * 12 + i64::from(date.month() as u8) - 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AttemptRow, RejectRow};
    use time::macros::{date, datetime, offset};
    use time::{OffsetDateTime, UtcOffset};

    const PLUS2: UtcOffset = offset!(+2);

    fn attempt<'a>(at: i64, status: &'a str, relay: &'a str, delay: f64) -> AttemptRow<'a> {
        AttemptRow {
            at,
            status,
            relay_host: Some(relay),
            relay_ip: None,
            relay_port: None,
            dsn: Some("5.1.1"),
            smtp_code: None,
            reply: "",
            stage: None,
            delay: Some(delay),
            delays: None,
            category: (status != "sent").then_some("invalid-mailbox"),
        }
    }

    fn reject(at: i64, sender: &str, code: u16, dsn: &str) -> RejectRow<'static> {
        RejectRow {
            at,
            mta_host: None,
            source: "smtpd",
            code: Some(code),
            dsn: Some(dsn.to_string().leak()),
            client_host: None,
            client_ip: None,
            sender: Some(sender.to_string().leak()),
            recipient: None,
            helo: None,
            stage: None,
            reason: "no",
            category: None,
        }
    }

    /// A message of `sender` logged at `at` (unix) with `size`, and attempts per recipient.
    fn message(
        store: &mut Store,
        qid: &str,
        sender: &str,
        at: i64,
        size: u64,
        deliveries: &[(&str, &[AttemptRow])],
    ) {
        let batch = store.log_batch().unwrap();
        let m = batch.message_for(qid, at, None).unwrap();
        batch
            .set_message_fields(
                m,
                &crate::store::LogMessageFields {
                    sender: Some(sender),
                    size: Some(size),
                    ..Default::default()
                },
            )
            .unwrap();
        for (to, attempts) in deliveries {
            let r = batch.recipient_for(m, to, None).unwrap();
            for a in *attempts {
                batch.record_attempt(r, a).unwrap();
            }
        }
        batch.commit().unwrap();
    }

    fn unix(t: OffsetDateTime) -> i64 {
        t.unix_timestamp()
    }

    /// 2026-05-04 (a Monday) 09:30 +02:00 and the next days.
    fn fill(store: &mut Store) {
        let t = unix(datetime!(2026-05-04 09:30 +2));
        message(
            store,
            "Q1",
            "Alice@Mine.example",
            t,
            1000,
            &[
                (
                    "a@dest.example",
                    &[attempt(t + 10, "sent", "mx.dest.example", 10.0)],
                ),
                (
                    "b@dest.example",
                    &[
                        attempt(t + 10, "deferred", "mx.dest.example", 10.0),
                        attempt(t + 3600, "bounced", "mx.dest.example", 3600.0),
                    ],
                ),
            ],
        );
        // Arrives late on Tuesday 23:50 local, delivered after midnight: attempt on Wednesday.
        let t2 = unix(datetime!(2026-05-05 23:50 +2));
        message(
            store,
            "Q2",
            "bob@other.example",
            t2,
            500,
            &[(
                "c@far.example",
                &[attempt(t2 + 1200, "sent", "mx.far.example", 1200.0)],
            )],
        );
        let batch = store.log_batch().unwrap();
        batch
            .insert_reject(&reject(t + 5, "x@other.example", 554, "5.7.1"))
            .unwrap();
        batch
            .insert_reject(&reject(t + 6, "y@mine.example", 450, "4.2.0"))
            .unwrap();
        batch.commit().unwrap();
    }

    fn row<'a>(rows: &'a [StatsRow], key: &str) -> &'a StatsCounts {
        &rows.iter().find(|r| r.key == key).unwrap().counts
    }

    #[test]
    fn rollups_count_messages_by_arrival_and_attempts_by_their_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db")).unwrap();
        fill(&mut store);
        let report = store
            .refresh_stats(PLUS2, datetime!(2026-05-06 12:00 +2))
            .unwrap();
        assert!(report.full);
        assert_eq!(
            (report.messages, report.attempts, report.rejects),
            (2, 4, 2)
        );
        let may = StatsPeriod::month(2026, Month::May).unwrap();
        let s = store.stats(&may, &DomainScope::All).unwrap();
        let c = s.summary.counts;
        assert_eq!(
            (c.messages, c.recipients, c.bytes),
            (2, 3, 1500),
            "{:?}",
            s.summary
        );
        assert_eq!(
            (c.delivered, c.deferred, c.bounced, c.expired, c.rejected),
            (2, 1, 1, 0, 2)
        );
        assert_eq!(s.summary.delivery_rate, Some(2.0 / 3.0));
        // Delivered delays 10 s and 1200 s: the median is the first, p95 the second, each
        // within the histogram's 4.5 %.
        let p50 = s.summary.delay_p50.unwrap();
        let p95 = s.summary.delay_p95.unwrap();
        assert!((p50 / 10.0 - 1.0).abs() < 0.045, "{p50}");
        assert!((p95 / 1200.0 - 1.0).abs() < 0.045, "{p95}");
        assert_eq!(s.by_month.len(), 1);
        assert_eq!(s.by_month[0].key, "2026-05");
        assert_eq!(s.by_month[0].counts, c);
        // Local days and hours (+02:00): Q2 arrived on Tuesday the 5th at 23h, its delivery
        // was on Wednesday the 6th at 00h.
        assert_eq!(row(&s.by_day, "5").messages, 1);
        assert_eq!(row(&s.by_day, "6").delivered, 1);
        assert_eq!(row(&s.by_weekday, "Tue").messages, 1);
        assert_eq!(row(&s.by_weekday, "Wed").delivered, 1);
        assert_eq!(row(&s.by_weekday, "Mon").messages, 1);
        assert_eq!(row(&s.by_hour, "09").messages, 1);
        assert_eq!(row(&s.by_hour, "23").messages, 1);
        assert_eq!(row(&s.by_hour, "00").delivered, 1);
        assert_eq!(row(&s.by_hour, "10").bounced, 1);
        assert_eq!(
            (s.by_day.len(), s.by_weekday.len(), s.by_hour.len()),
            (31, 7, 24)
        );
        let dest = row(&s.by_recipient_domain, "dest.example");
        assert_eq!((dest.delivered, dest.deferred, dest.bounced), (1, 1, 1));
        assert_eq!(row(&s.by_relay_host, "mx.far.example").delivered, 1);
        // The sender keeps its spelling; messages and attempts both count on it.
        let alice = row(&s.by_sender, "Alice@Mine.example");
        assert_eq!(
            (alice.messages, alice.recipients, alice.attempts()),
            (1, 2, 3)
        );
        assert_eq!(
            s.smtp_errors,
            vec![
                SmtpErrorRow {
                    code: Some(450),
                    dsn: "4.2.0".into(),
                    count: 1
                },
                SmtpErrorRow {
                    code: Some(554),
                    dsn: "5.7.1".into(),
                    count: 1
                },
            ]
        );
        assert_eq!(
            s.categories,
            vec![CategoryRow {
                category: "invalid-mailbox".into(),
                count: 1
            }]
        );
        // Another month has nothing.
        let june = StatsPeriod::month(2026, Month::June).unwrap();
        let empty = store.stats(&june, &DomainScope::All).unwrap();
        assert_eq!(empty.summary.counts, StatsCounts::default());
        assert_eq!(empty.summary.delay_p50, None);
    }

    #[test]
    fn a_scope_sees_only_its_domains_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db")).unwrap();
        fill(&mut store);
        store
            .refresh_stats(PLUS2, datetime!(2026-05-06 12:00 +2))
            .unwrap();
        let may = StatsPeriod::month(2026, Month::May).unwrap();
        let mine = store
            .stats(&may, &DomainScope::Only(vec!["mine.example".into()]))
            .unwrap();
        let c = mine.summary.counts;
        assert_eq!(
            (c.messages, c.delivered, c.bounced, c.rejected),
            (1, 1, 1, 1)
        );
        assert!(mine.by_sender.iter().all(|r| r.key == "Alice@Mine.example"));
        assert!(
            mine.by_relay_host
                .iter()
                .all(|r| r.key == "mx.dest.example")
        );
        assert_eq!(mine.smtp_errors.len(), 1);
        assert_eq!(mine.smtp_errors[0].code, Some(450));
        for scope in [
            DomainScope::Only(Vec::new()),
            DomainScope::Only(vec!["@".into()]),
            DomainScope::Only(vec!["nobody.example".into()]),
        ] {
            let s = store.stats(&may, &scope).unwrap();
            assert_eq!(s.summary.counts, StatsCounts::default(), "{scope:?}");
            assert!(
                s.by_sender.is_empty() && s.smtp_errors.is_empty(),
                "{scope:?}"
            );
        }
    }

    #[test]
    fn an_incremental_refresh_equals_a_full_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db")).unwrap();
        fill(&mut store);
        let now = datetime!(2026-05-20 12:00 +2);
        store.refresh_stats(PLUS2, now).unwrap();
        // New rows: a late attempt for a May 4 message (its recipient count changes too) and a
        // new message on May 10.
        let t = unix(datetime!(2026-05-10 08:00 +2));
        let batch = store.log_batch().unwrap();
        let m = batch
            .find_message("Q1", unix(datetime!(2026-05-04 10:00 +2)))
            .unwrap()
            .unwrap();
        let r = batch.recipient_for(m, "late@dest.example", None).unwrap();
        batch
            .record_attempt(r, &attempt(t, "expired", "none", 0.0))
            .unwrap();
        batch.commit().unwrap();
        message(&mut store, "Q3", "c@mine.example", t, 10, &[]);
        let report = store.refresh_stats(PLUS2, now).unwrap();
        assert!(!report.full);
        // May 4 (message), May 10 (attempt and message), May 19 and 20 (yesterday, today).
        assert_eq!(report.days, 4);
        let may = StatsPeriod::month(2026, Month::May).unwrap();
        let incremental = store.stats(&may, &DomainScope::All).unwrap();
        assert_eq!(incremental.summary.counts.expired, 1);
        assert_eq!(incremental.summary.counts.recipients, 4); // Q1: 3, Q2: 1, Q3: none yet.

        store
            .conn_for_tests()
            .execute("DELETE FROM stats_state", [])
            .unwrap();
        assert!(store.refresh_stats(PLUS2, now).unwrap().full);
        // Read from the month sums, or from the days alone: the same lists.
        let days = StatsPeriod::new(date!(2026 - 05 - 01), date!(2026 - 05 - 31)).unwrap();
        let by_days = store.stats(&days, &DomainScope::All).unwrap();
        assert_eq!(by_days.by_sender, incremental.by_sender);
        assert_eq!(by_days.by_relay_host, incremental.by_relay_host);
        assert_eq!(by_days.categories, incremental.categories);
        // Part of a month: May 5 to 6 has Q2 and its delivery only.
        let part = StatsPeriod::new(date!(2026 - 05 - 05), date!(2026 - 05 - 07)).unwrap();
        let part = store.stats(&part, &DomainScope::All).unwrap();
        assert_eq!(part.by_sender.len(), 1);
        assert_eq!(part.by_sender[0].key, "bob@other.example");
        assert_eq!(part.by_sender[0].counts.delivered, 1);

        let mut full = store.stats(&may, &DomainScope::All).unwrap();
        full.refreshed_at = incremental.refreshed_at;
        assert_eq!(incremental, full);
        // Another offset moves hours: everything is recomputed.
        let moved = store.refresh_stats(UtcOffset::UTC, now).unwrap();
        assert!(moved.full);
        let utc = store.stats(&may, &DomainScope::All).unwrap();
        assert_eq!(row(&utc.by_hour, "07").messages, 1);
    }

    #[test]
    fn top_lists_keep_fifty_rows_and_sum_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db")).unwrap();
        let t = unix(datetime!(2026-05-04 09:30 +2));
        for i in 0..(TOP_ROWS + 5) {
            message(
                &mut store,
                &format!("Q{i}"),
                &format!("s{i:03}@mine.example"),
                t + i as i64,
                1,
                &[],
            );
        }
        store
            .refresh_stats(PLUS2, datetime!(2026-05-06 12:00 +2))
            .unwrap();
        let s = store
            .stats(
                &StatsPeriod::month(2026, Month::May).unwrap(),
                &DomainScope::All,
            )
            .unwrap();
        assert_eq!(s.by_sender.len(), TOP_ROWS + 1);
        let other = s.by_sender.last().unwrap();
        assert!(other.other);
        assert_eq!(other.counts.messages, 5);
    }

    #[test]
    fn periods_parse_and_bad_ones_are_errors() {
        let today = date!(2026 - 01 - 15);
        let p = |s| StatsPeriod::parse(s, today);
        assert_eq!(
            p("this-month").unwrap(),
            StatsPeriod {
                from: date!(2026 - 01 - 01),
                to: date!(2026 - 02 - 01)
            }
        );
        assert_eq!(
            p("last-month").unwrap(),
            StatsPeriod {
                from: date!(2025 - 12 - 01),
                to: date!(2026 - 01 - 01)
            }
        );
        assert_eq!(
            p("year").unwrap(),
            StatsPeriod {
                from: date!(2026 - 01 - 01),
                to: date!(2027 - 01 - 01)
            }
        );
        assert_eq!(
            p("2026-05").unwrap(),
            StatsPeriod::month(2026, Month::May).unwrap()
        );
        assert_eq!(p("2025").unwrap(), StatsPeriod::year(2025).unwrap());
        assert_eq!(
            p("2026-05-04..2026-05-11").unwrap(),
            StatsPeriod {
                from: date!(2026 - 05 - 04),
                to: date!(2026 - 05 - 11)
            }
        );
        for bad in [
            "",
            "2026-13",
            "26",
            "soon",
            "2026-5",
            "2026-05-11..2026-05-04",
            "+2026",
        ] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn histogram_quantiles_stay_within_the_bucket_error() {
        let mut h = DelayHistogram::default();
        for i in 1..=1000 {
            h.record(f64::from(i));
        }
        let p50 = h.quantile(0.5).unwrap();
        let p95 = h.quantile(0.95).unwrap();
        assert!((p50 / 500.0 - 1.0).abs() < 0.045, "{p50}");
        assert!((p95 / 950.0 - 1.0).abs() < 0.045, "{p95}");
        let mut again = DelayHistogram::default();
        again.decode_into(&h.encode());
        assert_eq!(again, h);
        assert_eq!(DelayHistogram::default().quantile(0.5), None);
    }
}
