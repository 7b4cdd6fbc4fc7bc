//! The ledger on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use dbtree_core::boundary::{
    BackendError, LedgerStore, PostError, PostOutcome, PostRequest, replay_or_conflict,
};
use dbtree_core::ids::{EntryId, InstanceId, UserId};
use dbtree_core::ledger::{IdempotencyKey, LedgerEntry, LedgerPolicy, plan_posting};
use dbtree_core::lemons::Lemons;
use dbtree_core::stats::{DailyHarvest, Page, PageRequest};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{PgStore, commit, db, is_unique_violation};
use crate::sql;

#[derive(sqlx::FromRow)]
pub(super) struct EntryRow {
    id: Uuid,
    user_id: Uuid,
    kind: String,
    delta: i64,
    balance_after: i64,
    idempotency_key: String,
    instance_id: Option<Uuid>,
    created_at: DateTime<Utc>,
}

pub(super) const ENTRY_COLUMNS: &str =
    "id, user_id, kind, delta, balance_after, idempotency_key, instance_id, created_at";

impl EntryRow {
    pub(super) fn into_entry(self) -> Result<LedgerEntry, BackendError> {
        Ok(LedgerEntry {
            id: EntryId::from_uuid(self.id),
            user: UserId::from_uuid(self.user_id),
            kind: sql::parse("ledger kind", &self.kind)?,
            delta: self.delta,
            balance_after: sql::lemons("balance_after", self.balance_after)?,
            key: IdempotencyKey::parse(self.idempotency_key)
                .map_err(|e| BackendError::with_source("stored idempotency key", e))?,
            instance: self.instance_id.map(InstanceId::from_uuid),
            at: self.created_at,
        })
    }
}

/// The entry recorded under `key`, if any.
pub(super) async fn entry_by_key(
    conn: &mut PgConnection,
    key: &IdempotencyKey,
) -> Result<Option<LedgerEntry>, BackendError> {
    let sql = format!("SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE idempotency_key = $1");
    sqlx::query_as::<_, EntryRow>(sqlx::AssertSqlSafe(sql))
        .bind(key.as_str())
        .fetch_optional(conn)
        .await
        .map_err(db("read a ledger entry"))?
        .map(EntryRow::into_entry)
        .transpose()
}

/// Posts inside the caller's transaction: the user row is locked, the rule planned, the balance
/// and the entry written. Replays a key already posted for the same user and kind.
pub(super) async fn post_tx(
    conn: &mut PgConnection,
    request: &PostRequest,
    policy: &LedgerPolicy,
) -> Result<PostOutcome, PostError> {
    let balance: Option<(i64, Option<String>)> =
        sqlx::query_as("SELECT balance, email FROM users WHERE id = $1 FOR UPDATE")
            .bind(request.user.as_uuid())
            .fetch_optional(&mut *conn)
            .await
            .map_err(db("lock a user"))?;
    if let Some(existing) = entry_by_key(conn, &request.key).await? {
        return replay_or_conflict(existing, request);
    }
    let Some((balance, Some(_))) = balance else {
        return Err(PostError::UnknownUser);
    };
    let posting = plan_posting(
        request.kind,
        request.amount,
        sql::lemons("balance", balance)?,
        policy,
    )?;
    let (earned, spent) = if posting.delta >= 0 {
        (posting.delta, 0)
    } else {
        (0, -posting.delta)
    };
    sqlx::query(
        "UPDATE users SET balance = $2, earned_total = earned_total + $3, spent_total = spent_total + $4 WHERE id = $1",
    )
    .bind(request.user.as_uuid())
    .bind(i64::from(posting.balance_after.get()))
    .bind(earned)
    .bind(spent)
    .execute(&mut *conn)
    .await
    .map_err(db("update a balance"))?;
    let sql = format!(
        "INSERT INTO ledger_entries ({ENTRY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {ENTRY_COLUMNS}"
    );
    let row: EntryRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(request.key.entry_id().as_uuid())
        .bind(request.user.as_uuid())
        .bind(request.kind.as_str())
        .bind(posting.delta)
        .bind(i64::from(posting.balance_after.get()))
        .bind(request.key.as_str())
        .bind(request.instance.map(|i| *i.as_uuid()))
        .bind(request.at)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                // another user's transaction holds this key
                PostError::KeyConflict(request.key.clone())
            } else {
                PostError::Backend(db("write a ledger entry")(e))
            }
        })?;
    Ok(PostOutcome::Posted(row.into_entry()?))
}

