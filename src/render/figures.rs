//! Figures as people read them: counts with thousands separators, sizes in one unit, rates in
//! percent, delays in the unit that fits, and the change against an earlier period. The
//! statistics page's headline and the weekly report show the same [`headline`].

use crate::stats::{StatsCounts, StatsSummary};

/// `1234567` → `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A size in one readable unit: "836.0 MB", not "835.982522 MB".
pub fn bytes(n: u64) -> String {
    let adjusted = byte_unit::Byte::from_u64(n).get_appropriate_unit(byte_unit::UnitType::Decimal);
    match adjusted.get_unit() {
        byte_unit::Unit::B => format!("{n} B"),
        unit => format!("{:.1} {unit}", adjusted.get_value()),
    }
}

/// A share as "96.4 %"; "-" when there is none.
pub fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{:.1} %", r * 100.0))
}

/// Seconds in the unit that reads best: "2.6 s", "45 s", "12 min", "3.5 h"; "-" when none.
pub fn delay(secs: Option<f64>) -> String {
    match secs {
        None => "-".into(),
        Some(s) if s < 10.0 => format!("{s:.1} s"),
        Some(s) if s < 120.0 => format!("{s:.0} s"),
        Some(s) if s < 7200.0 => format!("{:.0} min", s / 60.0),
        Some(s) => format!("{:.1} h", s / 3600.0),
    }
}

/// Which way a figure is better, to colour its change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
    /// A volume: more is neither good nor bad.
    Neither,
}

/// How a figure moved against the earlier period, for the reader's eye.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trend {
    Better,
    Worse,
    /// Unchanged, a volume, or nothing to compare with.
    Neutral,
}

impl Trend {
    /// The CSS class of the change.
    pub fn class(self) -> &'static str {
        match self {
            Trend::Better => "better",
            Trend::Worse => "worse",
            Trend::Neutral => "neutral",
        }
    }

    fn of(delta: f64, better: Better) -> Trend {
        match better {
            _ if delta == 0.0 => Trend::Neutral,
            Better::Higher if delta > 0.0 => Trend::Better,
            Better::Lower if delta < 0.0 => Trend::Better,
            Better::Neither => Trend::Neutral,
            _ => Trend::Worse,
        }
    }
}

/// One headline figure: what it is, its value now and in the earlier period, the change.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub label: &'static str,
    pub this: String,
    pub previous: String,
    /// "+20.0 %" for counts and delays, "-7.3 pt" (percentage points) for the delivery rate,
    /// "=" unchanged, "new" when the earlier period had none, "-" when either has no value.
    pub change: String,
    pub trend: Trend,
}

impl Figure {
    /// `shown`: now and before; `(change, delta)`: the change as read and its sign.
    fn new(
        label: &'static str,
        (this, previous): (String, String),
        (change, delta): (String, f64),
        better: Better,
    ) -> Self {
        Figure {
            label,
            this,
            previous,
            change,
            trend: Trend::of(delta, better),
        }
    }
}

/// The relative change from `before` to `now` and its sign (0 when unchanged).
fn relative(now: f64, before: f64) -> (String, f64) {
    if before == 0.0 {
        return match now == 0.0 {
            true => ("=".into(), 0.0),
            false => ("new".into(), 1.0),
        };
    }
    let pct = (now - before) / before * 100.0;
    match pct.abs() < 0.05 {
        true => ("=".into(), 0.0),
        false => (format!("{pct:+.1} %"), pct),
    }
}

/// The change of a share in percentage points: a delivery rate going from 99 % to 91.7 % fell
/// 7.3 points, which "-7.4 %" would misstate.
fn points(now: f64, before: f64) -> (String, f64) {
    let pt = (now - before) * 100.0;
    match pt.abs() < 0.05 {
        true => ("=".into(), 0.0),
        false => (format!("{pt:+.1} pt"), pt),
    }
}

