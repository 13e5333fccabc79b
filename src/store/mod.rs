//! The SQLite store: schema, migrations and every SQL statement of mailtrail.

mod checkpoint;
mod log;
mod policy;
mod query;
mod report;
mod schema;
mod stats;
mod web;

pub use checkpoint::BackgroundCheckpoint;
pub use log::{
    AttemptRow, LogBatch, LogMessageFields, NewLogMessage, NewRecipient, RejectRow, RowWriter,
};
pub use policy::{DueNotice, PolicyMessage, PolicyRecipient};
pub use query::{Attempt, MessageNotice, RecipientDelivery};
pub use report::ReportRecord;
pub use web::{DomainScope, MessageCount, MessageSummary, RawLine, WebFilter, WebTotals};

use crate::{
    config::Receipts,
    model::envelope::{ArchiveState, Envelope, Recipient},
};
use rusqlite::{
    Connection, OptionalExtension, Transaction, TransactionBehavior, config::DbConfig, params,
    params_from_iter,
};
use serde::Serialize;
use std::{
    collections::BTreeMap,
    fs::{File, TryLockError},
    path::{Path, PathBuf},
    time::Duration,
};
use time::OffsetDateTime;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create store directory {path}: {source}", path = path.display())]
    CreateDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("store {path}: {source}", path = path.display())]
    Open {
        path: std::path::PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("import lock {path}: {source}", path = path.display())]
    ImportLock {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("store schema version {found} is newer than this mailtrail ({supported})")]
    TooNew { found: i64, supported: i64 },
    /// A log tracker working without the store (an import's parsing thread) met a message
    /// it had already written: a bug, reported rather than a wrong row written.
    #[error("log tracking needed the store while working without it")]
    NoTransaction,
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
}

/// A stored message: its row id and envelope.
#[derive(Clone, Debug, Serialize)]
pub struct StoredMessage {
    pub id: i64,
    #[serde(flatten)]
    pub envelope: Envelope,
}

/// Filters for listing messages; all optional, combined with AND.
#[derive(Clone, Debug, Default)]
pub struct MessageFilter {
    pub since: Option<OffsetDateTime>,
    /// Substring of MAIL FROM, case-insensitive.
    pub from: Option<String>,
    /// Substring of any recipient, case-insensitive.
    pub to: Option<String>,
    /// Substring of the subject, case-insensitive.
    pub subject: Option<String>,
    pub limit: Option<u32>,
}

/// SQLite page cache of an import connection (`PRAGMA cache_size`), within the import's
/// memory budget of 200 MB. With the secondary indexes built after the load
/// ([`Store::defer_indexes_for_import`]) the pages a batch touches fit in much less.
const IMPORT_CACHE_KIB: i64 = 24 * 1024;

