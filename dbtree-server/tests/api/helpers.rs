//! `spawn_app()`: the production router on a real port over a real store, with a manual clock,
//! a recording mailer and a simulated cluster; and typed request helpers.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use dbtree_adapters::memory::{
    ManualClock, MemoryCluster, MemoryQuizLock, MemoryRateLimiter, RecordingMailer,
};
use dbtree_adapters::postgres::PgStore;
use dbtree_adapters::redis::{RedisQuizLock, RedisRateLimiter, connect};
use dbtree_adapters::sqlite::SqliteStore;
use dbtree_adapters::system::OsEntropy;
use dbtree_core::auth::Email;
use dbtree_core::boundary::{PostRequest, QuizLock, RateLimiter, Store};
use dbtree_core::ids::AttemptId;
use dbtree_core::ledger::{EntryKind, IdempotencyKey};
use dbtree_core::lemons::Lemons;
use dbtree_core::policy::Policy;
use dbtree_core::service::{App, Deps};
use dbtree_server::jobs::{self, Schedule};
use dbtree_server::limits::HttpLimits;
use dbtree_server::live::TreeHub;
use dbtree_server::metrics::Metrics;
use dbtree_server::readiness::Readiness;
use dbtree_server::{ServerState, route, serve};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Where the walk runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    /// The embedded default: SQLite, in-process locks and limits.
    Sqlite,
    /// Production: PostgreSQL and Redis.
    Postgres,
}

pub(crate) const ADMIN: &str = "admin@example.org";

/// A running server and handles on its insides.
pub(crate) struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub clock: Arc<ManualClock>,
    pub mailer: Arc<RecordingMailer>,
    pub cluster: Arc<MemoryCluster>,
    pub state: Arc<ServerState>,
    stop: watch::Sender<bool>,
    cleanup: Option<(PgStore, String)>,
    _dir: tempfile::TempDir,
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{prefix}_{}_{:x}_{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The policy of the tests: published numbers, but one client address may sign in many users.
pub(crate) fn test_policy() -> Policy {
    let mut policy = Policy::default();
    policy.auth.codes_per_hour_per_ip = 10_000;
    policy.auth.codes_per_hour_per_email_and_ip = 10_000;
    policy.auth.verifications_per_hour_per_ip = 10_000;
    policy.auth.admin_emails = vec![Email::parse(ADMIN).unwrap()];
    policy.auth.code_key = dbtree_core::auth::CodeKey::from_bytes([0x5a; 32]);
    policy
}

/// How a test server differs from the default one.
pub(crate) struct Options {
    pub policy: Policy,
    pub limits: HttpLimits,
    /// Redis for the PostgreSQL backend (default: the test binary's, `dbtree_testkit`).
    pub redis_url: Option<String>,
    /// Reach PostgreSQL's store through this local port (a proxy) instead.
    pub database_port: Option<u16>,
    pub cors_origins: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            policy: test_policy(),
            limits: HttpLimits::default(),
            redis_url: None,
            database_port: None,
            cors_origins: Vec::new(),
        }
    }
}

pub(crate) async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, test_policy()).await
}

/// Storage, coordination, what to drop afterwards, and what `/readyz` checks.
type Backing = (
    Arc<dyn Store>,
    Arc<dyn QuizLock>,
    Arc<dyn RateLimiter>,
    Option<(PgStore, String)>,
    Readiness,
);

pub(crate) async fn spawn_app_with(backend: Backend, policy: Policy) -> TestApp {
    spawn_app_opts(
        backend,
        Options {
            policy,
            ..Options::default()
        },
    )
    .await
}

