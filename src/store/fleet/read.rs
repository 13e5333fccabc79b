//! The fleet database read for the dashboard: the same statements and row mappings as this
//! host's store ([`crate::store::rows`], [`crate::store::summaries`]), in PostgreSQL's dialect,
//! each row keyed by host and id.

use super::{error_chain as chain, postgres};
use crate::{
    config::FleetConfig,
    store::{
        MessageCount, MessageNotice, MessageSummary, RecipientDelivery, StoreError, StoredMessage,
        SummaryFilter,
        rows::{
            self, ATTEMPT_COLUMNS, Arg, DELIVERY_COLUMNS, Dialect, ENVELOPE_RECIPIENT_COLUMNS,
            MESSAGE_COLUMNS, NOTICE_COLUMNS,
        },
        summaries::{count_upto_statement, summaries_statement},
    },
};
use crate::{
    stats::{Dimension, Stats, StatsAssembler, StatsPeriod, StatsRow},
    store::{
        DomainScope, RawFilter, RawLine,
        raw_lines::{raw_line, raw_lines_statement},
        reports::{
            FAILED_SQL, NOTICES_SENT_SQL, RECORD_DUE_SQL, RECORD_SQL, ReportRecord, SENT_SQL,
            record_of,
        },
        rollups::{
            add_hour_row, by_host_statement, counts_from_row, hour_rows_statement, keyed_row,
            keyed_rows_statement, scope_domains,
        },
        rows::Columns,
    },
};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use serde::Serialize;
use std::{collections::BTreeMap, time::Duration};
use tokio_postgres::types::ToSql;

const PG: Dialect = Dialect::Postgres;
/// How long a dashboard holds the claim on a report it sends (building and submitting it take
/// seconds; a holder that died lets the next one send after this).
const REPORT_CLAIM_SECS: i64 = 600;

/// One MTA host of the fleet, with its mail of a period.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FleetHost {
    pub name: String,
    /// Where its pages (and archived copies) answer.
    pub url: String,
    /// Unix seconds of its last shipped batch.
    pub last_seen: i64,
    pub messages: u64,
    pub recipients: u64,
    pub sent: u64,
    pub deferred: u64,
    pub bounced: u64,
    pub expired: u64,
    /// Other stores that claimed this name and were refused.
    pub conflicts: u64,
}

/// A pool of connections to the fleet database.
#[derive(Clone)]
pub struct FleetReader {
    pool: Pool,
}

fn params(args: &[Arg]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter().map(Arg::postgres).collect()
}

impl FleetReader {
    pub fn new(fleet: &FleetConfig) -> Result<FleetReader, StoreError> {
        let mut config = fleet.database.connection();
        // The pages' statements are short and their plans' costs high (subqueries per row):
        // compiling them (JIT) took more time than running them. Options of the URL stay.
        let options = match config.get_options() {
            Some(theirs) => format!("-c jit=off {theirs}"),
            None => "-c jit=off".into(),
        };
        config
            .application_name("mailtrail dashboard")
            .options(&options)
            .connect_timeout(Duration::from_secs(10));
        let tls = super::tls(fleet.ca.as_deref()).map_err(StoreError::Pool)?;
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(8)
            .build()
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        Ok(FleetReader { pool })
    }

