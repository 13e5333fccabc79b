//! The retention sweep: a periodic job that deletes raw log lines and archived copies older than
//! their retention (see [`crate::archive::sweep`]).

use super::periodic::Periodic;
use crate::{archive::sweep, config::ConfigHandle, model::counters::Counters};
use std::{sync::Arc, time::SystemTime};
use tracing::{error, info};

/// Starts the sweep on a thread of its own; it runs every `archive.sweep_interval`.
pub fn start(config: ConfigHandle, counters: Arc<Counters>) -> std::io::Result<Periodic> {
    Periodic::start("retention-sweep", move |mut stop| async move {
        loop {
            let current = config.current();
            expire_raw_lines(&current);
            if current.archive.maildir {
                expire_archive(&current, &counters);
            }
            if !stop.sleep(current.archive.sweep_interval).await {
                return;
            }
        }
    })
}

fn expire_raw_lines(config: &crate::config::Config) {
    match sweep::expire_raw_lines(config, SystemTime::now()) {
        Ok(0) => {}
        Ok(n) => info!(
            "raw log sweep: {n} lines older than {} deleted",
            humantime::format_duration(config.maillog.raw_retention)
        ),
        Err(e) => error!("raw log sweep: {e}"),
    }
}

fn expire_archive(config: &crate::config::Config, counters: &Counters) {
    match sweep::expire_archive(config, SystemTime::now(), false) {
        Ok(report) if !report.expired.is_empty() => {
            Counters::add(&counters.archive_expired, report.expired.len() as u64);
            info!(
                "archive sweep: {} copies expired, {} kept",
                report.expired.len(),
                report.kept
            );
        }
        Ok(_) => {}
        Err(e) => error!("archive sweep: {e}"),
    }
}
