//! The daemon: opens the store and archive, starts the store writer and the retention sweep,
//! and serves the milter until shutdown.

use crate::{
    archive::{Archive, ArchiveError},
    config::ConfigHandle,
    counters::Counters,
    milter::{self, Shared},
    recorder::Recorder,
    store::{Store, StoreError},
    sweep,
};
use std::{future::Future, io, sync::Arc, time::SystemTime};
use tracing::{error, info};

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
}

/// Runs mailtrail until `shutdown` completes. `ready` is called once the milter socket listens.
pub async fn run(
    config: ConfigHandle,
    shutdown: impl Future,
    ready: impl FnOnce(),
) -> Result<(), RunError> {
    let start = config.current();
    let store = Store::open(&start.store.path)?;
    let archive = match start.archive.maildir {
        true => Some(Arc::new(Archive::open(&start.archive.dir)?)),
        false => None,
    };
    let counters = Arc::new(Counters::default());
    let (recorder, writer) = Recorder::start(store, archive.clone(), counters.clone());
    let sweeper = archive
        .is_some()
        .then(|| tokio::spawn(sweep_forever(config.clone(), counters.clone())));

    let listener = milter::bind(&start.milter.listen)
        .await
        .map_err(|source| RunError::Listen {
            addr: start.milter.listen.to_string(),
            source,
        })?;
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
    if let Some(sweeper) = sweeper {
        sweeper.abort();
    }
    // Every session has ended, so the last recorder handle is gone: the writer commits what is
    // queued and stops.
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    info!("stopped");
    result.map_err(RunError::Milter)
}

async fn sweep_forever(config: ConfigHandle, counters: Arc<Counters>) {
    loop {
        let current = config.current();
        let interval = current.archive.sweep_interval;
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
        tokio::time::sleep(interval).await;
    }
}
