//! The operational counters (`mailtrail counters`, `/metrics`): named totals, each added to in
//! the transaction that commits what it counts.

use super::{Store, StoreError};
use rusqlite::params;
use std::collections::BTreeMap;

impl Store {
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