/// A ledger refusal that cannot happen after the caller checked the balance.
pub(super) fn unexpected(e: PostError) -> BackendError {
    BackendError::new(format!("ledger posting failed unexpectedly: {e}"))
}

#[async_trait]
impl LedgerStore for PgStore {
    async fn post(
        &self,
        request: &PostRequest,
        policy: &LedgerPolicy,
    ) -> Result<PostOutcome, PostError> {
        let mut tx = self.begin().await?;
        let outcome = post_tx(&mut tx, request, policy).await?;
        commit(tx).await?;
        Ok(outcome)
    }

    async fn balance(&self, user: UserId) -> Result<Option<Lemons>, BackendError> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT balance FROM users WHERE id = $1 AND deleted_at IS NULL")
                .bind(user.as_uuid())
                .fetch_optional(&self.pool)
                .await
                .map_err(db("read a balance"))?;
        row.map(|(b,)| sql::lemons("balance", b)).transpose()
    }

    async fn history(
        &self,
        user: UserId,
        instance: Option<InstanceId>,
        page: PageRequest,
    ) -> Result<Page<LedgerEntry>, BackendError> {
        let filter = "user_id = $1 AND ($2::uuid IS NULL OR instance_id = $2)";
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE {filter} ORDER BY seq DESC LIMIT $3 OFFSET $4"
        );
        let rows: Vec<EntryRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(user.as_uuid())
            .bind(instance.map(|i| *i.as_uuid()))
            .bind(i64::from(page.limit))
            .bind(sql::bind_i64("page offset", page.offset)?)
            .fetch_all(&self.pool)
            .await
            .map_err(db("read ledger history"))?;
        let (total,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM ledger_entries WHERE {filter}"
        )))
        .bind(user.as_uuid())
        .bind(instance.map(|i| *i.as_uuid()))
        .fetch_one(&self.pool)
        .await
        .map_err(db("count ledger history"))?;
        let items = rows
            .into_iter()
            .map(EntryRow::into_entry)
            .collect::<Result<_, _>>()?;
        Ok(Page {
            items,
            total: sql::u64_of("count", total)?,
        })
    }

    async fn daily_harvests(
        &self,
        user: UserId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DailyHarvest>, BackendError> {
        let rows: Vec<(NaiveDate, i64)> = sqlx::query_as(
            "SELECT (created_at AT TIME ZONE 'UTC')::date AS day, sum(delta)::bigint
             FROM ledger_entries
             WHERE user_id = $1 AND kind IN ('harvest', 'streak_bonus')
               AND created_at >= ($2::date)::timestamp AT TIME ZONE 'UTC'
               AND created_at < ($3::date + 1)::timestamp AT TIME ZONE 'UTC'
             GROUP BY day ORDER BY day",
        )
        .bind(user.as_uuid())
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await
        .map_err(db("sum daily harvests"))?;
        rows.into_iter()
            .map(|(day, lemons)| {
                Ok(DailyHarvest {
                    day,
                    lemons: sql::u64_of("harvest sum", lemons)?,
                })
            })
            .collect()
    }

    async fn total_harvested(&self) -> Result<u64, BackendError> {
        let (sum,): (i64,) = sqlx::query_as(
            "SELECT COALESCE(sum(delta), 0)::bigint FROM ledger_entries WHERE kind = 'harvest'",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db("sum harvests"))?;
        sql::u64_of("harvest total", sum)
    }
}
