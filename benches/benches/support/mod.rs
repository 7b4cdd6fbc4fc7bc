//! What the load harnesses share: the production router on a real port over a real store
//! (SQLite or PostgreSQL), a manual clock (so lemons regrow and cooldowns end on demand), a
//! recording mailer for sign-in codes, and the harvest race itself, timed over HTTP.

#![allow(dead_code)]

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use dbtree_adapters::memory::{
    ManualClock, MemoryCluster, MemoryQuizLock, MemoryRateLimiter, RecordingMailer,
};
use dbtree_adapters::postgres::PgStore;
use dbtree_adapters::sqlite::SqliteStore;
use dbtree_adapters::system::OsEntropy;
use dbtree_core::boundary::Store;
use dbtree_core::harvest::ClickChallenge;
use dbtree_core::ids::AttemptId;
use dbtree_core::policy::Policy;
use dbtree_core::service::{App, Deps};
use dbtree_server::live::TreeHub;
use dbtree_server::metrics::Metrics;
use dbtree_server::{ServerState, route};
use poem::listener::{Acceptor, Listener, TcpListener};
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;

/// The concurrency levels every harness measures.
pub(crate) const LEVELS: [usize; 4] = [1, 8, 64, 256];

/// Connections in each PostgreSQL pool (the store's and the bare baseline's alike).
pub(crate) const PG_POOL: u32 = 40;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// `DBTREE_BENCH_DATABASE_URL`, or a throwaway server of this bench's own (`dbtree-testkit`).
pub(crate) fn database_url() -> String {
    dbtree_testkit::bench_postgres_url()
}

/// A running server over the production router.
pub(crate) struct Server {
    pub(crate) address: String,
    pub(crate) client: reqwest::Client,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) mailer: Arc<RecordingMailer>,
    pub(crate) app: App,
    /// For PostgreSQL: the admin pool, the bench's schema, and options reaching it.
    pub(crate) pg: Option<(PgStore, String, PgConnectOptions)>,
    _dir: tempfile::TempDir,
}

/// The published numbers, except: one client address signs in many players, and sessions
/// outlive the hours the manual clock skips.
pub(crate) fn bench_policy() -> Policy {
    let mut policy = Policy::default();
    policy.auth.codes_per_hour_per_ip = 1_000_000;
    policy.auth.codes_per_hour_per_email_and_ip = 1_000_000;
    policy.auth.verifications_per_hour_per_ip = 1_000_000;
    policy.auth.session_ttl = TimeDelta::days(3650);
    policy
}

pub(crate) async fn spawn(backend: Backend) -> Server {
    let dir = tempfile::tempdir().expect("a temp dir");
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let (store, pg): (Arc<dyn Store>, _) = match backend {
        Backend::Sqlite => {
            let store = SqliteStore::open(dir.path().join("bench.sqlite"))
                .await
                .expect("open SQLite");
            store.migrate().await.expect("migrate SQLite");
            (Arc::new(store), None)
        }
        Backend::Postgres => {
            let url = database_url();
            let admin = PgStore::connect(&url, 2)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL must answer at {url}: {e}"));
            let schema = format!("bench_{}_{}", std::process::id(), backend_nonce());
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(admin.pool())
                .await
                .expect("create the bench schema");
            let options = PgConnectOptions::from_str(&url)
                .expect("a PostgreSQL URL")
                .options([("search_path", schema.as_str())]);
            let store = PgStore::connect_with(options.clone(), PG_POOL)
                .await
                .expect("connect the store");
            store.migrate().await.expect("migrate PostgreSQL");
            (
                Arc::new(store) as Arc<dyn Store>,
                Some((admin, schema, options)),
            )
        }
    };
    let mailer = Arc::new(RecordingMailer::new());
    let cluster = Arc::new(MemoryCluster::new());
    let app = App::new(Deps {
        store: store.clone(),
        quiz_lock: Arc::new(MemoryQuizLock::new(clock.clone())),
        rate_limiter: Arc::new(MemoryRateLimiter::new(clock.clone())),
        mailer: mailer.clone(),
        cluster,
        clock: clock.clone(),
        entropy: Arc::new(OsEntropy),
        policy: Arc::new(bench_policy()),
    });
    app.prepare()
        .await
        .expect("seed the quiz bank and plant the tree");
    let hub = TreeHub::new();
    hub.refresh(&app).await;
    let state = Arc::new(ServerState::new(
        app.clone(),
        "db.example.test".into(),
        hub,
        Metrics::new().expect("metrics"),
        clock.clone(),
    ));
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .expect("bind");
    let port = acceptor.local_addr()[0]
        .as_socket_addr()
        .expect("a socket address")
        .port();
    let endpoint = route(state, &[]);
    tokio::spawn(async move {
        let _ = poem::Server::new_with_acceptor(acceptor)
            .run(endpoint)
            .await;
    });
    Server {
        address: format!("http://127.0.0.1:{port}"),
        client: http_client(),
        store,
        clock,
        mailer,
        app,
        pg,
        _dir: dir,
    }
}

