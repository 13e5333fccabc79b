//! The retention sweep: copies older than `archive.retention` are deleted.

use super::{Archive, ArchiveError};
use serde::Serialize;
use std::time::{Duration, SystemTime};

/// Unfinished files in `tmp/` older than this are leftovers of a crash (the Maildir convention).
const TMP_LEFTOVER_AGE: Duration = Duration::from_secs(36 * 3600);

#[derive(Clone, Debug, Serialize)]
pub struct ExpiredCopy {
    pub name: String,
    pub bytes: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct SweepReport {
    /// Copies deleted (or, in a dry run, that would be).
    pub expired: Vec<ExpiredCopy>,
    pub tmp_leftovers_removed: usize,
    pub kept: usize,
}

impl Archive {
    /// Deletes copies that arrived before `now - retention`. A copy's age is the arrival time in
    /// its Maildir name, falling back to the file's modification time.
    pub fn sweep(
        &self,
        retention: Duration,
        now: SystemTime,
        dry_run: bool,
    ) -> Result<SweepReport, ArchiveError> {
        let cutoff = now.checked_sub(retention).unwrap_or(SystemTime::UNIX_EPOCH);
        let mut report = SweepReport::default();
        for entries in [self.maildir.list_new(), self.maildir.list_cur()] {
            for entry in entries {
                let entry = entry.map_err(|e| self.io_err(e))?;
                let path = entry.path().clone();
                let Ok(meta) = std::fs::metadata(&path) else {
                    continue; // moved or deleted meanwhile
                };
                let arrived = name_time(entry.id())
                    .or_else(|| meta.modified().ok())
                    .unwrap_or(now);
                if arrived >= cutoff {
                    report.kept += 1;
                    continue;
                }
                if !dry_run {
                    match std::fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(source) => return Err(ArchiveError::Io { path, source }),
                    }
                }
                report.expired.push(ExpiredCopy {
                    name: entry.id().to_string(),
                    bytes: meta.len(),
                });
            }
        }
        let tmp_cutoff = now
            .checked_sub(TMP_LEFTOVER_AGE)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        report.tmp_leftovers_removed = self.remove_tmp_files(Some(tmp_cutoff), dry_run)?;
        if !dry_run && !report.expired.is_empty() {
            self.sync_new_dir()?;
        }
        Ok(report)
    }
}

/// The arrival second at the start of a Maildir name (`1732358400.#1M...`).
pub(super) fn name_time(name: &str) -> Option<SystemTime> {
    let secs: u64 = name.split('.').next()?.parse().ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}
