//! Summing a period's rollup rows into [`Stats`]: hours into the summary, months, days of the
//! month, weekdays and hours; keyed rows into top lists, SMTP errors and categories.

use super::{
    CategoryRow, DelayHistogram, Dimension, SmtpErrorRow, Stats, StatsCounts, StatsPeriod,
    StatsRow, StatsSummary, TOP_ROWS, WEEKDAYS, date_of, day_number, first_of_month, month_index,
    next_month,
};
use crate::bounce::Category;
use std::collections::BTreeMap;

/// A row of a keyed dimension summed over the period: (key, second key, counters).
pub type KeyedRow = (String, String, StatsCounts);

/// Where a period's keyed rows are read: its whole months from the month sums, the days before
/// and after them from the day rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyedRanges {
    /// Day numbers `[head_from, head_to)` and `[tail_from, tail_to)`.
    pub head: (i64, i64),
    pub tail: (i64, i64),
    /// Month indexes `[from, to)` (see `month_index`), empty when no month is whole.
    pub months: (i64, i64),
}

impl StatsPeriod {
    /// The ranges of rollup rows that sum to this period, each day counted once.
    pub fn keyed_ranges(&self) -> KeyedRanges {
        let (from, to) = self.days();
        let first_full = if self.from.day() == 1 {
            self.from
        } else {
            next_month(self.from.year(), self.from.month()).unwrap_or(self.to)
        };
        let end_full = first_of_month(self.to.year(), self.to.month()).unwrap_or(self.to);
        if first_full < end_full {
            KeyedRanges {
                head: (from, day_number(first_full)),
                tail: (day_number(end_full), to),
                months: (month_index(first_full), month_index(end_full)),
            }
        } else {
            KeyedRanges {
                head: (from, to),
                tail: (to, to),
                months: (0, 0),
            }
        }
    }
}

/// Gathers a period's hour rows, then its keyed rows, into [`Stats`].
pub struct StatsAssembler {
    period: StatsPeriod,
    summary: StatsCounts,
    delays: DelayHistogram,
    months: BTreeMap<(i32, u8), StatsCounts>,
    by_day: [StatsCounts; 31],
    /// The days of the month the period has: a month under way lists the days it reached,
    /// November no 31st.
    has_day: [bool; 31],
    by_weekday: [StatsCounts; 7],
    by_hour: [StatsCounts; 24],
}

impl StatsAssembler {
    pub fn new(period: StatsPeriod) -> Self {
        let mut months = BTreeMap::new();
        let mut month = period.from;
        while month < period.to {
            months.insert((month.year(), month.month() as u8), StatsCounts::default());
            month = next_month(month.year(), month.month()).unwrap_or(period.to);
        }
        let mut has_day = [false; 31];
        let mut day = period.from;
        while day < period.to && !has_day.iter().all(|d| *d) {
            has_day[usize::from(day.day() - 1)] = true;
            day = day.next_day().unwrap_or(period.to);
        }
        StatsAssembler {
            period,
            has_day,
            summary: StatsCounts::default(),
            delays: DelayHistogram::default(),
            months,
            by_day: [StatsCounts::default(); 31],
            by_weekday: [StatsCounts::default(); 7],
            by_hour: [StatsCounts::default(); 24],
        }
    }

    /// One `stats_hour` row: local `day` (day number) and `hour`, its counters and its encoded
    /// delay histogram.
    pub fn add_hour(&mut self, day: i64, hour: i64, counts: &StatsCounts, delays: &[u8]) {
        self.delays.decode_into(delays);
        self.summary.add(counts);
        let date = date_of(day);
        if let Some(m) = self.months.get_mut(&(date.year(), date.month() as u8)) {
            m.add(counts);
        }
        self.by_day[usize::from(date.day() - 1)].add(counts);
        self.by_weekday[usize::from(date.weekday().number_days_from_monday())].add(counts);
        self.by_hour[hour.clamp(0, 23) as usize].add(counts);
    }

