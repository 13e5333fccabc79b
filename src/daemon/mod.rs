//! The daemon: opens the store and archive, mends what a crash left, starts the store writer,
//! the log follower, the periodic jobs (policy tick, retention sweep, statistics refresh, weekly
//! summary) and the tasks it is given (the pages), and serves the milter until shutdown.

pub mod periodic;
mod refresh;
mod report;
mod retention;
mod ship;
pub mod suppress;
pub mod tick;

use crate::{
    archive::sweep,
    archive::{Archive, ArchiveError},
    config::ConfigHandle,
    milter::recorder::Recorder,
    milter::{self, Shared},
    model::{counters::Counters, health::Health},
    store::{Store, StoreError},
    tracking::follower::{self, FollowerError},
};
use std::{future::Future, io, pin::Pin, sync::Arc, time::SystemTime};
use tracing::{error, info, warn};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("milter stopped: {0}")]
    Milter(#[source] io::Error),
    #[error("log follower: {0}")]
    Follower(#[from] FollowerError),
    #[error("policy tick: {0}")]
    Tick(#[from] crate::daemon::tick::TickError),
    #[error("cannot start a background job: {0}")]
    Spawn(#[source] io::Error),
    #[error("weekly report: {0}")]
    Report(#[from] crate::notify::weekly::ReportError),
}

/// A task that runs beside the milter until shutdown (the status pages).
pub type Beside = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs mailtrail until `shutdown` completes. `ready` is called once the milter socket listens.
/// `local_offset` is the server's UTC offset, for log stamps that carry none (it cannot be read
/// safely once threads run, so the caller reads it at start). Each of `beside` runs on a task
/// of its own: its failure never stops the milter.
pub async fn run(
    config: ConfigHandle,
    local_offset: time::UtcOffset,
    health: Arc<Health>,
    beside: Vec<Beside>,
    shutdown: impl Future,
    ready: impl FnOnce(),
) -> Result<(), DaemonError> {
    let start = config.current();
    let mut store = Store::open(&start.store.path)?;
    let archive = match start.archive.maildir {
        true => Some(Arc::new(Archive::open(&start.archive.dir)?)),
        false => None,
    };
    // Bound first: a second instance stops here, before it touches the archive.
    let listener =
        milter::bind(&start.milter.listen)
            .await
            .map_err(|source| DaemonError::Listen {
                addr: start.milter.listen.to_string(),
                source,
            })?;
    if let Some(archive) = &archive {
        reconcile(archive, &mut store);
    }
    let counters = Arc::new(Counters::default());
    let checkpointer = Store::open(&start.store.path)?;
    let (recorder, writer) =
        Recorder::start(store, checkpointer, archive.clone(), counters.clone());
    let sweeper = retention::start(config.clone(), counters.clone()).map_err(DaemonError::Spawn)?;
    let stats_store = Store::open(&start.store.path)?;
    let stats_refresher =
        refresh::start(config.clone(), stats_store, local_offset).map_err(DaemonError::Spawn)?;
    let follower = follower::start(config.clone(), local_offset)?;
    let ticker = crate::daemon::tick::Ticker::start(config.clone())?;
    let report_scheduler = report::Scheduler::start(config.clone(), local_offset)?;
    let shipper = start_shipping(&config, counters.clone())?;
    let suppression = start_suppression(&config, counters.clone())?;
    let beside: Vec<_> = beside.into_iter().map(tokio::spawn).collect();

    info!(
        "milter listening on {}; store {}; archive {}",
        start.milter.listen,
        start.store.path.display(),
        archive
            .as_ref()
            .map_or("off".into(), |a| a.root().display().to_string()),
    );
    ready();

    let shared = Arc::new(Shared {
        config,
        archive,
        recorder,
        counters,
        health,
        suppression: suppression.list,
    });
    let result = milter::serve(listener, shared, shutdown).await;
    for job in [sweeper, stats_refresher] {
        let _ = tokio::task::spawn_blocking(move || job.stop()).await;
    }
    for task in beside {
        task.abort();
    }
    if let Some(ticker) = ticker {
        let _ = tokio::task::spawn_blocking(move || ticker.stop()).await;
    }
    let _ = tokio::task::spawn_blocking(move || report_scheduler.stop()).await;
    let _ = tokio::task::spawn_blocking(move || suppression.job.stop()).await;
    if let Some(shipper) = shipper {
        let _ = tokio::task::spawn_blocking(move || shipper.stop()).await;
    }
    if let Some(follower) = follower {
        let _ = tokio::task::spawn_blocking(move || follower.stop()).await;
    }
    // Every session has ended, so the last recorder handle is gone: the writer commits what is
    // queued and stops.
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    info!("stopped");
    result.map_err(DaemonError::Milter)
}

/// With `[fleet]`: records changes in the outbox and starts shipping them; without, stops
/// recording (a host that leaves the fleet keeps no outbox).
fn start_shipping(
    config: &ConfigHandle,
    counters: Arc<Counters>,
) -> Result<Option<periodic::Periodic>, DaemonError> {
    let current = config.current();
    let mut store = Store::open(&current.store.path)?;
    let changed = store.set_fleet_outbox(current.fleet.is_some())?;
    let Some(fleet) = current.fleet.clone() else {
        if changed {
            info!("fleet: no [fleet] configured; the outbox was dropped");
        }
        return Ok(None);
    };
    if changed {
        let lag = store.outbox_lag()?;
        info!(
            "fleet: joining; {} stored records queued for the fleet database",
            lag.records
        );
    }
    Ok(Some(
        ship::start(config.clone(), fleet, store, counters).map_err(DaemonError::Spawn)?,
    ))
}

/// The suppression list's index and the job that keeps it current.
struct SuppressionJob {
    list: Arc<suppress::SuppressionList>,
    job: periodic::Periodic,
}

/// Loads the suppression list (when on) before the milter answers anything, then starts the
/// job that learns and follows its changes.
fn start_suppression(
    config: &ConfigHandle,
    counters: Arc<Counters>,
) -> Result<SuppressionJob, DaemonError> {
    let current = config.current();
    let store = Store::open(&current.store.path)?;
    let list = Arc::new(suppress::SuppressionList::default());
    if current.suppression.mode != crate::suppression::Mode::Off {
        let started = std::time::Instant::now();
        list.catch_up(&store)?;
        info!(
            "suppression list ({}): {} entries loaded in {:.1} s",
            match current.suppression.mode {
                crate::suppression::Mode::Refuse => "refusing",
                _ => "recording only",
            },
            list.read(|index| index.len()),
            started.elapsed().as_secs_f64()
        );
    }
    let job = suppress::start(config.clone(), store, list.clone(), counters)
        .map_err(DaemonError::Spawn)?;
    Ok(SuppressionJob { list, job })
}

/// Mends what a crash left in the archive before the milter serves (see
/// [`sweep::reconcile_at_start`]); a failure is logged, never fatal.
fn reconcile(archive: &Archive, store: &mut Store) {
    match sweep::reconcile_at_start(archive, store, SystemTime::now()) {
        Ok(done) if done == sweep::Reconciled::default() => {}
        Ok(done) => warn!(
            "archive reconciled at start: {} unfinished copies removed from tmp/, {} copies without a record (never acknowledged to the MTA) removed, {} records whose copy is missing marked failed",
            done.tmp_removed, done.unrecorded_removed, done.missing_marked
        ),
        Err(e) => error!("archive reconciliation at start: {e}"),
    }
}
