//! The SQLite store: schema, migrations and every SQL statement of mailtrail. One [`Store`]
//! type with typed rows in and out; each file holds the statements of one kind of record:
//! `messages`, `deliveries` (and the `log_batch` that writes them), `notices`, `summaries`,
//! `raw_lines`, `reports`, `rollups` (statistics), `counters`; `import` and `checkpoint` tune
//! connections, `schema` migrates.

mod checkpoint;
mod counters;
mod deliveries;
pub mod fleet;
mod import;
mod log_batch;
mod messages;
mod notices;
pub(crate) mod raw_lines;
pub(crate) mod reports;
pub(crate) mod rollups;
pub mod rows;
mod schema;
pub(crate) mod summaries;
pub mod suppression;

pub use checkpoint::BackgroundCheckpoint;
pub use deliveries::{Attempt, RecipientDelivery};
pub use import::ImportLock;
pub use log_batch::{
    AttemptRow, LogBatch, LogMessageFields, NewLogMessage, NewRecipient, RejectRow, RowWriter,
};
pub use messages::{MessageFilter, StoredMessage};
pub use notices::{DueNotice, MessageNotice, PolicyMessage, PolicyRecipient};
pub use raw_lines::{RawFilter, RawLine};
pub use reports::ReportRecord;
pub use summaries::{DomainScope, LiveCursor, MessageCount, MessageSummary, SummaryFilter, Totals};

use rusqlite::{Connection, Transaction, TransactionBehavior, config::DbConfig};
use std::{path::Path, time::Duration};
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
    #[error("no random bytes: {0}")]
    Random(String),
    /// A stored value that is none of its type's names (a status, a category).
    #[error("column {column}: {message}")]
    Value { column: usize, message: String },
    #[error("fleet database: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("fleet database: {0}")]
    Pool(String),
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
}

/// One connection to the store. Writers keep one each; SQLite's WAL lets readers run beside.
pub struct Store {
    conn: Connection,
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
}

/// A column holding one of a typed value's stored names (a status, a category, a notice kind);
/// any other text is a conversion error, never a default.
fn named<T>(row: &rusqlite::Row, column: usize) -> rusqlite::Result<T>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    parse_named(column, &row.get::<_, String>(column)?)
}

fn parse_named<T>(column: usize, text: &str) -> rusqlite::Result<T>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    text.parse().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// A stored unix time; the epoch for one out of range (never written by mailtrail).
fn timestamp(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
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
