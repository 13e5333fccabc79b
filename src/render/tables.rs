//! The statistics as tables, one per section: the same rows for the pages, their CSV and JSON
//! exports, and `mailtrail stats`.

use super::figures;
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

/// A column: its name in CSV and scripts, and its heading for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    pub key: &'static str,
    pub title: &'static str,
}

const fn column(key: &'static str, title: &'static str) -> Column {
    Column { key, title }
}

/// A cell: CSV gets the plain value, people the figure with its unit ([`Cell::shown`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Text(String),
    /// A summary line's field: its key for CSV, words for people.
    Field(Column),
    Count(u64),
    Bytes(u64),
    /// A share of 1.
    Rate(Option<f64>),
    Seconds(Option<f64>),
}

impl Cell {
    /// For CSV: plain numbers (bytes, a share of 1, seconds), empty for no value.
    pub fn raw(&self) -> String {
        match self {
            Cell::Text(text) => text.clone(),
            Cell::Field(c) => c.key.to_string(),
            Cell::Count(n) | Cell::Bytes(n) => n.to_string(),
            Cell::Rate(r) => r.map(|r| format!("{r:.4}")).unwrap_or_default(),
            Cell::Seconds(s) => s.map(|s| format!("{s:.1}")).unwrap_or_default(),
        }
    }

    /// For people: "1,234", "5.6 MB", "96.4 %", "2.6 s", "-" for no value.
    pub fn shown(&self) -> String {
        match self {
            Cell::Text(text) => text.clone(),
            Cell::Field(c) => c.title.to_string(),
            Cell::Count(n) => figures::count(*n),
            Cell::Bytes(n) => figures::bytes(*n),
            Cell::Rate(r) => figures::rate(*r),
            Cell::Seconds(s) => figures::delay(*s),
        }
    }

    /// Numbers are set right-aligned.
    pub fn is_number(&self) -> bool {
        !matches!(self, Cell::Text(_) | Cell::Field(_))
    }
}

/// A table: columns and rows of cells, the same for HTML, CSV and the command line.
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn keys(&self) -> Vec<&'static str> {
        self.columns.iter().map(|c| c.key).collect()
    }

    pub fn titles(&self) -> Vec<&'static str> {
        self.columns.iter().map(|c| c.title).collect()
    }

    pub fn raw_rows(&self) -> Vec<Vec<String>> {
        self.rows
            .iter()
            .map(|r| r.iter().map(Cell::raw).collect())
            .collect()
    }
}

const MESSAGES: Column = column("messages", "Messages");
const RECIPIENTS: Column = column("recipients", "Recipients");
const BYTES: Column = column("bytes", "Size");
const DELIVERED: Column = column("delivered", "Delivered");
const DEFERRED: Column = column("deferred", "Deferred");
const BOUNCED: Column = column("bounced", "Bounced");
const EXPIRED: Column = column("expired", "Expired");
const REJECTED: Column = column("rejected", "Rejected commands");
const ATTEMPTS: [Column; 4] = [DELIVERED, DEFERRED, BOUNCED, EXPIRED];

/// The table of `section`.
pub fn table(section: Section, s: &Stats) -> Table {
    match section {
        Section::Summary => summary_table(s),
        Section::SmtpErrors => Table {
            columns: vec![
                column("code", "Reply code"),
                column("dsn", "Status code"),
                column("count", "Rejected commands"),
            ],
            rows: s
                .smtp_errors
                .iter()
                .map(|e| {
                    vec![
                        Cell::Text(e.code.map(|c| c.to_string()).unwrap_or_default()),
                        Cell::Text(e.dsn.clone()),
                        Cell::Count(e.count),
                    ]
                })
                .collect(),
        },
        Section::Categories => Table {
            columns: vec![
                column("category", "Category"),
                column("count", "Bounced or expired"),
                column("refused", "Refused at RCPT"),
            ],
            rows: s
                .categories
                .iter()
                .map(|c| {
                    vec![
                        Cell::Text(c.category.to_string()),
                        Cell::Count(c.count),
                        Cell::Count(c.refused),
                    ]
                })
                .collect(),
        },
        Section::RecipientDomain => attempts_table(
            column("recipient_domain", "Recipient domain"),
            section.rows(s),
        ),
        Section::RelayHost => attempts_table(column("relay_host", "Relay host"), section.rows(s)),
        Section::Month => counts_table(column("month", "Month"), section.rows(s)),
        Section::Day => counts_table(column("day", "Day"), section.rows(s)),
        Section::Weekday => counts_table(column("weekday", "Weekday"), section.rows(s)),
        Section::Hour => counts_table(column("hour", "Hour"), section.rows(s)),
        Section::Sender => counts_table(column("sender", "Sender"), section.rows(s)),
    }
}

fn attempt_cells(r: &StatsRow) -> [Cell; 4] {
    let c = &r.counts;
    [c.delivered, c.deferred, c.bounced, c.expired].map(Cell::Count)
}

fn summary_table(s: &Stats) -> Table {
    let c = &s.summary.counts;
    let rows = [
        (MESSAGES, Cell::Count(c.messages)),
        (RECIPIENTS, Cell::Count(c.recipients)),
        (BYTES, Cell::Bytes(c.bytes)),
        (DELIVERED, Cell::Count(c.delivered)),
        (
            column("deferred", "Deferred attempts"),
            Cell::Count(c.deferred),
        ),
        (BOUNCED, Cell::Count(c.bounced)),
        (EXPIRED, Cell::Count(c.expired)),
        (REJECTED, Cell::Count(c.rejected)),
        (
            column("delivery_rate", "Delivery rate"),
            Cell::Rate(s.summary.delivery_rate),
        ),
        (
            column("delay_p50", "Median delay"),
            Cell::Seconds(s.summary.delay_p50),
        ),
        (
            column("delay_p95", "95th percentile delay"),
            Cell::Seconds(s.summary.delay_p95),
        ),
    ];
    Table {
        columns: vec![column("field", "Figure"), column("value", "Value")],
        rows: rows
            .into_iter()
            .map(|(field, value)| vec![Cell::Field(field), value])
            .collect(),
    }
}

/// Rows keyed by `key` with their attempts (recipient domains, relay hosts): the messages,
/// recipients and sizes of a message are the sender's, not a recipient domain's.
fn attempts_table(key: Column, rows: &[StatsRow]) -> Table {
    let mut columns = vec![key];
    columns.extend(ATTEMPTS);
    Table {
        columns,
        rows: rows
            .iter()
            .map(|r| {
                let mut row = vec![Cell::Text(r.key.clone())];
                row.extend(attempt_cells(r));
                row
            })
            .collect(),
    }
}

/// Rows keyed by `key` with every counter (months, days, weekdays, hours, senders).
fn counts_table(key: Column, rows: &[StatsRow]) -> Table {
    let mut columns = vec![key, MESSAGES, RECIPIENTS, BYTES];
    columns.extend(ATTEMPTS);
    columns.push(REJECTED);
    Table {
        columns,
        rows: rows
            .iter()
            .map(|r| {
                let c = &r.counts;
                let mut row = vec![
                    Cell::Text(r.key.clone()),
                    Cell::Count(c.messages),
                    Cell::Count(c.recipients),
                    Cell::Bytes(c.bytes),
                ];
                row.extend(attempt_cells(r));
                row.push(Cell::Count(c.rejected));
                row
            })
            .collect(),
    }
}

/// The fleet's hosts, each with its messages and its recipients' outcomes.
pub fn mta_host_table(rows: &[StatsRow]) -> Table {
    counts_table(column("mta_host", "MTA host"), rows)
}
