//! The SQLite side of shipping: the outbox triggers, batches read from it, and its lag.

use super::tables::{ColumnType, ROLLUPS, RollupTable, SHIPPED, ShippedTable};
use crate::store::{Store, StoreError};
use rusqlite::{OptionalExtension, params};

/// The values of one column for every row of a batch, in row order.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnValues {
    Int(Vec<Option<i64>>),
    Real(Vec<Option<f64>>),
    Text(Vec<Option<String>>),
    Blob(Vec<Option<Vec<u8>>>),
}

impl ColumnValues {
    fn of(ty: ColumnType) -> ColumnValues {
        match ty {
            ColumnType::Int => ColumnValues::Int(Vec::new()),
            ColumnType::Real => ColumnValues::Real(Vec::new()),
            ColumnType::Text => ColumnValues::Text(Vec::new()),
            ColumnType::Blob => ColumnValues::Blob(Vec::new()),
        }
    }

    /// Appends column `index` of `row`.
    fn push(&mut self, row: &rusqlite::Row, index: usize) -> rusqlite::Result<()> {
        match self {
            ColumnValues::Int(v) => v.push(row.get(index)?),
            ColumnValues::Real(v) => v.push(row.get(index)?),
            // PostgreSQL's text holds no NUL (a log line read from a damaged file may): it is
            // shipped as U+FFFD, the store keeps the line as read.
            ColumnValues::Text(v) => {
                v.push(
                    row.get::<_, Option<String>>(index)?
                        .map(|text| match text.contains('\0') {
                            true => text.replace('\0', "\u{fffd}"),
                            false => text,
                        }),
                )
            }
            ColumnValues::Blob(v) => v.push(row.get(index)?),
        }
        Ok(())
    }

    /// One column read from `rows` rows of `select`, each column in its vector.
    fn read_all(
        types: impl Iterator<Item = ColumnType>,
        mut rows: rusqlite::Rows,
        mut each: impl FnMut(&rusqlite::Row) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<Vec<ColumnValues>> {
        let mut columns: Vec<ColumnValues> = types.map(ColumnValues::of).collect();
        while let Some(row) = rows.next()? {
            each(row)?;
            for (index, values) in columns.iter_mut().enumerate() {
                values.push(row, index)?;
            }
        }
        Ok(columns)
    }
}

/// The current state of the rows of one table named in a batch, column by column (the shape
/// PostgreSQL's `unnest` takes).
#[derive(Debug)]
pub struct TableRows {
    pub table: &'static ShippedTable,
    pub ids: Vec<i64>,
    /// One entry per `table.columns`, in order.
    pub columns: Vec<ColumnValues>,
}

/// What the fleet database has not confirmed yet, up to a limit.
#[derive(Debug, Default)]
pub struct OutboxBatch {
    /// The first and last outbox entries the batch covers; `None` when the outbox is empty.
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    /// Some entries were queued when this store joined the fleet (or joined again): their rows
    /// may be in the fleet database already.
    pub from_backfill: bool,
    /// The highest outbox position this store ever gave out (positions never go back).
    pub high_water: i64,
    /// Outbox entries covered (a row changed twice counts twice, ships once).
    pub entries: usize,
    pub tables: Vec<TableRows>,
}

impl OutboxBatch {
    pub fn rows(&self) -> usize {
        self.tables.iter().map(|t| t.ids.len()).sum()
    }
}

/// How far the fleet database is behind this host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxLag {
    /// Changes written locally and not yet confirmed by the fleet database.
    pub records: u64,
    /// When the oldest of them was written (unix time).
    pub oldest_at: Option<i64>,
}

impl OutboxLag {
    pub fn seconds(&self, now: i64) -> u64 {
        self.oldest_at.map_or(0, |at| (now - at).max(0) as u64)
    }
}

const TRIGGER_PROBE: &str = "fleet_message_insert";