pub(crate) async fn spawn_app_opts(backend: Backend, options: Options) -> TestApp {
    let Options {
        policy,
        limits,
        redis_url,
        database_port,
        cors_origins,
    } = options;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let (store, quiz_lock, rate_limiter, cleanup, readiness): Backing = match backend {
        Backend::Sqlite => {
            let store = SqliteStore::open(dir.path().join("api.sqlite"))
                .await
                .unwrap();
            store.migrate().await.unwrap();
            (
                Arc::new(store),
                Arc::new(MemoryQuizLock::new(clock.clone())),
                Arc::new(MemoryRateLimiter::new(clock.clone())),
                None,
                Readiness::default(),
            )
        }
        Backend::Postgres => {
            let url = dbtree_testkit::postgres_url();
            let admin = PgStore::connect(&url, 2)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL must answer at {url}: {e}"));
            let schema = unique("api");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(admin.pool())
                .await
                .unwrap();
            let mut options = PgConnectOptions::from_str(&url)
                .unwrap()
                .options([("search_path", schema.as_str())]);
            if let Some(port) = database_port {
                options = options.host("127.0.0.1").port(port);
            }
            let store = PgStore::connect_with(options, 40).await.unwrap();
            store.migrate().await.unwrap();
            let redis_url = redis_url.unwrap_or_else(dbtree_testkit::redis_url);
            let conn = connect(&redis_url)
                .await
                .unwrap_or_else(|e| panic!("Redis must answer at {redis_url}: {e}"));
            let prefix = format!("{schema}:");
            (
                Arc::new(store),
                Arc::new(RedisQuizLock::new(conn.clone(), prefix.clone())),
                Arc::new(RedisRateLimiter::new(conn.clone(), prefix)),
                Some((admin, schema)),
                Readiness::with_redis(conn),
            )
        }
    };
    let mailer = Arc::new(RecordingMailer::new());
    let cluster = Arc::new(MemoryCluster::new());
    let deps = Deps {
        store: store.clone(),
        quiz_lock,
        rate_limiter,
        mailer: mailer.clone(),
        cluster: cluster.clone(),
        clock: clock.clone(),
        entropy: Arc::new(OsEntropy),
        policy: Arc::new(policy),
    };
    let app = App::new(deps);
    app.prepare().await.unwrap();
    let hub = TreeHub::new();
    hub.refresh(&app).await;
    let metrics = Metrics::new().unwrap();
    let state = Arc::new(
        ServerState::new(
            app.clone(),
            "db.example.test".into(),
            hub.clone(),
            metrics.clone(),
            clock.clone(),
        )
        .with_limits(limits)
        .with_readiness(readiness),
    );
    let (stop, shutdown) = watch::channel(false);
    let rare = Duration::from_secs(24 * 3600);
    jobs::spawn(
        app,
        cluster.clone(),
        hub,
        metrics,
        Schedule {
            regrowth: rare,
            billing: rare,
            cleanup: rare,
            resync: rare,
        },
        shutdown,
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let endpoint = route(state.clone(), &cors_origins);
    let mut stopped = stop.subscribe();
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        let _ = serve::serve(listener, endpoint, limits, shutdown, Duration::from_secs(1)).await;
    });
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .unwrap(),
        store,
        clock,
        mailer,
        cluster,
        state,
        stop,
        cleanup,
        _dir: dir,
    }
}

