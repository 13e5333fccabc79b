//! The weekly report's schedule: a periodic job that sends the report when it is due (see
//! [`crate::notify::weekly::send_due`]).

use super::periodic::Periodic;
use crate::{
    config::ConfigHandle,
    notify::weekly::{ReportError, next_due, send_due},
    store::Store,
};
use std::time::Duration;
use time::{OffsetDateTime, UtcOffset};
use tracing::warn;

/// Failed sends are retried this often, while the report is still worth sending.
const RETRY_EVERY: Duration = Duration::from_secs(10 * 60);

/// The running schedule; [`Scheduler::stop`] ends it.
pub struct Scheduler(Periodic);

impl Scheduler {
    /// Starts the weekly report's schedule on a thread of its own (the store is synchronous).
    /// It runs even while `report.enabled` is false, so a reload can turn it on.
    pub fn start(config: ConfigHandle, offset: UtcOffset) -> Result<Scheduler, ReportError> {
        let mut store = Store::open(&config.current().store.path)?;
        let job = Periodic::start("weekly-report", move |mut stop| async move {
            loop {
                let current = config.current();
                let now = OffsetDateTime::now_utc();
                if let Err(e) = send_due(&current, &mut store, offset, now).await {
                    warn!("weekly report: {e}");
                }
                // Woken at least every RETRY_EVERY: to retry a failed send, and because a
                // reload may have changed the schedule.
                let r = &current.report;
                let until_next = (next_due(now, offset, r.weekday, r.at) - now)
                    .try_into()
                    .unwrap_or(RETRY_EVERY);
                if !stop.sleep(RETRY_EVERY.min(until_next)).await {
                    return;
                }
            }
        })
        .map_err(ReportError::Spawn)?;
        Ok(Scheduler(job))
    }

    /// Stops after the send in progress.
    pub fn stop(self) {
        self.0.stop();
    }
}