    async fn client(&self) -> Result<Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Pool(chain(&e)))
    }

    /// Creates or upgrades the schema, so that pages answer before any host has shipped.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        postgres::migrate(&mut client)
            .await
            .map_err(|e| StoreError::Pool(chain(&e)))
    }

    pub async fn message_summaries(
        &self,
        filter: &SummaryFilter,
    ) -> Result<Vec<MessageSummary>, StoreError> {
        let (sql, args) = summaries_statement(filter, PG);
        let client = self.client().await?;
        let statement = client.prepare_cached(&sql).await?;
        client
            .query(&statement, &params(&args))
            .await?
            .iter()
            .map(rows::message_summary)
            .collect()
    }

    pub async fn count_summaries_upto(
        &self,
        filter: &SummaryFilter,
        cap: u64,
    ) -> Result<MessageCount, StoreError> {
        let (sql, args) = count_upto_statement(filter, cap, PG);
        let client = self.client().await?;
        let statement = client.prepare_cached(&sql).await?;
        let n: i64 = client.query_one(&statement, &params(&args)).await?.get(0);
        Ok(MessageCount::capped(n, cap))
    }

    /// One message of one host, with its recipients as the milter saw them.
    pub async fn message(&self, host: &str, id: i64) -> Result<Option<StoredMessage>, StoreError> {
        let client = self.client().await?;
        let select = client
            .prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM message WHERE {}",
                PG.keyed("id")
            ))
            .await?;
        let Some(row) = client.query_opt(&select, &[&host, &id]).await? else {
            return Ok(None);
        };
        let mut message = rows::stored_message(&row)?;
        message.host = Some(host.to_string());
        let select = client
            .prepare_cached(&format!(
                "SELECT {ENVELOPE_RECIPIENT_COLUMNS} FROM recipient WHERE {} ORDER BY position",
                PG.keyed("message")
            ))
            .await?;
        for row in client.query(&select, &[&host, &id]).await? {
            message
                .envelope
                .recipients
                .push(rows::envelope_recipient(&row)?);
        }
        Ok(Some(message))
    }

    /// The row of `host` that handed the message over to `queue_id` there (see
    /// [`crate::store::Store::handed_over_to`]).
    pub async fn handed_over_to(
        &self,
        host: &str,
        queue_id: &str,
        arrived_at: i64,
    ) -> Result<Option<StoredMessage>, StoreError> {
        let (sql, window) = rows::handed_over_to_statement(PG, arrived_at);
        let client = self.client().await?;
        let select = client.prepare_cached(&sql).await?;
        let found = client
            .query_opt(&select, &[&host, &queue_id, &window.0, &window.1])
            .await?;
        drop(client);
        match found {
            Some(row) => self.message(host, row.get(0)).await,
            None => Ok(None),
        }
    }

    /// The recipients of one host's message, each with its attempts.
    pub async fn deliveries(
        &self,
        host: &str,
        message: i64,
    ) -> Result<Vec<RecipientDelivery>, StoreError> {
        let client = self.client().await?;
        let select = client
            .prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM recipient WHERE {} ORDER BY position, id",
                PG.keyed("message")
            ))
            .await?;
        let mut recipients = client
            .query(&select, &[&host, &message])
            .await?
            .iter()
            .map(rows::recipient_delivery)
            .collect::<Result<Vec<_>, _>>()?;
        let select = client
            .prepare_cached(&format!(
                "SELECT {ATTEMPT_COLUMNS} FROM attempt WHERE {} ORDER BY at, id",
                PG.keyed("recipient")
            ))
            .await?;
        for (id, recipient) in &mut recipients {
            for row in client.query(&select, &[&host, &*id]).await? {
                recipient.attempt_list.push(rows::attempt(&row)?);
            }
        }
        Ok(recipients.into_iter().map(|(_, r)| r).collect())
    }

    pub async fn message_notices(
        &self,
        host: &str,
        message: i64,
    ) -> Result<Vec<MessageNotice>, StoreError> {
        let client = self.client().await?;
        let select = client
            .prepare_cached(&format!(
                "SELECT {NOTICE_COLUMNS} FROM notice WHERE {} ORDER BY id",
                PG.keyed("message")
            ))
            .await?;
        client
            .query(&select, &[&host, &message])
            .await?
            .iter()
            .map(rows::message_notice)
            .collect()
    }

    /// Statistics of `period` over every host (or `host`'s alone) for the sender domains
    /// `scope` allows: each host's rollups, summed, with a row per host.
    pub async fn stats(
        &self,
        period: &StatsPeriod,
        scope: &DomainScope,
        host: Option<&str>,
    ) -> Result<Stats, StoreError> {
        let domains = scope_domains(scope);
        let client = self.client().await?;
        let mut assembler = StatsAssembler::new(*period);
        let (sql, args) = hour_rows_statement(PG, period, &domains, host);
        for row in client.query(&sql, &params(&args)).await? {
            add_hour_row(&mut assembler, &row)?;
        }
        let mut keyed = Vec::new();
        for dim in Dimension::ALL {
            let (sql, args) = keyed_rows_statement(PG, dim, period, &domains, host);
            let rows = client.query(&sql, &params(&args)).await?;
            let rows = rows.iter().map(keyed_row).collect::<Result<Vec<_>, _>>()?;
            keyed.push((dim, rows));
        }
        // The newest batch of any host: what the figures are as of.
        let refreshed: Option<i64> = client
            .query_one(
                "SELECT extract(epoch FROM max(last_seen))::bigint FROM fleet_host",
                &[],
            )
            .await?
            .get(0);
        let mut stats = assembler.finish(refreshed, |dim| {
            let at = keyed.iter().position(|(d, _)| *d == dim);
            Ok::<_, StoreError>(at.map(|i| keyed.swap_remove(i).1).unwrap_or_default())
        })?;
        stats.by_mta_host = self.by_host(&client, period, &domains, host).await?;
        Ok(stats)
    }

    /// Each host's totals of the period, from its hourly rollups.
    async fn by_host(
        &self,
        client: &Object,
        period: &StatsPeriod,
        domains: &[String],
        host: Option<&str>,
    ) -> Result<Vec<StatsRow>, StoreError> {
        let (sql, args) = by_host_statement(period, domains, host);
        let rows = client.query(&sql, &params(&args)).await?;
        rows.iter()
            .map(|row| {
                Ok(StatsRow {
                    key: row.text(0)?,
                    other: false,
                    counts: counts_from_row(row, 1)?,
                })
            })
            .collect()
    }

    /// Raw log lines of `filter` over every host (or one), oldest first.
    pub async fn raw_lines(&self, filter: &RawFilter) -> Result<Vec<RawLine>, StoreError> {
        let (sql, args) = raw_lines_statement(PG, filter);
        let client = self.client().await?;
        client
            .query(&sql, &params(&args))
            .await?
            .iter()
            .map(raw_line)
            .collect()
    }

    /// Records the dashboard's report `kind` due at `due_at` unless it is already, and returns
    /// its record.
    pub async fn record_report_due(
        &self,
        kind: &str,
        due_at: i64,
        now: i64,
    ) -> Result<ReportRecord, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(&PG.numbered(RECORD_DUE_SQL.into()), &[&kind, &due_at, &now])
            .await?;
        // Claimed for a while by the dashboard that sends it; a claim that ran out (its holder
        // died mid-send) passes to the next.
        let claimed = tx
            .execute(
                "UPDATE report SET claimed_until = $3 + $4 WHERE kind = $1 AND due_at = $2
                    AND sent_at IS NULL AND (claimed_until IS NULL OR claimed_until < $3)",
                &[&kind, &due_at, &now, &REPORT_CLAIM_SECS],
            )
            .await?;
        let row = tx
            .query_one(&PG.numbered(RECORD_SQL.into()), &[&kind, &due_at])
            .await?;
        let mut record = record_of(due_at, &row)?;
        record.taken = claimed == 0 && record.sent_at.is_none();
        tx.commit().await?;
        Ok(record)
    }

    /// Marks the report sent (`error: None`) or counts a failed attempt.
    pub async fn finish_report_attempt(
        &self,
        kind: &str,
        due_at: i64,
        now: i64,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        match error {
            None => {
                client
                    .execute(&PG.numbered(SENT_SQL.into()), &[&now, &kind, &due_at])
                    .await?
            }
            Some(e) => {
                client
                    .execute(&PG.numbered(FAILED_SQL.into()), &[&e, &kind, &due_at])
                    .await?
            }
        };
        // Released: a failed send is retried by whichever dashboard looks next.
        client
            .execute(
                "UPDATE report SET claimed_until = NULL WHERE kind = $1 AND due_at = $2",
                &[&kind, &due_at],
            )
            .await?;
        Ok(())
    }

    /// Sender notices sent by every host in `[from, to)` (unix seconds), by kind.
    pub async fn notices_sent_between(
        &self,
        from: i64,
        to: i64,
    ) -> Result<BTreeMap<String, u64>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(&PG.numbered(NOTICES_SENT_SQL.into()), &[&from, &to])
            .await?;
        rows.iter()
            .map(|row| Ok((row.text(0)?, row.int(1)?.max(0) as u64)))
            .collect()
    }

    /// Copies kept in the hosts' archives now, and their bytes.
    pub async fn archived_totals(&self) -> Result<(u64, u64), StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT count(*), coalesce(sum(size), 0)::bigint FROM message
                 WHERE archive_state = $1",
                &[&crate::model::envelope::ArchiveState::Stored.as_str()],
            )
            .await?;
        Ok((row.int(0)?.max(0) as u64, row.int(1)?.max(0) as u64))
    }

    /// Where `host`'s pages answer (`[fleet] url`), as it last said.
    pub async fn host_url(&self, host: &str) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT url FROM fleet_host WHERE name = $1", &[&host])
            .await?;
        Ok(row.map(|row| row.get(0)))
    }

    /// Every host, in name order, with its statistics of the local days from `since_day` (as
    /// in `stats_hour`) for the sender domains `scope` allows: read from the rollups, so as
    /// of each host's last statistics refresh.
    pub async fn hosts(
        &self,
        scope: &DomainScope,
        since_day: i64,
    ) -> Result<Vec<FleetHost>, StoreError> {
        let domains = scope_domains(scope);
        let mut args: Vec<Arg> = vec![since_day.into()];
        let marks = vec!["?"; domains.len()].join(", ");
        args.extend(domains.into_iter().map(Arg::from));
        let sums = [
            "messages",
            "recipients",
            "sent",
            "deferred",
            "bounced",
            "expired",
        ]
        .map(|c| format!("coalesce(s.{c}, 0)"))
        .join(", ");
        let inner_sums = [
            "messages",
            "recipients",
            "sent",
            "deferred",
            "bounced",
            "expired",
        ]
        .map(|c| format!("{} AS {c}", PG.sum(c)))
        .join(", ");
        let sql = PG.numbered(format!(
            "SELECT h.name, h.url, extract(epoch FROM h.last_seen)::bigint,
                (SELECT count(*) FROM fleet_conflict c WHERE c.name = h.name), {sums}
             FROM fleet_host h LEFT JOIN (
                SELECT host, {inner_sums} FROM stats_hour
                WHERE day >= ? AND sender_domain IN ({marks}) GROUP BY host
             ) s ON s.host = h.name
             ORDER BY h.name"
        ));
        let client = self.client().await?;
        let rows = client.query(&sql, &params(&args)).await?;
        let count = |row: &tokio_postgres::Row, i| row.get::<_, i64>(i).max(0) as u64;
        Ok(rows
            .iter()
            .map(|row| FleetHost {
                name: row.get(0),
                url: row.get(1),
                last_seen: row.get(2),
                conflicts: count(row, 3),
                messages: count(row, 4),
                recipients: count(row, 5),
                sent: count(row, 6),
                deferred: count(row, 7),
                bounced: count(row, 8),
                expired: count(row, 9),
            })
            .collect())
    }
}
