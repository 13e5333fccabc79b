//! When the weekly report is due and which days it covers. Pure functions of the clock.

use crate::stats::StatsPeriod;
use time::{Duration, OffsetDateTime, Time, UtcOffset, Weekday};

/// One report: when it was due and the seven local days before that day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportWeek {
    pub due: OffsetDateTime,
    pub period: StatsPeriod,
}

impl ReportWeek {
    /// The report due on `due`'s local day: it covers the seven days before it.
    pub fn ending_on(due: OffsetDateTime) -> ReportWeek {
        let end = due.date();
        ReportWeek {
            due,
            period: StatsPeriod {
                from: end - Duration::days(7),
                to: end,
            },
        }
    }

    /// The seven days before [`ReportWeek::period`], to compare with (a week is over when its
    /// report is due, so it is compared whole).
    pub fn previous_period(&self) -> StatsPeriod {
        self.period.previous(self.due.date())
    }
}

/// The last scheduled instant at or before `now`, in `offset`'s local time.
pub fn latest_due(
    now: OffsetDateTime,
    offset: UtcOffset,
    weekday: Weekday,
    at: Time,
) -> OffsetDateTime {
    let local = now.to_offset(offset);
    let back = i64::from(local.weekday().number_days_from_monday())
        - i64::from(weekday.number_days_from_monday());
    let candidate = local.replace_time(at) - Duration::days(back.rem_euclid(7));
    if candidate <= local {
        candidate
    } else {
        candidate - Duration::days(7)
    }
}

/// The first scheduled instant after `now`.
pub fn next_due(
    now: OffsetDateTime,
    offset: UtcOffset,
    weekday: Weekday,
    at: Time,
) -> OffsetDateTime {
    latest_due(now, offset, weekday, at) + Duration::days(7)
}

#[cfg(test)]
mod tests;
