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

/// How far before the newest recorded copy a crash's leftovers are looked for: messages in
/// flight when it happened arrived within the MTA's own milter timeouts of it.
const RECONCILE_WINDOW: std::time::Duration = std::time::Duration::from_secs(3600);

/// What [`reconcile_at_start`] found and mended.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Unfinished copies deleted from `tmp/`.
    pub tmp_removed: usize,
    /// Complete copies without a record (never acknowledged to the MTA) deleted.
    pub unrecorded_removed: usize,
    /// Records whose copy is missing (its directory sync was lost), marked `failed`.
    pub missing_marked: usize,
}

/// Makes the archive and the store agree after a crash, before the milter serves anything:
/// `tmp/` is emptied, and among the copies and records of the last hour before the newest
/// record, a copy without a record is deleted and a record without its copy marked `failed`.
/// Blocking: call before serving, or from a blocking thread.
pub fn reconcile_at_start(
    archive: &Archive,
    store: &mut Store,
    now: SystemTime,
) -> Result<Reconciled, SweepError> {
    let mut done = Reconciled {
        tmp_removed: archive.clear_tmp()?,
        ..Reconciled::default()
    };
    let newest = store.newest_archived_at()?;
    let since_secs = newest.map_or_else(
        || {
            // Nothing recorded yet: every copy is recent enough to look at.
            now.checked_sub(RECONCILE_WINDOW)
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs() as i64)
        },
        |at| at - RECONCILE_WINDOW.as_secs() as i64,
    );
    let since = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(since_secs.max(0) as u64);
    let copies = archive.copies_since(since)?;
    let names: Vec<String> = copies.iter().map(|c| c.name.clone()).collect();
    let known = store.known_archive_names(&names)?;
    let (recorded, unrecorded): (Vec<_>, Vec<_>) =
        copies.into_iter().partition(|c| known.contains(&c.name));
    done.unrecorded_removed = archive.remove_copies(&unrecorded)?;
    let present: std::collections::HashSet<String> = recorded.into_iter().map(|c| c.name).collect();
    // A record's copy was written after it arrived, so it is among the recent copies; the rare
    // one touched earlier (clock steps) is looked up on its own.
    let missing: Vec<i64> = store
        .stored_copies_since(since_secs)?
        .into_iter()
        .filter(|(_, name)| !present.contains(name) && archive.path_of(name).is_none())
        .map(|(id, _)| id)
        .collect();
    done.missing_marked = store.mark_archive_failed(&missing)?;
    Ok(done)
}
