//! Background jobs on a thread of their own, each with a current-thread runtime: for loops over
//! a synchronous store connection (SQLite calls block) that must not hold up the daemon's
//! runtime, and that finish their round before they stop.

use std::{future::Future, time::Duration};
use tokio::sync::watch;

/// Told to a job when it is time to stop.
pub struct StopSignal(watch::Receiver<bool>);

impl StopSignal {
    /// Waits `period`; false when the job was told to stop meanwhile.
    pub async fn sleep(&mut self, period: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(period) => true,
            _ = self.0.changed() => false,
        }
    }
}

/// A running job; [`Periodic::stop`] ends it after the round in progress.
pub struct Periodic {
    stop: watch::Sender<bool>,
    thread: std::thread::JoinHandle<()>,
}

impl Periodic {
    /// Starts `job` on a thread named `name`; it loops itself, sleeping with
    /// [`StopSignal::sleep`].
    pub fn start<F, Fut>(name: &str, job: F) -> std::io::Result<Periodic>
    where
        F: FnOnce(StopSignal) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let (stop, stopped) = watch::channel(false);
        let label = name.to_string();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(job(StopSignal(stopped))),
                    Err(e) => tracing::error!("{label}: cannot start: {e}"),
                }
            })?;
        Ok(Periodic { stop, thread })
    }

    pub fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.thread.join();
    }
}
