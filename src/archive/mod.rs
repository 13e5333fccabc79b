//! The archive Maildir: durable writes (a batch of copies to tmp → written back together → new
//! → one directory fsync, see [`durable`]), reading, the retention sweep and export.
//! It knows nothing about SMTP.

mod durable;
mod expire;
mod export;
mod reconcile;
pub mod sweep;

pub use expire::{ExpiredCopy, SweepReport};
pub use export::{export_eml, export_mbox};
pub use reconcile::CopyFile;

pub use durable::DataSync;
use durable::TmpCopy;
use maildir::Maildir;
use std::{
    fs::File,
    io::{self, Write},
    path::{Path, PathBuf},
    sync::Arc,
};

/// Messages up to this size stay in memory until end-of-message; larger ones go to `tmp/` as
/// they arrive, so a few large messages cannot exhaust memory.
const SPILL_THRESHOLD: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("archive {path}: {source}", path = path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no archived copy named {0}")]
    NotFound(String),
    #[error("this message has no copy to store")]
    NothingToStore,
    #[error("the archive's sync thread has stopped")]
    SyncStopped,
}

/// The archive Maildir.
pub struct Archive {
    maildir: Maildir,
    root: PathBuf,
    /// How the file system under `root` makes a batch of copies durable: asked on the first
    /// store, so an archive opened only to be read never asks.
    data_sync: std::sync::OnceLock<DataSync>,
}

impl Archive {
    /// Opens the Maildir at `root`, creating `tmp/`, `new/` and `cur/` when missing.
    pub fn open(root: &Path) -> Result<Archive, ArchiveError> {
        let maildir = Maildir::from(root.to_path_buf());
        maildir.create_dirs().map_err(|source| ArchiveError::Io {
            path: root.to_path_buf(),
            source,
        })?;
        Ok(Archive {
            maildir,
            root: root.to_path_buf(),
            data_sync: std::sync::OnceLock::new(),
        })
    }

