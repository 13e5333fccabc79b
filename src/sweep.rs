//! Retention sweeps, at start and every `archive.sweep_interval`: archive copies older than
//! `archive.retention` (their envelope rows are marked; also `mailtrail archive expire`), and raw
//! log lines older than `maillog.raw_retention`.

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

/// Deletes raw log lines older than `maillog.raw_retention`; returns how many.
pub fn expire_raw_lines(config: &Config, now: SystemTime) -> Result<usize, StoreError> {
    let cutoff = now
        .checked_sub(config.maillog.raw_retention)
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    Store::open(&config.store.path)?.expire_raw_lines(cutoff)
}