/// One connection to the store. Writers keep one each; SQLite's WAL lets readers run beside.
pub struct Store {
    conn: Connection,
}

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
    fn held(store: &Path) -> bool {
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
    /// Opens (creating if needed) the store and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(open_err)?;
        // WAL lets readers (CLI, web) run beside the writers; FULL makes each commit durable
        // before the milter answers the MTA.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        // Without the planner stability guarantee, SQLite (built with STAT4) re-compiles a
        // cached statement whenever a new value is bound to a parameter it compared against a
        // partial index's WHERE (message_archive_name, recipient_status): that was most of the
        // cost of a log batch. Plans then ignore bound values, which none of ours needs.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
            .map_err(open_err)?;
        schema::migrate(&mut conn)?;
        // Every statement of a log batch stays prepared: re-parsing SQL would dominate imports.
        conn.set_prepared_statement_cache_capacity(64);
        let mut store = Store { conn };
        // An import that did not end left indexes to build; one still running builds them
        // itself, at its end.
        if !ImportLock::held(path) {
            store.build_deferred_indexes()?;
        }
        Ok(store)
    }

    /// A transaction that writes: `BEGIN IMMEDIATE` takes the write lock at once, waiting for
    /// other writers up to the busy timeout. A deferred transaction that reads before it writes
    /// fails at its first write with "database is locked", without waiting, when another
    /// connection committed in between (SQLITE_BUSY_SNAPSHOT); the milter and the log follower
    /// write side by side and hit that within seconds.
    fn write_transaction(&mut self) -> Result<Transaction<'_>, StoreError> {
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }

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

    /// For the milter's writer: its commits never run a checkpoint themselves (one landing on a
    /// commit would delay the MTA's answer by the checkpoint's writes and syncs); a
    /// [`Store::checkpoint_passive`] from another connection keeps the log short instead.
    pub fn without_auto_checkpoint(&mut self) -> Result<(), StoreError> {
        self.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        Ok(())
    }

    /// Copies what it can of the write-ahead log into the database without waiting for, or
    /// blocking, readers and writers.
    pub fn checkpoint_passive(&mut self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Copies the write-ahead log into the database and truncates it.
    pub fn checkpoint(&mut self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Inserts envelopes in one transaction (one sync for a whole batch); returns their ids.
    /// Commits envelope rows; returns their ids.
    pub fn insert_envelopes(&mut self, envelopes: &[&Envelope]) -> Result<Vec<i64>, StoreError> {
        self.record_envelopes(envelopes, &[])
    }

    /// Commits envelope rows, and `counters` in the same transaction: what the counters say of
    /// the milter survives a crash exactly as the rows do.
    pub fn record_envelopes(
        &mut self,
        envelopes: &[&Envelope],
        counters: &[(&str, u64)],
    ) -> Result<Vec<i64>, StoreError> {
        let tx = self.write_transaction()?;
        add_counters(&tx, counters)?;
        let mut ids = Vec::with_capacity(envelopes.len());
        {
            let mut log_row = tx.prepare_cached(
                "SELECT id FROM message WHERE queue_id = ?1 AND source = 'log' AND removed_at IS NULL
                   AND arrived_at BETWEEN ?2 - ?3 AND ?2 + ?3 ORDER BY id DESC LIMIT 1",
            )?;
            let skew = crate::model::correlation::CLOCK_SKEW_SECS;
            for e in envelopes {
                // The log follower may have seen this queue id first (postfix logs message-id=
                // before the milter's end-of-message): the milter's record takes over that row.
                let existing: Option<i64> = match &e.queue_id {
                    Some(qid) => log_row
                        .query_row(params![qid, e.arrived_at.unix_timestamp(), skew], |row| {
                            row.get(0)
                        })
                        .optional()?,
                    None => None,
                };
                ids.push(write_envelope(&tx, existing, e)?);
            }
        }
        tx.commit()?;
        Ok(ids)
    }

    /// Messages matching `filter`, newest first.
    pub fn list_messages(&self, filter: &MessageFilter) -> Result<Vec<StoredMessage>, StoreError> {
        // A hand-over row stays listed only while it holds the archive copy (a content filter
        // re-injected the message the milter saw); the next hop's row is the message.
        let mut sql = String::from(
            "SELECT id FROM message m WHERE (m.handed_to IS NULL OR m.archive_state = 'stored')",
        );
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(since) = filter.since {
            sql.push_str(" AND arrived_at >= ?");
            args.push(since.unix_timestamp().into());
        }
        text_filters(
            filter.from.as_deref(),
            filter.to.as_deref(),
            filter.subject.as_deref(),
            &mut sql,
            &mut args,
        );
        sql.push_str(" ORDER BY arrived_at DESC, id DESC");
        if let Some(limit) = filter.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        let ids: Vec<i64> = self
            .conn
            .prepare(&sql)?
            .query_map(params_from_iter(args), |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        ids.into_iter()
            .filter_map(|id| self.message(id).transpose())
            .collect()
    }

    /// One message by row id.
    pub fn message(&self, id: i64) -> Result<Option<StoredMessage>, StoreError> {
        let found = self
            .conn
            .prepare_cached(
                "SELECT id, queue_id, arrived_at, mta_host, client_name, client_addr, helo, sasl_user,
                    mail_from, mail_args, recipients_dropped, size, message_id, subject,
                    archive_name, archive_state, mode, receipts, is_notice
                 FROM message WHERE id = ?1",
            )?
            .query_row([id], |row| {
                let words = |s: String| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
                let state: String = row.get(15)?;
                let receipts: String = row.get(17)?;
                Ok(StoredMessage {
                    id: row.get(0)?,
                    envelope: Envelope {
                        queue_id: row.get(1)?,
                        arrived_at: OffsetDateTime::from_unix_timestamp(row.get(2)?)
                            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                        mta_host: row.get(3)?,
                        client_name: row.get(4)?,
                        client_addr: row.get(5)?,
                        helo: row.get(6)?,
                        sasl_user: row.get(7)?,
                        mail_from: row.get(8)?,
                        mail_args: words(row.get(9)?),
                        recipients: Vec::new(),
                        recipients_dropped: row.get(10)?,
                        size: row.get::<_, i64>(11)? as u64,
                        message_id: row.get(12)?,
                        subject: row.get(13)?,
                        archive_name: row.get(14)?,
                        archive_state: ArchiveState::parse(&state).unwrap_or(ArchiveState::Failed),
                        mode: row.get(16)?,
                        receipts: parse_receipts(&receipts),
                        is_notice: row.get(18)?,
                    },
                })
            })
            .optional()?;
        let Some(mut message) = found else {
            return Ok(None);
        };
        message.envelope.recipients = self
            .conn
            .prepare_cached(
                "SELECT address, args FROM recipient WHERE message = ?1 ORDER BY position",
            )?
            .query_map([id], |row| {
                let args: String = row.get(1)?;
                Ok(Recipient {
                    address: row.get(0)?,
                    args: args.split_whitespace().map(str::to_owned).collect(),
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(Some(message))
    }

    /// Messages with this queue id, newest first (postfix reuses short ids).
    pub fn messages_by_queue_id(&self, queue_id: &str) -> Result<Vec<StoredMessage>, StoreError> {
        let ids: Vec<i64> = self
            .conn
            .prepare_cached(
                "SELECT id FROM message WHERE queue_id = ?1 ORDER BY arrived_at DESC, id DESC",
            )?
            .query_map([queue_id], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        ids.into_iter()
            .filter_map(|id| self.message(id).transpose())
            .collect()
    }

    /// When the newest message with an archive copy arrived (unix seconds).
    pub fn newest_archived_at(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.conn.query_row(
            "SELECT max(arrived_at) FROM message WHERE archive_state = 'stored'",
            [],
            |row| row.get(0),
        )?)
    }

    /// Which of `names` some message records as its archive copy.
    pub fn known_archive_names(
        &self,
        names: &[String],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let mut known = std::collections::HashSet::new();
        let mut find = self
            .conn
            .prepare_cached("SELECT 1 FROM message WHERE archive_name = ?1")?;
        for name in names {
            if find.exists([name])? {
                known.insert(name.clone());
            }
        }
        Ok(known)
    }

    /// (id, archive name) of messages arrived at or after `since` (unix seconds) whose copy is
    /// recorded as stored.
    pub fn stored_copies_since(&self, since: i64) -> Result<Vec<(i64, String)>, StoreError> {
        Ok(self
            .conn
            .prepare(
                "SELECT id, archive_name FROM message
                 WHERE archive_state = 'stored' AND arrived_at >= ?1 AND archive_name IS NOT NULL",
            )?
            .query_map([since], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?)
    }

    /// Records that these messages' copies are not in the archive after all.
    pub fn mark_archive_failed(&mut self, ids: &[i64]) -> Result<usize, StoreError> {
        let tx = self.write_transaction()?;
        let mut changed = 0;
        {
            let mut update = tx.prepare_cached(
                "UPDATE message SET archive_state = 'failed' WHERE id = ?1 AND archive_state = 'stored'",
            )?;
            for id in ids {
                changed += update.execute([id])?;
            }
        }
        tx.commit()?;
        Ok(changed)
    }

    /// Records that the retention sweep deleted these archive copies.
    pub fn mark_archive_expired(&mut self, names: &[String]) -> Result<usize, StoreError> {
        let tx = self.write_transaction()?;
        let mut changed = 0;
        {
            let mut update = tx.prepare_cached(
                "UPDATE message SET archive_state = 'expired' WHERE archive_name = ?1 AND archive_state = 'stored'",
            )?;
            for name in names {
                changed += update.execute([name])?;
            }
        }
        tx.commit()?;
        Ok(changed)
    }

    /// Adds to the named counters.
    pub fn add_counters(&mut self, deltas: &[(&str, u64)]) -> Result<(), StoreError> {
        let tx = self.write_transaction()?;
        {
            let mut add = tx.prepare_cached(ADD_COUNTER)?;
            for (name, delta) in deltas {
                add.execute(params![name, *delta as i64])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn counters(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        Ok(self
            .conn
            .prepare("SELECT name, value FROM counter ORDER BY name")?
            .query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)))?
            .collect::<Result<_, _>>()?)
    }
}

/// Writes an envelope into a new row, or over `existing`, a row the log follower created (what
/// the log added is kept: it only fills columns the milter does not write). Returns the row id.
fn write_envelope(
    tx: &rusqlite::Transaction,
    existing: Option<i64>,
    e: &Envelope,
) -> Result<i64, StoreError> {
    // A NULL id makes SQLite pick a new one.
    tx.prepare_cached(
        "INSERT INTO message (id, queue_id, arrived_at, mta_host, client_name, client_addr, helo,
            sasl_user, mail_from, mail_args, recipients_dropped, size, message_id, subject,
            archive_name, archive_state, mode, receipts, is_notice, source)
         VALUES (?18, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
            ?19, 'milter')
         ON CONFLICT (id) DO UPDATE SET queue_id = excluded.queue_id, arrived_at = excluded.arrived_at,
            mta_host = excluded.mta_host, client_name = excluded.client_name,
            client_addr = excluded.client_addr, helo = excluded.helo, sasl_user = excluded.sasl_user,
            mail_from = excluded.mail_from, mail_args = excluded.mail_args,
            recipients_dropped = excluded.recipients_dropped, size = excluded.size,
            message_id = excluded.message_id, subject = excluded.subject,
            archive_name = excluded.archive_name, archive_state = excluded.archive_state,
            mode = excluded.mode, receipts = excluded.receipts, is_notice = excluded.is_notice,
            source = 'milter'",
    )?
    .execute(params![
        e.queue_id,
        e.arrived_at.unix_timestamp(),
        e.mta_host,
        e.client_name,
        e.client_addr,
        e.helo,
        e.sasl_user,
        e.mail_from,
        e.mail_args.join(" "),
        e.recipients_dropped,
        e.size as i64,
        e.message_id,
        e.subject,
        e.archive_name,
        e.archive_state.as_str(),
        e.mode,
        receipts_str(e.receipts),
        existing,
        e.is_notice,
    ])?;
    let id = existing.unwrap_or_else(|| tx.last_insert_rowid());
    for (position, r) in e.recipients.iter().enumerate() {
        let args = r.args.join(" ");
        // Delivery lines may have created the recipient already (under its original address too).
        let updated = match existing {
            Some(_) => tx
                .prepare_cached(
                    "UPDATE recipient SET position = ?3, args = ?4
                     WHERE message = ?1 AND (address = ?2 COLLATE NOCASE OR orig_to = ?2 COLLATE NOCASE)",
                )?
                .execute(params![id, r.address, position as i64, args])?,
            None => 0,
        };
        if updated == 0 {
            tx.prepare_cached(
                "INSERT INTO recipient (message, position, address, args) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![id, position as i64, r.address, args])?;
        }
    }
    Ok(id)
}

fn receipts_str(r: Receipts) -> &'static str {
    match r {
        Receipts::Off => "off",
        Receipts::On => "on",
        Receipts::Dsn => "dsn",
    }
}

fn parse_receipts(text: &str) -> Receipts {
    match text {
        "on" => Receipts::On,
        "dsn" => Receipts::Dsn,
        _ => Receipts::Off,
    }
}

/// Appends `AND` conditions on `message m` for the substrings an operator filters a list on:
/// sender, any recipient, subject (ASCII case-insensitive, wildcards taken literally).
fn text_filters(
    from: Option<&str>,
    to: Option<&str>,
    subject: Option<&str>,
    sql: &mut String,
    args: &mut Vec<rusqlite::types::Value>,
) {
    if let Some(from) = from {
        sql.push_str(" AND m.mail_from LIKE ? ESCAPE '\\'");
        args.push(like_pattern(from).into());
    }
    if let Some(to) = to {
        sql.push_str(
            " AND EXISTS (SELECT 1 FROM recipient r WHERE r.message = m.id AND r.address LIKE ? ESCAPE '\\')",
        );
        args.push(like_pattern(to).into());
    }
    if let Some(subject) = subject {
        sql.push_str(" AND m.subject LIKE ? ESCAPE '\\'");
        args.push(like_pattern(subject).into());
    }
}

/// `%text%` with LIKE's wildcards escaped, so user text matches literally.
fn like_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

#[cfg(test)]
mod tests;

#[cfg(test)]
impl Store {
    /// Direct access for tests that need to shape a row the normal paths would not.
    pub(crate) fn conn_for_tests(&self) -> &Connection {
        &self.conn
    }
}

const ADD_COUNTER: &str = "INSERT INTO counter (name, value) VALUES (?1, ?2)
    ON CONFLICT(name) DO UPDATE SET value = value + excluded.value";

/// Adds the non-zero `deltas` to the named counters inside a transaction of the caller's (the
/// milter's commits and the follower's batches: nothing to write for a zero).
pub(crate) fn add_counters(
    tx: &rusqlite::Transaction,
    deltas: &[(&str, u64)],
) -> Result<(), StoreError> {
    let mut add = tx.prepare_cached(ADD_COUNTER)?;
    for (name, delta) in deltas.iter().filter(|(_, d)| *d > 0) {
        add.execute(params![name, *delta as i64])?;
    }
    Ok(())
}
