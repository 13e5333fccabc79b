//! What both listeners, the milter's and the pages', do with a failed `accept`, and how often
//! they warn about it: one policy, so neither can stop or flood the log differently.

use std::time::{Duration, Instant};

/// Pause after an `accept` that failed for lack of resources (file descriptors, memory).
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(250);

/// Whether a failed `accept` concerns one connection only (the client gave up before it was
/// accepted): the next one is accepted at once, without a pause.
pub fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    )
}

/// At most one warning a minute about refused connections or failed accepts.
#[derive(Debug, Default)]
pub struct WarnEveryMinute {
    last: Option<Instant>,
}

impl WarnEveryMinute {
    const EVERY: Duration = Duration::from_secs(60);

    /// Whether to warn now; a true answer starts the next minute of silence.
    pub fn due(&mut self) -> bool {
        let due = self.last.is_none_or(|at| at.elapsed() >= Self::EVERY);
        if due {
            self.last = Some(Instant::now());
        }
        due
    }
}
