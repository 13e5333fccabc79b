//! The report's text and HTML parts: the same sections, tables and figures in both.

use super::{TOP, WeeklyReport};
use crate::render::figures::{bytes, count, headline};
use crate::stats::{StatsCounts, StatsRow};
use maud::{Markup, html};
use std::fmt::Write as _;
use time::Weekday;

/// Content ids of the inline charts.
pub(super) const CHART_DAYS: &str = "days";
pub(super) const CHART_HOURS: &str = "hours";
pub(super) const CHART_CATEGORIES: &str = "categories";

/// The weekday keys of the statistics' `by_weekday` rows.
pub(super) fn weekday_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Monday => "Mon",
        Weekday::Tuesday => "Tue",
        Weekday::Wednesday => "Wed",
        Weekday::Thursday => "Thu",
        Weekday::Friday => "Fri",
        Weekday::Saturday => "Sat",
        Weekday::Sunday => "Sun",
    }
}

/// A section's table: its title, header and rows (the first column is the key).
struct Table {
    title: String,
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

fn status_cells(c: &StatsCounts) -> Vec<String> {
    vec![
        count(c.messages),
        count(c.delivered),
        count(c.deferred),
        count(c.bounced),
        count(c.expired),
    ]
}

const STATUS_HEADER: [&str; 5] = ["Messages", "Delivered", "Deferred", "Bounced", "Expired"];

fn status_table(title: &str, first: &'static str, rows: &[(String, &StatsCounts)]) -> Table {
    let mut header = vec![first];
    header.extend(STATUS_HEADER);
    Table {
        title: title.to_string(),
        header,
        rows: rows
            .iter()
            .map(|(key, c)| {
                let mut cells = vec![key.clone()];
                cells.extend(status_cells(c));
                cells
            })
            .collect(),
    }
}

fn top(rows: &[StatsRow]) -> Vec<(String, &StatsCounts)> {
    rows.iter()
        .filter(|r| !r.other)
        .take(TOP)
        .map(|r| (r.key.clone(), &r.counts))
        .collect()
}

impl WeeklyReport {
    fn notices_line(&self) -> String {
        if self.notices.is_empty() {
            return "none".into();
        }
        self.notices
            .iter()
            .map(|(kind, n)| format!("{} {kind}", count(*n)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn archive_line(&self) -> String {
        format!(
            "{} copies, {}",
            count(self.archived_messages),
            bytes(self.archived_bytes)
        )
    }

    fn period_line(&self) -> String {
        format!(
            "{} (compared with {})",
            self.week.period.describe(),
            self.week.previous_period().describe()
        )
    }

    /// (label, URL) of the pages, when the base URL is known.
    fn links(&self) -> Vec<(&'static str, String)> {
        let Some(base) = &self.base_url else {
            return Vec::new();
        };
        vec![
            (
                "Statistics of the week",
                format!(
                    "{base}/stats?period={}..{}",
                    self.week.period.from, self.week.period.to
                ),
            ),
            ("Messages of the last 7 days", format!("{base}/week")),
        ]
    }

    fn tables(&self) -> Vec<Table> {
        let days: Vec<(String, StatsCounts)> = self
            .days()
            .into_iter()
            .map(|(d, r)| (format!("{} {d}", r.key), r.counts))
            .collect();
        let days: Vec<(String, &StatsCounts)> = days.iter().map(|(k, c)| (k.clone(), c)).collect();
        let hours: Vec<(String, &StatsCounts)> = self
            .this
            .by_hour
            .iter()
            .map(|r| (format!("{}:00", r.key), &r.counts))
            .collect();
        let mut tables = vec![
            status_table("Days", "Day", &days),
            status_table("Hours", "Hour", &hours),
            status_table(
                "Top recipient domains",
                "Domain",
                &top(&self.this.by_recipient_domain),
            ),
            status_table("Top senders", "Sender", &top(&self.this.by_sender)),
        ];
        tables.push(Table {
            title: "SMTP error codes (rejected commands)".into(),
            header: vec!["Code", "DSN", "Count"],
            rows: self
                .this
                .smtp_errors
                .iter()
                .take(TOP)
                .map(|e| {
                    vec![
                        e.code.map_or_else(|| "-".into(), |c| c.to_string()),
                        e.dsn.clone(),
                        count(e.count),
                    ]
                })
                .collect(),
        });
        tables.push(Table {
            title: "Bounce categories".into(),
            header: vec!["Category", "Count"],
            rows: self
                .this
                .categories
                .iter()
                .map(|c| vec![c.category.to_string(), count(c.count)])
                .collect(),
        });
        tables
    }

    /// The text part.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "mailtrail weekly summary for {}", self.host);
        let _ = writeln!(out, "{}\n", self.period_line());
        let lines = headline(&self.this.summary, &self.previous.summary);
        let rows: Vec<Vec<String>> = lines
            .into_iter()
            .map(|l| vec![l.label.to_string(), l.this, l.previous, l.change])
            .collect();
        write_text_table(&mut out, &["", "This week", "Week before", "Change"], &rows);
        let _ = writeln!(out, "\nNotices sent to senders: {}", self.notices_line());
        let _ = writeln!(out, "Archive now: {}", self.archive_line());
        for table in self.tables() {
            let _ = writeln!(out, "\n{}", table.title);
            if table.rows.is_empty() {
                out.push_str("  none\n");
            } else {
                write_text_table(&mut out, &table.header, &table.rows);
            }
        }
        for (label, url) in self.links() {
            let _ = writeln!(out, "\n{label}: {url}");
        }
        out
    }

    /// The HTML part; every value is escaped by maud, styles are inline (mail clients drop
    /// style sheets), charts are `cid:` images of the same message.
    pub fn to_html(&self) -> Markup {
        let table_style = "border-collapse:collapse;margin:0 0 16px 0;font-size:13px";
        let cell = "padding:3px 8px;border-bottom:1px solid #ddd;text-align:right";
        let first = "padding:3px 8px;border-bottom:1px solid #ddd;text-align:left";
        let lines = headline(&self.this.summary, &self.previous.summary);
        let charts_of = |cid: &str| match cid {
            CHART_DAYS => "Attempts per day by status",
            CHART_HOURS => "Attempts per hour by status",
            _ => "Bounce categories",
        };
        let has_categories = !self.this.categories.is_empty();
        html! {
            (maud::DOCTYPE)
            html {
                head { meta charset="utf-8"; title { (self.subject()) } }
                body style="font-family:sans-serif;color:#222" {
                    h1 style="font-size:20px" { "mailtrail weekly summary for " (self.host) }
                    p { (self.period_line()) }
                    table style=(table_style) {
                        tr { th style=(first) {} th style=(cell) { "This week" }
                             th style=(cell) { "Week before" } th style=(cell) { "Change" } }
                        @for l in &lines {
                            tr { td style=(first) { (l.label) } td style=(cell) { (l.this) }
                                 td style=(cell) { (l.previous) } td style=(cell) { (l.change) } }
                        }
                    }
                    p { "Notices sent to senders: " (self.notices_line()) br;
                        "Archive now: " (self.archive_line()) }
                    @for cid in [CHART_DAYS, CHART_HOURS] {
                        p { img src={ "cid:" (cid) } alt=(charts_of(cid)) width="640"; }
                    }
                    @for table in self.tables() {
                        h2 style="font-size:16px" { (table.title) }
                        @if table.title == "Bounce categories" && has_categories {
                            p { img src={ "cid:" (CHART_CATEGORIES) } alt=(charts_of(CHART_CATEGORIES)) width="640"; }
                        }
                        @if table.rows.is_empty() {
                            p { "none" }
                        } @else {
                            table style=(table_style) {
                                tr { @for (i, h) in table.header.iter().enumerate() {
                                    th style=(if i == 0 { first } else { cell }) { (h) }
                                } }
                                @for row in &table.rows {
                                    tr { @for (i, v) in row.iter().enumerate() {
                                        td style=(if i == 0 { first } else { cell }) { (v) }
                                    } }
                                }
                            }
                        }
                    }
                    @for (label, url) in self.links() {
                        p { a href=(url) { (label) } }
                    }
                }
            }
        }
    }
}

/// Aligned columns: the first left, the others right.
fn write_text_table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let width = |i: usize| {
        rows.iter()
            .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
            .chain([header.get(i).map_or(0, |h| h.chars().count())])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::from("  ");
        for (i, c) in cells.iter().enumerate() {
            if i == 0 {
                let _ = write!(text, "{c:<w$}", w = widths[0]);
            } else {
                let _ = write!(text, "  {c:>w$}", w = widths[i]);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

#[cfg(test)]
mod tests;