    /// Opens an existing Maildir for reading, without creating anything.
    pub fn open_existing(root: &Path) -> Archive {
        Archive {
            maildir: Maildir::from(root.to_path_buf()),
            root: root.to_path_buf(),
            data_sync: std::sync::OnceLock::new(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Starts a copy of one message.
    pub fn spool(self: &Arc<Self>, max_size: u64) -> Spool {
        Spool {
            archive: Some(self.clone()),
            buf: Vec::new(),
            file: None,
            size: 0,
            max_size,
            state: SpoolState::Keeping,
        }
    }

    /// Stores a batch of copies (the messages ending at about the same time): each is written
    /// to `tmp/`, then all are written back at once ([`DataSync`]) and renamed into `new/`.
    /// Their Maildir names, or why a copy was not stored, in order. Durable once
    /// [`Archive::sync_new_dir`] has returned. Blocking.
    pub fn store_copies(&self, spools: Vec<Spool>) -> Vec<Result<String, ArchiveError>> {
        let written: Vec<Result<TmpCopy, ArchiveError>> =
            spools.into_iter().map(|s| s.into_tmp(self)).collect();
        let copies: Vec<&TmpCopy> = written.iter().filter_map(|w| w.as_ref().ok()).collect();
        let how = *self.data_sync.get_or_init(|| DataSync::of(&self.root));
        let mut synced = durable::write_back(&copies, how).into_iter();
        written
            .into_iter()
            .map(|copy| {
                let copy = copy?;
                // write_back answers once per copy written, in order; none is no write-back.
                let synced = synced
                    .next()
                    .unwrap_or_else(|| Err(io::Error::other("not written back")));
                synced
                    .and_then(|()| copy.into_new(&self.root))
                    .map_err(|e| self.io_err(e))
            })
            .collect()
    }

    /// Makes the renames into `new/` durable: one directory sync covers every copy stored before.
    pub fn sync_new_dir(&self) -> Result<(), ArchiveError> {
        let new = self.root.join("new");
        File::open(&new)
            .and_then(|dir| dir.sync_all())
            .map_err(|source| ArchiveError::Io { path: new, source })
    }

    /// The path of a stored copy, wherever a Maildir reader moved it (`new/` or `cur/`).
    pub fn path_of(&self, name: &str) -> Option<PathBuf> {
        self.maildir.find(name).map(|entry| entry.path().clone())
    }

    /// Deletes a stored copy whose record could not be committed: the store and the archive
    /// agree again at once, not only at the next start's reconcile.
    pub fn discard(&self, name: &str) -> Result<(), ArchiveError> {
        let Some(path) = self.path_of(name) else {
            return Ok(());
        };
        std::fs::remove_file(&path).map_err(|source| ArchiveError::Io { path, source })
    }

    /// The bytes of a stored copy.
    pub fn read(&self, name: &str) -> Result<Vec<u8>, ArchiveError> {
        let path = self
            .path_of(name)
            .ok_or_else(|| ArchiveError::NotFound(name.to_string()))?;
        std::fs::read(&path).map_err(|source| ArchiveError::Io { path, source })
    }

    fn io_err(&self, source: io::Error) -> ArchiveError {
        ArchiveError::Io {
            path: self.root.clone(),
            source,
        }
    }
}

enum SpoolState {
    Keeping,
    CountOnly,
    TooLarge,
    Failed(io::Error),
}

/// One message's bytes on their way into the archive, bounded by the size limit.
pub struct Spool {
    /// `None` for a spool that only counts bytes.
    archive: Option<Arc<Archive>>,
    buf: Vec<u8>,
    file: Option<TmpCopy>,
    size: u64,
    max_size: u64,
    state: SpoolState,
}

impl Spool {
    /// A spool that only counts bytes: for messages that are not to be copied.
    pub fn counting() -> Spool {
        Spool {
            archive: None,
            buf: Vec::new(),
            file: None,
            size: 0,
            max_size: u64::MAX,
            state: SpoolState::CountOnly,
        }
    }

    /// Appends message bytes. Past the size limit the copy is dropped and only counted; a write
    /// error is kept and reported by [`Spool::store`].
    pub fn append(&mut self, bytes: &[u8]) {
        self.size += bytes.len() as u64;
        let (SpoolState::Keeping, Some(archive)) = (&self.state, &self.archive) else {
            return;
        };
        if self.size > self.max_size {
            self.state = SpoolState::TooLarge;
            self.buf = Vec::new();
            self.file = None; // dropping the tmp file unlinks it
            return;
        }
        let result = match &mut self.file {
            // A page-cache write of one body chunk (≤ 64 KB from the MTA); the sync runs on a
            // blocking thread at end-of-message.
            Some(file) => file.write_all(bytes),
            None if self.buf.len() + bytes.len() > SPILL_THRESHOLD => {
                TmpCopy::create(&archive.root).and_then(|mut file| {
                    file.write_all(&self.buf)?;
                    file.write_all(bytes)?;
                    self.file = Some(file);
                    self.buf = Vec::new();
                    Ok(())
                })
            }
            None => {
                self.buf.extend_from_slice(bytes);
                Ok(())
            }
        };
        if let Err(e) = result {
            self.state = SpoolState::Failed(e);
            self.buf = Vec::new();
            self.file = None;
        }
    }

    /// Bytes seen so far, including any beyond the size limit.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether the message grew past the size limit.
    pub fn too_large(&self) -> bool {
        matches!(self.state, SpoolState::TooLarge)
    }

    /// Whether there is a copy to store.
    pub fn keeps_copy(&self) -> bool {
        matches!(self.state, SpoolState::Keeping | SpoolState::Failed(_))
    }

    /// Stores the copy in `new/` ([`Archive::store_copies`] with this one) and returns its
    /// Maildir name; durable once [`Archive::sync_new_dir`] has returned. Blocking.
    pub fn store(self) -> Result<String, ArchiveError> {
        let Some(archive) = self.archive.clone() else {
            return Err(ArchiveError::NothingToStore);
        };
        let mut stored = archive.store_copies(vec![self]);
        stored.pop().unwrap_or(Err(ArchiveError::NothingToStore))
    }

    /// Writes what is still in memory to the copy in the archive's `tmp/` (created now for a
    /// message that stayed under the spill threshold); not synced.
    fn into_tmp(self, archive: &Archive) -> Result<TmpCopy, ArchiveError> {
        match self.state {
            SpoolState::Keeping => {}
            SpoolState::Failed(e) => return Err(archive.io_err(e)),
            _ => return Err(ArchiveError::NothingToStore),
        }
        let mut tmp = match self.file {
            Some(tmp) => tmp,
            None => TmpCopy::create(&archive.root).map_err(|e| archive.io_err(e))?,
        };
        tmp.write_all(&self.buf).map_err(|e| archive.io_err(e))?;
        Ok(tmp)
    }
}

#[cfg(test)]
mod tests;
