//! The milter: answers the MTA, copies each message into the archive and records its envelope.
//! Its own failures never stop mail (see `milter.on_error`).

mod callbacks;
mod session;

use crate::{
    archive::Archive, config::ConfigHandle, config::ListenAddr, counters::Counters,
    recorder::Recorder,
};
use indymilter::{EitherListener, Listener};
use std::{
    future::Future,
    io,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};
use tokio::net::{TcpListener, TcpStream, UnixListener};

pub use session::strip_brackets;

/// What every milter session shares.
pub struct Shared {
    pub config: ConfigHandle,
    /// `None` when `archive.maildir = false`.
    pub archive: Option<Arc<Archive>>,
    pub recorder: Recorder,
    pub counters: Arc<Counters>,
}

/// A bound milter socket.
pub type MilterListener = EitherListener<NoDelayListener, UnixListener>;

/// A TCP listener whose connections have Nagle's algorithm off. indymilter writes each reply as
/// several small writes; with Nagle on, the later ones wait for the MTA's delayed ACK (up to
/// 40 ms on Linux) and every answer to the MTA is late by that much.
pub struct NoDelayListener(TcpListener);

impl Listener for NoDelayListener {
    type Io = TcpStream;

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<TcpStream>> {
        self.0.poll_accept(cx).map_ok(|(stream, _)| {
            // Failing to set it only costs latency, never correctness.
            let _ = stream.set_nodelay(true);
            stream
        })
    }
}

/// Binds the configured socket; a stale unix socket file from an earlier run is replaced.
pub async fn bind(addr: &ListenAddr) -> io::Result<MilterListener> {
    match addr {
        ListenAddr::Inet(addr) => Ok(EitherListener::Tcp(NoDelayListener(
            TcpListener::bind(addr).await?,
        ))),
        ListenAddr::Unix(path) => {
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                use std::os::unix::fs::FileTypeExt;
                if meta.file_type().is_socket() {
                    std::fs::remove_file(path)?;
                }
            }
            Ok(EitherListener::Unix(UnixListener::bind(path)?))
        }
    }
}

/// Serves MTA connections until `shutdown` completes; messages in flight are finished first.
pub async fn serve(
    listener: impl Listener,
    shared: Arc<Shared>,
    shutdown: impl Future,
) -> io::Result<()> {
    let max_connections = shared.config.current().milter.max_connections;
    let config = indymilter::Config {
        max_connections,
        // The MTA's own milter timeouts are shorter; this only reaps dead connections.
        connection_timeout: Duration::from_secs(7210),
        ..Default::default()
    };
    indymilter::run(listener, callbacks::callbacks(shared), config, shutdown).await
}
