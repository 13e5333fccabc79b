//! Statistics: what the figures mean, the periods they cover, the delay histogram, and how the
//! rollup rows of a period are summed into the sections the pages, the CLI and the weekly
//! report show. No I/O: the rollup tables and their refresh are SQL, in `store`.
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

mod assemble;

pub use assemble::{KeyedRow, StatsAssembler};

use crate::{bounce::Category, model::status::DeliveryStatus};
use serde::Serialize;
use std::collections::BTreeMap;
use time::{Date, Month};

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

pub(crate) fn first_of_month(year: i32, month: Month) -> Option<Date> {
    Date::from_calendar_date(year, month, 1).ok()
}

pub(crate) fn next_month(year: i32, month: Month) -> Option<Date> {
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

    /// The days of the period up to `today`: a period still running ends after today, so days
    /// not reached yet are not listed. A period wholly before or after today stays as it is.
    pub fn reached(self, today: Date) -> Self {
        match today.next_day() {
            Some(end) if self.from < end && end < self.to => StatsPeriod {
                from: self.from,
                to: end,
            },
            _ => self,
        }
    }

    /// The stretch to compare the period with: the same days of the month (year) before for a
    /// calendar month (year), else as many days just before. A period still running is compared
    /// for the days it has reached: the 1st to the 7th of November for the first week of
    /// December, not the whole of November.
    pub fn previous(&self, today: Date) -> Self {
        let reached = self.reached(today);
        let length = reached.to - reached.from;
        let (year, month) = (self.from.year(), self.from.month());
        let is_year = self.from == first_of_month(year, Month::January).unwrap_or(self.to)
            && Some(self.to)
                == year
                    .checked_add(1)
                    .and_then(|y| first_of_month(y, Month::January));
        let is_month = self.from.day() == 1 && Some(self.to) == next_month(year, month);
        let start = if is_year {
            year.checked_sub(1)
                .and_then(|y| first_of_month(y, Month::January))
        } else if is_month {
            self.from
                .previous_day()
                .map(|last| Self::this_month(last).from)
        } else {
            self.from.checked_sub(length)
        };
        let Some(start) = start else {
            return *self;
        };
        let end = start
            .checked_add(length)
            .map_or(self.from, |end| end.min(self.from));
        StatsPeriod {
            from: start,
            to: end.max(start.next_day().unwrap_or(end)),
        }
    }

    /// "2026-12-01 to 2026-12-07", the last day included; one date for one day.
    pub fn describe(&self) -> String {
        let last = self.to.previous_day().unwrap_or(self.to).max(self.from);
        match last == self.from {
            true => self.from.to_string(),
            false => format!("{} to {last}", self.from),
        }
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

    /// The period as day numbers (see [`day_number`]).
    pub fn days(&self) -> (i64, i64) {
        (day_number(self.from), day_number(self.to))
    }
}

/// Days since 1970-01-01.
pub fn day_number(date: Date) -> i64 {
    i64::from(date.to_julian_day()) - UNIX_EPOCH_JULIAN_DAY
}

pub(crate) fn date_of(day: i64) -> Date {
    i32::try_from(day + UNIX_EPOCH_JULIAN_DAY)
        .ok()
        .and_then(|j| Date::from_julian_day(j).ok())
        .unwrap_or(Date::MIN)
}

/// The local day and hour of a unix time.
pub(crate) fn local_day_hour(unix: i64, offset_secs: i64) -> (i64, i64) {
    let local = unix + offset_secs;
    (local.div_euclid(86400), local.rem_euclid(86400) / 3600)
}

/// What follows an address's last `@`, lower-cased (ASCII, as the scope's LIKE compares); empty
/// without an `@` (the null sender).
pub(crate) fn domain_of(address: &str) -> String {
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
    pub fn add(&mut self, o: &StatsCounts) {
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

    pub(crate) fn count_attempt(&mut self, status: DeliveryStatus) {
        match status {
            DeliveryStatus::Sent => self.delivered += 1,
            DeliveryStatus::Deferred => self.deferred += 1,
            DeliveryStatus::Bounced => self.bounced += 1,
            DeliveryStatus::Expired => self.expired += 1,
        }
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
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.buckets.len() * 5);
        for (b, n) in &self.buckets {
            out.push(*b);
            out.extend_from_slice(&(u32::try_from(*n).unwrap_or(u32::MAX)).to_le_bytes());
        }
        out
    }

    pub(crate) fn decode_into(&mut self, bytes: &[u8]) {
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
    pub category: Category,
    /// Bounced and expired attempts.
    pub count: u64,
    /// SMTP commands the MTA refused (a milter's refusal included: the suppression list's).
    pub refused: u64,
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
    /// On the fleet's dashboard: each MTA host's figures, by name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub by_mta_host: Vec<StatsRow>,
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

pub const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// The dimensions of `stats_key`, in the order of their stored names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    /// Bounce categories of bounced and expired attempts.
    Category,
    RcptDomain,
    Relay,
    Sender,
    /// Rejected SMTP commands: reply code and DSN.
    SmtpError,
}

impl Dimension {
    pub const ALL: [Dimension; 5] = [
        Dimension::Category,
        Dimension::RcptDomain,
        Dimension::Relay,
        Dimension::Sender,
        Dimension::SmtpError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Category => "category",
            Dimension::RcptDomain => "rcpt_domain",
            Dimension::Relay => "relay",
            Dimension::Sender => "sender",
            Dimension::SmtpError => "smtp_error",
        }
    }
}

/// `year * 12 + month - 1`, as in `stats_key_month`.
pub(crate) fn month_index(date: Date) -> i64 {
    i64::from(date.year()) * 12 + i64::from(date.month() as u8) - 1
}

#[cfg(test)]
mod tests;
