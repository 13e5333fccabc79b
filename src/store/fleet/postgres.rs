//! The fleet database (PostgreSQL): its schema, versioned like the SQLite store's, and every
//! statement shipping writes. Rows carry their host's name and local id, which together are
//! their key: a batch shipped twice is stored once.

use super::{
    outbox::{ColumnValues, OutboxBatch, RollupBatch, TableRows},
    tables::ShippedTable,
};
use std::collections::BTreeSet;
use tokio_postgres::{
    Client, GenericClient,
    binary_copy::BinaryCopyInWriter,
    error::SqlState,
    types::{ToSql, Type},
};

#[derive(Debug, thiserror::Error)]
pub enum FleetDbError {
    #[error("fleet database: {0}")]
    Sql(#[from] tokio_postgres::Error),
    #[error("fleet database schema version {found} is newer than this mailtrail ({supported})")]
    TooNew { found: i32, supported: i32 },
    #[error("fleet database TLS: {0}")]
    Tls(String),
    /// This host's own store, while exchanging with the fleet database.
    #[error("local store: {0}")]
    Local(#[source] crate::store::StoreError),
    #[error(
        "the fleet database took changes of `{host}` up to {shipped_seq}, but this store has written only up to {high_water}: it was restored from a backup or copied, and shipping it would overwrite or skip records; give it a [fleet] host of its own"
    )]
    StoreBehind {
        host: String,
        shipped_seq: i64,
        high_water: i64,
    },
    #[error(
        "this store shipped to the fleet as `{shipped_as}`, and [fleet] host is now `{host}`: one store's records go under one name (set host back to `{shipped_as}`)"
    )]
    Renamed { shipped_as: String, host: String },
    #[error(
        "fleet host name `{host}` is claimed by another mailtrail (a different store); records are not merged: give this host a [fleet] host of its own"
    )]
    HostClaimed { host: String },
}

