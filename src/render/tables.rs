//! The statistics as tables, one per section: the same rows for the pages, their CSV and JSON
//! exports, and `mailtrail stats`.

use crate::stats::{Stats, StatsRow};
/// One section of the statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Summary,
    Month,
    Day,
    Weekday,
    Hour,
    RecipientDomain,
    RelayHost,
    Sender,
    SmtpErrors,
    Categories,
}

impl Section {
    pub const ALL: [Section; 10] = [
        Section::Summary,
        Section::Month,
        Section::Day,
        Section::Weekday,
        Section::Hour,
        Section::RecipientDomain,
        Section::RelayHost,
        Section::Sender,
        Section::SmtpErrors,
        Section::Categories,
    ];

    /// The name in URLs.
    pub fn slug(self) -> &'static str {
        match self {
            Section::Summary => "summary",
            Section::Month => "month",
            Section::Day => "day",
            Section::Weekday => "weekday",
            Section::Hour => "hour",
            Section::RecipientDomain => "recipient-domain",
            Section::RelayHost => "relay-host",
            Section::Sender => "sender",
            Section::SmtpErrors => "smtp-errors",
            Section::Categories => "categories",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Section::Summary => "Summary",
            Section::Month => "By month",
            Section::Day => "By day of month",
            Section::Weekday => "By weekday",
            Section::Hour => "By hour",
            Section::RecipientDomain => "By recipient domain",
            Section::RelayHost => "By relay host",
            Section::Sender => "By sender",
            Section::SmtpErrors => "SMTP errors of rejected commands",
            Section::Categories => "Bounce categories",
        }
    }

    pub fn from_slug(slug: &str) -> Option<Section> {
        Section::ALL.into_iter().find(|s| s.slug() == slug)
    }

    pub fn rows(self, s: &Stats) -> &[StatsRow] {
        match self {
            Section::Month => &s.by_month,
            Section::Day => &s.by_day,
            Section::Weekday => &s.by_weekday,
            Section::Hour => &s.by_hour,
            Section::RecipientDomain => &s.by_recipient_domain,
            Section::RelayHost => &s.by_relay_host,
            Section::Sender => &s.by_sender,
            Section::Summary | Section::SmtpErrors | Section::Categories => &[],
        }
    }

    /// The section's data as JSON.
    pub fn json(self, s: &Stats) -> serde_json::Value {
        let value = match self {
            Section::Summary => serde_json::to_value(&s.summary),
            Section::SmtpErrors => serde_json::to_value(&s.smtp_errors),
            Section::Categories => serde_json::to_value(&s.categories),
            other => serde_json::to_value(other.rows(s)),
        };
        value.unwrap_or(serde_json::Value::Null)
    }
}

/// A table: header and rows of cells, the same for HTML and CSV.
pub struct Table {
    pub header: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

fn optional(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}")).unwrap_or_default()
}

/// The table of `section`.
pub fn table(section: Section, s: &Stats) -> Table {
    match section {
        Section::Summary => summary_table(s),
        Section::SmtpErrors => Table {
            header: vec!["code", "dsn", "count"],
            rows: s
                .smtp_errors
                .iter()
                .map(|e| {
                    vec![
                        e.code.map(|c| c.to_string()).unwrap_or_default(),
                        e.dsn.clone(),
                        e.count.to_string(),
                    ]
                })
                .collect(),
        },
        Section::Categories => Table {
            header: vec!["category", "count", "refused"],
            rows: s
                .categories
                .iter()
                .map(|c| {
                    vec![
                        c.category.to_string(),
                        c.count.to_string(),
                        c.refused.to_string(),
                    ]
                })
                .collect(),
        },
        Section::RecipientDomain => attempts_table("recipient_domain", section.rows(s)),
        Section::RelayHost => attempts_table("relay_host", section.rows(s)),
        Section::Month => counts_table("month", section.rows(s)),
        Section::Day => counts_table("day", section.rows(s)),
        Section::Weekday => counts_table("weekday", section.rows(s)),
        Section::Hour => counts_table("hour", section.rows(s)),
        Section::Sender => counts_table("sender", section.rows(s)),
    }
}

const ATTEMPTS: [&str; 4] = ["delivered", "deferred", "bounced", "expired"];

fn attempt_cells(r: &StatsRow) -> [String; 4] {
    let c = &r.counts;
    [c.delivered, c.deferred, c.bounced, c.expired].map(|n| n.to_string())
}

fn summary_table(s: &Stats) -> Table {
    let c = &s.summary.counts;
    let rows = [
        ("messages", c.messages.to_string()),
        ("recipients", c.recipients.to_string()),
        ("bytes", c.bytes.to_string()),
        ("delivered", c.delivered.to_string()),
        ("deferred", c.deferred.to_string()),
        ("bounced", c.bounced.to_string()),
        ("expired", c.expired.to_string()),
        ("rejected", c.rejected.to_string()),
        ("delivery_rate", optional(s.summary.delivery_rate, 4)),
        ("delay_p50", optional(s.summary.delay_p50, 1)),
        ("delay_p95", optional(s.summary.delay_p95, 1)),
    ];
    Table {
        header: vec!["field", "value"],
        rows: rows.into_iter().map(|(k, v)| vec![k.into(), v]).collect(),
    }
}

/// Rows keyed by `key` with their attempts (recipient domains, relay hosts).
fn attempts_table(key: &'static str, rows: &[StatsRow]) -> Table {
    let mut header = vec![key];
    header.extend(ATTEMPTS);
    Table {
        header,
        rows: rows
            .iter()
            .map(|r| {
                let mut row = vec![r.key.clone()];
                row.extend(attempt_cells(r));
                row
            })
            .collect(),
    }
}

/// Rows keyed by `key` with every counter (months, days, weekdays, hours, senders).
fn counts_table(key: &'static str, rows: &[StatsRow]) -> Table {
    let mut header = vec![key, "messages", "recipients", "bytes"];
    header.extend(ATTEMPTS);
    header.push("rejected");
    Table {
        header,
        rows: rows
            .iter()
            .map(|r| {
                let c = &r.counts;
                let mut row = vec![
                    r.key.clone(),
                    c.messages.to_string(),
                    c.recipients.to_string(),
                    c.bytes.to_string(),
                ];
                row.extend(attempt_cells(r));
                row.push(c.rejected.to_string());
                row
            })
            .collect(),
    }
}
