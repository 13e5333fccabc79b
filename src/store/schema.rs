//! Schema migrations, applied in order and recorded in SQLite's `user_version`.

use super::StoreError;
use rusqlite::Connection;

/// Each entry brings the schema from version `index` to `index + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: envelopes recorded by the milter, and error counters.
    "CREATE TABLE message (
        id INTEGER PRIMARY KEY,
        queue_id TEXT,
        arrived_at INTEGER NOT NULL,
        mta_host TEXT,
        client_name TEXT,
        client_addr TEXT,
        helo TEXT,
        sasl_user TEXT,
        mail_from TEXT NOT NULL,
        mail_args TEXT NOT NULL DEFAULT '',
        recipients_dropped INTEGER NOT NULL DEFAULT 0,
        size INTEGER NOT NULL,
        message_id TEXT,
        subject TEXT,
        archive_name TEXT,
        archive_state TEXT NOT NULL,
        mode TEXT NOT NULL,
        receipts TEXT NOT NULL DEFAULT 'off'
    );
    CREATE INDEX message_queue_id ON message (queue_id, arrived_at);
    CREATE INDEX message_arrived_at ON message (arrived_at);
    CREATE INDEX message_archive_name ON message (archive_name) WHERE archive_name IS NOT NULL;
    CREATE TABLE recipient (
        id INTEGER PRIMARY KEY,
        message INTEGER NOT NULL REFERENCES message (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        address TEXT NOT NULL,
        args TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX recipient_message ON recipient (message);
    CREATE INDEX recipient_address ON recipient (address);
    CREATE TABLE counter (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );",
];

pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let supported = MIGRATIONS.len() as i64;
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version > supported {
        return Err(StoreError::TooNew {
            found: version,
            supported,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