/// Each entry brings the schema from version `index` to `index + 1`. The shipped tables'
/// columns match `tables::SHIPPED` (a test compares them).
pub const MIGRATIONS: &[&str] = &[
    // 1: the hosts, and every shipped table keyed by (host, id). Raw lines, the largest table
    // and the only one that expires, are partitioned by UTC day: retention drops a day whole.
    "CREATE TABLE fleet_host (
        name text PRIMARY KEY,
        instance text NOT NULL,
        url text NOT NULL,
        first_seen timestamptz NOT NULL DEFAULT now(),
        last_seen timestamptz NOT NULL DEFAULT now(),
        -- The last outbox position committed here: a batch past it holds only new rows.
        shipped_seq bigint NOT NULL DEFAULT 0
    );
    CREATE TABLE fleet_conflict (
        name text NOT NULL,
        instance text NOT NULL,
        last_seen timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (name, instance)
    );
    CREATE TABLE message (
        host text NOT NULL,
        id bigint NOT NULL,
        queue_id text,
        arrived_at bigint NOT NULL,
        mta_host text,
        client_name text,
        client_addr text,
        helo text,
        sasl_user text,
        mail_from text NOT NULL,
        mail_args text NOT NULL,
        recipients_dropped bigint NOT NULL,
        size bigint NOT NULL,
        message_id text,
        subject text,
        archive_name text,
        archive_state text NOT NULL,
        mode text NOT NULL,
        receipts text NOT NULL,
        source text NOT NULL,
        nrcpt bigint,
        removed_at bigint,
        is_notice bigint NOT NULL,
        retry_requested_at bigint,
        handed_to text,
        PRIMARY KEY (host, id)
    );
    CREATE INDEX message_arrived_at ON message (arrived_at);
    CREATE INDEX message_queue_id ON message (queue_id);
    CREATE TABLE recipient (
        host text NOT NULL,
        id bigint NOT NULL,
        message bigint NOT NULL,
        position bigint NOT NULL,
        address text NOT NULL,
        args text NOT NULL,
        orig_to text,
        status text NOT NULL,
        category text,
        dsn text,
        reply text,
        attempts bigint NOT NULL,
        last_attempt_at bigint,
        final_at bigint,
        PRIMARY KEY (host, id)
    );
    CREATE INDEX recipient_message ON recipient (host, message);
    CREATE INDEX recipient_address ON recipient (address);
    CREATE TABLE attempt (
        host text NOT NULL,
        id bigint NOT NULL,
        recipient bigint NOT NULL,
        at bigint NOT NULL,
        status text NOT NULL,
        relay_host text,
        relay_ip text,
        relay_port bigint,
        dsn text,
        smtp_code bigint,
        reply text,
        stage text,
        delay double precision,
        delays text,
        category text,
        PRIMARY KEY (host, id)
    );
    CREATE INDEX attempt_recipient ON attempt (host, recipient);
    CREATE INDEX attempt_at ON attempt (at);
    CREATE TABLE reject (
        host text NOT NULL,
        id bigint NOT NULL,
        at bigint NOT NULL,
        mta_host text,
        source text NOT NULL,
        code bigint,
        dsn text,
        client_host text,
        client_ip text,
        sender text,
        recipient text,
        helo text,
        stage text,
        reason text NOT NULL,
        category text,
        PRIMARY KEY (host, id)
    );
    CREATE INDEX reject_at ON reject (at);
    CREATE TABLE mta_notice (
        host text NOT NULL,
        id bigint NOT NULL,
        message bigint NOT NULL,
        at bigint NOT NULL,
        kind text NOT NULL,
        notice_queue_id text,
        PRIMARY KEY (host, id)
    );
    CREATE INDEX mta_notice_message ON mta_notice (host, message);
    CREATE TABLE notice (
        host text NOT NULL,
        id bigint NOT NULL,
        message bigint NOT NULL,
        kind text NOT NULL,
        recipients text NOT NULL,
        due_at bigint NOT NULL,
        sent_at bigint,
        attempts bigint NOT NULL,
        last_error text,
        notice_message_id text,
        PRIMARY KEY (host, id)
    );
    CREATE INDEX notice_message ON notice (host, message);
    CREATE TABLE raw_line (
        host text NOT NULL,
        id bigint NOT NULL,
        at bigint NOT NULL,
        queue_id text,
        line text NOT NULL,
        PRIMARY KEY (host, id, at)
    ) PARTITION BY RANGE (at);
    CREATE INDEX raw_line_at ON raw_line (at);
    CREATE INDEX raw_line_queue_id ON raw_line (queue_id);",
    // 2: each host's statistics rollups (its local days and months), replaced a period at a
    // time as its refresh rewrites them; the dashboard sums them over hosts.
    "CREATE TABLE stats_hour (
        host text NOT NULL,
        day bigint NOT NULL,
        hour bigint NOT NULL,
        sender_domain text NOT NULL,
        messages bigint NOT NULL,
        recipients bigint NOT NULL,
        bytes bigint NOT NULL,
        sent bigint NOT NULL,
        deferred bigint NOT NULL,
        bounced bigint NOT NULL,
        expired bigint NOT NULL,
        rejected bigint NOT NULL,
        delay_hist bytea NOT NULL,
        PRIMARY KEY (host, day, hour, sender_domain)
    );
    CREATE INDEX stats_hour_day ON stats_hour (day, sender_domain);
    CREATE TABLE stats_key (
        host text NOT NULL,
        day bigint NOT NULL,
        dimension text NOT NULL,
        sender_domain text NOT NULL,
        key text NOT NULL,
        key2 text NOT NULL,
        messages bigint NOT NULL,
        recipients bigint NOT NULL,
        bytes bigint NOT NULL,
        sent bigint NOT NULL,
        deferred bigint NOT NULL,
        bounced bigint NOT NULL,
        expired bigint NOT NULL,
        rejected bigint NOT NULL,
        PRIMARY KEY (host, dimension, sender_domain, day, key, key2)
    );
    CREATE INDEX stats_key_day ON stats_key (dimension, sender_domain, day);
    CREATE TABLE stats_key_month (
        host text NOT NULL,
        month bigint NOT NULL,
        dimension text NOT NULL,
        sender_domain text NOT NULL,
        key text NOT NULL,
        key2 text NOT NULL,
        messages bigint NOT NULL,
        recipients bigint NOT NULL,
        bytes bigint NOT NULL,
        sent bigint NOT NULL,
        deferred bigint NOT NULL,
        bounced bigint NOT NULL,
        expired bigint NOT NULL,
        rejected bigint NOT NULL,
        PRIMARY KEY (host, dimension, sender_domain, month, key, key2)
    );
    CREATE INDEX stats_key_month_month ON stats_key_month (dimension, sender_domain, month);",
    // 3: the list filters on a state or a category start from the few recipients in it (as
    // the SQLite store's recipient_failed_message), not from every message of the period.
    "CREATE INDEX recipient_failed ON recipient (status, host, message)
        WHERE status IN ('bounced', 'expired', 'deferred');
    CREATE INDEX recipient_category ON recipient (category, host, message)
        WHERE category IS NOT NULL;
    -- What those filters join the recipients to, read from the index alone: the listed
    -- messages by key, with their time.
    CREATE INDEX message_listed ON message (host, id, arrived_at) WHERE handed_to IS NULL;",
    // 4: the dashboard's weekly summary of the fleet: recorded when due, marked once sent (as a
    // host's, in its store), so a restart neither skips nor repeats one.
    "CREATE TABLE report (
        kind text NOT NULL,
        due_at bigint NOT NULL,
        recorded_at bigint NOT NULL,
        sent_at bigint,
        attempts bigint NOT NULL DEFAULT 0,
        last_error text,
        PRIMARY KEY (kind, due_at)
    );",
    // 5: a report is claimed by the dashboard that sends it (until this time, unix seconds), so
    // two dashboards on one database send it once.
    "ALTER TABLE report ADD COLUMN claimed_until bigint;",
    // 6: raw lines are partitioned by host, then by UTC day, so each host's days are dropped at
    // its own `maillog.raw_retention` (one host's shorter setting no longer cuts another's
    // lines). Hosts get a number that names their partitions; the lines move over.
    "ALTER TABLE fleet_host ADD COLUMN number serial UNIQUE;
    ALTER TABLE raw_line RENAME TO raw_line_by_day;
    ALTER INDEX raw_line_at RENAME TO raw_line_by_day_at;
    ALTER INDEX raw_line_queue_id RENAME TO raw_line_by_day_queue_id;
    CREATE TABLE raw_line (
        host text NOT NULL,
        id bigint NOT NULL,
        at bigint NOT NULL,
        queue_id text,
        line text NOT NULL,
        PRIMARY KEY (host, id, at)
    ) PARTITION BY LIST (host);
    CREATE INDEX raw_line_at ON raw_line (at);
    CREATE INDEX raw_line_queue_id ON raw_line (queue_id);
    DO $$
    DECLARE
        h record;
        d bigint;
    BEGIN
        FOR h IN SELECT name, number FROM fleet_host LOOP
            EXECUTE format('CREATE TABLE raw_line_h%s PARTITION OF raw_line
                FOR VALUES IN (%L) PARTITION BY RANGE (at)', h.number, h.name);
            FOR d IN SELECT DISTINCT div(at, 86400) FROM raw_line_by_day WHERE host = h.name
            LOOP
                EXECUTE format('CREATE TABLE raw_line_h%s_d%s PARTITION OF raw_line_h%s
                    FOR VALUES FROM (%s) TO (%s)', h.number,
                    to_char(to_timestamp(d * 86400) AT TIME ZONE 'UTC', 'YYYYMMDD'),
                    h.number, d * 86400, (d + 1) * 86400);
            END LOOP;
        END LOOP;
    END $$;
    INSERT INTO raw_line SELECT host, id, at, queue_id, line FROM raw_line_by_day;
    DROP TABLE raw_line_by_day;",
    // 7: the lists' substring searches of senders and subjects (`ILIKE '%…%'`) read trigram
    // indexes rather than every message of the week, where the server has pg_trgm (Debian's
    // postgresql does; a trusted extension since PostgreSQL 13, which a database owner may
    // create). Without it the searches scan, as before: the migration never fails for it.
    "DO $$
    BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'pg_trgm is not available (%): list searches will scan', SQLERRM;
    END $$;
    DO $$
    BEGIN
        IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
            CREATE INDEX message_subject_trgm ON message USING gin (subject gin_trgm_ops);
            CREATE INDEX message_mail_from_trgm ON message USING gin (mail_from gin_trgm_ops);
        END IF;
    END $$;",
    // 8: a message's worst recipient (its list status and category) read from an index, first
    // entry, rather than sorting its recipients (the expression is `severity_order`'s, a test
    // checks); it serves lookups by (host, message) too, which had an index of their own. The
    // category filter's candidates are read with their last attempt, to skip old ones.
    "CREATE INDEX recipient_rank ON recipient (host, message,
        (CASE status WHEN 'bounced' THEN 0 WHEN 'expired' THEN 1 WHEN 'deferred' THEN 2 WHEN 'pending' THEN 3 WHEN 'sent' THEN 4 ELSE 5 END),
        last_attempt_at DESC) INCLUDE (status, category);
    DROP INDEX recipient_message;
    CREATE INDEX recipient_category_at ON recipient (category, last_attempt_at)
        INCLUDE (host, message) WHERE category IS NOT NULL;
    DROP INDEX recipient_category;",
    // 9: the suppression list every host shares: one row per (sender domain, address), in the
    // state of its newest change, with the host that made it and the transaction that wrote
    // it (a host takes the changes of transactions older than any still running: none is
    // skipped by a commit that lands late). See store/fleet/suppression.rs.
    "CREATE TABLE suppression (
        sender_domain text NOT NULL,
        target text NOT NULL,
        source text NOT NULL,
        category text,
        dsn text,
        reply text,
        queue_id text,
        reason text,
        created_at bigint NOT NULL,
        expires_at bigint,
        removed_at bigint,
        host text NOT NULL,
        xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
        PRIMARY KEY (sender_domain, target)
    );
    CREATE INDEX suppression_xid ON suppression (xid);",
];

