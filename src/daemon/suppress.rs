//! The suppression list's job: learns from the attempts the log follower recorded, expires
//! old entries, and keeps the milter's in-memory index current with every change in the store
//! (its own, the command line's, the pages').

use super::periodic::Periodic;
use crate::{
    config::ConfigHandle,
    model::counters::Counters,
    store::{Store, StoreError, suppression::SuppressionChange},
    suppression::{Mode, index::SuppressionIndex},
};
use std::{
    sync::{Arc, RwLock},
    time::{Duration, Instant, SystemTime},
};
use tracing::{error, info};

/// How often the job learns and applies changes: a change shows at RCPT within this.
const ROUND: Duration = Duration::from_secs(1);
/// Changes applied per read (the first load reads the whole list this way).
const CHANGES_PER_READ: usize = 20_000;
/// How often entries past `keep` are ended.
const EXPIRE_EVERY: Duration = Duration::from_secs(60);

/// The list as the milter reads it, with the number of the last change applied.
#[derive(Default)]
pub struct SuppressionList {
    index: RwLock<SuppressionIndex>,
    applied: std::sync::Mutex<i64>,
}

impl SuppressionList {
    /// Runs `f` on the index (a read lock held for a lookup: microseconds).
    pub fn read<T>(&self, f: impl FnOnce(&SuppressionIndex) -> T) -> T {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        f(&index)
    }

    /// Applies the changes in `store` past the last one applied; how many.
    pub fn catch_up(&self, store: &Store) -> Result<usize, StoreError> {
        let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        let mut total = 0;
        loop {
            let (changes, last) = store.suppression_changes(*applied, CHANGES_PER_READ)?;
            if changes.is_empty() {
                return Ok(total);
            }
            total += changes.len();
            let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
            for change in &changes {
                match change {
                    SuppressionChange::Live(entry) => index.insert(entry),
                    SuppressionChange::Gone {
                        sender_domain,
                        target,
                    } => index.remove(sender_domain, target),
                }
            }
            drop(index);
            *applied = last;
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Starts the job; `list` was loaded before the milter began to answer.
pub fn start(
    config: ConfigHandle,
    mut store: Store,
    list: Arc<SuppressionList>,
    counters: Arc<Counters>,
) -> std::io::Result<Periodic> {
    Periodic::start("suppression", move |mut stop| async move {
        let mut next_expiry = Instant::now();
        loop {
            let current = config.current();
            if current.suppression.mode != Mode::Off {
                let now = unix_now();
                learn(&mut store, &current.suppression, now, &counters);
                if Instant::now() >= next_expiry {
                    next_expiry = Instant::now() + EXPIRE_EVERY;
                    match store.suppression_expire(now, current.fleet.is_some()) {
                        Ok(0) => {}
                        Ok(n) => info!("suppression: {n} learned entries expired"),
                        Err(e) => error!("suppression: expiring entries: {e}"),
                    }
                }
                if let Err(e) = list.catch_up(&store) {
                    error!("suppression: reading the list's changes: {e}");
                }
            }
            if !stop.sleep(ROUND).await {
                return;
            }
        }
    })
}

/// Learns from every attempt recorded since the last round.
fn learn(
    store: &mut Store,
    rules: &crate::config::SuppressionConfig,
    now: i64,
    counters: &Counters,
) {
    loop {
        match store.suppression_learn(rules, now) {
            Ok(learned) => {
                Counters::add(&counters.suppression_learned, learned.suppressed);
                Counters::add(&counters.suppression_lifted, learned.lifted);
                if learned.suppressed + learned.lifted > 0 {
                    info!(
                        "suppression: {} recipients suppressed, {} lifted by a delivery",
                        learned.suppressed, learned.lifted
                    );
                }
                if learned.attempts < crate::store::suppression::LEARN_BATCH {
                    return;
                }
            }
            Err(e) => {
                error!("suppression: learning from delivery attempts: {e}");
                return;
            }
        }
    }
}
