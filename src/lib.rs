//! mailtrail: a delivery companion for sendmail and postfix.
//!
//! [`run`] is the daemon: the milter that archives every outbound message and records its
//! envelope, the log follower that records every delivery attempt, the policy tick, the
//! retention sweeps, the weekly summary and the status pages. The commands are in [`cli`];
//! `main.rs` parses arguments and calls one or the other.
//!
//! Layers (see `docs/architecture.md`): leaf modules (`model`, `config`, `bounce`, `policy`,
//! `stats`, `maillog`), I/O components (`archive`, `store`, `milter`, `tracking`, `notify`,
//! `mta`), `render`, and the entry points (`daemon`, `web`, `cli`), which import none of each
//! other: they meet only here and in `main.rs`.

pub mod archive;
pub mod bounce;
pub mod cli;
pub mod config;
pub mod maillog;
pub mod milter;
pub mod model;
pub mod mta;
pub mod notify;
pub mod policy;
pub mod render;
pub mod stats;
pub mod store;
pub mod suppression;
pub mod tracking;
pub mod web;

mod daemon;

pub use daemon::DaemonError;

use config::ConfigHandle;
use std::future::Future;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error("web: {0}")]
    Web(#[from] web::WebError),
}

/// Serves the dashboard (the pages over the fleet database) until `shutdown` completes.
pub async fn dashboard(
    config: ConfigHandle,
    local_offset: time::UtcOffset,
    shutdown: impl Future,
) -> Result<(), RunError> {
    let reports = async {
        let fleet = config.current().fleet.clone();
        match fleet.map(|f| store::fleet::FleetReader::new(&f)) {
            Some(Ok(reader)) => {
                notify::weekly::schedule_fleet(config.clone(), local_offset, reader).await
            }
            // The pages say what is wrong with [fleet]; nothing to schedule without it.
            _ => std::future::pending().await,
        }
    };
    tokio::select! {
        served = web::dashboard(config.clone(), local_offset) => Ok(served?),
        _ = reports => Ok(()),
        _ = shutdown => Ok(()),
    }
}

/// Runs mailtrail until `shutdown` completes: the daemon, with the status pages beside it when
/// `[web] enabled`. `ready` is called once the milter socket listens; `local_offset` is the
/// server's UTC offset, read by the caller at start (it cannot be read safely once threads run).
pub async fn run(
    config: ConfigHandle,
    local_offset: time::UtcOffset,
    shutdown: impl Future,
    ready: impl FnOnce(),
) -> Result<(), RunError> {
    // What the milter finds failing, the pages say.
    let health = std::sync::Arc::new(model::health::Health::default());
    let mut beside: Vec<daemon::Beside> = Vec::new();
    if let Some(pages) = web::pages(config.clone(), local_offset, health.clone())? {
        beside.push(Box::pin(pages));
    }
    Ok(daemon::run(config, local_offset, health, beside, shutdown, ready).await?)
}