/// Serialises migrations and partition changes between hosts starting side by side.
const SCHEMA_LOCK: i64 = 0x6d61_696c_7472_6c31; // "mailtrl1"

const SECONDS_PER_DAY: i64 = 86_400;

/// Brings the fleet database's schema up to date (under a lock: every host does this when it
/// connects). A schema newer than this mailtrail is an error: nothing is written to it.
pub async fn migrate(client: &mut Client) -> Result<(), FleetDbError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS mailtrail_schema (version integer NOT NULL)")
        .await?;
    let version: i32 = match tx
        .query_opt("SELECT version FROM mailtrail_schema", &[])
        .await?
    {
        Some(row) => row.get(0),
        None => {
            tx.execute("INSERT INTO mailtrail_schema (version) VALUES (0)", &[])
                .await?;
            0
        }
    };
    let supported = MIGRATIONS.len() as i32;
    if version > supported {
        return Err(FleetDbError::TooNew {
            found: version,
            supported,
        });
    }
    for sql in &MIGRATIONS[version as usize..] {
        tx.batch_execute(sql).await?;
    }
    tx.execute("UPDATE mailtrail_schema SET version = $1", &[&supported])
        .await?;
    tx.commit().await?;
    Ok(())
}

/// This host as the fleet knows it.
pub struct HostClaim<'a> {
    pub host: &'a str,
    pub instance: &'a str,
    pub url: &'a str,
}

