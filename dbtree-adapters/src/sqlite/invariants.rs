//! The invariant checker on a live SQLite database.

use dbtree_core::boundary::BackendError;
use sqlx::SqliteConnection;

use super::{SqliteStore, db};
use crate::sql::{self, InvariantReport, Violation};

impl SqliteStore {
    /// Verifies on the live database that every balance equals the sum of its ledger entries
    /// (and every entry's `balance_after` is the running sum), no balance is negative, no
    /// idempotency key repeats, and every held NodePort belongs to exactly one live instance.
    /// Every check reads one snapshot.
    ///
    /// # Errors
    /// [`BackendError`] if the queries fail.
    pub async fn check_invariants(&self) -> Result<InvariantReport, BackendError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db("begin a read transaction"))?;
        let mut report = InvariantReport::default();
        let (users, entries, ports): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM ledger_entries),
                 (SELECT count(*) FROM node_ports)",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(db("count rows"))?;
        report.users = sql::u64_of("user count", users)?;
        report.entries = sql::u64_of("entry count", entries)?;
        report.node_ports = sql::u64_of("NodePort count", ports)?;
        check_ledger(&mut tx, &mut report.violations).await?;
        check_node_ports(&mut tx, &mut report.violations).await?;
        tx.rollback().await.map_err(db("end a read transaction"))?;
        Ok(report)
    }
}

/// Balances against the ledger, running balances and repeated keys.
async fn check_ledger(
    conn: &mut SqliteConnection,
    violations: &mut Vec<Violation>,
) -> Result<(), BackendError> {
    let mismatches: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT u.id, u.balance, COALESCE(sum(l.delta), 0) FROM users u
         LEFT JOIN ledger_entries l ON l.user_id = u.id
         GROUP BY u.id, u.balance HAVING u.balance <> COALESCE(sum(l.delta), 0)",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(db("compare balances with the ledger"))?;
    violations.extend(mismatches.into_iter().map(|(user, balance, ledger_sum)| {
        Violation::BalanceMismatch {
            user,
            balance,
            ledger_sum,
        }
    }));

    let negative: Vec<(String, i64)> =
        sqlx::query_as("SELECT id, balance FROM users WHERE balance < 0")
            .fetch_all(&mut *conn)
            .await
            .map_err(db("find negative balances"))?;
    violations.extend(
        negative
            .into_iter()
            .map(|(user, balance)| Violation::NegativeBalance { user, balance }),
    );

    let broken: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM (SELECT id, balance_after,
             sum(delta) OVER (PARTITION BY user_id ORDER BY seq) AS running FROM ledger_entries)
         WHERE balance_after <> running",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(db("check running balances"))?;
    violations.extend(
        broken
            .into_iter()
            .map(|(entry,)| Violation::BrokenRunningBalance { entry }),
    );

    let repeated: Vec<(String, i64)> = sqlx::query_as(
        "SELECT idempotency_key, count(*) FROM ledger_entries
         GROUP BY idempotency_key HAVING count(*) > 1",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(db("find repeated keys"))?;
    violations.extend(
        repeated
            .into_iter()
            .map(|(key, count)| Violation::RepeatedKey { key, count }),
    );
    Ok(())
}

/// NodePorts held for missing or deleted instances, and ports or instances held twice.
async fn check_node_ports(
    conn: &mut SqliteConnection,
    violations: &mut Vec<Violation>,
) -> Result<(), BackendError> {
    let orphans: Vec<(i64, String)> = sqlx::query_as(
        "SELECT n.port, n.instance_id FROM node_ports n LEFT JOIN instances i ON i.id = n.instance_id
         WHERE i.id IS NULL OR i.status = 'deleted'",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(db("find orphan NodePorts"))?;
    violations.extend(
        orphans
            .into_iter()
            .map(|(port, instance)| Violation::OrphanNodePort { port, instance }),
    );

    let shared: Vec<(String,)> = sqlx::query_as(
        "SELECT 'port ' || port FROM node_ports GROUP BY port HAVING count(*) > 1
         UNION ALL
         SELECT 'instance ' || instance_id FROM node_ports GROUP BY instance_id HAVING count(*) > 1",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(db("find shared NodePorts"))?;
    violations.extend(
        shared
            .into_iter()
            .map(|(what,)| Violation::SharedNodePort { what }),
    );
    Ok(())
}
