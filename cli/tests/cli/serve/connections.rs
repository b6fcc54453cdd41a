//! The server's connections on loopback: silent, slow and idle clients are cut off after the
//! header timeout, heads it cannot read get a 400 or 431 with a JSON body, connections beyond the cap are closed at once
//! and the server still answers once the silent ones are gone, and stopping the server ends
//! open connections instead of waiting for them.

use std::time::{Duration, Instant};

use pixelcnn_cli::serve::Limits;
use pixelcnn_cli::serve::connections::{ConnectionLimits, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LIMITS: ConnectionLimits = ConnectionLimits {
    header_timeout: Duration::from_millis(400),
    max_connections: 3,
    max_header_bytes: 2048,
};

/// Starts the server of `mnist-class` within [`LIMITS`]; its address, and the sender that stops it.
async fn start() -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let app = super::app("mnist-class", Limits::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, app, LIMITS, async {
        let _ = stopped.await;
    }));
    (address, stop, server)
}

/// Reads from `stream` until the server closes it; the time that took and what was read.
async fn until_closed(stream: &mut TcpStream) -> (Duration, String) {
    let started = Instant::now();
    let mut text = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut text)).await;
    assert!(read.is_ok(), "the server kept the connection open for 10 s");
    (
        started.elapsed(),
        String::from_utf8_lossy(&text).into_owned(),
    )
}

const GET_MODEL: &[u8] = b"GET /api/model HTTP/1.1\r\nHost: x\r\n\r\n";

#[tokio::test]
async fn silent_slow_and_idle_clients_are_cut_off_after_the_header_timeout() {
    let (address, _stop, _server) = start().await;
    // Connects and sends nothing.
    let mut silent = TcpStream::connect(&address).await.unwrap();
    let (waited, _) = until_closed(&mut silent).await;
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    // Half a request line, then silence.
    let mut partial = TcpStream::connect(&address).await.unwrap();
    partial.write_all(b"GET /api/mo").await.unwrap();
    until_closed(&mut partial).await;
    // One byte at a time, each in time for a per-byte timer but not for the whole head.
    let mut dripping = TcpStream::connect(&address).await.unwrap();
    let started = Instant::now();
    for &byte in GET_MODEL {
        if dripping.write_all(&[byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the dripping head was not cut off"
    );
    // A whole request is answered; the connection, kept alive and then idle, is closed.
    let mut idle = TcpStream::connect(&address).await.unwrap();
    idle.write_all(GET_MODEL).await.unwrap();
    let (waited, answer) = until_closed(&mut idle).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.contains("\"levels\":4"), "{answer}");
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
}

#[tokio::test]
async fn heads_the_server_cannot_read_get_a_4xx_with_a_json_body() {
    let (address, _stop, _server) = start().await;
    let long = format!(
        "GET /api/model HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\n\r\n",
        "a".repeat(4096)
    );
    for (head, status, reason) in [
        (long.as_str(), "431", "request header fields too large"),
        ("GARBAGE\r\n\r\n", "400", "bad request"),
        (
            "GET /api/model HTTP/1.1\r\nBad Header\r\n\r\n",
            "400",
            "bad request",
        ),
    ] {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        let (_, answer) = until_closed(&mut stream).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{answer}"
        );
        assert!(
            answer.contains("content-type: application/json"),
            "{answer}"
        );
        let body = answer.split("\r\n\r\n").nth(1).unwrap();
        let error: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(
            error["error"].as_str().unwrap().contains(reason),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_once_and_service_resumes() {
    let (address, _stop, _server) = start().await;
    let mut held = Vec::new();
    for _ in 0..LIMITS.max_connections {
        held.push(TcpStream::connect(&address).await.unwrap());
    }
    // Give the server time to accept those before the next one.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut beyond = TcpStream::connect(&address).await.unwrap();
    let (waited, answer) = until_closed(&mut beyond).await;
    assert!(waited < Duration::from_millis(300), "{waited:?}");
    assert_eq!(answer, "");
    // Once the silent ones are cut off, a request is answered.
    tokio::time::sleep(LIMITS.header_timeout + Duration::from_millis(200)).await;
    let mut stream = TcpStream::connect(&address).await.unwrap();
    stream.write_all(GET_MODEL).await.unwrap();
    let (_, answer) = until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
}

#[tokio::test]
async fn stopping_ends_open_connections_instead_of_waiting_for_them() {
    let (address, stop, server) = start().await;
    let mut open = TcpStream::connect(&address).await.unwrap();
    open.write_all(b"GET /api/mo").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(2), server)
        .await
        .expect("the server stopped within 2 s")
        .unwrap();
    assert!(
        started.elapsed() < LIMITS.header_timeout,
        "{:?}",
        started.elapsed()
    );
    let (_, answer) = until_closed(&mut open).await;
    assert_eq!(answer, "");
}
