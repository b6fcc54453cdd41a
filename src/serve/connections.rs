//! The server's connections, bounded so that slow or silent clients cannot hold it: each
//! connection has a time limit for a request's headers, counted from when it opens or its last
//! response ends (so an idle keep-alive connection is closed too), and a size limit for them;
//! at most so many connections are open at once (more are closed as soon as they are
//! accepted); and when the server is told to stop, open connections are ended instead of
//! waited for.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Limits on the server's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ConnectionLimits {
    /// Time a client has to send a request's headers, from when its connection opens or its
    /// previous response ends.
    pub header_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Largest request head (request line and headers); a larger one gets a 431.
    pub max_header_bytes: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            max_connections: 128,
            max_header_bytes: 16 * 1024,
        }
    }
}

/// How long the server waits before accepting again after an accept failed (most often for
/// want of file descriptors, which closing connections frees).
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);

/// Serves `app` on `listener` within `limits` until `stop` completes; then ends every open
/// connection, requests in progress included.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    stop: impl Future<Output = ()>,
) {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_bytes);
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            () = &mut stop => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                    continue;
                }
            },
        };
        // Beyond the cap the stream is dropped, which closes it.
        let Ok(permit) = open.clone().try_acquire_owned() else {
            continue;
        };
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        connections.spawn(async move {
            // A connection's own failure (a timeout, a reset, a malformed request) ends only it.
            let _ = connection.await;
            drop(permit);
        });
    }
    connections.shutdown().await;
}