fn trigger_sql(table: &ShippedTable) -> String {
    let mut sql = format!(
        "CREATE TRIGGER fleet_{name}_insert AFTER INSERT ON {name} BEGIN
            INSERT INTO fleet_outbox (kind, row, at) VALUES ({kind}, NEW.id, unixepoch());
        END;",
        name = table.name,
        kind = table.kind
    );
    if table.updated {
        sql += &format!(
            "CREATE TRIGGER fleet_{name}_update AFTER UPDATE ON {name} BEGIN
                INSERT INTO fleet_outbox (kind, row, at) VALUES ({kind}, NEW.id, unixepoch());
            END;",
            name = table.name,
            kind = table.kind
        );
    }
    sql
}

const ROW_EVENTS: [(&str, &str); 3] = [("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")];

/// Marks the period of every row a refresh writes, rewrites or deletes.
fn rollup_trigger_sql(table: &RollupTable) -> String {
    ROW_EVENTS
        .iter()
        .map(|(event, row)| {
            format!(
                "CREATE TRIGGER fleet_{name}_{lower} AFTER {event} ON {name} BEGIN
                    INSERT INTO fleet_stats_dirty (monthly, period, changes)
                        VALUES ({monthly}, {row}.{period}, 1)
                        ON CONFLICT (monthly, period) DO UPDATE SET changes = changes + 1;
                END;",
                name = table.name,
                lower = event.to_ascii_lowercase(),
                monthly = i64::from(table.monthly),
                period = table.period,
            )
        })
        .collect()
}

/// The rows of the statistics periods of one rollup table, column by column.
#[derive(Debug)]
pub struct RollupRows {
    pub table: &'static RollupTable,
    /// The periods replaced: the fleet database drops the host's rows of these first.
    pub periods: Vec<i64>,
    /// One entry per `table.columns`.
    pub columns: Vec<ColumnValues>,
    pub rows: usize,
}

/// Statistics periods rewritten since the fleet database took them, with their rows.
#[derive(Debug, Default)]
pub struct RollupBatch {
    /// (monthly, period, changes) as read: marked shipped only if not rewritten since.
    pub periods: Vec<(bool, i64, i64)>,
    pub tables: Vec<RollupRows>,
}

fn select_sql(table: &ShippedTable) -> String {
    let columns: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
    format!(
        "SELECT id, {} FROM {} WHERE id IN
            (SELECT row FROM fleet_outbox WHERE seq <= ?1 AND kind = ?2) ORDER BY id",
        columns.join(", "),
        table.name
    )
}

impl Store {
    /// Starts (`true`) or stops recording changes for the fleet. Starting puts every row
    /// already stored in the outbox, so a host that joins a fleet ships its history; stopping
    /// drops the triggers and the outbox (a later start ships everything again, stored once).
    pub fn set_fleet_outbox(&mut self, enabled: bool) -> Result<bool, StoreError> {
        let tx = self.write_transaction()?;
        let present: bool = tx
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?1",
                [TRIGGER_PROBE],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if present == enabled {
            return Ok(false);
        }
        if enabled {
            for table in SHIPPED {
                tx.execute_batch(&trigger_sql(table))?;
                tx.execute(
                    &format!(
                        "INSERT INTO fleet_outbox (kind, row, at)
                            SELECT ?1, id, unixepoch() FROM {} ORDER BY id",
                        table.name
                    ),
                    [table.kind],
                )?;
            }
            tx.execute(
                "INSERT OR REPLACE INTO fleet_state (name, value)
                    SELECT 'backfill_until', coalesce(max(seq), 0) FROM fleet_outbox",
                [],
            )?;
            for table in ROLLUPS {
                tx.execute_batch(&rollup_trigger_sql(table))?;
                tx.execute(
                    &format!(
                        "INSERT INTO fleet_stats_dirty (monthly, period, changes)
                            SELECT DISTINCT ?1, {period}, 1 FROM {name} WHERE true
                            ON CONFLICT (monthly, period) DO NOTHING",
                        period = table.period,
                        name = table.name
                    ),
                    [i64::from(table.monthly)],
                )?;
            }
        } else {
            for table in SHIPPED {
                tx.execute_batch(&format!(
                    "DROP TRIGGER IF EXISTS fleet_{name}_insert;
                    DROP TRIGGER IF EXISTS fleet_{name}_update;",
                    name = table.name
                ))?;
            }
            for table in ROLLUPS {
                for (event, _) in ROW_EVENTS {
                    tx.execute_batch(&format!(
                        "DROP TRIGGER IF EXISTS fleet_{}_{};",
                        table.name,
                        event.to_ascii_lowercase()
                    ))?;
                }
            }
            tx.execute("DELETE FROM fleet_outbox", [])?;
            tx.execute("DELETE FROM fleet_stats_dirty", [])?;
        }
        tx.commit()?;
        Ok(true)
    }

