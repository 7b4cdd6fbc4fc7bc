//! The backends the contract suite runs against, each in an isolated namespace: memory, SQLite
//! (a temporary file), PostgreSQL (a fresh schema on this test binary's throwaway server, or on
//! `DBTREE_TEST_DATABASE_URL`) and Redis (a random key prefix on this binary's throwaway server,
//! or on `DBTREE_TEST_REDIS_URL`); see `dbtree-testkit`. A server that cannot be had makes the
//! tests fail: nothing is skipped.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::TimeDelta;
use dbtree_adapters::memory::{ManualClock, MemoryQuizLock, MemoryRateLimiter, MemoryStore};
use dbtree_adapters::postgres::PgStore;
use dbtree_adapters::redis::{RedisQuizLock, RedisRateLimiter, connect};
use dbtree_adapters::sql::InvariantReport;
use dbtree_adapters::sqlite::SqliteStore;
use dbtree_core::boundary::{QuizLock, RateLimiter, Store};
use sqlx::postgres::PgConnectOptions;

pub(crate) use dbtree_testkit::{postgres_url, redis_url};

/// A name no other test run uses.
pub(crate) fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{prefix}_{}_{:x}_{}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A store under test, with a second independent handle on the same data (another pool, as a
/// second server replica would have) and its invariant checker.
pub(crate) struct StoreEnv {
    pub store: Arc<dyn Store>,
    pub second: Arc<dyn Store>,
    kind: Kind,
}

enum Kind {
    Memory,
    Sqlite {
        store: SqliteStore,
        _dir: tempfile::TempDir,
    },
    Postgres {
        store: PgStore,
        admin: PgStore,
        schema: String,
    },
}

impl StoreEnv {
    pub(crate) async fn memory() -> Self {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        Self {
            second: store.clone(),
            store,
            kind: Kind::Memory,
        }
    }

    pub(crate) async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("dbtree.sqlite");
        let first = SqliteStore::open(&path).await.expect("open SQLite");
        first.migrate().await.expect("migrate SQLite");
        let second = SqliteStore::open(&path).await.expect("open SQLite twice");
        Self {
            store: Arc::new(first.clone()),
            second: Arc::new(second),
            kind: Kind::Sqlite {
                store: first,
                _dir: dir,
            },
        }
    }

    pub(crate) async fn postgres() -> Self {
        let url = postgres_url();
        let admin = PgStore::connect(&url, 2)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL must answer at {url}: {e}"));
        let schema = unique("contract");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(admin.pool())
            .await
            .expect("create a test schema");
        let options = PgConnectOptions::from_str(&url)
            .expect("URL")
            .options([("search_path", schema.as_str())]);
        let first = PgStore::connect_with(options.clone(), 16)
            .await
            .expect("connect");
        first.migrate().await.expect("migrate PostgreSQL");
        let second = PgStore::connect_with(options, 16)
            .await
            .expect("connect a second pool");
        Self {
            store: Arc::new(first.clone()),
            second: Arc::new(second),
            kind: Kind::Postgres {
                store: first,
                admin,
                schema,
            },
        }
    }

    /// Runs the live-database invariant checker (memory has none: `None`).
    pub(crate) async fn invariants(&self) -> Option<InvariantReport> {
        match &self.kind {
            Kind::Memory => None,
            Kind::Sqlite { store, .. } => {
                Some(store.check_invariants().await.expect("check SQLite"))
            }
            Kind::Postgres { store, .. } => {
                Some(store.check_invariants().await.expect("check PostgreSQL"))
            }
        }
    }

    /// Runs raw SQL on the database behind the store (to corrupt it on purpose); `Err` carries
    /// the database's refusal. Memory has no SQL: `None`.
    pub(crate) async fn raw(&self, statement: &str) -> Option<Result<u64, String>> {
        let statement = sqlx::AssertSqlSafe(statement.to_owned());
        match &self.kind {
            Kind::Memory => None,
            Kind::Sqlite { store, .. } => Some(
                sqlx::query(statement)
                    .execute(store.pool())
                    .await
                    .map(|r| r.rows_affected())
                    .map_err(|e| e.to_string()),
            ),
            Kind::Postgres { store, .. } => Some(
                sqlx::query(statement)
                    .execute(store.pool())
                    .await
                    .map(|r| r.rows_affected())
                    .map_err(|e| e.to_string()),
            ),
        }
    }

    /// Drops what the test created.
    pub(crate) async fn cleanup(self) {
        if let Kind::Postgres {
            store,
            admin,
            schema,
        } = self.kind
        {
            store.pool().close().await;
            drop((self.store, self.second));
            let drop_schema = format!("DROP SCHEMA {schema} CASCADE");
            let _ = sqlx::query(sqlx::AssertSqlSafe(drop_schema))
                .execute(admin.pool())
                .await;
        }
    }
}

/// A quiz lock and rate limiter under test, and a way to let time pass for them.
pub(crate) struct CoordinationEnv {
    pub lock: Arc<dyn QuizLock>,
    pub limiter: Arc<dyn RateLimiter>,
    clock: Option<Arc<ManualClock>>,
}

impl CoordinationEnv {
    pub(crate) async fn memory() -> Self {
        let clock = Arc::new(ManualClock::fixed());
        Self {
            lock: Arc::new(MemoryQuizLock::new(clock.clone())),
            limiter: Arc::new(MemoryRateLimiter::new(clock.clone())),
            clock: Some(clock),
        }
    }

    pub(crate) async fn redis() -> Self {
        let url = redis_url();
        let conn = connect(&url)
            .await
            .unwrap_or_else(|e| panic!("Redis must answer at {url}: {e}"));
        let prefix = format!("{}:", unique("contract"));
        Self {
            lock: Arc::new(RedisQuizLock::new(conn.clone(), prefix.clone())),
            limiter: Arc::new(RedisRateLimiter::new(conn, prefix)),
            clock: None,
        }
    }

    /// Lets `by` pass: moves the manual clock, or sleeps for real against Redis.
    pub(crate) async fn wait(&self, by: TimeDelta) {
        match &self.clock {
            Some(clock) => clock.advance(by),
            None => tokio::time::sleep(by.to_std().unwrap_or_default()).await,
        }
    }
}