    /// The statistics, with the keyed sections read through `keyed` (one call per dimension).
    pub fn finish<E>(
        self,
        refreshed_at: Option<i64>,
        mut keyed: impl FnMut(Dimension) -> Result<Vec<KeyedRow>, E>,
    ) -> Result<Stats, E> {
        let row = |key: String, counts: StatsCounts| StatsRow {
            key,
            other: false,
            counts,
        };
        Ok(Stats {
            from: self.period.from.to_string(),
            to: self.period.to.to_string(),
            refreshed_at,
            summary: StatsSummary {
                counts: self.summary,
                delivery_rate: self.summary.delivery_rate(),
                delay_p50: self.delays.quantile(0.5),
                delay_p95: self.delays.quantile(0.95),
            },
            by_month: self
                .months
                .into_iter()
                .map(|((y, m), c)| row(format!("{y:04}-{m:02}"), c))
                .collect(),
            by_day: (1..)
                .zip(self.by_day)
                .zip(self.has_day)
                .filter(|(_, has)| *has)
                .map(|((day, c), _)| row(day.to_string(), c))
                .collect(),
            by_weekday: WEEKDAYS
                .into_iter()
                .zip(self.by_weekday)
                .map(|(name, c)| row(name.to_string(), c))
                .collect(),
            by_hour: (0..)
                .zip(self.by_hour)
                .map(|(h, c)| row(format!("{h:02}"), c))
                .collect(),
            by_recipient_domain: top_rows(keyed(Dimension::RcptDomain)?, StatsCounts::attempts),
            by_relay_host: top_rows(keyed(Dimension::Relay)?, StatsCounts::attempts),
            by_sender: top_rows(
                keyed(Dimension::Sender)?
                    .into_iter()
                    .map(|(key, key2, counts)| (sender_key(key), key2, counts))
                    .collect(),
                |c| c.messages,
            ),
            smtp_errors: smtp_errors(keyed(Dimension::SmtpError)?),
            categories: categories(keyed(Dimension::Category)?),
            by_mta_host: Vec::new(),
        })
    }
}

/// The null sender (bounces) as mail people write it, `<>`, not an empty name.
fn sender_key(key: String) -> String {
    match key.is_empty() {
        true => "<>".into(),
        false => key,
    }
}

/// The [`TOP_ROWS`] heaviest rows by `weight` (ties by key), then one "other" row summing the
/// rest.
fn top_rows(rows: Vec<KeyedRow>, weight: fn(&StatsCounts) -> u64) -> Vec<StatsRow> {
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
}

/// Rejected commands by reply code and DSN, most frequent first.
fn smtp_errors(rows: Vec<KeyedRow>) -> Vec<SmtpErrorRow> {
    let mut errors: Vec<SmtpErrorRow> = rows
        .into_iter()
        .map(|(code, dsn, c)| SmtpErrorRow {
            code: code.parse().ok(),
            dsn,
            count: c.rejected,
        })
        .collect();
    errors.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.code.cmp(&b.code))
            .then_with(|| a.dsn.cmp(&b.dsn))
    });
    errors
}

/// Categories of bounced and expired attempts and of refused SMTP commands, most frequent
/// first.
fn categories(rows: Vec<KeyedRow>) -> Vec<CategoryRow> {
    let mut categories: Vec<CategoryRow> = rows
        .into_iter()
        .map(|(category, _, c)| CategoryRow {
            // Only categories mailtrail wrote are stored; anything else counts as other.
            category: category.parse().unwrap_or(Category::Other),
            count: c.bounced + c.expired,
            refused: c.rejected,
        })
        .collect();
    categories.sort_by(|a, b| {
        (b.count + b.refused)
            .cmp(&(a.count + a.refused))
            .then_with(|| a.category.as_str().cmp(b.category.as_str()))
    });
    categories
}
