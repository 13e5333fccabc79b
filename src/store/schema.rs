//! Schema migrations, applied in order and recorded in SQLite's `user_version`.

use super::StoreError;
use rusqlite::Connection;

/// Each entry brings the schema from version `index` to `index + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
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
    // 2: delivery tracking from the MTA log.
    "ALTER TABLE message ADD COLUMN source TEXT NOT NULL DEFAULT 'milter';
    ALTER TABLE message ADD COLUMN nrcpt INTEGER;
    ALTER TABLE message ADD COLUMN removed_at INTEGER;
    ALTER TABLE recipient ADD COLUMN orig_to TEXT;
    ALTER TABLE recipient ADD COLUMN status TEXT NOT NULL DEFAULT 'pending';
    ALTER TABLE recipient ADD COLUMN category TEXT;
    ALTER TABLE recipient ADD COLUMN dsn TEXT;
    ALTER TABLE recipient ADD COLUMN reply TEXT;
    ALTER TABLE recipient ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE recipient ADD COLUMN last_attempt_at INTEGER;
    ALTER TABLE recipient ADD COLUMN final_at INTEGER;
    CREATE INDEX recipient_message_address ON recipient (message, address);
    CREATE INDEX recipient_status ON recipient (status) WHERE status IN ('pending', 'deferred');
    CREATE TABLE attempt (
        id INTEGER PRIMARY KEY,
        recipient INTEGER NOT NULL REFERENCES recipient (id) ON DELETE CASCADE,
        at INTEGER NOT NULL,
        status TEXT NOT NULL,
        relay_host TEXT,
        relay_ip TEXT,
        relay_port INTEGER,
        dsn TEXT,
        smtp_code INTEGER,
        reply TEXT,
        stage TEXT,
        delay REAL,
        delays TEXT,
        category TEXT
    );
    CREATE INDEX attempt_recipient ON attempt (recipient);
    CREATE INDEX attempt_at ON attempt (at);
    CREATE TABLE reject (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        mta_host TEXT,
        source TEXT NOT NULL,
        code INTEGER,
        dsn TEXT,
        client_host TEXT,
        client_ip TEXT,
        sender TEXT,
        recipient TEXT,
        helo TEXT,
        stage TEXT,
        reason TEXT NOT NULL,
        category TEXT
    );
    CREATE INDEX reject_at ON reject (at);
    CREATE TABLE mta_notice (
        id INTEGER PRIMARY KEY,
        message INTEGER NOT NULL REFERENCES message (id) ON DELETE CASCADE,
        at INTEGER NOT NULL,
        kind TEXT NOT NULL,
        notice_queue_id TEXT
    );
    CREATE INDEX mta_notice_message ON mta_notice (message);
    CREATE TABLE raw_line (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        queue_id TEXT,
        line TEXT NOT NULL
    );
    CREATE INDEX raw_line_at ON raw_line (at);
    CREATE INDEX raw_line_queue_id ON raw_line (queue_id) WHERE queue_id IS NOT NULL;
    CREATE TABLE log_position (
        source TEXT PRIMARY KEY,
        position TEXT NOT NULL
    );",
    // 3: sender notices (recorded as due before sending, marked once sent), policy state, and
    // the milter's mark on mailtrail's own notices (X-Mailtrail-Notice).
    "ALTER TABLE message ADD COLUMN is_notice INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE message ADD COLUMN retry_requested_at INTEGER;
    CREATE TABLE notice (
        id INTEGER PRIMARY KEY,
        message INTEGER NOT NULL REFERENCES message (id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        recipients TEXT NOT NULL,
        due_at INTEGER NOT NULL,
        sent_at INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        notice_message_id TEXT,
        UNIQUE (message, kind)
    );
    CREATE INDEX notice_unsent ON notice (due_at) WHERE sent_at IS NULL;",
    // 4: statistics rollups (see store/stats.rs), per local day and sender domain; the domain
    // '@' (never a real one) holds the totals over all domains.
    "CREATE TABLE stats_hour (
        day INTEGER NOT NULL,
        hour INTEGER NOT NULL,
        sender_domain TEXT NOT NULL,
        messages INTEGER NOT NULL,
        recipients INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        sent INTEGER NOT NULL,
        deferred INTEGER NOT NULL,
        bounced INTEGER NOT NULL,
        expired INTEGER NOT NULL,
        rejected INTEGER NOT NULL,
        delay_hist BLOB NOT NULL,
        PRIMARY KEY (day, hour, sender_domain)
    ) WITHOUT ROWID;
    CREATE TABLE stats_key (
        dimension TEXT NOT NULL,
        day INTEGER NOT NULL,
        sender_domain TEXT NOT NULL,
        key TEXT NOT NULL,
        key2 TEXT NOT NULL,
        messages INTEGER NOT NULL,
        recipients INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        sent INTEGER NOT NULL,
        deferred INTEGER NOT NULL,
        bounced INTEGER NOT NULL,
        expired INTEGER NOT NULL,
        rejected INTEGER NOT NULL,
        PRIMARY KEY (dimension, sender_domain, day, key, key2)
    ) WITHOUT ROWID;
    -- The sums of stats_key per calendar month (year * 12 + month - 1): a month-aligned period
    -- reads a few thousand of these instead of every day's rows.
    CREATE TABLE stats_key_month (
        dimension TEXT NOT NULL,
        sender_domain TEXT NOT NULL,
        month INTEGER NOT NULL,
        key TEXT NOT NULL,
        key2 TEXT NOT NULL,
        messages INTEGER NOT NULL,
        recipients INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        sent INTEGER NOT NULL,
        deferred INTEGER NOT NULL,
        bounced INTEGER NOT NULL,
        expired INTEGER NOT NULL,
        rejected INTEGER NOT NULL,
        PRIMARY KEY (dimension, sender_domain, month, key, key2)
    ) WITHOUT ROWID;
    CREATE TABLE stats_state (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );",
    // 5: reports mailtrail sends on a schedule: recorded when due, marked once sent, so a
    // restart neither skips nor repeats one.
    "CREATE TABLE report (
        kind TEXT NOT NULL,
        due_at INTEGER NOT NULL,
        recorded_at INTEGER NOT NULL,
        sent_at INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        PRIMARY KEY (kind, due_at)
    );",
    // 6: import speed. recipient_message is covered by recipient_message_address (its first
    // column). deferred_index holds the indexes an import into an empty store dropped, to be
    // built once at its end, or at the next open should the import not end.
    "DROP INDEX recipient_message;
    CREATE TABLE deferred_index (
        name TEXT PRIMARY KEY,
        sql TEXT NOT NULL
    );",
    // 7: the status filter of the message lists starts from the few recipients in a failed or
    // waiting state (written as ORs: SQLite proves a literal `status = 'bounced'` implies them).
    "CREATE INDEX recipient_failed_message ON recipient (status, message)
        WHERE status = 'bounced' OR status = 'expired' OR status = 'deferred';",
    // 8: a message handed over to this host's MTA under another queue id (sendmail's
    // submission program, a content filter re-injecting): the next hop's row is the message.
    "ALTER TABLE message ADD COLUMN handed_to TEXT;",
    // A next hop's page finds the hop that handed the message over (its copy and envelope).
    "CREATE INDEX message_handed_to ON message (handed_to) WHERE handed_to IS NOT NULL;",
    // 10: the fleet (see store/fleet): changes not yet in the fleet database, written by
    // triggers that exist only while [fleet] is configured, and this store's identity there.
    // AUTOINCREMENT: positions never go back, even when the outbox empties, so the fleet
    // database's record of the last one it took tells a new batch from one sent before.
    "CREATE TABLE fleet_outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        kind INTEGER NOT NULL,
        row INTEGER NOT NULL,
        at INTEGER NOT NULL
    );
    CREATE TABLE fleet_state (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );",
    // 11: statistics periods (days, months) the refresh rewrote since the fleet database last
    // took them; `changes` tells a period rewritten again meanwhile.
    "CREATE TABLE fleet_stats_dirty (
        monthly INTEGER NOT NULL,
        period INTEGER NOT NULL,
        changes INTEGER NOT NULL,
        PRIMARY KEY (monthly, period)
    ) WITHOUT ROWID;",
    // 12: the suppression list (see store/suppression). `changed` numbers each change from
    // one counter (a removal keeps the row a day as a tombstone), so an index in memory
    // applies every writer's changes past the last number it saw; the learner's position in
    // the attempts is kept beside.
    "CREATE TABLE suppression (
        id INTEGER PRIMARY KEY,
        sender_domain TEXT NOT NULL,
        target TEXT NOT NULL,
        source TEXT NOT NULL,
        category TEXT,
        dsn TEXT,
        reply TEXT,
        queue_id TEXT,
        reason TEXT,
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        removed_at INTEGER,
        changed INTEGER NOT NULL,
        UNIQUE (sender_domain, target)
    );
    CREATE INDEX suppression_changed ON suppression (changed);
    CREATE TABLE suppression_strike (
        sender_domain TEXT NOT NULL,
        target TEXT NOT NULL,
        failures INTEGER NOT NULL,
        last_at INTEGER NOT NULL,
        PRIMARY KEY (sender_domain, target)
    ) WITHOUT ROWID;
    CREATE TABLE suppression_state (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    INSERT INTO suppression_state VALUES ('changes', 0), ('learned_attempt', 0);",
    // 13: the suppression list shared through the fleet database: `origin` is the host a
    // change came from (NULL: this one, to be sent); the positions of what was sent and taken.
    "ALTER TABLE suppression ADD COLUMN origin TEXT;
    CREATE INDEX suppression_unsent ON suppression (changed) WHERE origin IS NULL;
    INSERT INTO suppression_state VALUES ('fleet_sent', 0), ('fleet_taken', 0);",
];

/// Secondary indexes that no statement of an import into an empty store reads and that rows
/// reach in random order (queue ids, addresses), so that keeping them up to date row by row
/// costs a page write here and there for each: such an import builds them once, after loading.
/// (Indexes rows reach in order — by message, recipient or time — cost little more than an
/// append each, on the writing thread while it waits for parsed lines, and stay.) The import's
/// tracker holds every queued message in memory; should it hand them to the store part-way (too
/// many queued at once), the indexes are built then, as it finds messages through
/// message_queue_id from there on.
pub(super) const IMPORT_DEFERRED_INDEXES: &[&str] =
    &["message_queue_id", "recipient_address", "raw_line_queue_id"];

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
