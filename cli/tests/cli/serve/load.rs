//! A bounded load on loopback: a fixed number of clients, each sending a fixed number of
//! generations, completions and likelihoods over TCP, some closing their stream after the
//! first row; a client refused with the documented 503 of a full server tries again 50 ms
//! later. Every answer is a 200 or that 503, every request is served in the end, memory stays
//! bounded, and afterwards every draw slot is free again. Prints the figures
//! (`cargo test --release --test serve -- --nocapture load`).

use std::time::{Duration, Instant};

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use pixelcnn_cli::serve::Limits;
use pixelcnn_cli::serve::connections::{self, ConnectionLimits};
use serde_json::json;

const CLIENTS: usize = 6;
const REQUESTS: usize = 6;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Generate,
    Complete,
    Nll,
    Cancelled,
}

struct Outcome {
    kind: Kind,
    status: u16,
    latency: Duration,
}

/// Tries again while the server is full (503); the latency counts from the first try.
async fn served(client: &HttpClient, base: &str, kind: Kind, seed: usize) -> (Outcome, usize) {
    let started = Instant::now();
    let mut refused = 0;
    loop {
        let outcome = request(client, base, kind, seed).await;
        if outcome.status != 503 || refused == 1_000 {
            let latency = started.elapsed();
            return (Outcome { latency, ..outcome }, refused);
        }
        refused += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn request(client: &HttpClient, base: &str, kind: Kind, seed: usize) -> Outcome {
    let image = vec![0u8; 784];
    let (path, body) = match kind {
        Kind::Generate | Kind::Cancelled => {
            ("generate", json!({"n": 8, "seed": seed, "class": "all"}))
        }
        Kind::Complete => (
            "complete",
            json!({"image": image, "rows": 10, "n": 4, "seed": seed, "class": 3}),
        ),
        Kind::Nll => ("nll", json!({"image": image, "class": 3})),
    };
    let request = axum::http::Request::post(format!("{base}/api/{path}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let started = Instant::now();
    let response = client.request(request).await.unwrap();
    let status = response.status().as_u16();
    let mut body = response.into_body();
    if kind == Kind::Cancelled {
        // The first event, then close the connection.
        let _ = body.frame().await;
    } else {
        body.collect().await.unwrap();
    }
    Outcome {
        kind,
        status,
        latency: started.elapsed(),
    }
}

fn resident_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_of_concurrent_draws_on_loopback() {
    let limits = Limits::default();
    let app = super::app("mnist-class", limits);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(connections::serve(
        listener,
        app,
        ConnectionLimits::default(),
        std::future::pending(),
    ));
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let before = resident_mib();
    let kinds = [Kind::Generate, Kind::Complete, Kind::Nll, Kind::Cancelled];
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for r in 0..REQUESTS {
                    let kind = kinds[(c + r) % kinds.len()];
                    outcomes.push(served(&client, &base, kind, c * REQUESTS + r).await);
                }
                outcomes
            })
        })
        .collect();
    let all = tokio::time::timeout(Duration::from_secs(300), futures_join(tasks))
        .await
        .expect("the load ends within 5 minutes");
    let wall = started.elapsed();
    let after = resident_mib();

    let refused: usize = all.iter().map(|(_, r)| r).sum();
    let all: Vec<Outcome> = all.into_iter().map(|(o, _)| o).collect();
    let unexpected: Vec<u16> = all.iter().map(|o| o.status).filter(|&s| s != 200).collect();
    assert!(
        unexpected.is_empty(),
        "answers beyond the documented ones: {unexpected:?}"
    );
    let mut completed: Vec<Duration> = all
        .iter()
        .filter(|o| o.status == 200 && matches!(o.kind, Kind::Generate | Kind::Complete))
        .map(|o| o.latency)
        .collect();
    completed.sort();
    assert!(!completed.is_empty());
    println!(
        "load: {CLIENTS} clients × {REQUESTS} requests = {} in {:.1} s; {} draws completed, {} closed after the first row, {} likelihoods; {refused} tries refused with 503 (at most {} draws at a time) and tried again; 0 other errors",
        all.len(),
        wall.as_secs_f64(),
        completed.len(),
        all.iter().filter(|o| o.kind == Kind::Cancelled).count(),
        all.iter().filter(|o| o.kind == Kind::Nll).count(),
        limits.max_draws,
    );
    println!(
        "load: completed draws' latency p50 {:.0} ms, p90 {:.0} ms, max {:.0} ms; resident memory {before:.0} MiB before, {after:.0} MiB after",
        percentile(&completed, 0.5).as_secs_f64() * 1e3,
        percentile(&completed, 0.9).as_secs_f64() * 1e3,
        completed.last().unwrap().as_secs_f64() * 1e3,
    );
    assert!(
        after - before < 500.0,
        "memory grew from {before} to {after} MiB"
    );
    // Every slot is free again: the cancelled draws ended with their connections.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut free = 0;
    while free < limits.max_draws {
        let probes: Vec<_> = (0..limits.max_draws)
            .map(|i| {
                let (client, base) = (client.clone(), base.clone());
                tokio::spawn(async move {
                    vec![(request(&client, &base, Kind::Generate, 1000 + i).await, 0)]
                })
            })
            .collect();
        free = futures_join(probes)
            .await
            .iter()
            .filter(|(o, _)| o.status == 200)
            .count();
        assert!(
            Instant::now() < deadline,
            "draw slots stayed taken after the load"
        );
    }
}

async fn futures_join<T>(tasks: Vec<tokio::task::JoinHandle<Vec<T>>>) -> Vec<T>
where
    T: Send + 'static,
{
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_sending_gets_a_408() {
    use std::io::{Read, Write};

    let limits = Limits {
        request_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let app = super::app("mnist-class", limits);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(connections::serve(
        listener,
        app,
        ConnectionLimits::default(),
        std::future::pending(),
    ));
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // The head promises 100 bytes of body; one arrives.
        let head = "POST /api/nll HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{";
        stream.write_all(head.as_bytes()).unwrap();
        let mut answer = vec![0; 1024];
        let mut read = 0;
        while !String::from_utf8_lossy(&answer[..read]).contains('}') {
            let more = stream.read(&mut answer[read..]).expect("the server answers a stalled request");
            assert!(more > 0, "closed after {read} bytes");
            read += more;
        }
        String::from_utf8_lossy(&answer[..read]).into_owned()
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("{\"error\":\"the request did not arrive within 500ms\"}"),
        "{answer}"
    );
}
