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

    /// The seven days before [`ReportWeek::period`], to compare with.
    pub fn previous_period(&self) -> StatsPeriod {
        StatsPeriod {
            from: self.period.from - Duration::days(7),
            to: self.period.from,
        }
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
mod tests {
    use super::*;
    use time::macros::{date, datetime, offset, time};

    #[test]
    fn due_instants_around_the_scheduled_time() {
        let at = time!(07:00);
        // 2026-11-23 is a Monday.
        let cases = [
            (
                datetime!(2026-11-23 06:59:59 +1),
                datetime!(2026-11-16 07:00 +1),
            ),
            (
                datetime!(2026-11-23 07:00 +1),
                datetime!(2026-11-23 07:00 +1),
            ),
            (
                datetime!(2026-11-25 12:00 +1),
                datetime!(2026-11-23 07:00 +1),
            ),
            (
                datetime!(2026-11-29 23:59 +1),
                datetime!(2026-11-23 07:00 +1),
            ),
        ];
        for (now, due) in cases {
            assert_eq!(
                latest_due(now, offset!(+1), Weekday::Monday, at),
                due,
                "{now}"
            );
            assert_eq!(
                next_due(now, offset!(+1), Weekday::Monday, at),
                due + Duration::days(7)
            );
        }
        // The clock in UTC, the schedule in local time: 06:30 UTC is 07:30 at +1.
        assert_eq!(
            latest_due(
                datetime!(2026-11-23 06:30 UTC),
                offset!(+1),
                Weekday::Monday,
                at
            ),
            datetime!(2026-11-23 07:00 +1)
        );
        // Another weekday, across a month end.
        assert_eq!(
            latest_due(
                datetime!(2026-12-02 08:00 UTC),
                UtcOffset::UTC,
                Weekday::Friday,
                time!(17:30)
            ),
            datetime!(2026-11-27 17:30 UTC)
        );
    }

    #[test]
    fn a_report_covers_the_seven_days_before_its_day() {
        let week = ReportWeek::ending_on(datetime!(2026-11-23 07:00 +1));
        assert_eq!(week.period.from, date!(2026 - 11 - 16));
        assert_eq!(week.period.to, date!(2026 - 11 - 23));
        let previous = week.previous_period();
        assert_eq!(previous.from, date!(2026 - 11 - 09));
        assert_eq!(previous.to, date!(2026 - 11 - 16));
    }
}
