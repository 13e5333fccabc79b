//! The weekly summary e-mail: the statistics of the seven days before the report's day against
//! the seven days before those, as a text part and an HTML part with its charts inline (PNG),
//! built with lettre. The figures come from the statistics rollups ([`Store::stats`]), never
//! from the raw tables.
//!
//! [`WeeklyReport::load`] gathers, [`WeeklyReport::to_text`] / [`WeeklyReport::to_html`] render,
//! [`WeeklyReport::message`] builds the mail; [`Scheduler`] sends it once per week.

mod render;
pub mod schedule;
mod send;

pub use schedule::{ReportWeek, latest_due, next_due};
pub use send::{
    RETRY_EVERY, ReportBook, build, next_look, schedule_fleet, send_due, sender, submit,
};

use crate::stats::{Stats, StatsRow};
use crate::{
    render::chart::{self, ChartError},
    store::{DomainScope, Store, StoreError},
};
use lettre::{
    Message,
    message::{Attachment, Mailbox, MultiPart, SinglePart, header::ContentType},
};
use std::collections::BTreeMap;
use time::UtcOffset;

/// The `kind` of weekly reports in the store's report records.
pub const WEEKLY: &str = "weekly";
/// Rows of the top lists in a report (the pages show more).
const TOP: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("reading the statistics: {0}")]
    Store(#[from] StoreError),
    #[error("drawing a chart: {0}")]
    Chart(#[from] ChartError),
    #[error("invalid address {address:?} in {field}")]
    Address {
        field: &'static str,
        address: String,
    },
    #[error("building the message: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("sending to {host}:{port}: {source}")]
    Send {
        host: String,
        port: u16,
        #[source]
        source: lettre::transport::smtp::Error,
    },
    #[error("cannot start the report thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// Everything one weekly report says.
#[derive(Clone, Debug)]
pub struct WeeklyReport {
    pub week: ReportWeek,
    /// The host the report is about (its `Subject:` and heading).
    pub host: String,
    pub this: Stats,
    pub previous: Stats,
    /// Sender notices sent in the week, by kind (warning, expiry, receipt).
    pub notices: BTreeMap<String, u64>,
    /// Copies in the archive now, and their bytes.
    pub archived_messages: u64,
    pub archived_bytes: u64,
    /// Where the pages are reached (no trailing `/`); no links without it.
    pub base_url: Option<String>,
}

impl WeeklyReport {
    /// Reads the week and the week before from the rollups (refresh them first), the notices
    /// sent in the week and the archive's size.
    pub fn load(
        store: &Store,
        week: ReportWeek,
        offset: UtcOffset,
        host: &str,
        base_url: Option<&str>,
    ) -> Result<WeeklyReport, ReportError> {
        let this = store.stats(&week.period, &DomainScope::All)?;
        let previous = store.stats(&week.previous_period(), &DomainScope::All)?;
        let start = |d: time::Date| d.midnight().assume_offset(offset).unix_timestamp();
        let notices = store.notices_sent_between(start(week.period.from), start(week.period.to))?;
        let totals = store.totals()?;
        Ok(WeeklyReport {
            week,
            host: host.to_string(),
            this,
            previous,
            notices,
            archived_messages: totals.archived_messages,
            archived_bytes: totals.archived_bytes,
            base_url: base_url.map(|u| u.trim_end_matches('/').to_string()),
        })
    }

    /// [`WeeklyReport::load`] over every host of the fleet: their statistics summed, their
    /// notices, the copies kept in all their archives.
    pub async fn load_fleet(
        fleet: &crate::store::fleet::FleetReader,
        week: ReportWeek,
        offset: UtcOffset,
        host: &str,
        base_url: Option<&str>,
    ) -> Result<WeeklyReport, ReportError> {
        let this = fleet.stats(&week.period, &DomainScope::All, None).await?;
        let previous = fleet
            .stats(&week.previous_period(), &DomainScope::All, None)
            .await?;
        let start = |d: time::Date| d.midnight().assume_offset(offset).unix_timestamp();
        let notices = fleet
            .notices_sent_between(start(week.period.from), start(week.period.to))
            .await?;
        let (archived_messages, archived_bytes) = fleet.archived_totals().await?;
        Ok(WeeklyReport {
            week,
            host: host.to_string(),
            this,
            previous,
            notices,
            archived_messages,
            archived_bytes,
            base_url: base_url.map(|u| u.trim_end_matches('/').to_string()),
        })
    }

    /// `mailtrail weekly summary for HOST, FROM – TO` (last day included). Host names and dates
    /// only: nothing from mail reaches this header.
    pub fn subject(&self) -> String {
        let last = self
            .week
            .period
            .to
            .previous_day()
            .unwrap_or(self.week.period.to);
        format!(
            "mailtrail weekly summary for {}, {} to {}",
            self.host.replace(|c: char| c.is_control(), ""),
            self.week.period.from,
            last
        )
    }

    /// The days of the week in order, each with its date: the weekday rows of the period,
    /// rotated to start on its first day.
    pub(crate) fn days(&self) -> Vec<(time::Date, StatsRow)> {
        let mut day = self.week.period.from;
        let mut out = Vec::with_capacity(7);
        while day < self.week.period.to {
            let name = render::weekday_name(day.weekday());
            let row = self
                .this
                .by_weekday
                .iter()
                .find(|r| r.key == name)
                .cloned()
                .unwrap_or_else(|| StatsRow {
                    key: name.to_string(),
                    other: false,
                    counts: Default::default(),
                });
            out.push((day, row));
            day = match day.next_day() {
                Some(d) => d,
                None => break,
            };
        }
        out
    }

    /// The charts of the HTML part: (content id, PNG bytes).
    pub fn charts(&self) -> Result<Vec<(&'static str, Vec<u8>)>, ReportError> {
        let days = self.days();
        let day_labels: Vec<String> = days
            .iter()
            .map(|(d, r)| format!("{} {}", r.key, d.day()))
            .collect();
        let day_rows: Vec<StatsRow> = days.into_iter().map(|(_, r)| r).collect();
        let hour_labels: Vec<String> = self.this.by_hour.iter().map(|r| r.key.clone()).collect();
        let mut out = vec![
            (
                render::CHART_DAYS,
                chart::png(640, 260, |root| {
                    chart::vertical_bars(
                        root,
                        "Attempts per day",
                        &day_labels,
                        &chart::status_series(&day_rows),
                    )
                })?,
            ),
            (
                render::CHART_HOURS,
                chart::png(640, 260, |root| {
                    chart::vertical_bars(
                        root,
                        "Attempts per hour",
                        &hour_labels,
                        &chart::status_series(&self.this.by_hour),
                    )
                })?,
            ),
        ];
        if !self.this.categories.is_empty() {
            let labels: Vec<String> = self
                .this
                .categories
                .iter()
                .map(|c| c.category.to_string())
                .collect();
            let values = self.this.categories.iter().map(|c| c.count).collect();
            let height = 60 + 24 * labels.len() as u32;
            out.push((
                render::CHART_CATEGORIES,
                chart::png(640, height, |root| {
                    chart::horizontal_bars(
                        root,
                        "Bounce categories",
                        &labels,
                        &[chart::Series::new("failures", chart::BOUNCED, values)],
                    )
                })?,
            ));
        }
        Ok(out)
    }

    /// The mail: `multipart/alternative` of the text and of a `multipart/related` HTML part
    /// with its charts (referred to by `cid:`).
    pub fn message(&self, from: &str, to: &[String]) -> Result<Message, ReportError> {
        let mailbox = |field: &'static str, address: &str| {
            address
                .parse::<Mailbox>()
                .map_err(|_| ReportError::Address {
                    field,
                    address: address.to_string(),
                })
        };
        let mut builder = Message::builder()
            .from(mailbox("from", from)?)
            .subject(self.subject())
            .header(AutoSubmitted);
        for address in to {
            builder = builder.to(mailbox("to", address)?);
        }
        let mut related =
            MultiPart::related().singlepart(SinglePart::html(self.to_html().into_string()));
        for (cid, png) in self.charts()? {
            let image = ContentType::parse("image/png").expect("a valid content type");
            related = related.singlepart(Attachment::new_inline(cid.to_string()).body(png, image));
        }
        Ok(builder.multipart(
            MultiPart::alternative()
                .singlepart(SinglePart::plain(self.to_text()))
                .multipart(related),
        )?)
    }
}

/// `Auto-Submitted: auto-generated` (RFC 3834): no vacation replies to the report.
#[derive(Clone, Debug)]
struct AutoSubmitted;

impl lettre::message::header::Header for AutoSubmitted {
    fn name() -> lettre::message::header::HeaderName {
        lettre::message::header::HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }

    fn display(&self) -> lettre::message::header::HeaderValue {
        lettre::message::header::HeaderValue::new(Self::name(), "auto-generated".into())
    }
}

#[cfg(test)]
mod tests;
