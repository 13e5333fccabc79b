//! The archive retention sweep: deletes copies older than `archive.retention` and marks their
//! envelope rows, at start, every `archive.sweep_interval`, and by `mailtrail archive expire`.

use crate::{
    archive::{Archive, ArchiveError, SweepReport},
    config::Config,
    store::{Store, StoreError},
};
use std::time::SystemTime;

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("copies deleted, but their rows could not be marked: {0}")]
    Store(#[from] StoreError),
}

/// Runs one sweep. Blocking: call from a blocking thread.
pub fn expire_archive(
    config: &Config,
    now: SystemTime,
    dry_run: bool,
) -> Result<SweepReport, SweepError> {
    let archive = Archive::open_existing(&config.archive.dir);
    if !archive.root().join("new").is_dir() {
        return Ok(SweepReport::default()); // nothing archived yet
    }
    let report = archive.sweep(config.archive.retention, now, dry_run)?;
    if !dry_run && !report.expired.is_empty() {
        let names: Vec<String> = report.expired.iter().map(|c| c.name.clone()).collect();
        Store::open(&config.store.path)?.mark_archive_expired(&names)?;
    }
    Ok(report)
}