/// A response's status and JSON body.
pub(crate) async fn parts(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// Asserts an error response: status, code, and (if given) the field named in `details.field`.
pub(crate) fn assert_problem(
    got: &(StatusCode, Value),
    status: u16,
    code: &str,
    field: Option<&str>,
) {
    assert_eq!(got.0.as_u16(), status, "{}", got.1);
    assert_eq!(got.1["code"], code, "{}", got.1);
    assert!(
        got.1["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        got.1
    );
    if let Some(field) = field {
        assert_eq!(got.1["details"]["field"], field, "{}", got.1);
        assert!(
            got.1["message"]
                .as_str()
                .unwrap_or("")
                .contains(field.split('.').next_back().unwrap_or(field)),
            "the message must name {field}: {}",
            got.1
        );
    }
}

impl TestApp {
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        parts(request.send().await.unwrap()).await
    }

    pub(crate) async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call(Method::GET, path, token, None).await
    }

    pub(crate) async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> (StatusCode, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub(crate) async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    pub(crate) async fn raw_post(
        &self,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.address))
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        parts(response).await
    }

    /// Signs in through the API with the code from the recorded mail; returns the token.
    pub(crate) async fn sign_in(&self, email: &str) -> String {
        let sent = self
            .post("/api/v1/auth/code", None, json!({ "email": email }))
            .await;
        assert_eq!(sent.0, StatusCode::ACCEPTED, "{}", sent.1);
        let code = self.mailer.last_code_for(email).unwrap();
        let session = self
            .post(
                "/api/v1/auth/session",
                None,
                json!({ "email": email, "code": code }),
            )
            .await;
        assert_eq!(session.0, StatusCode::CREATED, "{}", session.1);
        session.1["token"].as_str().unwrap().to_owned()
    }

    /// The right option of an attempt's quiz (the test's cheat sheet).
    pub(crate) async fn correct_option(&self, attempt: &str) -> u8 {
        let attempt = self
            .store
            .attempt(AttemptId::from_str(attempt).unwrap())
            .await
            .unwrap()
            .unwrap();
        self.store
            .quiz(attempt.quiz)
            .await
            .unwrap()
            .unwrap()
            .content
            .correct_option
    }

    /// Starts the quiz of `position` and answers it right; returns the attempt id and challenge.
    pub(crate) async fn answer_right(&self, token: &str, position: u8) -> (String, Value) {
        let started = self
            .post(
                &format!("/api/v1/tree/{position}/quiz"),
                Some(token),
                json!({}),
            )
            .await;
        assert_eq!(started.0, StatusCode::CREATED, "{}", started.1);
        let attempt = started.1["attemptId"].as_str().unwrap().to_owned();
        let option = self.correct_option(&attempt).await;
        let answer = self
            .post(
                &format!("/api/v1/quiz-attempts/{attempt}/answer"),
                Some(token),
                json!({ "option": option }),
            )
            .await;
        assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);
        (attempt, answer.1["challenge"].clone())
    }

    /// Wins `position`: answers right and clicks the circle's centre.
    pub(crate) async fn win(&self, token: &str, position: u8) -> Value {
        let (attempt, challenge) = self.answer_right(token, position).await;
        self.clock.advance_ms(700);
        let harvest = self
            .post(
                &format!("/api/v1/quiz-attempts/{attempt}/harvest"),
                Some(token),
                click(&challenge, 600),
            )
            .await;
        assert_eq!(harvest.0, StatusCode::OK, "{}", harvest.1);
        harvest.1
    }

    /// Grants lemons to a signed-in user directly in the ledger (as an administrator would).
    pub(crate) async fn grant(&self, token: &str, amount: u32) {
        let who = self
            .state
            .app
            .accounts
            .authenticate(token)
            .await
            .unwrap()
            .user;
        let user = self.store.user(who.id).await.unwrap().unwrap();
        let request = PostRequest {
            user: user.id,
            kind: EntryKind::AdminGrant,
            amount: Lemons::new(amount),
            key: IdempotencyKey::admin_grant(&unique("grant").replace('_', "-")).unwrap(),
            instance: None,
            at: chrono::Utc::now(),
        };
        self.store
            .post(&request, &test_policy().ledger)
            .await
            .unwrap();
    }

    /// Stops the jobs and drops the test's PostgreSQL schema.
    pub(crate) async fn finish(self) {
        let _ = self.stop.send(true);
        if let Some((admin, schema)) = self.cleanup {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(admin.pool())
                .await;
        }
    }
}

/// A click on the challenge's circle `offset_ms` after it appeared.
pub(crate) fn click(challenge: &Value, offset_ms: i64) -> Value {
    let c = dbtree_core::harvest::ClickChallenge {
        window_ms: challenge["windowMs"].as_u64().unwrap() as u32,
        period_ms: challenge["periodMs"].as_u64().unwrap() as u32,
        fx: challenge["fx"].as_u64().unwrap() as u8,
        fy: challenge["fy"].as_u64().unwrap() as u8,
        phase: challenge["phase"].as_f64().unwrap(),
        radius: challenge["radius"].as_f64().unwrap(),
        hit_tolerance: challenge["hitTolerance"].as_f64().unwrap(),
        lag_allowance_ms: challenge["lagAllowanceMs"].as_u64().unwrap() as u32,
    };
    let (x, y) = c.centre_at(offset_ms as f64);
    json!({ "clickOffsetMs": offset_ms, "x": x, "y": y })
}
