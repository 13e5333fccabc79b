//! The milter: answers the MTA, copies each message into the archive and records its envelope.
//! Its own failures never stop mail (see `milter.on_error`).

mod callbacks;
// What mailtrail asks of the MTA, for the benchmark's empty milter to ask the same.
pub use callbacks::{NO_REPLY, REQUESTED_OPTS};
pub mod recorder;
// Public for the fuzz target that drives it stage by stage (fuzz/fuzz_targets/milter_session.rs).
pub mod session;

use crate::model::listen::{ACCEPT_BACKOFF, WarnEveryMinute, is_per_connection};
use crate::{
    archive::Archive, config::ConfigHandle, config::ListenAddr, milter::recorder::Recorder,
    model::counters::Counters,
};
use indymilter::{EitherListener, Listener};
use std::{
    future::Future,
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream, UnixListener},
};
use tracing::warn;

/// What every milter session shares.
pub struct Shared {
    pub config: ConfigHandle,
    /// `None` when `archive.maildir = false`.
    pub archive: Option<Arc<Archive>>,
    pub recorder: Recorder,
    pub counters: Arc<Counters>,
    /// What is failing now, for the pages.
    pub health: Arc<crate::model::health::Health>,
    /// The suppression list, asked at RCPT.
    pub suppression: Arc<crate::daemon::suppress::SuppressionList>,
}

/// A bound milter socket.
pub type MilterListener = Buffered<EitherListener<NoDelayListener, UnixListener>>;

/// Read buffer of a connection: a command and its macros, or a body chunk (postfix sends up to
/// 64 KB) in one `read`.
const READ_BUFFER: usize = 64 * 1024;
/// Write buffer: a reply (and the modifications of end-of-message) in one `write`.
const WRITE_BUFFER: usize = 8 * 1024;

/// A listener whose connections are buffered both ways. indymilter reads a packet as its
/// length, its command and its data (three reads), and writes a reply in three writes then
/// flushes: buffered, that is one `read` for all that arrived and one `write` per reply.
pub struct Buffered<L>(pub L);

impl<L: Listener> Listener for Buffered<L> {
    type Io = tokio::io::BufStream<L::Io>;

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Self::Io>> {
        self.0
            .poll_accept(cx)
            .map_ok(|io| tokio::io::BufStream::with_capacity(READ_BUFFER, WRITE_BUFFER, io))
    }
}

/// A TCP listener whose connections have Nagle's algorithm off. indymilter writes each reply as
/// several small writes; with Nagle on, the later ones wait for the MTA's delayed ACK (up to
/// 40 ms on Linux) and every answer to the MTA is late by that much.
pub struct NoDelayListener(TcpListener);

impl Listener for NoDelayListener {
    type Io = QuickAckStream;

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<QuickAckStream>> {
        self.0.poll_accept(cx).map_ok(|(stream, _)| {
            // Failing to set it only costs latency, never correctness.
            let _ = stream.set_nodelay(true);
            QuickAckStream(stream)
        })
    }
}

/// An MTA connection that acknowledges what it reads at once. The MTA sends some packets that
/// get no reply (macros before a command, body chunks in a row); its next write then waits, under
/// its own Nagle algorithm, for our ACK, which Linux delays (up to 40 ms) hoping to send it with a
/// reply. Quick-ack mode does not stick, so it is asked for again after every read.
pub struct QuickAckStream(TcpStream);

impl QuickAckStream {
    fn quick_ack(&self) {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: a valid socket descriptor and a c_int option of the right size; a failure
        // only costs latency.
        unsafe {
            libc::setsockopt(
                self.0.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

impl tokio::io::AsyncRead for QuickAckStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.0).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.quick_ack();
        }
        polled
    }
}

impl tokio::io::AsyncWrite for QuickAckStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Binds the configured socket; a stale unix socket file from an earlier run is replaced.
pub async fn bind(addr: &ListenAddr) -> io::Result<MilterListener> {
    match addr {
        ListenAddr::Inet(addr) => Ok(Buffered(EitherListener::Tcp(NoDelayListener(
            TcpListener::bind(addr).await?,
        )))),
        ListenAddr::Unix(path) => {
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                use std::os::unix::fs::FileTypeExt;
                if meta.file_type().is_socket() {
                    std::fs::remove_file(path)?;
                }
            }
            Ok(Buffered(EitherListener::Unix(UnixListener::bind(path)?)))
        }
    }
}

/// Serves MTA connections until `shutdown` completes; messages in flight are finished first.
pub async fn serve(
    listener: impl Listener,
    shared: Arc<Shared>,
    shutdown: impl Future,
) -> io::Result<()> {
    let current = shared.config.current();
    let listener = GuardedListener::new(
        listener,
        current.milter.max_connections,
        shared.counters.clone(),
    );
    let config = indymilter::Config {
        // The limit is the guarded listener's: indymilter would stop accepting at its own,
        // leaving the MTA's new connections waiting unanswered in the backlog.
        max_connections: usize::MAX >> 4,
        // Per read: an MTA that says nothing for this long is gone.
        connection_timeout: current.milter.idle_timeout,
        ..Default::default()
    };
    indymilter::run(listener, callbacks::callbacks(shared), config, shutdown).await
}

/// A listener that never fails: an `accept` error (out of file descriptors, say) is logged,
/// counted and retried after a pause, where indymilter would stop serving. Past
/// `max_connections` open connections, a new one is closed at once, logged and counted, so the
/// MTA applies its default action instead of waiting for an answer.
pub struct GuardedListener<L> {
    inner: L,
    max_connections: usize,
    open: Arc<AtomicUsize>,
    counters: Arc<Counters>,
    backoff: Option<Pin<Box<tokio::time::Sleep>>>,
    warnings: WarnEveryMinute,
}

impl<L: Listener> GuardedListener<L> {
    pub fn new(inner: L, max_connections: usize, counters: Arc<Counters>) -> Self {
        GuardedListener {
            inner,
            max_connections,
            open: Arc::new(AtomicUsize::new(0)),
            counters,
            backoff: None,
            warnings: WarnEveryMinute::default(),
        }
    }
}

impl<L: Listener> Listener for GuardedListener<L>
where
    L::Io: Unpin,
{
    type Io = Counted<L::Io>;

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Self::Io>> {
        loop {
            if let Some(backoff) = &mut self.backoff {
                std::task::ready!(backoff.as_mut().poll(cx));
                self.backoff = None;
            }
            match std::task::ready!(self.inner.poll_accept(cx)) {
                Ok(stream) if self.open.load(Ordering::Relaxed) >= self.max_connections => {
                    drop(stream);
                    Counters::add(&self.counters.milter_connections_refused, 1);
                    if self.warnings.due() {
                        warn!(
                            "milter: {} MTA connections open (milter.max_connections), closing new ones; the MTA applies its default action",
                            self.max_connections
                        );
                    }
                }
                Ok(stream) => {
                    self.open.fetch_add(1, Ordering::Relaxed);
                    return Poll::Ready(Ok(Counted {
                        inner: stream,
                        open: self.open.clone(),
                    }));
                }
                Err(e) if is_per_connection(&e) => {}
                Err(e) => {
                    Counters::add(&self.counters.milter_accept_errors, 1);
                    if self.warnings.due() {
                        warn!("milter: accept failed: {e}; retrying");
                    }
                    self.backoff = Some(Box::pin(tokio::time::sleep(ACCEPT_BACKOFF)));
                }
            }
        }
    }
}

/// A connection counted as open until dropped.
pub struct Counted<S> {
    inner: S,
    open: Arc<AtomicUsize>,
}

impl<S> Drop for Counted<S> {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
