//! The pages' HTTP server: accepts connections, bounds how many are open and how long a client
//! may take to send its request headers, and never stops for a failed `accept` (the milter in
//! the same process must keep its file descriptors and keep running).

use crate::model::listen::{ACCEPT_BACKOFF, WarnEveryMinute, is_per_connection};
use axum::{Router, extract::ConnectInfo};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpListener,
    sync::Semaphore,
};
use tower_service::Service;
use tracing::{debug, warn};

/// Connections served at once; more are closed at once. Live pages hold one each (the event
/// stream), so this is a few hundred people watching, far below the process's file limit.
pub const MAX_CONNECTIONS: usize = 256;
/// Time for a client to send a request's headers, and for a kept-alive connection to start
/// its next request, and for a TLS handshake: a client that dawdles loses its connection.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections refused because [`MAX_CONNECTIONS`] were open, since start (`/metrics`).
pub static REFUSED_CONNECTIONS: AtomicU64 = AtomicU64::new(0);

/// Serves `app` on `listener` until the task is dropped: over TLS with `tls`, else plain HTTP.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<()> {
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut warnings = WarnEveryMinute::default();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) if is_per_connection(&e) => continue,
            Err(e) => {
                // EMFILE and friends: wait for descriptors to come back rather than stop.
                if warnings.due() {
                    warn!("web: accept failed: {e}; retrying");
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            REFUSED_CONNECTIONS.fetch_add(1, Ordering::Relaxed);
            if warnings.due() {
                warn!("web: {MAX_CONNECTIONS} connections open, refusing {peer} and others");
            }
            continue; // dropping the stream closes it
        };
        let app = app.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = stream.set_nodelay(true);
            match tls {
                None => serve_connection(stream, peer, app).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => serve_connection(stream, peer, app).await,
                        Ok(Err(e)) => debug!("web: TLS handshake with {peer}: {e}"),
                        Err(_) => debug!("web: TLS handshake with {peer} timed out"),
                    }
                }
            }
        });
    }
}

async fn serve_connection(
    io: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    peer: SocketAddr,
    app: Router,
) {
    let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        app.clone().call(request)
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(io), service);
    if let Err(e) = connection.await {
        debug!("web: connection from {peer}: {e}");
    }
}
