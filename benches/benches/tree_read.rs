//! The API's read path, `GET /api/v1/tree` through the production router over the embedded
//! default store (SQLite), against a bare poem handler that returns the same JSON bytes, in the
//! same run: what routing, middleware, the store read and serialisation cost on top of HTTP.
//!
//! At 1, 8, 64 and 256 concurrent clients, each client sends requests back to back for a fixed
//! time; every response is checked (status 200, ten lemons).
//!
//! `cargo bench -p dbtree-benches --bench tree_read`.

#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Data;
use poem::{EndpointExt, Response, Route, handler};
use support::{Backend, Figures, LEVELS, http_client, spawn};

const RUN: Duration = Duration::from_secs(3);

#[handler]
fn same_json(body: Data<&bytes::Bytes>) -> Response {
    Response::builder()
        .content_type("application/json; charset=utf-8")
        .body(body.0.clone())
}

/// `clients` loops of `GET url` for `RUN`; checks each body holds ten lemons.
async fn load(url: &str, clients: usize) -> Figures {
    let client = http_client();
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (client, url) = (client.clone(), url.to_owned());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while started.elapsed() < RUN {
                    let sent = Instant::now();
                    let response = client.get(&url).send().await.expect("an answer");
                    assert_eq!(response.status().as_u16(), 200);
                    let body = response.bytes().await.expect("a body");
                    latencies.push(sent.elapsed());
                    let tree: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
                    assert_eq!(tree["lemons"].as_array().map(Vec::len), Some(10));
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in futures_util::future::join_all(tasks).await {
        latencies.extend(t.expect("a client task"));
    }
    Figures::new(latencies.len(), started.elapsed(), latencies)
}

#[tokio::main]
async fn main() {
    let server = spawn(Backend::Sqlite).await;
    let api = format!("{}/api/v1/tree", server.address);
    let body = http_client()
        .get(&api)
        .send()
        .await
        .expect("the API answers")
        .bytes()
        .await
        .expect("a body");
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .expect("bind");
    let port = acceptor.local_addr()[0]
        .as_socket_addr()
        .expect("a socket address")
        .port();
    let bare = Route::new()
        .at("/api/v1/tree", same_json)
        .data(body.clone());
    tokio::spawn(async move {
        let _ = poem::Server::new_with_acceptor(acceptor).run(bare).await;
    });
    let bare_url = format!("http://127.0.0.1:{port}/api/v1/tree");
    println!(
        "GET /api/v1/tree: production router + SQLite vs a bare poem handler ({} bytes of the same JSON), {} s per side",
        body.len(),
        RUN.as_secs()
    );
    println!(
        "{:>7}  {:<44}  {:<44}  {:>10}  {:>9}",
        "clients", "api (requests/s, latency)", "bare handler", "throughput", "p50"
    );
    let _ = load(&api, 8).await; // warm-up
    for clients in LEVELS {
        let api_figures = load(&api, clients).await;
        let bare_figures = load(&bare_url, clients).await;
        println!(
            "{clients:>7}  {:<44}  {:<44}  {:>9.3}x  {:>8.2}x",
            api_figures.summary(),
            bare_figures.summary(),
            api_figures.per_second() / bare_figures.per_second(),
            api_figures.percentile_ms(50.0) / bare_figures.percentile_ms(50.0).max(1e-6),
        );
        println!(
            "ratio line: clients={clients} api/bare throughput {:.3}",
            api_figures.per_second() / bare_figures.per_second()
        );
    }
    server.finish().await;
}
