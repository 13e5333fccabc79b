//! Building and sending the weekly report, once per week: the report is recorded as due in the
//! store before it is built, and marked sent after the MTA accepted it. A restart finds an
//! unsent record and tries again; a sent one is never repeated. The daemon's job
//! (`daemon::report`) calls [`send_due`] on schedule.

use super::{ReportError, ReportWeek, WEEKLY, WeeklyReport, latest_due};
use crate::{config::Config, notify::SmtpSubmission, store::Store};
use lettre::Message;
use time::{OffsetDateTime, UtcOffset};
use tracing::info;

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
    store: &mut Store,
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
    let record = store.record_report_due(WEEKLY, due_at, now.unix_timestamp())?;
    if record.sent_at.is_some() {
        return Ok(None);
    }
    let week = ReportWeek::ending_on(due);
    let message = build(config, store, week, offset, now)
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
    store.finish_report_attempt(
        WEEKLY,
        due_at,
        OffsetDateTime::now_utc().unix_timestamp(),
        error.as_deref(),
    )?;
    sent.map(|()| Some(week))
}
