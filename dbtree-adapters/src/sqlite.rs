//! `SqliteStore`: every store trait on SQLite, the embedded default (one process, one file).
//!
//! Concurrency strategy: SQLite admits one writer at a time, so every operation that may write
//! runs in a transaction opened with `BEGIN IMMEDIATE`, which takes the database's write lock
//! before the first read. Such a transaction decides on data no other writer can change until it
//! commits, which makes each operation atomic with no row locks, advisory locks or conditional
//! retries: the decisions PostgreSQL serialises with `FOR UPDATE` and advisory locks (balances,
//! capacity, NodePorts, the tree) are serialised here by the write lock. The harvest claim still
//! flips the lemon with a conditional `UPDATE … WHERE ripe = 1 AND cycle = ?`, as on PostgreSQL.
//! Waiting writers queue on `busy_timeout` (30 s); WAL lets readers proceed meanwhile.
//!
//! Stored types: identifiers are hyphenated lower-case UUID text, times are INTEGER milliseconds
//! since the Unix epoch, dates are `YYYY-MM-DD` text, booleans are 0/1, quiz options and harvest
//! states are JSON text.

mod accounts;
mod costs;
mod harvest;
mod instances;
mod invariants;
mod ledger;
mod ports;
mod quizzes;
mod tree;

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dbtree_core::boundary::BackendError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Sqlite, SqlitePool, Transaction};

/// The migrations, embedded at build time, applied by [`SqliteStore::migrate`].
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Connections of a file database's pool (one writes at a time; the others read).
const FILE_CONNECTIONS: u32 = 8;

/// How long a writer waits for the write lock, and a caller for a connection.
const WAIT: Duration = Duration::from_secs(30);

/// Every store trait on SQLite.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

/// Creates the database file with mode 0600 if it is missing (SQLite then creates `-wal` and
/// `-shm` with the same mode), or takes group and other permissions away from an existing file
/// and its companions (installations from before this rule).
#[cfg(unix)]
fn restrict_to_owner(path: &std::path::Path) -> Result<(), BackendError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(BackendError::with_source(
                format!("cannot create {}", path.display()),
                e,
            ));
        }
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = std::path::PathBuf::from(name);
        let Ok(meta) = std::fs::metadata(&file) else {
            continue;
        };
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).map_err(
                |e| BackendError::with_source(format!("cannot restrict {}", file.display()), e),
            )?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict_to_owner(_path: &std::path::Path) -> Result<(), BackendError> {
    Ok(())
}

impl SqliteStore {
    /// Connects to a `sqlite:PATH` or `sqlite://PATH` URL, creating the file if it is missing.
    /// `sqlite::memory:` opens a private in-memory database, as [`SqliteStore::open_in_memory`].
    ///
    /// # Errors
    /// [`BackendError`] if the URL is invalid or the database cannot be opened.
    pub async fn connect(url: &str) -> Result<Self, BackendError> {
        if !url.starts_with("sqlite:") {
            return Err(BackendError::new(
                "invalid SQLite URL: expected sqlite:PATH",
            ));
        }
        if is_memory_url(url) {
            return Self::open_in_memory().await;
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| BackendError::with_source("invalid SQLite URL", e))?;
        Self::open_file(options).await
    }

    /// Opens (creating if missing) the database file at `path`.
    ///
    /// # Errors
    /// [`BackendError`] if the file cannot be opened.
    pub async fn open(path: impl AsRef<std::path::Path>) -> Result<Self, BackendError> {
        Self::open_file(SqliteConnectOptions::new().filename(path)).await
    }

