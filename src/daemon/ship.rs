//! Shipping to the fleet database: a periodic job, with its own store connection, that sends
//! the outbox to PostgreSQL in batches while it holds anything and polls it otherwise. Nothing
//! on the mail path waits for it: an unreachable, slow or refusing database is logged and
//! retried, and the outbox keeps what it has not confirmed.

use super::periodic::{Periodic, StopSignal};
use crate::{
    config::{ConfigHandle, FleetConfig},
    model::counters::Counters,
    store::{
        Store,
        fleet::{
            BATCH, error_chain as chain,
            postgres::{self, FleetDbError, HostClaim, Shipper},
            suppression, tables,
        },
    },
};
use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};
use tokio_postgres::Client;
use tracing::{error, info, warn};

/// Statistics periods (days, months) per batch: a day of rollups is a few thousand rows.
const ROLLUP_PERIODS: usize = 31;
/// How often an empty outbox is looked at again.
const POLL: Duration = Duration::from_secs(1);
/// Longest wait between attempts while the database fails.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A batch (or a connection attempt) that takes longer is abandoned and retried.
const BATCH_TIMEOUT: Duration = Duration::from_secs(120);
/// How often raw-line partitions past retention are dropped.
const EXPIRY_EVERY: Duration = Duration::from_secs(3600);

/// Starts shipping on a thread of its own.
pub fn start(
    config: ConfigHandle,
    fleet: FleetConfig,
    store: Store,
    counters: Arc<Counters>,
) -> std::io::Result<Periodic> {
    Periodic::start("fleet-ship", move |stop| async move {
        ShipLoop {
            config,
            fleet,
            store,
            counters,
            client: None,
            shipper: Shipper::default(),
            failing: None,
            next_expiry: Instant::now(),
        }
        .run(stop)
        .await
    })
}

struct ShipLoop {
    config: ConfigHandle,
    fleet: FleetConfig,
    store: Store,
    counters: Arc<Counters>,
    client: Option<Client>,
    shipper: Shipper,
    /// The error the database last failed with, logged once until it changes or recovers.
    failing: Option<String>,
    next_expiry: Instant,
}

enum Round {
    /// A full batch went: send the next at once.
    More,
    /// Nothing left (or a partial batch went): poll again later.
    Idle,
    /// Failed: wait before the next attempt.
    Failed,
}

impl ShipLoop {
    async fn run(mut self, mut stop: StopSignal) {
        let instance = match self.store.fleet_instance() {
            Ok(instance) => instance,
            Err(e) => {
                error!("fleet: cannot read this store's fleet identity, not shipping: {e}");
                return;
            }
        };
        match self.store.fleet_shipped_as(&self.fleet.host.0) {
            Ok(None) => {}
            Ok(Some(shipped_as)) => {
                let renamed = FleetDbError::Renamed {
                    shipped_as,
                    host: self.fleet.host.0.clone(),
                };
                error!("fleet: {renamed}; not shipping");
                return;
            }
            Err(e) => {
                error!("fleet: cannot read the name this store ships under, not shipping: {e}");
                return;
            }
        }
        info!(
            "fleet: shipping as host {} to {}",
            self.fleet.host.0, self.fleet.database
        );
        let mut backoff = POLL;
        loop {
            let wait = match self.round(&instance).await {
                Round::More => continue,
                Round::Idle => {
                    backoff = POLL;
                    POLL
                }
                Round::Failed => {
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    backoff
                }
            };
            if !stop.sleep(wait).await {
                return;
            }
        }
    }

    async fn round(&mut self, instance: &str) -> Round {
        let client = match self.client.take() {
            Some(client) if !client.is_closed() => client,
            _ => match tokio::time::timeout(BATCH_TIMEOUT, connect(&self.fleet)).await {
                Ok(Ok(client)) => client,
                Ok(Err(e)) => return self.failed(e),
                Err(_) => return self.failed_text("no answer within two minutes".into()),
            },
        };
        let mut client = client;
        let batch = match self.store.outbox_batch(BATCH) {
            Ok(batch) => batch,
            Err(e) => {
                error!("fleet: cannot read the outbox: {e}");
                self.client = Some(client);
                return Round::Failed;
            }
        };
        let claim = HostClaim {
            host: &self.fleet.host.0,
            instance,
            url: &self.fleet.url,
        };
        if let Some(last_seq) = batch.last_seq {
            let shipped = tokio::time::timeout(
                BATCH_TIMEOUT,
                self.shipper.ship(&mut client, &claim, &batch),
            )
            .await;
            match shipped {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return self.failed(e),
                Err(_) => return self.failed_text("a batch took over two minutes".into()),
            }
            if let Err(e) = self.store.outbox_shipped(last_seq) {
                // Shipped again next round, and stored once.
                error!("fleet: cannot mark a shipped batch in the outbox: {e}");
            }
            Counters::add(&self.counters.fleet_records_shipped, batch.rows() as u64);
        }
        if batch.entries >= BATCH {
            self.client = Some(client);
            return Round::More;
        }
        // Rows first: statistics periods go when the rows have caught up.
        let rollups = match self.store.rollup_batch(ROLLUP_PERIODS) {
            Ok(rollups) => rollups,
            Err(e) => {
                error!("fleet: cannot read the statistics to ship: {e}");
                self.client = Some(client);
                return Round::Failed;
            }
        };
        if !rollups.periods.is_empty() {
            let shipped = tokio::time::timeout(
                BATCH_TIMEOUT,
                self.shipper.ship_rollups(&mut client, &claim, &rollups),
            )
            .await;
            match shipped {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return self.failed(e),
                Err(_) => return self.failed_text("a batch took over two minutes".into()),
            }
            if let Err(e) = self.store.rollups_shipped(&rollups) {
                error!("fleet: cannot mark shipped statistics: {e}");
            }
        }
        if self.config.current().suppression.mode != crate::suppression::Mode::Off {
            let synced =
                tokio::time::timeout(BATCH_TIMEOUT, self.share_suppression(&mut client)).await;
            match synced {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return self.failed(e),
                Err(_) => {
                    return self.failed_text("the suppression list took over two minutes".into());
                }
            }
        }
        self.recovered();
        self.expire(&mut client).await;
        self.client = Some(client);
        match rollups.periods.len() >= ROLLUP_PERIODS {
            true => Round::More,
            false => Round::Idle,
        }
    }

