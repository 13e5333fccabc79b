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
