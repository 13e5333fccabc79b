//! What a bulk import changes on its connection: faster, unsynced commits, a bigger page cache,
//! and the secondary indexes dropped for the load and built at its end, under a lock that tells
//! other processes to leave them to the import.

use super::{Store, StoreError, schema};
use rusqlite::{OptionalExtension, params};
use std::{
    fs::{File, TryLockError},
    path::{Path, PathBuf},
};

/// SQLite page cache of an import connection (`PRAGMA cache_size`), within the import's
/// memory budget of 200 MB. With the secondary indexes built after the load
/// ([`Store::defer_indexes_for_import`]) the pages a batch touches fit in much less.
const IMPORT_CACHE_KIB: i64 = 24 * 1024;

/// An advisory lock (`flock`) on `STORE.import-lock`, held by an import while the indexes it
/// deferred are missing ([`Store::defer_indexes_for_import`]): a daemon or command opening the
/// store meanwhile leaves them to the import, instead of building them with the write lock
/// held mid-import. The kernel drops it with the process, so after a crash the next open
/// builds them.
pub struct ImportLock {
    path: PathBuf,
    _file: File,
}

impl ImportLock {
    fn path_for(store: &Path) -> PathBuf {
        let mut path = store.as_os_str().to_owned();
        path.push(".import-lock");
        PathBuf::from(path)
    }

    /// The lock of the store at `store`, unless another process holds it.
    fn take(store: &Path) -> Result<Option<ImportLock>, StoreError> {
        let path = Self::path_for(store);
        let file = File::create(&path).map_err(|source| StoreError::ImportLock {
            path: path.clone(),
            source,
        })?;
        match file.try_lock() {
            Ok(()) => Ok(Some(ImportLock { path, _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(source)) => Err(StoreError::ImportLock { path, source }),
        }
    }

    /// Whether an import holds the lock of the store at `store` now.
    pub(super) fn held(store: &Path) -> bool {
        File::open(Self::path_for(store))
            .is_ok_and(|file| matches!(file.try_lock(), Err(TryLockError::WouldBlock)))
    }
}

impl Drop for ImportLock {
    fn drop(&mut self) {
        // Removed while still locked: whoever opens it after this finds no import.
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Store {
    /// Settings for a bulk import on this connection only: commits are not synced one by one
    /// (WAL stays consistent; a crash loses at most the last batches, and an import is re-run
    /// anyway), and a page cache big enough for the indexes a batch touches. The daemon's
    /// connections keep `synchronous=FULL`.
    pub fn tune_for_import(&mut self) -> Result<(), StoreError> {
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Negative: KiB.
        self.conn
            .pragma_update(None, "cache_size", -IMPORT_CACHE_KIB)?;
        // Checkpointing after every batch rewrote the same index pages again and again; the
        // import checkpoints once at its end ([`Store::checkpoint`]).
        self.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        // The import writes parent rows before their children by construction; checking each
        // reference was a lookup per recipient and attempt row.
        self.conn.pragma_update(None, "foreign_keys", "OFF")?;
        Ok(())
    }

    /// Before an import into an empty store (no message yet): drops the indexes that its rows
    /// reach in random order and that it reads only once its tracker works through the store
    /// ([`schema::IMPORT_DEFERRED_INDEXES`]), remembering their definitions
    /// for [`Store::build_deferred_indexes`]. Returns, when it did, the lock that tells other
    /// processes' [`Store::open`] to leave them to the import: hold it until they are built.
    pub fn defer_indexes_for_import(&mut self) -> Result<Option<ImportLock>, StoreError> {
        let Some(path) = self
            .conn
            .path()
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
        else {
            // An in-memory store: no other process can open it.
            return Ok(None);
        };
        let Some(lock) = ImportLock::take(&path)? else {
            // Another import holds it and deferred them already.
            return Ok(None);
        };
        let tx = self.write_transaction()?;
        let empty: bool = tx.query_row("SELECT NOT EXISTS (SELECT 1 FROM message)", [], |r| {
            r.get(0)
        })?;
        if !empty {
            return Ok(None);
        }
        for name in schema::IMPORT_DEFERRED_INDEXES {
            let sql: Option<String> = tx
                .query_row(
                    "SELECT sql FROM sqlite_schema WHERE type = 'index' AND name = ?1",
                    [name],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(sql) = sql else { continue };
            tx.execute(
                "INSERT INTO deferred_index (name, sql) VALUES (?1, ?2)",
                params![name, sql],
            )?;
            // Names come from the constant list, never from input.
            tx.execute_batch(&format!("DROP INDEX {name}"))?;
        }
        tx.commit()?;
        Ok(Some(lock))
    }

    /// Builds the indexes [`Store::defer_indexes_for_import`] dropped (one sort each).
    pub fn build_deferred_indexes(&mut self) -> Result<(), StoreError> {
        let pending: Vec<(String, String)> = self
            .conn
            .prepare("SELECT name, sql FROM deferred_index ORDER BY name")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        if pending.is_empty() {
            return Ok(());
        }
        let tx = self.write_transaction()?;
        for (name, sql) in &pending {
            tx.execute_batch(sql)?;
            tx.execute("DELETE FROM deferred_index WHERE name = ?1", [name])?;
        }
        tx.commit()?;
        Ok(())
    }
}