/// What one connection remembers between batches.
#[derive(Default)]
pub struct Shipper {
    /// Partitions known to exist: (table, host number, `None` for the host's partition of the
    /// table or the day of one of its days).
    partitions: BTreeSet<(&'static str, i32, Option<i64>)>,
}

impl Shipper {
    /// Writes `batch` in one transaction, after checking that the host name is this store's.
    ///
    /// A batch wholly past the position the fleet database last confirmed for this host holds
    /// only rows it has never seen, except for rows updated since: rows that are never updated
    /// then go by `COPY`, the fastest way in; the rest, and every row of a batch that may have
    /// been sent before (a crash between the commit here and the outbox's mark, a backfill),
    /// by upsert. A batch the database already took is only confirmed.
    pub async fn ship(
        &mut self,
        client: &mut Client,
        claim: &HostClaim<'_>,
        batch: &OutboxBatch,
    ) -> Result<(), FleetDbError> {
        let result = match self.ship_once(client, claim, batch, true).await {
            // A key already there (a local id used again): the upserts store it once.
            Err(FleetDbError::Sql(e)) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                self.partitions.clear();
                self.ship_once(client, claim, batch, false).await
            }
            other => other,
        };
        if result.is_err() {
            // Partitions created by a transaction that did not commit do not exist.
            self.partitions.clear();
        }
        result
    }

    /// Forgets the partitions it knows (after days were dropped).
    pub fn forget_partitions(&mut self) {
        self.partitions.clear();
    }

