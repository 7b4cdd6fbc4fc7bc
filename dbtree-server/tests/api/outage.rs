//! Dependencies down: with the test's own Redis stopped, or its PostgreSQL cut off behind a
//! proxy, requests that need them answer `503 service_unavailable` with `Retry-After` within
//! 2 s, no rule is skipped (no code is mailed), `/readyz` is 503; when the dependency returns,
//! everything works again.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use dbtree_testkit::RedisServer;

use super::helpers::*;

/// A TCP proxy in front of PostgreSQL that can cut every connection and refuse new ones.
struct CuttableProxy {
    port: u16,
    cut: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl CuttableProxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (c, l) = (cut.clone(), links.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if c.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed at once
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                l.lock().unwrap().push(link);
            }
        });
        Self {
            port,
            cut,
            links,
            accept,
        }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// Calls the API; returns the status, the `Retry-After` header, the body and how long it took.
async fn timed(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Option<String>, Value, Duration) {
    let started = Instant::now();
    let mut request = app.client.request(method, format!("{}{path}", app.address));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = parts(response).await;
    (status, retry, body, started.elapsed())
}

fn assert_down(got: &(StatusCode, Option<String>, Value, Duration), what: &str) {
    assert_eq!(got.0, StatusCode::SERVICE_UNAVAILABLE, "{what}: {}", got.2);
    assert_eq!(got.2["code"], "service_unavailable", "{what}");
    assert_eq!(got.1.as_deref(), Some("5"), "{what}: Retry-After");
    assert!(got.3 < Duration::from_secs(2), "{what} took {:?}", got.3);
}

async fn readyz(app: &TestApp) -> StatusCode {
    app.client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap()
        .status()
}

async fn until_ready(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while readyz(app).await != StatusCode::OK {
        assert!(Instant::now() < deadline, "/readyz did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn inquiry() -> Value {
    json!({ "category": "bug", "subject": "Is it down?", "message": "Nothing works right now." })
}

pub(crate) async fn redis_down_is_503_and_back() {
    // a Redis of this test's own: stopping it affects no other test
    let mut redis = RedisServer::start().unwrap();
    let app = spawn_app_opts(
        Backend::Postgres,
        Options {
            redis_url: Some(redis.url()),
            ..Options::default()
        },
    )
    .await;
    let token = app.sign_in("outage@example.org").await;
    assert_eq!(readyz(&app).await, StatusCode::OK);

    redis.stop();
    let mails = app.mailer.sent().len();
    let code = json!({ "email": "late@example.org" });
    let session = json!({ "email": "outage@example.org", "code": "123456" });
    let post = Method::POST;
    assert_down(
        &timed(
            &app,
            post.clone(),
            "/api/v1/auth/code",
            None,
            Some(code.clone()),
        )
        .await,
        "code request",
    );
    assert_down(
        &timed(
            &app,
            post.clone(),
            "/api/v1/auth/session",
            None,
            Some(session),
        )
        .await,
        "verification",
    );
    assert_down(
        &timed(
            &app,
            post.clone(),
            "/api/v1/tree/0/quiz",
            Some(&token),
            Some(json!({})),
        )
        .await,
        "quiz start",
    );
    assert_down(
        &timed(
            &app,
            post.clone(),
            "/api/v1/support",
            Some(&token),
            Some(inquiry()),
        )
        .await,
        "support",
    );
    assert_eq!(
        app.mailer.sent().len(),
        mails,
        "no rule skipped: nothing was sent"
    );
    assert_eq!(readyz(&app).await, StatusCode::SERVICE_UNAVAILABLE);
    // what needs no Redis still works
    assert_eq!(app.get("/api/v1/me", Some(&token)).await.0, StatusCode::OK);

    redis.start_again().unwrap();
    until_ready(&app).await;
    let sent = app.post("/api/v1/auth/code", None, code).await;
    assert_eq!(sent.0, StatusCode::ACCEPTED, "{}", sent.1);
    let started = app
        .post("/api/v1/tree/0/quiz", Some(&token), json!({}))
        .await;
    assert_eq!(started.0, StatusCode::CREATED, "{}", started.1);
    let inquiry = app.post("/api/v1/support", Some(&token), inquiry()).await;
    assert_eq!(inquiry.0, StatusCode::ACCEPTED, "{}", inquiry.1);
    app.finish().await;
}

pub(crate) async fn postgres_down_is_503_and_back() {
    let url = dbtree_testkit::postgres_url();
    let options = PgConnectOptions::from_str(&url).unwrap();
    let upstream = tokio::net::lookup_host((options.get_host(), options.get_port()))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = CuttableProxy::start(upstream).await;
    let app = spawn_app_opts(
        Backend::Postgres,
        Options {
            database_port: Some(proxy.port),
            ..Options::default()
        },
    )
    .await;
    let token = app.sign_in("pgdown@example.org").await;
    assert_eq!(readyz(&app).await, StatusCode::OK);

    proxy.cut();
    let mails = app.mailer.sent().len();
    let code = json!({ "email": "late@example.org" });
    assert_down(
        &timed(
            &app,
            Method::POST,
            "/api/v1/auth/code",
            None,
            Some(code.clone()),
        )
        .await,
        "code request",
    );
    assert_down(
        &timed(&app, Method::GET, "/api/v1/tree", None, None).await,
        "the tree",
    );
    assert_down(
        &timed(&app, Method::GET, "/api/v1/me", Some(&token), None).await,
        "the profile (the session lookup)",
    );
    assert_eq!(app.mailer.sent().len(), mails, "nothing was sent");
    assert_eq!(readyz(&app).await, StatusCode::SERVICE_UNAVAILABLE);

    proxy.restore();
    until_ready(&app).await;
    let sent = app.post("/api/v1/auth/code", None, code).await;
    assert_eq!(sent.0, StatusCode::ACCEPTED, "{}", sent.1);
    assert_eq!(app.get("/api/v1/me", Some(&token)).await.0, StatusCode::OK);
    app.finish().await;
}
