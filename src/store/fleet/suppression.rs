//! The suppression list through the fleet database: each host sends its own changes, and
//! takes the other hosts' — a suppression learned on one relay holds on every relay at its
//! next round (a second or two). A change replaces a row only when it is newer, so every host
//! and the database end with the latest state of each entry.
//!
//! Taking changes in order: each row records the transaction that last wrote it (`xid`); a
//! host reads the rows written by transactions older than the oldest one still running
//! (`pg_snapshot_xmin`), from where it stopped. A transaction that started earlier but
//! commits later is still running at the first read, so the next read takes it.

use super::postgres::FleetDbError;
use crate::{
    bounce::Category,
    store::suppression::SharedSuppression,
    suppression::{Source, Suppression},
};
use futures_util::{StreamExt, pin_mut};
use tokio_postgres::{Client, IsolationLevel};

/// Changes per statement (sending) and per local transaction (taking).
pub const CHUNK: usize = 5_000;

/// Sends this host's changes; each replaces the row when it is at least as new (times are in
/// seconds: in the same second a removal is newer than an addition, on every host too).
pub async fn send(client: &mut Client, changes: &[SharedSuppression]) -> Result<(), FleetDbError> {
    let tx = client.transaction().await?;
    let statement = tx
        .prepare(
            "INSERT INTO suppression (sender_domain, target, source, category, dsn, reply,
                queue_id, reason, created_at, expires_at, removed_at, host)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                $6::text[], $7::text[], $8::text[], $9::bigint[], $10::bigint[], $11::bigint[],
                $12::text[])
            ON CONFLICT (sender_domain, target) DO UPDATE SET source = excluded.source,
                category = excluded.category, dsn = excluded.dsn, reply = excluded.reply,
                queue_id = excluded.queue_id, reason = excluded.reason,
                created_at = excluded.created_at, expires_at = excluded.expires_at,
                removed_at = excluded.removed_at, host = excluded.host,
                xid = pg_current_xact_id()
            WHERE (coalesce(excluded.removed_at, excluded.created_at),
                    excluded.removed_at IS NOT NULL)
                >= (coalesce(suppression.removed_at, suppression.created_at),
                    suppression.removed_at IS NOT NULL)",
        )
        .await?;
    for chunk in changes.chunks(CHUNK) {
        let text = |f: &dyn Fn(&SharedSuppression) -> Option<String>| -> Vec<Option<String>> {
            chunk.iter().map(f).collect()
        };
        let int = |f: &dyn Fn(&SharedSuppression) -> Option<i64>| -> Vec<Option<i64>> {
            chunk.iter().map(f).collect()
        };
        tx.execute(
            &statement,
            &[
                &text(&|c| Some(c.entry.sender_domain.clone())),
                &text(&|c| Some(c.entry.target.clone())),
                &text(&|c| Some(c.entry.source.as_str().to_string())),
                &text(&|c| c.entry.category.map(|x| x.as_str().to_string())),
                &text(&|c| c.entry.dsn.clone()),
                &text(&|c| c.entry.reply.as_deref().map(no_nul)),
                &text(&|c| c.entry.queue_id.clone()),
                &text(&|c| c.entry.reason.as_deref().map(no_nul)),
                &int(&|c| Some(c.entry.created_at)),
                &int(&|c| c.entry.expires_at),
                &int(&|c| c.removed_at),
                &text(&|c| Some(c.host.clone())),
            ],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// PostgreSQL's text holds no NUL (a reply text from the log may).
fn no_nul(text: &str) -> String {
    text.replace('\0', "\u{fffd}")
}

/// Reads the other hosts' changes since `after` (a transaction position), `CHUNK` at a time
/// into `take(changes, None)`, then `take(&[], Some(position))` with the position reached.
pub async fn take(
    client: &mut Client,
    host: &str,
    after: i64,
    mut take: impl FnMut(&[SharedSuppression], Option<i64>) -> Result<(), FleetDbError>,
) -> Result<(), FleetDbError> {
    // One snapshot: the rows read and the position they come up to.
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let position: String = tx
        .query_one("SELECT pg_snapshot_xmin(pg_current_snapshot())::text", &[])
        .await?
        .get(0);
    let position: i64 = position.parse().unwrap_or(after);
    let rows = tx
        .query_raw(
            "SELECT sender_domain, target, source, category, dsn, reply, queue_id, reason,
                created_at, expires_at, removed_at, host
            FROM suppression
            WHERE xid >= $1::text::xid8 AND xid < $2::text::xid8 AND host <> $3",
            [after.to_string(), position.to_string(), host.to_string()],
        )
        .await?;
    pin_mut!(rows);
    let mut chunk = Vec::with_capacity(CHUNK);
    while let Some(row) = rows.next().await {
        let row = row?;
        let source: String = row.get(2);
        let category: Option<String> = row.get(3);
        chunk.push(SharedSuppression {
            entry: Suppression {
                id: 0,
                sender_domain: row.get(0),
                target: row.get(1),
                // Written by mailtrail; anything else is an operator's entry.
                source: Source::parse(&source).unwrap_or(Source::Manual),
                category: category.and_then(|c| c.parse::<Category>().ok()),
                dsn: row.get(4),
                reply: row.get(5),
                queue_id: row.get(6),
                reason: row.get(7),
                created_at: row.get(8),
                expires_at: row.get(9),
            },
            removed_at: row.get(10),
            host: row.get(11),
        });
        if chunk.len() == CHUNK {
            take(&chunk, None)?;
            chunk.clear();
        }
    }
    take(&chunk, Some(position))?;
    tx.commit().await?;
    Ok(())
}