    async fn ship_once(
        &mut self,
        client: &mut Client,
        claim: &HostClaim<'_>,
        batch: &OutboxBatch,
        copy_allowed: bool,
    ) -> Result<(), FleetDbError> {
        let (Some(first_seq), Some(last_seq)) = (batch.first_seq, batch.last_seq) else {
            return Ok(());
        };
        let tx = client.transaction().await?;
        let Some(ClaimedHost {
            shipped_seq,
            number,
        }) = claim_host(&tx, claim).await?
        else {
            drop(tx);
            return Err(refused(client, claim).await);
        };
        if shipped_seq > batch.high_water {
            return Err(FleetDbError::StoreBehind {
                host: claim.host.to_string(),
                shipped_seq,
                high_water: batch.high_water,
            });
        }
        if last_seq <= shipped_seq {
            return Ok(());
        }
        let all_new = copy_allowed && !batch.from_backfill && first_seq > shipped_seq;
        for rows in &batch.tables {
            if let Some(column) = rows.table.partitioned_by {
                self.ensure_partitions(&tx, claim.host, number, rows, column)
                    .await?;
            }
            match all_new && !rows.table.updated {
                true => copy_in(&tx, claim.host, rows).await?,
                false => upsert(&tx, claim.host, rows).await?,
            }
        }
        tx.execute(
            "UPDATE fleet_host SET shipped_seq = $2 WHERE name = $1",
            &[&claim.host, &last_seq],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces the host's rows of the statistics periods in `batch` with the batch's.
    pub async fn ship_rollups(
        &mut self,
        client: &mut Client,
        claim: &HostClaim<'_>,
        batch: &RollupBatch,
    ) -> Result<(), FleetDbError> {
        let tx = client.transaction().await?;
        if claim_host(&tx, claim).await?.is_none() {
            drop(tx);
            return Err(refused(client, claim).await);
        }
        for rows in &batch.tables {
            let table = rows.table;
            tx.execute(
                &format!(
                    "DELETE FROM {} WHERE host = $1 AND {} = ANY($2)",
                    table.name, table.period
                ),
                &[&claim.host, &rows.periods],
            )
            .await?;
            let names: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
            let columns: Vec<&ColumnValues> = rows.columns.iter().collect();
            copy_columns(&tx, table.name, claim.host, &names, &columns, rows.rows).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Creates the partitions the rows of `rows` go to: the host's own partition of the
    /// table, then one per UTC day of `column`.
    async fn ensure_partitions(
        &mut self,
        tx: &impl GenericClient,
        host: &str,
        number: i32,
        rows: &TableRows,
        column: &str,
    ) -> Result<(), FleetDbError> {
        let table = rows.table;
        let index = table
            .columns
            .iter()
            .position(|(name, _)| *name == column)
            .expect("the partition column is one of the table's");
        let ColumnValues::Int(times) = &rows.columns[index] else {
            unreachable!("partitions are by a time in seconds");
        };
        let days: BTreeSet<i64> = times
            .iter()
            .flatten()
            .map(|at| at.div_euclid(SECONDS_PER_DAY))
            .filter(|day| !self.partitions.contains(&(table.name, number, Some(*day))))
            .collect();
        let host_known = self.partitions.contains(&(table.name, number, None));
        if days.is_empty() && host_known {
            return Ok(());
        }
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .await?;
        let parent = host_partition_name(table, number);
        if !host_known {
            // The name is a DNS label (checked in the config), quoted as a literal all the same.
            tx.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {parent} PARTITION OF {table}
                    FOR VALUES IN ('{host}') PARTITION BY RANGE ({column})",
                table = table.name,
                host = host.replace('\'', "''"),
            ))
            .await?;
            self.partitions.insert((table.name, number, None));
        }
        for day in days {
            tx.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {name} PARTITION OF {parent}
                    FOR VALUES FROM ({from}) TO ({to})",
                name = day_partition_name(table, number, day),
                from = day * SECONDS_PER_DAY,
                to = (day + 1) * SECONDS_PER_DAY,
            ))
            .await?;
            self.partitions.insert((table.name, number, Some(day)));
        }
        Ok(())
    }
}

/// What the fleet database holds of a host whose claim it accepted.
struct ClaimedHost {
    /// The position of the last batch the database took.
    shipped_seq: i64,
    /// The number that names the host's partitions.
    number: i32,
}