    /// The oldest `limit` outbox entries and the current state of the rows they name, read
    /// from one snapshot (a change made meanwhile has a later entry, for the next batch). A
    /// row deleted since its entry (raw lines past retention) is not in the batch.
    pub fn outbox_batch(&mut self, limit: usize) -> Result<OutboxBatch, StoreError> {
        let tx = self.conn.transaction()?;
        let (first_seq, last_seq, entries): (Option<i64>, Option<i64>, i64) = tx.query_row(
            "SELECT min(seq), max(seq), count(*) FROM
                (SELECT seq FROM fleet_outbox ORDER BY seq LIMIT ?1)",
            [limit.min(i64::MAX as usize) as i64],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?;
        let (Some(first_seq), Some(last_seq)) = (first_seq, last_seq) else {
            return Ok(OutboxBatch::default());
        };
        let backfill_until: i64 = tx
            .query_row(
                "SELECT CAST(value AS INTEGER) FROM fleet_state WHERE name = 'backfill_until'",
                [],
                |row| row.get(0),
            )
            .optional()?
            .unwrap_or(0);
        let mut tables = Vec::new();
        for table in SHIPPED {
            let rows = read_rows(&tx, table, last_seq)?;
            if !rows.ids.is_empty() {
                tables.push(rows);
            }
        }
        let high_water: i64 = tx
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'fleet_outbox'",
                [],
                |row| row.get(0),
            )
            .optional()?
            .unwrap_or(last_seq);
        tx.commit()?;
        Ok(OutboxBatch {
            first_seq: Some(first_seq),
            last_seq: Some(last_seq),
            from_backfill: first_seq <= backfill_until,
            high_water,
            entries: entries as usize,
            tables,
        })
    }

    /// The fleet database confirmed every entry up to `last_seq`.
    pub fn outbox_shipped(&mut self, last_seq: i64) -> Result<(), StoreError> {
        let tx = self.write_transaction()?;
        tx.execute("DELETE FROM fleet_outbox WHERE seq <= ?1", [last_seq])?;
        tx.commit()?;
        Ok(())
    }

    /// Rows and statistics periods not yet confirmed by the fleet database.
    pub fn outbox_lag(&self) -> Result<OutboxLag, StoreError> {
        Ok(self.conn.query_row(
            "SELECT (SELECT count(*) FROM fleet_outbox) + (SELECT count(*) FROM fleet_stats_dirty),
                (SELECT min(at) FROM fleet_outbox)",
            [],
            |row| {
                Ok(OutboxLag {
                    records: row.get::<_, i64>(0)? as u64,
                    oldest_at: row.get(1)?,
                })
            },
        )?)
    }

