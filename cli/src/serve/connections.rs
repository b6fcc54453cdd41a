//! The server's connections, bounded so that slow or silent clients cannot hold it: each
//! connection has a time limit for a request's headers, counted from when it opens or its last
//! response ends (so an idle keep-alive connection is closed too), and a size limit for them;
//! at most so many connections are open at once (more are closed as soon as they are
//! accepted); and when the server is told to stop, open connections are ended instead of
//! waited for.
//!
//! A request that hyper cannot parse (a malformed request line or header, a head over the
//! limit) never reaches the routes: hyper answers it itself with a bare 400, 414 or 431 and
//! closes the connection. `JsonErrors` gives those answers the JSON body `{"error": …}` that
//! the routes give every 4xx, so that a client reads every refusal the same way.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
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
        let io = TokioIo::new(JsonErrors::new(stream));
        let connection = builder.serve_connection(io, TowerToHyperService::new(app.clone()));
        connections.spawn(async move {
            // A connection's own failure (a timeout, a reset, a malformed request) ends only it.
            let _ = connection.await;
            drop(permit);
        });
    }
    connections.shutdown().await;
}

/// A connection whose bare client-error answers — a 4xx head with no body, which only hyper's
/// own refusals are (every 4xx of the routes has a JSON body) — are written with a JSON body.
struct JsonErrors {
    stream: TcpStream,
    /// Rewritten bytes not yet written.
    pending: Vec<u8>,
}

impl JsonErrors {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            pending: Vec::new(),
        }
    }

    /// Writes what is pending; ready once nothing is.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let written = ready!(Pin::new(&mut self.stream).poll_write(cx, &self.pending))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.drain(..written);
        }
        Poll::Ready(Ok(()))
    }
}

/// `head` with a JSON body, if it is a whole bodiless 4xx head.
fn with_json_body(head: &[u8]) -> Option<Vec<u8>> {
    const EMPTY: &str = "content-length: 0\r\n";
    // Every write of every answer passes here: the bytes' two ends decide before any more work.
    if !head.starts_with(b"HTTP/1.1 4") || !head.ends_with(b"\r\n\r\n") {
        return None;
    }
    let text = std::str::from_utf8(head).ok()?;
    let at = text.to_ascii_lowercase().find(EMPTY)?;
    let status = text.lines().next()?;
    let reason = status
        .get(13..)
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let message = format!("the request cannot be read as HTTP/1.1 ({reason})");
    let body = serde_json::json!({ "error": message }).to_string();
    let fields = format!(
        "content-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    Some(
        [&text[..at], &fields, &text[at + EMPTY.len()..], &body]
            .concat()
            .into_bytes(),
    )
}

impl AsyncRead for JsonErrors {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for JsonErrors {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.drain(cx))?;
        if let Some(rewritten) = with_json_body(buf) {
            self.pending = rewritten;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_client_error_gets_a_json_body_and_nothing_else_changes() {
        let bare =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let rewritten = String::from_utf8(with_json_body(bare).unwrap()).unwrap();
        let body = r#"{"error":"the request cannot be read as HTTP/1.1 (request header fields too large)"}"#;
        assert_eq!(
            rewritten,
            format!(
                "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\ncontent-length: {}\r\ndate: x\r\n\r\n{body}",
                body.len()
            )
        );
        for untouched in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 12\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{",
            b"{\"error\": \"x\"}",
        ] {
            assert_eq!(
                with_json_body(untouched),
                None,
                "{:?}",
                String::from_utf8_lossy(untouched)
            );
        }
    }
}