/// Claims the host name for this store (or finds it already this store's), in `tx`; `None`
/// when another store holds the name.
async fn claim_host(
    tx: &tokio_postgres::Transaction<'_>,
    claim: &HostClaim<'_>,
) -> Result<Option<ClaimedHost>, FleetDbError> {
    let claimed = tx
        .query_opt(
            "INSERT INTO fleet_host (name, instance, url) VALUES ($1, $2, $3)
            ON CONFLICT (name) DO UPDATE SET last_seen = now(), url = EXCLUDED.url
                WHERE fleet_host.instance = EXCLUDED.instance
            RETURNING shipped_seq, number",
            &[&claim.host, &claim.instance, &claim.url],
        )
        .await?;
    Ok(claimed.map(|row| ClaimedHost {
        shipped_seq: row.get(0),
        number: row.get(1),
    }))
}

/// Records a refused claim (for the dashboard) and returns the error to report.
async fn refused(client: &mut Client, claim: &HostClaim<'_>) -> FleetDbError {
    let recorded = client
        .execute(
            "INSERT INTO fleet_conflict (name, instance) VALUES ($1, $2)
            ON CONFLICT (name, instance) DO UPDATE SET last_seen = now()",
            &[&claim.host, &claim.instance],
        )
        .await;
    match recorded {
        Ok(_) => FleetDbError::HostClaimed {
            host: claim.host.to_string(),
        },
        Err(e) => FleetDbError::Sql(e),
    }
}

/// `raw_line_h3`: host number 3's partition of the table.
fn host_partition_name(table: &ShippedTable, number: i32) -> String {
    format!("{}_h{number}", table.name)
}

/// `raw_line_h3_d20261206`: host number 3's partition of the table for one UTC day.
fn day_partition_name(table: &ShippedTable, number: i32, day: i64) -> String {
    let date = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(day);
    format!(
        "{}_d{:04}{:02}{:02}",
        host_partition_name(table, number),
        date.year(),
        date.month() as u8,
        date.day()
    )
}

/// The UTC day of one of host number `number`'s day partitions of `table`, from its name.
fn partition_day(table: &ShippedTable, number: i32, name: &str) -> Option<i64> {
    let digits = name
        .strip_prefix(&host_partition_name(table, number))?
        .strip_prefix("_d")?;
    let format = time::macros::format_description!("[year][month][day]");
    let date = time::Date::parse(digits, &format).ok()?;
    Some((date - time::Date::from_calendar_date(1970, time::Month::January, 1).ok()?).whole_days())
}

/// Drops `host`'s partitions of `table` whose whole day lies before `before` (unix time);
/// returns how many. Other hosts' days are theirs to drop, at their own retention.
pub async fn drop_partitions_before(
    client: &mut Client,
    table: &ShippedTable,
    host: &str,
    before: i64,
) -> Result<usize, FleetDbError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await?;
    let Some(number) = tx
        .query_opt("SELECT number FROM fleet_host WHERE name = $1", &[&host])
        .await?
        .map(|row| row.get::<_, i32>(0))
    else {
        return Ok(0);
    };
    let rows = tx
        .query(
            "SELECT c.relname FROM pg_inherits i
                JOIN pg_class c ON c.oid = i.inhrelid
                JOIN pg_class p ON p.oid = i.inhparent
            WHERE p.relname = $1",
            &[&host_partition_name(table, number)],
        )
        .await?;
    let mut dropped = 0;
    for row in rows {
        let name: String = row.get(0);
        match partition_day(table, number, &name) {
            Some(day) if (day + 1) * SECONDS_PER_DAY <= before => {
                tx.batch_execute(&format!("DROP TABLE {name}")).await?;
                dropped += 1;
            }
            _ => {}
        }
    }
    tx.commit().await?;
    Ok(dropped)
}

