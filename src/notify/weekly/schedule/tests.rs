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
