//! `PgStore`: every store trait on PostgreSQL, for production and several replicas.
//!
//! Concurrency strategy (READ COMMITTED everywhere):
//! - a balance changes only under its user row's lock (`SELECT … FOR UPDATE`), in the same
//!   transaction as its ledger entry;
//! - a harvest claim locks the attempt, then the user, then flips the lemon with a conditional
//!   `UPDATE … WHERE ripe AND cycle = $n`, which exactly one claimant can satisfy;
//! - creations, starts, resumptions and NodePort reservations (which decide on global capacity
//!   and the lowest free port) serialise on one transaction-scoped advisory lock, taken after
//!   any user-row lock, so lock order is always attempt → instance → user → advisory.

mod accounts;
mod instances;
mod invariants;
mod ledger;
mod tree;

use std::str::FromStr;
use std::time::Duration;

use dbtree_core::boundary::BackendError;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};

/// The migrations, embedded at build time, applied by [`PgStore::migrate`].
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Advisory lock key serialising capacity and NodePort decisions ("dbtree:capacity").
const CAPACITY_LOCK: i64 = 0x6462_7472_6565_6361;

/// How long a caller waits for a pooled connection, connecting included. PostgreSQL being down
/// is reported as [unavailable](BackendError::is_unavailable) within this time (sqlx keeps
/// retrying a refused connection until then), so requests fail fast rather than queue.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_millis(1500);

/// Every store trait on PostgreSQL.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects with a pool of `max_connections`.
    ///
    /// # Errors
    /// [`BackendError`] if the URL is invalid or the server does not answer.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, BackendError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| BackendError::with_source("invalid PostgreSQL URL", e))?;
        Self::connect_with(options, max_connections).await
    }

    /// Connects with explicit options (for example a `search_path`).
    ///
    /// # Errors
    /// [`BackendError`] if the server does not answer.
    pub async fn connect_with(
        options: PgConnectOptions,
        max_connections: u32,
    ) -> Result<Self, BackendError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(db("connect"))?;
        Ok(Self { pool })
    }

    /// Wraps an existing pool.
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The pool (for the invariant checker and benchmarks).
    pub fn pool(&self) -> &PgPool {
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
            .map_err(|e| BackendError::with_source("PostgreSQL migration failed", e))
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>, BackendError> {
        self.pool.begin().await.map_err(db("begin transaction"))
    }
}

/// Translates a driver error at the seam, naming what was being done. A server that cannot be
/// reached, went away or refuses connections for now is [unavailable](BackendError::unavailable).
pub(crate) fn db(context: &'static str) -> impl Fn(sqlx::Error) -> BackendError {
    move |e| {
        let message = format!("PostgreSQL: {context}");
        if is_unavailable(&e) {
            BackendError::unavailable(message, e)
        } else {
            BackendError::with_source(message, e)
        }
    }
}

/// Whether a driver error means the server is out of reach rather than that the statement
/// failed: no connection within [`ACQUIRE_TIMEOUT`], a lost or refused connection, or SQLSTATE
/// class 08 (connection exception), 57P01–57P03 (shutting down, starting up) or 53300 (too many
/// connections).
fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|code| {
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// Whether a driver error is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

/// Commits, translating the error.
async fn commit(tx: Transaction<'static, Postgres>) -> Result<(), BackendError> {
    tx.commit().await.map_err(db("commit"))
}

/// Takes the capacity advisory lock for the rest of the transaction.
async fn lock_capacity(tx: &mut sqlx::PgConnection) -> Result<(), BackendError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(CAPACITY_LOCK)
        .execute(tx)
        .await
        .map_err(db("take the capacity lock"))?;
    Ok(())
}