/// `INSERT ... SELECT FROM unnest(...)`: one statement per table per batch, each column sent
/// as one array. Rows updated locally replace their earlier state; others are written once.
fn upsert_sql(table: &ShippedTable) -> String {
    let names: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
    let arrays: Vec<String> = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, (_, ty))| format!("${}::{}[]", i + 3, ty.postgres()))
        .collect();
    let key = match table.partitioned_by {
        Some(column) => format!("host, id, {column}"),
        None => "host, id".into(),
    };
    let on_conflict = match table.updated {
        true => format!(
            "DO UPDATE SET {}",
            names
                .iter()
                .map(|name| format!("{name} = EXCLUDED.{name}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        false => "DO NOTHING".into(),
    };
    format!(
        "INSERT INTO {table} (host, id, {names}) SELECT $1, * FROM unnest($2::bigint[], {arrays})
        ON CONFLICT ({key}) {on_conflict}",
        table = table.name,
        names = names.join(", "),
        arrays = arrays.join(", "),
    )
}

impl ColumnValues {
    fn postgres_type(&self) -> Type {
        match self {
            ColumnValues::Int(_) => Type::INT8,
            ColumnValues::Real(_) => Type::FLOAT8,
            ColumnValues::Text(_) => Type::TEXT,
            ColumnValues::Blob(_) => Type::BYTEA,
        }
    }

    /// The whole column, as one array parameter.
    fn array(&self) -> &(dyn ToSql + Sync) {
        match self {
            ColumnValues::Int(v) => v,
            ColumnValues::Real(v) => v,
            ColumnValues::Text(v) => v,
            ColumnValues::Blob(v) => v,
        }
    }

    /// Row `index`'s value.
    fn value(&self, index: usize) -> &(dyn ToSql + Sync) {
        match self {
            ColumnValues::Int(v) => &v[index],
            ColumnValues::Real(v) => &v[index],
            ColumnValues::Text(v) => &v[index],
            ColumnValues::Blob(v) => &v[index],
        }
    }
}

/// `rows` rows of `columns` (named `names`), each after the host, with
/// `COPY ... FROM STDIN (FORMAT binary)`.
async fn copy_columns(
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
    host: &str,
    names: &[&str],
    columns: &[&ColumnValues],
    rows: usize,
) -> Result<(), FleetDbError> {
    let sink = tx
        .copy_in(&format!(
            "COPY {table} (host, {}) FROM STDIN (FORMAT binary)",
            names.join(", ")
        ))
        .await?;
    let types: Vec<Type> = std::iter::once(Type::TEXT)
        .chain(columns.iter().map(|c| c.postgres_type()))
        .collect();
    let writer = BinaryCopyInWriter::new(sink, &types);
    let mut writer = std::pin::pin!(writer);
    let mut row: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(types.len());
    for index in 0..rows {
        row.clear();
        row.push(&host);
        row.extend(columns.iter().map(|c| c.value(index)));
        writer.as_mut().write(&row).await?;
    }
    writer.finish().await?;
    Ok(())
}

/// Rows known to be new, with `COPY`.
pub async fn copy_in(
    tx: &tokio_postgres::Transaction<'_>,
    host: &str,
    rows: &TableRows,
) -> Result<(), FleetDbError> {
    let ids = ColumnValues::Int(rows.ids.iter().copied().map(Some).collect());
    let names: Vec<&str> = std::iter::once("id")
        .chain(rows.table.columns.iter().map(|(name, _)| *name))
        .collect();
    let columns: Vec<&ColumnValues> = std::iter::once(&ids).chain(&rows.columns).collect();
    copy_columns(tx, rows.table.name, host, &names, &columns, rows.ids.len()).await
}

async fn upsert(tx: &impl GenericClient, host: &str, rows: &TableRows) -> Result<(), FleetDbError> {
    let sql = upsert_sql(rows.table);
    let statement = tx.prepare(&sql).await?;
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&host, &rows.ids];
    params.extend(rows.columns.iter().map(ColumnValues::array));
    tx.execute(&statement, &params).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fleet::tables::{SHIPPED, by_kind};

    #[test]
    fn a_partition_name_reads_back_as_its_day() {
        let raw = by_kind(7).unwrap();
        let day = 1_796_515_200 / SECONDS_PER_DAY; // 2026-12-06
        assert_eq!(day_partition_name(raw, 3, day), "raw_line_h3_d20261206");
        assert_eq!(partition_day(raw, 3, "raw_line_h3_d20261206"), Some(day));
        assert_eq!(partition_day(raw, 3, "raw_line_h3_default"), None);
        assert_eq!(partition_day(raw, 31, "raw_line_h3_d20261206"), None);
        assert_eq!(
            partition_day(by_kind(1).unwrap(), 3, "raw_line_h3_d20261206"),
            None
        );
    }

    #[test]
    fn upserts_update_what_changes_and_write_the_rest_once() {
        let message = upsert_sql(&SHIPPED[0]);
        assert!(
            message.contains("ON CONFLICT (host, id) DO UPDATE SET queue_id = EXCLUDED.queue_id")
        );
        assert!(message.contains("unnest($2::bigint[], $3::text[], $4::bigint[]"));
        let raw = upsert_sql(by_kind(7).unwrap());
        assert!(
            raw.ends_with("ON CONFLICT (host, id, at) DO NOTHING"),
            "{raw}"
        );
    }
}