    /// Opens a new private in-memory database, gone when the store and its clones are dropped.
    /// It has exactly one connection, kept open for the store's lifetime.
    ///
    /// # Errors
    /// [`BackendError`] if SQLite cannot open it.
    pub async fn open_in_memory() -> Result<Self, BackendError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(|e| BackendError::with_source("invalid SQLite options", e))?
            .foreign_keys(true)
            .busy_timeout(WAIT);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(WAIT)
            .connect_with(options)
            .await
            .map_err(|e| {
                BackendError::with_source("cannot open an in-memory SQLite database", e)
            })?;
        Ok(Self { pool })
    }

    /// Opens a file database with the store's settings: WAL, foreign keys, the busy timeout.
    /// The file is created readable by its owner only, and SQLite gives its `-wal` and `-shm`
    /// files the same mode; an existing file readable by others is restricted first.
    async fn open_file(options: SqliteConnectOptions) -> Result<Self, BackendError> {
        restrict_to_owner(options.get_filename())?;
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(WAIT);
        let pool = SqlitePoolOptions::new()
            .max_connections(FILE_CONNECTIONS)
            .acquire_timeout(WAIT)
            .connect_with(options)
            .await
            .map_err(|e| BackendError::with_source("cannot open the SQLite database", e))?;
        Ok(Self { pool })
    }

    /// The pool (for the invariant checker and benchmarks).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Applies every pending migration (forward only).
    ///
    /// # Errors
    /// [`BackendError`] if a migration fails or the database has migrations this build does not
    /// know.
    pub async fn migrate(&self) -> Result<(), BackendError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| BackendError::with_source("SQLite migration failed", e))
    }

    /// Begins a write transaction, taking the database's write lock at once.
    async fn begin(&self) -> Result<Transaction<'static, Sqlite>, BackendError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db("begin transaction"))
    }
}

/// Whether a URL names an in-memory database rather than a file.
fn is_memory_url(url: &str) -> bool {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    database == ":memory:" || params.split('&').any(|p| p == "mode=memory")
}

/// Translates a driver error at the seam, naming what was being done.
fn db(context: &'static str) -> impl Fn(sqlx::Error) -> BackendError {
    move |e| BackendError::with_source(format!("SQLite: {context}"), e)
}

/// Whether a driver error is a unique-constraint violation.
fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

/// Commits, translating the error.
async fn commit(tx: Transaction<'static, Sqlite>) -> Result<(), BackendError> {
    tx.commit().await.map_err(db("commit"))
}

/// A time as stored: milliseconds since the Unix epoch.
fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// A stored time.
fn at(ms: i64) -> Result<DateTime<Utc>, BackendError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| BackendError::new(format!("stored time {ms} is out of range")))
}

