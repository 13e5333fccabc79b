//! Building and sending the weekly report, once per week: the report is recorded as due in the
//! store before it is built, and marked sent after the MTA accepted it. A restart finds an
//! unsent record and tries again; a sent one is never repeated. The daemon's job
//! (`daemon::report`) calls [`send_due`] on schedule.

use super::{ReportError, ReportWeek, WEEKLY, WeeklyReport, latest_due, next_due};
use crate::{
    config::{Config, ConfigHandle},
    notify::SmtpSubmission,
    store::{ReportRecord, Store, fleet::FleetReader},
};
use lettre::Message;
use std::time::Duration;
use time::{OffsetDateTime, UtcOffset};
use tracing::{info, warn};

/// Where a weekly report's figures and its record (due, sent) are kept: a host's store (its
/// own report), or the fleet database (the dashboard's report over every host).
#[allow(async_fn_in_trait)] // used by this crate's own, single-threaded, schedules
pub trait ReportBook {
    async fn record_due(&mut self, due_at: i64, now: i64) -> Result<ReportRecord, ReportError>;
    async fn finish_attempt(
        &mut self,
        due_at: i64,
        now: i64,
        error: Option<&str>,
    ) -> Result<(), ReportError>;
    /// The report of `week`, from figures brought up to date first where that is this book's
    /// to do.
    async fn report(
        &mut self,
        config: &Config,
        week: ReportWeek,
        offset: UtcOffset,
        now: OffsetDateTime,
    ) -> Result<WeeklyReport, ReportError>;
}

impl ReportBook for Store {
    async fn record_due(&mut self, due_at: i64, now: i64) -> Result<ReportRecord, ReportError> {
        Ok(self.record_report_due(WEEKLY, due_at, now)?)
    }

    async fn finish_attempt(
        &mut self,
        due_at: i64,
        now: i64,
        error: Option<&str>,
    ) -> Result<(), ReportError> {
        Ok(self.finish_report_attempt(WEEKLY, due_at, now, error)?)
    }

    async fn report(
        &mut self,
        config: &Config,
        week: ReportWeek,
        offset: UtcOffset,
        now: OffsetDateTime,
    ) -> Result<WeeklyReport, ReportError> {
        build(config, self, week, offset, now)
    }
}

impl ReportBook for FleetReader {
    async fn record_due(&mut self, due_at: i64, now: i64) -> Result<ReportRecord, ReportError> {
        Ok(self.record_report_due(WEEKLY, due_at, now).await?)
    }

    async fn finish_attempt(
        &mut self,
        due_at: i64,
        now: i64,
        error: Option<&str>,
    ) -> Result<(), ReportError> {
        Ok(self
            .finish_report_attempt(WEEKLY, due_at, now, error)
            .await?)
    }

    /// The hosts refresh and ship their own statistics: the fleet's are as of their last.
    async fn report(
        &mut self,
        config: &Config,
        week: ReportWeek,
        offset: UtcOffset,
        _now: OffsetDateTime,
    ) -> Result<WeeklyReport, ReportError> {
        WeeklyReport::load_fleet(
            self,
            week,
            offset,
            &config.notify.reporting_mta,
            config.report.base_url.as_deref(),
        )
        .await
    }
}

/// Failed sends are retried this often, while the report is still worth sending.
pub const RETRY_EVERY: Duration = Duration::from_secs(10 * 60);

/// How long a schedule waits before it looks again: until the next report falls due, at most
/// [`RETRY_EVERY`] (to retry a failed send, and because a reload may change the schedule).
pub fn next_look(config: &Config, offset: UtcOffset, now: OffsetDateTime) -> Duration {
    let r = &config.report;
    (next_due(now, offset, r.weekday, r.at) - now)
        .try_into()
        .unwrap_or(RETRY_EVERY)
        .min(RETRY_EVERY)
}

/// The dashboard's schedule: sends the fleet's weekly report when due, forever.
pub async fn schedule_fleet(config: ConfigHandle, offset: UtcOffset, mut fleet: FleetReader) {
    loop {
        let current = config.current();
        let now = OffsetDateTime::now_utc();
        if let Err(e) = send_due(&current, &mut fleet, offset, now).await {
            warn!("weekly report of the fleet: {e}");
        }
        tokio::time::sleep(next_look(&current, offset, now)).await;
    }
}

/// A report whose time passed longer ago than this (mailtrail was down) is not sent late: a
/// summary of last week arriving on Thursday misleads more than it helps.
const CATCH_UP: time::Duration = time::Duration::hours(24);

/// The `From:` of reports: `report.from`, or `mailtrail@` the reporting host.
pub fn sender(config: &Config) -> String {
    config
        .report
        .from
        .clone()
        .unwrap_or_else(|| format!("mailtrail@{}", config.notify.reporting_mta))
}

/// Refreshes the statistics and gathers the report of `week`.
pub fn build(
    config: &Config,
    store: &mut Store,
    week: ReportWeek,
    offset: UtcOffset,
    now: OffsetDateTime,
) -> Result<WeeklyReport, ReportError> {
    store.refresh_stats(offset, now)?;
    WeeklyReport::load(
        store,
        week,
        offset,
        &config.notify.reporting_mta,
        config.report.base_url.as_deref(),
    )
}

/// Submits `message` to the SMTP server of `[notify] smtp`.
pub async fn submit(config: &Config, message: &Message) -> Result<(), ReportError> {
    let (host, port) = (&config.notify.smtp_host, config.notify.smtp_port);
    SmtpSubmission::new(host, port)
        .submit(message.envelope(), &message.formatted())
        .await
        .map_err(|source| ReportError::Send {
            host: host.clone(),
            port,
            source,
        })
}

/// Sends the report due at or before `now` if it is still to send and not older than
/// [`CATCH_UP`]. Returns the week sent, if one was; a failed send stays due.
pub async fn send_due(
    config: &Config,
    book: &mut impl ReportBook,
    offset: UtcOffset,
    now: OffsetDateTime,
) -> Result<Option<ReportWeek>, ReportError> {
    let report = &config.report;
    if !report.enabled {
        return Ok(None);
    }
    let due = latest_due(now, offset, report.weekday, report.at);
    if now - due > CATCH_UP {
        return Ok(None);
    }
    let due_at = due.unix_timestamp();
    let record = book.record_due(due_at, now.unix_timestamp()).await?;
    if record.sent_at.is_some() || record.taken {
        return Ok(None);
    }
    let week = ReportWeek::ending_on(due);
    let message = book
        .report(config, week, offset, now)
        .await
        .and_then(|r| r.message(&sender(config), &report.recipients));
    let sent = match message {
        Ok(message) => submit(config, &message).await,
        Err(e) => Err(e),
    };
    if sent.is_ok() {
        info!(
            "weekly report for {} to {} sent to {}",
            week.period.from,
            week.period.to,
            report.recipients.join(", ")
        );
    }
    let error = sent.as_ref().err().map(|e| e.to_string());
    book.finish_attempt(
        due_at,
        OffsetDateTime::now_utc().unix_timestamp(),
        error.as_deref(),
    )
    .await?;
    sent.map(|()| Some(week))
}