    /// Sends this host's changes to the suppression list and takes the other hosts'.
    async fn share_suppression(&mut self, client: &mut Client) -> Result<(), FleetDbError> {
        let host = self.fleet.host.0.clone();
        loop {
            let (changes, position) = self
                .store
                .suppression_unsent(&host, suppression::CHUNK)
                .map_err(FleetDbError::Local)?;
            if changes.is_empty() {
                break;
            }
            suppression::send(client, &changes).await?;
            self.store
                .suppression_sent(position)
                .map_err(FleetDbError::Local)?;
            if changes.len() < suppression::CHUNK {
                break;
            }
        }
        let after = self
            .store
            .suppression_taken()
            .map_err(FleetDbError::Local)?;
        let store = &mut self.store;
        suppression::take(client, &host, after, |changes, position| {
            store
                .suppression_take(changes, position)
                .map(|_| ())
                .map_err(FleetDbError::Local)
        })
        .await
    }

    /// Drops this host's raw-line days past its `maillog.raw_retention`, once an hour.
    async fn expire(&mut self, client: &mut Client) {
        if Instant::now() < self.next_expiry {
            return;
        }
        self.next_expiry = Instant::now() + EXPIRY_EVERY;
        let retention = self.config.current().maillog.raw_retention;
        let before = SystemTime::now()
            .checked_sub(retention)
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        for table in tables::SHIPPED
            .iter()
            .filter(|t| t.partitioned_by.is_some())
        {
            match postgres::drop_partitions_before(client, table, &self.fleet.host.0, before).await
            {
                Ok(0) => {}
                Ok(n) => {
                    self.shipper.forget_partitions();
                    info!("fleet: {n} days of {} past retention dropped", table.name)
                }
                Err(e) => warn!(
                    "fleet: dropping {} days past retention: {}",
                    table.name,
                    chain(&e)
                ),
            }
        }
    }

    fn failed(&mut self, e: FleetDbError) -> Round {
        if let FleetDbError::HostClaimed { .. } | FleetDbError::StoreBehind { .. } = e {
            // Not the database's fault: keep the connection, say it each time (rarely).
            Counters::add(&self.counters.fleet_errors, 1);
            error!("fleet: {e}");
            return Round::Failed;
        }
        self.failed_text(chain(&e))
    }

    fn failed_text(&mut self, reason: String) -> Round {
        Counters::add(&self.counters.fleet_errors, 1);
        if self.failing.as_ref() != Some(&reason) {
            warn!(
                "fleet: database {} fails ({reason}); records stay in the outbox and are retried",
                self.fleet.database
            );
            self.failing = Some(reason);
        }
        self.client = None;
        Round::Failed
    }

    fn recovered(&mut self) {
        if self.failing.take().is_some() {
            info!("fleet: database {} answers again", self.fleet.database);
        }
    }
}

async fn connect(fleet: &FleetConfig) -> Result<Client, FleetDbError> {
    let mut config = fleet.database.connection();
    config
        .application_name(format!("mailtrail {}", fleet.host.0))
        .connect_timeout(Duration::from_secs(10))
        .keepalives_idle(Duration::from_secs(60));
    let tls = crate::store::fleet::tls(fleet.ca.as_deref()).map_err(FleetDbError::Tls)?;
    let (mut client, connection) = config.connect(tls).await?;
    tokio::spawn(async move {
        // Ends when the client is dropped or the server goes; the next round reconnects.
        let _ = connection.await;
    });
    postgres::migrate(&mut client).await?;
    Ok(client)
}
