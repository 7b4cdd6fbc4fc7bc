//! HTTP limits: request bodies counted while read (413 before a big body is sent), the bearer
//! token checked before the body, body/header/idle timeouts (slowloris), event-stream caps,
//! and CORS only for configured origins.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use dbtree_server::limits::HttpLimits;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::helpers::*;

/// Opens a raw connection to the test server.
async fn connect(app: &TestApp) -> TcpStream {
    let addr = app.address.trim_start_matches("http://");
    TcpStream::connect(addr).await.unwrap()
}

/// Reads one response (status, headers and JSON body) from a raw connection.
async fn read_response(stream: &mut TcpStream) -> (u16, String, Value) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = &text[..end];
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                let status = head[9..12].parse().unwrap();
                let body =
                    serde_json::from_slice(&buf[end + 4..end + 4 + length]).unwrap_or(Value::Null);
                return (status, head.to_owned(), body);
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, stream.read(&mut chunk))
            .await
            .expect("a response within 10 s")
            .expect("the response is readable");
        assert!(n > 0, "closed before a full response: {text}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn head(path: &str, extra: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n{extra}\r\n")
}

/// A declared 300 MB body is refused at once; a chunked body of unknown length is refused once
/// the limit is passed, long before the client has sent it; either way nothing is buffered.
pub(crate) async fn bodies_over_the_limit_are_413_before_they_are_sent(app: &TestApp) {
    let mut s = connect(app).await;
    s.write_all(head("/api/v1/auth/code", "content-length: 300000000\r\n").as_bytes())
        .await
        .unwrap();
    s.write_all(&[b' '; 4096]).await.unwrap();
    let (status, _, body) = read_response(&mut s).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    assert_eq!(body["details"]["limitBytes"], 65536);

    // chunked: keep sending until the answer comes
    let s = connect(app).await;
    let (mut reader, mut writer) = s.into_split();
    let sender = tokio::spawn(async move {
        writer
            .write_all(head("/api/v1/auth/code", "transfer-encoding: chunked\r\n").as_bytes())
            .await
            .unwrap();
        let chunk = format!("{:x}\r\n{}\r\n", 16384, " ".repeat(16384));
        let mut sent = 0usize;
        while sent < 300_000_000 {
            if writer.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
            sent += 16384;
        }
        sent
    });
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), reader.read(&mut buf))
        .await
        .expect("an answer while the body is still being sent")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    let sent = tokio::time::timeout(Duration::from_secs(10), sender)
        .await
        .expect("the server stops taking the body")
        .unwrap();
    assert!(
        sent < 32 * 1024 * 1024,
        "the client could push only what socket buffers hold, not the 300 MB: {sent} bytes"
    );

    // within the limit, a body is read as usual
    let ok = app
        .post(
            "/api/v1/auth/code",
            None,
            json!({ "email": "small@example.org", "padding": " ".repeat(60_000) }),
        )
        .await;
    assert_eq!(ok.0, StatusCode::ACCEPTED, "{}", ok.1);
}

/// The bearer token is checked before the body is read: a bogus token with a huge declared body
/// is 401, a valid one with the same body is 413.
pub(crate) async fn the_token_is_checked_before_the_body(app: &TestApp) {
    let support = |token: &str| {
        head(
            "/api/v1/support",
            &format!("authorization: Bearer {token}\r\ncontent-length: 300000000\r\n"),
        )
    };
    let mut s = connect(app).await;
    s.write_all(support(&"ab".repeat(32)).as_bytes())
        .await
        .unwrap();
    let (status, _, body) = read_response(&mut s).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("session_invalid"))
    );

    let mut s = connect(app).await;
    s.write_all(support("not-a-token").as_bytes())
        .await
        .unwrap();
    let (status, _, body) = read_response(&mut s).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_token"))
    );

    let token = app.sign_in("bodies@example.org").await;
    let mut s = connect(app).await;
    s.write_all(support(&token).as_bytes()).await.unwrap();
    let (status, _, body) = read_response(&mut s).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("payload_too_large"))
    );
}

/// A body that stops arriving is 408 after the body read timeout.
pub(crate) async fn a_stalled_body_is_408(app: &TestApp) {
    let mut s = connect(app).await;
    s.write_all(head("/api/v1/auth/code", "content-length: 100\r\n").as_bytes())
        .await
        .unwrap();
    s.write_all(b"{\"email\":").await.unwrap();
    let (status, head, body) = read_response(&mut s).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (408, Some("request_timeout")),
        "{head}"
    );
}