/// The summary of a period against the earlier one, in the order people look for them.
pub fn headline(this: &StatsSummary, previous: &StatsSummary) -> Vec<Figure> {
    // Both kinds of figure: a count, or a measure that a period may not have.
    let counter = |label, f: fn(&StatsCounts) -> u64, show: fn(u64) -> String, better| {
        let (a, b) = (f(&this.counts), f(&previous.counts));
        Figure::new(
            label,
            (show(a), show(b)),
            relative(a as f64, b as f64),
            better,
        )
    };
    let measure = |label,
                   f: fn(&StatsSummary) -> Option<f64>,
                   show: fn(Option<f64>) -> String,
                   compare: fn(f64, f64) -> (String, f64),
                   better| {
        let (a, b) = (f(this), f(previous));
        let change = match (a, b) {
            (Some(a), Some(b)) => compare(a, b),
            _ => ("-".into(), 0.0),
        };
        Figure::new(label, (show(a), show(b)), change, better)
    };
    vec![
        measure(
            "Delivery rate",
            |s| s.delivery_rate,
            rate,
            points,
            Better::Higher,
        ),
        measure(
            "Median delay",
            |s| s.delay_p50,
            delay,
            relative,
            Better::Lower,
        ),
        measure(
            "95th percentile delay",
            |s| s.delay_p95,
            delay,
            relative,
            Better::Lower,
        ),
        counter("Messages", |c| c.messages, count, Better::Neither),
        counter("Recipients", |c| c.recipients, count, Better::Neither),
        counter("Size", |c| c.bytes, bytes, Better::Neither),
        counter("Delivered", |c| c.delivered, count, Better::Neither),
        counter("Deferred attempts", |c| c.deferred, count, Better::Lower),
        counter("Bounced", |c| c.bounced, count, Better::Lower),
        counter("Expired", |c| c.expired, count, Better::Lower),
        counter(
            "Rejected SMTP commands",
            |c| c.rejected,
            count,
            Better::Lower,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(delivered: u64, bounced: u64, p50: Option<f64>) -> StatsSummary {
        let counts = StatsCounts {
            messages: delivered + bounced,
            recipients: delivered + bounced,
            bytes: 835_982_522,
            delivered,
            bounced,
            ..StatsCounts::default()
        };
        StatsSummary {
            counts,
            delivery_rate: counts.delivery_rate(),
            delay_p50: p50,
            delay_p95: None,
        }
    }

    fn figure<'a>(figures: &'a [Figure], label: &str) -> &'a Figure {
        figures.iter().find(|f| f.label == label).unwrap()
    }

    #[test]
    fn figures_read_with_their_units() {
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(bytes(835_982_522), "836.0 MB");
        assert_eq!(bytes(5_600_000), "5.6 MB");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(rate(Some(0.964)), "96.4 %");
        assert_eq!(rate(None), "-");
        assert_eq!(delay(Some(2.61)), "2.6 s");
        assert_eq!(delay(Some(45.2)), "45 s");
        assert_eq!(delay(Some(720.0)), "12 min");
        assert_eq!(delay(Some(12_600.0)), "3.5 h");
        assert_eq!(delay(None), "-");
    }

    #[test]
    fn the_headline_compares_with_the_earlier_period() {
        let now = summary(110, 10, Some(2.6));
        let before = summary(99, 1, Some(5.2));
        let figures = headline(&now, &before);
        let rate = figure(&figures, "Delivery rate");
        assert_eq!(
            (rate.this.as_str(), rate.previous.as_str()),
            ("91.7 %", "99.0 %")
        );
        // A share changes in points: 99.0 % to 91.7 % is 7.3 points down, and worse.
        assert_eq!(rate.change, "-7.3 pt");
        assert_eq!(rate.trend, Trend::Worse);
        let median = figure(&figures, "Median delay");
        assert_eq!(
            (median.change.as_str(), median.trend),
            ("-50.0 %", Trend::Better)
        );
        let bounced = figure(&figures, "Bounced");
        assert_eq!(
            (bounced.change.as_str(), bounced.trend),
            ("+900.0 %", Trend::Worse)
        );
        // Volumes move without being good or bad.
        let messages = figure(&figures, "Messages");
        assert_eq!(
            (messages.change.as_str(), messages.trend),
            ("+20.0 %", Trend::Neutral)
        );
        assert_eq!(figure(&figures, "Size").change, "=");
        // Nothing before: the figure is new; no value on one side: no change to tell.
        let empty = StatsSummary::default();
        assert_eq!(figure(&headline(&now, &empty), "Messages").change, "new");
        assert_eq!(figure(&headline(&now, &empty), "Delivery rate").change, "-");
        assert_eq!(
            figure(&headline(&now, &empty), "Delivery rate").trend,
            Trend::Neutral
        );
    }
}
