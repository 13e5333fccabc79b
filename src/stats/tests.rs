use super::*;
use time::macros::date;

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

#[test]
fn a_running_period_ends_today_and_compares_with_the_same_days_before() {
    let today = date!(2026 - 12 - 07);
    let this_month = StatsPeriod::this_month(today);
    let reached = this_month.reached(today);
    assert_eq!(
        (reached.from, reached.to),
        (date!(2026 - 12 - 01), date!(2026 - 12 - 08))
    );
    assert_eq!(reached.describe(), "2026-12-01 to 2026-12-07");
    // The first seven days of November, not the whole month.
    let before = this_month.previous(today);
    assert_eq!(
        (before.from, before.to),
        (date!(2026 - 11 - 01), date!(2026 - 11 - 08))
    );
    // A month over is compared whole, with the whole month before it (as long as it has).
    let november = StatsPeriod::last_month(today);
    assert_eq!(november.reached(today), november);
    let october = november.previous(today);
    assert_eq!(
        (october.from, october.to),
        (date!(2026 - 10 - 01), date!(2026 - 10 - 31))
    );
    let march = StatsPeriod::month(2026, Month::March)
        .unwrap()
        .previous(today);
    assert_eq!(
        (march.from, march.to),
        (date!(2026 - 02 - 01), date!(2026 - 03 - 01))
    );
    // The year so far against the same days of last year.
    let year = StatsPeriod::this_year(today).previous(today);
    assert_eq!(
        (year.from, year.to),
        (date!(2025 - 01 - 01), date!(2025 - 12 - 08))
    );
    // Any other stretch: as many days just before; one day reads as one date.
    let week = StatsPeriod::parse("2026-11-16..2026-11-23", today).unwrap();
    let week_before = week.previous(today);
    assert_eq!(week_before.describe(), "2026-11-09 to 2026-11-15");
    let day = StatsPeriod::parse("2026-11-16..2026-11-17", today).unwrap();
    assert_eq!(day.describe(), "2026-11-16");
    // A period not begun yet stays as it is.
    let next_year = StatsPeriod::year(2027).unwrap();
    assert_eq!(next_year.reached(today), next_year);
}

#[test]
fn days_of_the_month_are_listed_only_when_the_period_has_them() {
    let days = |period: StatsPeriod| -> Vec<String> {
        StatsAssembler::new(period)
            .finish(None, |_| Ok::<_, ()>(Vec::new()))
            .unwrap()
            .by_day
            .into_iter()
            .map(|r| r.key)
            .collect()
    };
    let today = date!(2026 - 12 - 07);
    let running = StatsPeriod::this_month(today).reached(today);
    assert_eq!(days(running), ["1", "2", "3", "4", "5", "6", "7"]);
    assert_eq!(
        days(StatsPeriod::month(2026, Month::November).unwrap()).len(),
        30
    );
    assert_eq!(
        days(StatsPeriod::month(2026, Month::February).unwrap()).len(),
        28
    );
    assert_eq!(days(StatsPeriod::year(2026).unwrap()).len(), 31);
}