/// A stored optional time.
fn at_opt(ms: Option<i64>) -> Result<Option<DateTime<Utc>>, BackendError> {
    ms.map(at).transpose()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use chrono::{TimeDelta, TimeZone};
    use dbtree_core::auth::Email;
    use dbtree_core::boundary::{
        ClaimError, LedgerStore, NewAttempt, NewUser, NodePortStore, QuizStore, TreeStore,
        UserStore,
    };
    use dbtree_core::harvest::ClickChallenge;
    use dbtree_core::ids::{AttemptId, InstanceId, UserId};
    use dbtree_core::instance::NodePortPolicy;
    use dbtree_core::policy::Policy;
    use dbtree_core::quiz::{AnswerRecord, shipped_bank};
    use dbtree_core::stats::PageRequest;

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap()
    }

    fn id_bytes(n: u64) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&n.to_le_bytes());
        b
    }

    async fn user(store: &SqliteStore, n: u64) -> UserId {
        let new = NewUser {
            id: UserId::from_random_bytes(id_bytes(n)),
            email: Email::parse(&format!("user{n}@example.org")).unwrap(),
            now: t0(),
        };
        store
            .register(&new, &Policy::default().ledger)
            .await
            .unwrap()
            .user
            .id
    }

    /// An attempt of `user` on lemon 0 with a correct, on-time answer at `t0`.
    async fn open_attempt(store: &SqliteStore, user: UserId, n: u64) -> AttemptId {
        let lemon = store.lemons().await.unwrap().remove(0);
        let id = AttemptId::from_random_bytes(id_bytes(1_000_000 + n));
        let new = NewAttempt {
            id,
            user,
            position: lemon.position,
            lemon_cycle: lemon.cycle,
            quiz: lemon.quiz,
            started_at: t0() - TimeDelta::seconds(3),
            time_limit: TimeDelta::seconds(20),
        };
        store.start_attempt(&new).await.unwrap();
        let challenge = ClickChallenge {
            window_ms: 5000,
            period_ms: 3000,
            fx: 1,
            fy: 2,
            phase: 0.25,
            radius: 0.08,
            hit_tolerance: 1.1,
            lag_allowance_ms: 120,
        };
        let answer = AnswerRecord {
            option: 0,
            correct: true,
            on_time: true,
            at: t0(),
            challenge: Some(challenge),
        };
        store.record_answer(id, &answer).await.unwrap();
        id
    }

    async fn migrated_file() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("dbtree.sqlite"))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        (store, dir)
    }

    async fn assert_clean(store: &SqliteStore) {
        let report = store.check_invariants().await.unwrap();
        assert!(report.is_clean(), "{report}");
    }

    #[test]
    fn times_round_trip_at_millisecond_precision() {
        let t = t0() + TimeDelta::milliseconds(1234);
        assert_eq!(at(ms(t)).unwrap(), t);
        assert!(at(i64::MAX).is_err());
        assert!(is_memory_url("sqlite::memory:") && is_memory_url("sqlite://db?mode=memory"));
        assert!(!is_memory_url("sqlite://data/dbtree.sqlite"));
    }

    #[tokio::test]
    async fn migrating_twice_is_a_no_op() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        store.migrate().await.unwrap();
        store.migrate().await.unwrap();
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM _sqlx_migrations")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(usize::try_from(n).unwrap(), MIGRATOR.iter().count());
    }

    #[tokio::test]
    async fn registering_twice_pays_one_welcome_bonus() {
        let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let first = user(&store, 1).await;
        let again = NewUser {
            id: UserId::from_random_bytes(id_bytes(2)),
            email: Email::parse("user1@example.org").unwrap(),
            now: t0(),
        };
        let second = store
            .register(&again, &Policy::default().ledger)
            .await
            .unwrap();
        assert!(!second.created && second.welcome.is_none());
        assert_eq!(second.user.id, first);
        assert_eq!(store.count_live_users().await.unwrap(), 1);
        let page = PageRequest::new(100, 0).unwrap();
        assert_eq!(store.history(first, None, page).await.unwrap().total, 1);
        assert_clean(&store).await;
    }

    async fn one_winner_among_200(store: SqliteStore) {
        store.seed_quizzes(&shipped_bank().unwrap()).await.unwrap();
        store.plant(t0()).await.unwrap();
        let mut attempts = Vec::new();
        for n in 0..200 {
            let player = user(&store, n).await;
            attempts.push((open_attempt(&store, player, n).await, player));
        }
        let store = Arc::new(store);
        let claims = attempts.into_iter().map(|(attempt, player)| {
            let store = store.clone();
            tokio::spawn(async move {
                let now = t0() + TimeDelta::seconds(1);
                store
                    .claim_lemon(attempt, player, now, &Policy::default())
                    .await
            })
        });
        let (mut won, mut lost) = (0, 0);
        for claim in claims.collect::<Vec<_>>() {
            match claim.await.unwrap() {
                Ok(_) => won += 1,
                Err(ClaimError::AlreadyHarvested) => lost += 1,
                Err(other) => panic!("unexpected claim error: {other:?}"),
            }
        }
        assert_eq!((won, lost), (1, 199));
        assert_clean(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 8)]
    async fn one_claim_wins_on_a_file() {
        let (store, _dir) = migrated_file().await;
        one_winner_among_200(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 8)]
    async fn one_claim_wins_in_memory() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        store.migrate().await.unwrap();
        one_winner_among_200(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 8)]
    async fn concurrent_reservations_get_distinct_ports() {
        let (store, _dir) = migrated_file().await;
        let store = Arc::new(store);
        let tasks = (0..32u64).map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                for i in 0..10 {
                    let instance = InstanceId::from_random_bytes(id_bytes(task * 100 + i));
                    let policy = NodePortPolicy::default();
                    let port = store.reserve_node_port(instance, &policy).await.unwrap();
                    assert_eq!(
                        store.reserve_node_port(instance, &policy).await.unwrap(),
                        port
                    );
                    got.push((instance, port));
                }
                got
            })
        });
        let mut held = Vec::new();
        for task in tasks.collect::<Vec<_>>() {
            held.extend(task.await.unwrap());
        }
        let ports: BTreeSet<u16> = held.iter().map(|(_, p)| p.get()).collect();
        assert_eq!(ports.len(), 320);
        assert!(!ports.contains(&30080) && ports.iter().all(|p| (30000..30321).contains(p)));
        for (instance, port) in held {
            assert_eq!(store.release_node_port(instance).await.unwrap(), Some(port));
        }
        assert_clean(&store).await;
    }
}
