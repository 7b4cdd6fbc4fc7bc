//! `GET /api/v1/tree/events`: every lemon first, then each change within a second.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;

use super::helpers::*;

/// Reads server-sent events until `want` lemon events arrived or the deadline passed.
async fn read_events(
    stream: &mut (impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    buffer: &mut String,
    want: usize,
    deadline: Duration,
) -> Vec<Value> {
    let until = Instant::now() + deadline;
    let mut events = Vec::new();
    while events.len() < want {
        let Some(left) = until.checked_duration_since(Instant::now()) else {
            break;
        };
        let Ok(Some(chunk)) = tokio::time::timeout(left, stream.next()).await else {
            break;
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            for line in frame.lines() {
                if let Some(data) = line.strip_prefix("data:") {
                    events.push(serde_json::from_str(data.trim()).unwrap());
                }
            }
        }
    }
    events
}

pub(crate) async fn a_harvest_reaches_watchers_within_a_second(app: &TestApp) {
    let response = app
        .client
        .get(format!("{}/api/v1/tree/events", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let snapshot = read_events(&mut stream, &mut buffer, 10, Duration::from_secs(5)).await;
    assert_eq!(snapshot.len(), 10, "every lemon first");
    assert!(snapshot.iter().all(|l| l["state"] == "ripe"));

    let token = app.sign_in("watcher@example.org").await;
    let harvested_at = Instant::now();
    app.win(&token, 3).await;
    let change = read_events(&mut stream, &mut buffer, 1, Duration::from_secs(1)).await;
    assert_eq!(change.len(), 1, "the change arrived within a second");
    assert_eq!(
        (change[0]["position"].as_u64(), change[0]["state"].as_str()),
        (Some(3), Some("regrowing"))
    );
    assert!(harvested_at.elapsed() < Duration::from_millis(1500));
}
