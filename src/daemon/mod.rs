//! The daemon: opens the store and archive, starts the store writer and the retention sweep,
//! and serves the milter until shutdown.

pub mod periodic;
mod report;
pub mod tick;

use crate::{
    archive::sweep,
    archive::{Archive, ArchiveError},
    config::ConfigHandle,
    milter::recorder::Recorder,
    milter::{self, Shared},
    model::counters::Counters,
    store::{Store, StoreError},
    tracking::follower::{self, FollowerError},
    web::{self, WebError},
};
use std::{future::Future, io, sync::Arc, time::SystemTime};
use tracing::{error, info, warn};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
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
    #[error("web: {0}")]
    Web(#[from] WebError),
    #[error("weekly report: {0}")]
    Report(#[from] crate::report::ReportError),
}

/// Runs mailtrail until `shutdown` completes. `ready` is called once the milter socket listens.
/// `local_offset` is the server's UTC offset, for log stamps that carry none (it cannot be read
/// safely once threads run, so the caller reads it at start).
pub async fn run(
    config: ConfigHandle,
    local_offset: time::UtcOffset,
    shutdown: impl Future,
    ready: impl FnOnce(),
) -> Result<(), RunError> {
    let start = config.current();
    let mut store = Store::open(&start.store.path)?;
    let archive = match start.archive.maildir {
        true => Some(Arc::new(Archive::open(&start.archive.dir)?)),
        false => None,
    };
    // Bound first: a second instance stops here, before it touches the archive.
    let listener = milter::bind(&start.milter.listen)
        .await
        .map_err(|source| RunError::Listen {
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
    let sweeper = tokio::spawn(sweep_forever(config.clone(), counters.clone()));
    let stats_store = Store::open(&start.store.path)?;
    let stats_refresher = tokio::spawn(refresh_stats_forever(
        config.clone(),
        stats_store,
        local_offset,
    ));
    let follower = follower::start(config.clone(), local_offset)?;
    let ticker = crate::daemon::tick::Ticker::start(config.clone())?;
    let report_scheduler = report::Scheduler::start(config.clone(), local_offset)?;
    let web_server = match start.web.enabled {
        true => {
            let clock: web::Clock = Arc::new(time::OffsetDateTime::now_utc);
            let state = web::WebState::new(config.clone(), local_offset, clock)?;
            if start.web.users.is_empty() {
                warn!("web: no [[web.user]] configured, nobody can log in");
            }
            // Its own task: a busy port or a failing web server never stops the milter.
            Some(tokio::spawn(serve_web(
                start.web.listen,
                start.web.tls.clone(),
                state,
            )))
        }
        false => None,
    };

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
    });
    let result = milter::serve(listener, shared, shutdown).await;
    sweeper.abort();
    stats_refresher.abort();
    if let Some(web_server) = web_server {
        web_server.abort();
    }
    if let Some(ticker) = ticker {
        let _ = tokio::task::spawn_blocking(move || ticker.stop()).await;
    }
    let _ = tokio::task::spawn_blocking(move || report_scheduler.stop()).await;
    if let Some(follower) = follower {
        let _ = tokio::task::spawn_blocking(move || follower.stop()).await;
    }
    // Every session has ended, so the last recorder handle is gone: the writer commits what is
    // queued and stops.
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    info!("stopped");
    result.map_err(RunError::Milter)
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

/// Serves the status pages; binding (and reading the TLS files) is retried, so the pages come
/// up once the port is free and the certificate is in place.
async fn serve_web(
    addr: std::net::SocketAddr,
    tls: Option<crate::config::WebTls>,
    state: web::WebState,
) {
    loop {
        let tls_config = match tls.as_ref().map(web::tls_config).transpose() {
            Ok(config) => config,
            Err(e) => {
                error!("web: {e}; retrying in 30s");
                tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                continue;
            }
        };
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                let scheme = if tls_config.is_some() {
                    "https"
                } else {
                    "http"
                };
                info!("web pages on {scheme}://{addr}");
                match web::serve(listener, state.clone(), tls_config).await {
                    Ok(()) => return,
                    Err(e) => error!("web server stopped: {e}"),
                }
            }
            Err(e) => error!("web: cannot listen on {addr}: {e}; retrying in 30s"),
        }
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    }
}

/// Keeps the statistics rollups fresh, on the blocking pool with its own connection: off the
/// milter's path (the refresh reads a snapshot and writes in one short transaction).
async fn refresh_stats_forever(config: ConfigHandle, store: Store, offset: time::UtcOffset) {
    let mut store = Some(store);
    loop {
        let Some(mut s) = store.take() else { return };
        let done = tokio::task::spawn_blocking(move || {
            let result = s.refresh_stats(offset, time::OffsetDateTime::now_utc());
            (s, result)
        })
        .await;
        match done {
            Ok((s, result)) => {
                store = Some(s);
                match result {
                    // The first refresh (a full one on an upgraded store) is worth a line.
                    Ok(report) if report.full => info!(
                        "statistics refreshed: {} days recomputed (full rebuild)",
                        report.days
                    ),
                    Ok(report) => tracing::debug!("statistics refreshed: {report:?}"),
                    Err(e) => error!("statistics refresh: {e}"),
                }
            }
            Err(e) => {
                error!("statistics refresh failed: {e}");
                return;
            }
        }
        tokio::time::sleep(config.current().web.stats_refresh).await;
    }
}

async fn sweep_forever(config: ConfigHandle, counters: Arc<Counters>) {
    loop {
        let current = config.current();
        let interval = current.archive.sweep_interval;
        let retention = current.maillog.raw_retention;
        let raw = current.clone();
        match tokio::task::spawn_blocking(move || sweep::expire_raw_lines(&raw, SystemTime::now()))
            .await
        {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => info!(
                "raw log sweep: {n} lines older than {} deleted",
                humantime::format_duration(retention)
            ),
            Ok(Err(e)) => error!("raw log sweep: {e}"),
            Err(e) => error!("raw log sweep failed: {e}"),
        }
        if current.archive.maildir {
            match tokio::task::spawn_blocking(move || {
                sweep::expire_archive(&current, SystemTime::now(), false)
            })
            .await
            {
                Ok(Ok(report)) if !report.expired.is_empty() => {
                    Counters::add(&counters.archive_expired, report.expired.len() as u64);
                    info!(
                        "archive sweep: {} copies expired, {} kept",
                        report.expired.len(),
                        report.kept
                    );
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => error!("archive sweep: {e}"),
                Err(e) => error!("archive sweep failed: {e}"),
            }
        }
        tokio::time::sleep(interval).await;
    }
}
