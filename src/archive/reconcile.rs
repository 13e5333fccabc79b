//! What a crash can leave in the Maildir, found at start: unfinished files in `tmp/`, and the
//! newest copies, to be checked against the store's records (see `sweep::reconcile_at_start`).

use super::{Archive, ArchiveError};
use std::time::SystemTime;

/// A copy in `new/` or `cur/`.
#[derive(Clone, Debug)]
pub struct CopyFile {
    pub name: String,
    pub path: std::path::PathBuf,
}

impl Archive {
    /// Deletes every file in `tmp/`. Only at start, before any session writes there: each is a
    /// copy that was being written when the daemon stopped, never acknowledged to the MTA.
    pub fn clear_tmp(&self) -> Result<usize, ArchiveError> {
        self.remove_tmp_files(None, false)
    }

    /// Deletes the files in `tmp/` last modified before `before` (all of them for `None`);
    /// returns how many (would be) deleted. A missing `tmp/` holds nothing.
    pub(super) fn remove_tmp_files(
        &self,
        before: Option<SystemTime>,
        dry_run: bool,
    ) -> Result<usize, ArchiveError> {
        let tmp = self.root.join("tmp");
        let entries = match std::fs::read_dir(&tmp) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(source) => return Err(ArchiveError::Io { path: tmp, source }),
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let due = entry.metadata().is_ok_and(|m| {
                m.is_file() && before.is_none_or(|b| m.modified().is_ok_and(|t| t < b))
            });
            if due && (dry_run || std::fs::remove_file(entry.path()).is_ok()) {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Copies in `new/` and `cur/` that arrived at or after `since`: the time in the Maildir
    /// name (no file is read for it), else the file's modification time.
    pub fn copies_since(&self, since: SystemTime) -> Result<Vec<CopyFile>, ArchiveError> {
        let mut copies = Vec::new();
        for entries in [self.maildir.list_new(), self.maildir.list_cur()] {
            for entry in entries {
                let entry = entry.map_err(|e| self.io_err(e))?;
                let arrived = super::expire::name_time(entry.id()).or_else(|| {
                    std::fs::metadata(entry.path())
                        .and_then(|m| m.modified())
                        .ok()
                });
                let recent = arrived.is_some_and(|t| t >= since);
                if recent {
                    copies.push(CopyFile {
                        name: entry.id().to_string(),
                        path: entry.path().clone(),
                    });
                }
            }
        }
        Ok(copies)
    }

    /// Deletes copies that have no record, then makes the deletions durable.
    pub fn remove_copies(&self, copies: &[CopyFile]) -> Result<usize, ArchiveError> {
        let mut removed = 0;
        for copy in copies {
            match std::fs::remove_file(&copy.path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(ArchiveError::Io {
                        path: copy.path.clone(),
                        source,
                    });
                }
            }
        }
        if removed > 0 {
            self.sync_new_dir()?;
        }
        Ok(removed)
    }
}
