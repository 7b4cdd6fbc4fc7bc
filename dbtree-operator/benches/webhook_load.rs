//! Load harness: the webhook's `POST /validate` over TLS against a bare TLS echo server on the
//! same stack (poem + rustls, same certificate, same client), at 1, 8, 64 and 256 concurrent
//! clients, each client on its own keep-alive connection.
//!
//! `cargo bench -p dbtree-operator --bench webhook_load` (about 45 s; `DBTREE_BENCH_SECONDS` sets
//! the measured seconds per run, default 2.5). Client and servers share this machine's cores, so
//! the figures are a comparison, not a capacity plan. Exits non-zero if any answer is wrong.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/webhook/support.rs"]
mod support;
#[path = "common/webhook_cluster.rs"]
mod webhook_cluster;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dbtree_operator::webhook::server::{self, WebhookState};
use poem::{Response, Route, handler, post};
use tokio::sync::{Barrier, oneshot};

use support::Pki;
use webhook_cluster::{Cluster, LIVE_INSTANCES};

const LEVELS: [usize; 4] = [1, 8, 64, 256];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// The bare TLS echo server.
    Echo,
    /// The webhook with an empty cache: TLS, HTTP and JSON without the scan.
    WebhookEmpty,
    /// The webhook with the 2,000-instance cache.
    Webhook,
}

impl Target {
    const ALL: [Target; 3] = [Target::Echo, Target::WebhookEmpty, Target::Webhook];

    fn path(self) -> &'static str {
        match self {
            Target::Echo => "/echo",
            Target::WebhookEmpty | Target::Webhook => "/validate",
        }
    }

    fn label(self) -> String {
        match self {
            Target::Echo => "echo".to_owned(),
            Target::WebhookEmpty => "webhook, empty cache".to_owned(),
            Target::Webhook => format!("webhook, {LIVE_INSTANCES} instances"),
        }
    }
}

