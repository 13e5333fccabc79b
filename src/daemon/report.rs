//! The weekly report's schedule: a periodic job that sends the report when it is due (see
//! [`crate::notify::weekly::send_due`]).

use super::periodic::Periodic;
use crate::{
    config::ConfigHandle,
    notify::weekly::{ReportError, next_look, send_due},
    store::Store,
};
use time::{OffsetDateTime, UtcOffset};
use tracing::warn;

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
                if !stop.sleep(next_look(&current, offset, now)).await {
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