    /// Up to `limit` statistics periods rewritten since the fleet database took them, with
    /// their rows now, read from one snapshot.
    pub fn rollup_batch(&mut self, limit: usize) -> Result<RollupBatch, StoreError> {
        let tx = self.conn.transaction()?;
        let periods: Vec<(bool, i64, i64)> = tx
            .prepare_cached(
                "SELECT monthly, period, changes FROM fleet_stats_dirty
                 ORDER BY monthly, period LIMIT ?1",
            )?
            .query_map([limit.min(i64::MAX as usize) as i64], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })?
            .collect::<Result<_, _>>()?;
        let mut tables = Vec::new();
        for table in ROLLUPS {
            let of_table: Vec<i64> = periods
                .iter()
                .filter(|(monthly, _, _)| *monthly == table.monthly)
                .map(|(_, period, _)| *period)
                .collect();
            if of_table.is_empty() {
                continue;
            }
            let names: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
            let mut select = tx.prepare_cached(&format!(
                "SELECT {} FROM {} WHERE {} IN (SELECT value FROM json_each(?1))",
                names.join(", "),
                table.name,
                table.period
            ))?;
            let list = serde_json::to_string(&of_table).map_err(|e| StoreError::Value {
                column: 0,
                message: e.to_string(),
            })?;
            let mut rows = 0;
            let columns = ColumnValues::read_all(
                table.columns.iter().map(|(_, ty)| *ty),
                select.query([list])?,
                |_| {
                    rows += 1;
                    Ok(())
                },
            )?;
            tables.push(RollupRows {
                table,
                periods: of_table,
                columns,
                rows,
            });
        }
        tx.commit()?;
        Ok(RollupBatch { periods, tables })
    }

    /// The fleet database took `batch`: its periods are done unless rewritten since.
    pub fn rollups_shipped(&mut self, batch: &RollupBatch) -> Result<(), StoreError> {
        let tx = self.write_transaction()?;
        {
            let mut done = tx.prepare_cached(
                "DELETE FROM fleet_stats_dirty WHERE monthly = ?1 AND period = ?2 AND changes = ?3",
            )?;
            for (monthly, period, changes) in &batch.periods {
                done.execute(params![monthly, period, changes])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The host name this store ships under: the first one it shipped as, kept; `None` when it
    /// is `host` (recorded now if it was the first), else the name it shipped as.
    pub fn fleet_shipped_as(&mut self, host: &str) -> Result<Option<String>, StoreError> {
        let tx = self.write_transaction()?;
        let shipped_as: Option<String> = tx
            .query_row(
                "SELECT value FROM fleet_state WHERE name = 'host'",
                [],
                |row| row.get(0),
            )
            .optional()?;
        let other = match shipped_as {
            Some(name) if name != host => Some(name),
            Some(_) => None,
            None => {
                tx.execute(
                    "INSERT INTO fleet_state (name, value) VALUES ('host', ?1)",
                    [host],
                )?;
                None
            }
        };
        tx.commit()?;
        Ok(other)
    }

    /// This store's identity in the fleet: made once, at random, and kept. Two hosts that
    /// claim one name have different identities, which is how the fleet database tells them
    /// apart instead of merging their records.
    pub fn fleet_instance(&mut self) -> Result<String, StoreError> {
        let tx = self.write_transaction()?;
        let existing: Option<String> = tx
            .query_row(
                "SELECT value FROM fleet_state WHERE name = 'instance'",
                [],
                |row| row.get(0),
            )
            .optional()?;
        let instance = match existing {
            Some(instance) => instance,
            None => {
                let mut bytes = [0u8; 16];
                getrandom::fill(&mut bytes).map_err(|e| StoreError::Random(e.to_string()))?;
                let instance: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                tx.execute(
                    "INSERT INTO fleet_state (name, value) VALUES ('instance', ?1)",
                    [&instance],
                )?;
                instance
            }
        };
        tx.commit()?;
        Ok(instance)
    }
}

fn read_rows(
    tx: &rusqlite::Transaction,
    table: &'static ShippedTable,
    last_seq: i64,
) -> Result<TableRows, StoreError> {
    let mut select = tx.prepare_cached(&select_sql(table))?;
    let mut ids = Vec::new();
    let columns = ColumnValues::read_all(
        std::iter::once(ColumnType::Int).chain(table.columns.iter().map(|(_, ty)| *ty)),
        select.query(params![last_seq, table.kind])?,
        |_| Ok(()),
    )?;
    let mut columns = columns.into_iter();
    if let Some(ColumnValues::Int(id_column)) = columns.next() {
        ids = id_column.into_iter().flatten().collect();
    }
    Ok(TableRows {
        table,
        ids,
        columns: columns.collect(),
    })
}