#[derive(Debug)]
struct Run {
    requests: usize,
    seconds: f64,
    p50_us: u64,
    p99_us: u64,
    wrong: usize,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

#[handler]
fn echo(body: Vec<u8>) -> Response {
    Response::builder()
        .content_type("application/json")
        .body(body)
}

async fn measure(
    pki: &Pki,
    addr: SocketAddr,
    target: Target,
    clients: usize,
    body: Arc<Vec<u8>>,
    seconds: f64,
) -> Run {
    let url = format!("https://localhost:{}{}", addr.port(), target.path());
    let start = Arc::new(Barrier::new(clients + 1));
    let mut tasks = Vec::with_capacity(clients);
    let deadline = Duration::from_secs_f64(seconds);
    for _ in 0..clients {
        let client = pki.client();
        let (url, body, start) = (url.clone(), body.clone(), start.clone());
        tasks.push(tokio::spawn(async move {
            // warm up: the TLS handshake and the first request happen before the clock starts
            let mut wrong = usize::from(!send(&client, &url, &body).await);
            start.wait().await;
            let began = Instant::now();
            let mut latencies = Vec::new();
            while began.elapsed() < deadline {
                let t = Instant::now();
                let ok = send(&client, &url, &body).await;
                latencies.push(t.elapsed().as_micros() as u64);
                wrong += usize::from(!ok);
            }
            (latencies, wrong)
        }));
    }
    start.wait().await;
    let began = Instant::now();
    let mut all = Vec::new();
    let mut wrong = 0;
    for task in tasks {
        let (latencies, w) = task.await.unwrap();
        all.extend(latencies);
        wrong += w;
    }
    let elapsed = began.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    Run {
        requests: all.len(),
        seconds: elapsed,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        wrong,
    }
}

/// One request; true when the answer is what the target must answer (an allowed review, or the
/// body echoed back).
async fn send(client: &reqwest::Client, url: &str, body: &[u8]) -> bool {
    let Ok(response) = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
    else {
        return false;
    };
    if !response.status().is_success() {
        return false;
    }
    match response.bytes().await {
        Ok(bytes) if bytes.as_ref() == body => true,
        Ok(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes)
            .map(|v| v["response"]["allowed"] == true)
            .unwrap_or(false),
        Err(_) => false,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let seconds: f64 = std::env::var("DBTREE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s: &f64| *s > 0.0 && *s <= 30.0)
        .unwrap_or(2.5);
    let pki = Pki::new();
    let cluster = Cluster::new();
    let tls = || {
        server::tls(
            pki.server_cert_pem.clone().into_bytes(),
            pki.server_key_pem.clone().into_bytes(),
        )
    };
    let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();

    // three servers on the same stack: poem + rustls, the same certificate
    let mut stops = Vec::new();
    let mut tasks = Vec::new();
    let mut addrs = Vec::new();
    for target in Target::ALL {
        let bound = server::bind(any_port, tls()).await.unwrap();
        addrs.push((target, bound.local_addr()));
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async {
            let _ = stopped.await;
        };
        let task = match target {
            Target::Echo => {
                tokio::spawn(bound.serve(Route::new().at("/echo", post(echo)), shutdown))
            }
            Target::WebhookEmpty => {
                let state = WebhookState::new(Cluster::empty_store(), cluster.config());
                tokio::spawn(bound.serve(server::route(state), shutdown))
            }
            Target::Webhook => {
                let state = WebhookState::new(cluster.store(), cluster.config());
                tokio::spawn(bound.serve(server::route(state), shutdown))
            }
        };
        stops.push(stop);
        tasks.push(task);
    }

    let body = Arc::new(cluster.create_body("newcomer"));
    println!(
        "webhook load: POST /validate (an allowed CREATE, {} byte body) vs a TLS echo of the same \
         body; {seconds} s per run, one keep-alive connection per client",
        body.len()
    );
    println!(
        "{:>7}  {:<28} {:>9} {:>9} {:>9}",
        "clients", "server", "req/s", "p50 µs", "p99 µs"
    );
    let mut failed = false;
    let mut ratios = Vec::new();
    let mut scan_ratios = Vec::new();
    for (level, clients) in LEVELS.into_iter().enumerate() {
        // rotate which goes first so none always gets the cooler machine
        let mut order = Target::ALL;
        order.rotate_left(level % Target::ALL.len());
        let mut runs = Vec::new();
        for target in order {
            let addr = addrs
                .iter()
                .find(|(t, _)| *t == target)
                .map(|(_, a)| *a)
                .unwrap();
            let run = measure(&pki, addr, target, clients, body.clone(), seconds).await;
            if run.wrong > 0 {
                eprintln!(
                    "{} at {clients} clients: {} wrong answers",
                    target.label(),
                    run.wrong
                );
                failed = true;
            }
            runs.push((target, run));
        }
        runs.sort_by_key(|(t, _)| Target::ALL.iter().position(|a| a == t));
        for (target, run) in &runs {
            println!(
                "{clients:>7}  {:<28} {:>9.0} {:>9} {:>9}",
                target.label(),
                run.per_second(),
                run.p50_us,
                run.p99_us
            );
        }
        let rate = |want: Target| {
            runs.iter()
                .find(|(t, _)| *t == want)
                .map(|(_, r)| r.per_second())
                .unwrap_or(0.0)
                .max(f64::MIN_POSITIVE)
        };
        ratios.push(format!(
            "{clients}: {:.2}",
            rate(Target::Webhook) / rate(Target::Echo)
        ));
        scan_ratios.push(format!(
            "{clients}: {:.2}",
            rate(Target::Webhook) / rate(Target::WebhookEmpty)
        ));
    }
    println!("ratio webhook/echo throughput: {}", ratios.join(", "));
    println!(
        "ratio webhook {LIVE_INSTANCES}/empty throughput: {}",
        scan_ratios.join(", ")
    );

    for stop in stops {
        let _ = stop.send(());
    }
    for task in tasks {
        let _ = task.await;
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