/// Connections that send headers too slowly, or nothing, are closed by the server.
pub(crate) async fn slow_and_silent_connections_are_closed(app: &TestApp) {
    let started = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..50 {
        silent.push(connect(app).await);
    }
    let mut trickling = connect(app).await;
    trickling
        .write_all(b"POST /api/v1/auth/code HTTP/1.1\r\nhost: test\r\n")
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        // one header byte every 200 ms: always active, never done
        for _ in 0..100 {
            if trickling.write_all(b"x").await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut probe = [0u8; 256];
            match tokio::time::timeout(Duration::from_millis(1), trickling.read(&mut probe)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                _ => {}
            }
        }
        false
    });
    for mut s in silent {
        let mut buf = [0u8; 64];
        let closed = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await;
        assert!(
            matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
            "a silent connection is closed"
        );
    }
    assert!(
        tokio::time::timeout(Duration::from_secs(15), trickle)
            .await
            .unwrap()
            .unwrap(),
        "a connection trickling its headers is closed"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "closed by the header timeout (1 s here), not by the client giving up"
    );
    // the server still serves
    assert_eq!(app.get("/api/v1/tree", None).await.0, StatusCode::OK);
}

fn from(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .build()
        .unwrap()
}

async fn open_stream(app: &TestApp, client: &reqwest::Client) -> reqwest::Response {
    client
        .get(format!("{}/api/v1/tree/events", app.address))
        .send()
        .await
        .unwrap()
}

/// At most `max_event_streams_per_client` per address (then 429) and `max_event_streams` in all
/// (then 503); a closed stream frees its slot.
pub(crate) async fn event_streams_are_capped(app: &TestApp) {
    let (a, b, c) = (from(1), from(2), from(3));
    let a1 = open_stream(app, &a).await;
    let a2 = open_stream(app, &a).await;
    assert_eq!((a1.status(), a2.status()), (StatusCode::OK, StatusCode::OK));
    let a3 = open_stream(app, &a).await;
    assert_eq!(a3.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a3.headers()["retry-after"], "30");
    let a3 = parts(a3).await;
    assert_problem(&a3, 429, "too_many_streams", None);
    let b1 = open_stream(app, &b).await;
    assert_eq!(b1.status(), StatusCode::OK);
    let c1 = open_stream(app, &c).await;
    assert_eq!(c1.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(c1.headers().contains_key("retry-after"));
    assert_problem(&parts(c1).await, 503, "stream_capacity_reached", None);
    assert_eq!(app.state.streams.open(), 3);
    drop(a1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.state.streams.open() > 2 {
        assert!(Instant::now() < deadline, "a closed stream frees its slot");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(open_stream(app, &c).await.status(), StatusCode::OK);
    drop((a2, b1));
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/api/v1/me", app.address),
        )
        .header("origin", origin)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap()
}

/// With no origins configured there are no CORS headers for anyone.
pub(crate) async fn no_cors_headers_without_configured_origins(app: &TestApp) {
    let evil = preflight(app, "https://evil.example").await;
    for h in evil.headers().keys() {
        assert!(
            !h.as_str().starts_with("access-control-"),
            "{h} in a preflight answer with no origins configured"
        );
    }
    let get = app
        .client
        .get(format!("{}/api/v1/tree", app.address))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(!get.headers().contains_key("access-control-allow-origin"));
}

/// A configured origin gets CORS headers; another gets none.
pub(crate) async fn cors_headers_only_for_configured_origins(app: &TestApp) {
    let ok = preflight(app, "https://app.example.org").await;
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example.org"
    );
    let allowed = ok.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization"), "{allowed}");
    let evil = preflight(app, "https://evil.example").await;
    assert!(
        !evil.headers().contains_key("access-control-allow-origin"),
        "{:?}",
        evil.headers()
    );
}

/// The limits the tests above run under.
pub(crate) fn tight() -> HttpLimits {
    HttpLimits {
        body_read_timeout: Duration::from_secs(2),
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(3),
        max_event_streams: 3,
        max_event_streams_per_client: 2,
        ..HttpLimits::default()
    }
}
