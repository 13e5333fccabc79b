//! The statistics refresh: a periodic job that keeps the rollups current, with its own store
//! connection, off the milter's path (the refresh reads a snapshot and writes in one short
//! transaction).

use super::periodic::Periodic;
use crate::{config::ConfigHandle, store::Store};
use time::{OffsetDateTime, UtcOffset};
use tracing::{debug, error, info};

/// Starts the refresh on a thread of its own; it runs every `web.stats_refresh`.
pub fn start(
    config: ConfigHandle,
    mut store: Store,
    offset: UtcOffset,
) -> std::io::Result<Periodic> {
    Periodic::start("stats-refresh", move |mut stop| async move {
        loop {
            match store.refresh_stats(offset, OffsetDateTime::now_utc()) {
                // The first refresh (a full one on an upgraded store) is worth a line.
                Ok(report) if report.full => info!(
                    "statistics refreshed: {} days recomputed (full rebuild)",
                    report.days
                ),
                Ok(report) => debug!("statistics refreshed: {report:?}"),
                Err(e) => error!("statistics refresh: {e}"),
            }
            if !stop.sleep(config.current().web.stats_refresh).await {
                return;
            }
        }
    })
}