fn backend_nonce() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()
        .expect("an HTTP client")
}

impl Server {
    pub(crate) async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("{}{path}", self.address))
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Signs in through the API with the recorded code; returns the token.
    pub(crate) async fn sign_in(&self, email: &str) -> String {
        let (status, body) = self
            .post("/api/v1/auth/code", None, json!({ "email": email }))
            .await;
        assert_eq!(status, 202, "{body}");
        let code = self.mailer.last_code_for(email).expect("a recorded code");
        let (status, body) = self
            .post(
                "/api/v1/auth/session",
                None,
                json!({ "email": email, "code": code }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().expect("a token").to_owned()
    }

    /// Starts the quiz of `position` and answers it right (the option read from the store);
    /// returns the attempt and the harvest request that hits the circle 300 ms in.
    pub(crate) async fn answer_right(&self, token: &str, position: usize) -> (String, Value) {
        let (status, started) = self
            .post(
                &format!("/api/v1/tree/{position}/quiz"),
                Some(token),
                json!({}),
            )
            .await;
        assert_eq!(status, 201, "{started}");
        let attempt = started["attemptId"]
            .as_str()
            .expect("an attempt")
            .to_owned();
        let stored = self
            .store
            .attempt(AttemptId::from_str(&attempt).expect("a UUID"))
            .await
            .expect("the store answers")
            .expect("the attempt");
        let option = self
            .store
            .quiz(stored.quiz)
            .await
            .expect("the store answers")
            .expect("the quiz")
            .content
            .correct_option;
        let (status, answer) = self
            .post(
                &format!("/api/v1/quiz-attempts/{attempt}/answer"),
                Some(token),
                json!({ "option": option }),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        let c = &answer["challenge"];
        let number = |k: &str| c[k].as_u64().expect("a challenge number");
        let challenge = ClickChallenge {
            window_ms: number("windowMs") as u32,
            period_ms: number("periodMs") as u32,
            fx: number("fx") as u8,
            fy: number("fy") as u8,
            phase: c["phase"].as_f64().expect("a phase"),
            radius: c["radius"].as_f64().expect("a radius"),
            hit_tolerance: c["hitTolerance"].as_f64().expect("a hit tolerance"),
            lag_allowance_ms: number("lagAllowanceMs") as u32,
        };
        let (x, y) = challenge.centre_at(300.0);
        (attempt, json!({ "clickOffsetMs": 300, "x": x, "y": y }))
    }

    /// Moves the clock past every regrowth and cooldown, and regrows the tree.
    pub(crate) async fn next_hour(&self) {
        self.clock.advance(TimeDelta::minutes(61));
        self.app.tree.regrow().await.expect("regrow");
    }

    /// Drops the PostgreSQL schema.
    pub(crate) async fn finish(self) {
        if let Some((admin, schema, _)) = self.pg {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(admin.pool())
                .await;
        }
    }
}

/// Figures of one measured run.
#[derive(Clone, Debug)]
pub(crate) struct Figures {
    pub(crate) operations: usize,
    pub(crate) elapsed: Duration,
    pub(crate) latencies: Vec<Duration>,
}

impl Figures {
    pub(crate) fn new(
        operations: usize,
        elapsed: Duration,
        mut latencies: Vec<Duration>,
    ) -> Figures {
        latencies.sort();
        Figures {
            operations,
            elapsed,
            latencies,
        }
    }

    pub(crate) fn per_second(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub(crate) fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        let i = rank.clamp(1, self.latencies.len()) - 1;
        self.latencies[i].as_secs_f64() * 1000.0
    }

    pub(crate) fn summary(&self) -> String {
        format!(
            "{:>8.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms",
            self.per_second(),
            self.percentile_ms(50.0),
            self.percentile_ms(99.0)
        )
    }
}

/// Rounds of the harvest race at `clients` contenders per lemon: fewer rounds where each has
/// many attempts, so every level finishes in seconds.
pub(crate) fn race_rounds(clients: usize) -> usize {
    match clients {
        0..=1 => 100,
        2..=8 => 50,
        9..=64 => 16,
        _ => 8,
    }
}

/// The harvest race over HTTP: each round, `players` answer the quiz of the same ripe lemon
/// right (untimed), then all send their harvest at once; the round's wall time and every
/// request's latency are recorded. Asserts exactly one winner per round (200) and only
/// `lemon_already_harvested` (409) for everyone else. Returns the figures and the winners.
pub(crate) async fn http_race(
    server: &Server,
    players: &[String],
    rounds: usize,
) -> (Figures, usize) {
    let mut latencies = Vec::new();
    let mut elapsed = Duration::ZERO;
    let mut winners = 0;
    for round in 0..rounds {
        server.next_hour().await;
        let position = round % 10;
        let mut ready = Vec::with_capacity(players.len());
        let setups: Vec<_> = players
            .iter()
            .map(|token| server.answer_right(token, position))
            .collect();
        for (token, (attempt, body)) in players
            .iter()
            .zip(futures_util::future::join_all(setups).await)
        {
            ready.push((token.clone(), attempt, body));
        }
        let started = Instant::now();
        let requests = ready.into_iter().map(|(token, attempt, body)| {
            let client = server.client.clone();
            let url = format!("{}/api/v1/quiz-attempts/{attempt}/harvest", server.address);
            tokio::spawn(async move {
                let sent = Instant::now();
                let response = client
                    .post(url)
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await
                    .expect("the server answers");
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                (status, body, sent.elapsed())
            })
        });
        let outcomes = futures_util::future::join_all(requests.collect::<Vec<_>>()).await;
        elapsed += started.elapsed();
        let mut won = 0;
        for outcome in outcomes {
            let (status, body, latency) = outcome.expect("a request task");
            latencies.push(latency);
            match status {
                200 => won += 1,
                409 if body["code"] == "lemon_already_harvested" => {}
                other => panic!("unexpected harvest answer {other}: {body}"),
            }
        }
        assert_eq!(won, 1, "exactly one winner per lemon (round {round})");
        winners += won;
    }
    (
        Figures::new(players.len() * rounds, elapsed, latencies),
        winners,
    )
}

/// Signs in `n` new players concurrently.
pub(crate) async fn players(server: &Server, prefix: &str, n: usize) -> Vec<String> {
    let mut tokens = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(64) {
        let batch = chunk
            .iter()
            .map(|i| server.sign_in_owned(format!("{prefix}{i}@bench.example.org")));
        tokens.extend(futures_util::future::join_all(batch).await);
    }
    tokens
}

impl Server {
    async fn sign_in_owned(&self, email: String) -> String {
        self.sign_in(&email).await
    }
}

/// Lemons harvested according to the store (reward entries × reward).
pub(crate) async fn harvested(server: &Server) -> u64 {
    server
        .store
        .total_harvested()
        .await
        .expect("the store answers")
}
