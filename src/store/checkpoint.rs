//! Checkpointing the write-ahead log from a second connection, so that the connection that
//! writes (the milter's recorder, an import) never copies the log into the database itself.

use super::Store;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;
use tracing::warn;

/// A thread that runs a passive checkpoint (it neither waits for nor blocks readers and
/// writers) every `every`, and a last one when stopped.
pub struct BackgroundCheckpoint {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl BackgroundCheckpoint {
    /// `checkpointer`: a connection of its own to the store.
    pub fn start(mut checkpointer: Store, every: Duration) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    if let Err(e) = checkpointer.checkpoint_passive() {
                        warn!("store checkpoint: {e}");
                    }
                }
                // A last one, so the log does not grow across restarts.
                let _ = checkpointer.checkpoint_passive();
            })?;
        Ok(BackgroundCheckpoint {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops the thread after its last checkpoint.
    pub fn stop(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for BackgroundCheckpoint {
    fn drop(&mut self) {
        self.finish();
    }
}
