//! The ledger on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveTime};
use dbtree_core::boundary::{
    BackendError, LedgerStore, PostError, PostOutcome, PostRequest, replay_or_conflict,
};
use dbtree_core::ids::{EntryId, InstanceId, UserId};
use dbtree_core::ledger::{IdempotencyKey, LedgerEntry, LedgerPolicy, plan_posting};
use dbtree_core::lemons::Lemons;
use dbtree_core::stats::{DailyHarvest, Page, PageRequest};
use sqlx::SqliteConnection;
use uuid::fmt::Hyphenated;

use super::{SqliteStore, at, commit, db, is_unique_violation, ms};
use crate::sql;

/// Milliseconds in a UTC day: `created_at / DAY_MS` is the day's number since the epoch.
pub(super) const DAY_MS: i64 = 86_400_000;

#[derive(sqlx::FromRow)]
struct EntryRow {
    id: Hyphenated,
    user_id: Hyphenated,
    kind: String,
    delta: i64,
    balance_after: i64,
    idempotency_key: String,
    instance_id: Option<Hyphenated>,
    created_at: i64,
}

const ENTRY_COLUMNS: &str =
    "id, user_id, kind, delta, balance_after, idempotency_key, instance_id, created_at";

impl EntryRow {
    fn into_entry(self) -> Result<LedgerEntry, BackendError> {
        Ok(LedgerEntry {
            id: EntryId::from_uuid(self.id.into_uuid()),
            user: UserId::from_uuid(self.user_id.into_uuid()),
            kind: sql::parse("ledger kind", &self.kind)?,
            delta: self.delta,
            balance_after: sql::lemons("balance_after", self.balance_after)?,
            key: IdempotencyKey::parse(self.idempotency_key)
                .map_err(|e| BackendError::with_source("stored idempotency key", e))?,
            instance: self
                .instance_id
                .map(|i| InstanceId::from_uuid(i.into_uuid())),
            at: at(self.created_at)?,
        })
    }
}

/// The entry recorded under `key`, if any.
pub(super) async fn entry_by_key(
    conn: &mut SqliteConnection,
    key: &IdempotencyKey,
) -> Result<Option<LedgerEntry>, BackendError> {
    let sql = format!("SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE idempotency_key = ?1");
    sqlx::query_as::<_, EntryRow>(sqlx::AssertSqlSafe(sql))
        .bind(key.as_str())
        .fetch_optional(conn)
        .await
        .map_err(db("read a ledger entry"))?
        .map(EntryRow::into_entry)
        .transpose()
}

/// Posts inside the caller's write transaction: the rule planned on the balance, the balance and
/// the entry written. Replays a key already posted for the same user and kind.
pub(super) async fn post_tx(
    conn: &mut SqliteConnection,
    request: &PostRequest,
    policy: &LedgerPolicy,
) -> Result<PostOutcome, PostError> {
    let balance: Option<(i64, Option<String>)> =
        sqlx::query_as("SELECT balance, email FROM users WHERE id = ?1")
            .bind(request.user.as_uuid().hyphenated())
            .fetch_optional(&mut *conn)
            .await
            .map_err(db("read a balance"))?;
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
        "UPDATE users SET balance = ?2, earned_total = earned_total + ?3,
             spent_total = spent_total + ?4
         WHERE id = ?1",
    )
    .bind(request.user.as_uuid().hyphenated())
    .bind(posting.balance_after.as_i64())
    .bind(earned)
    .bind(spent)
    .execute(&mut *conn)
    .await
    .map_err(db("update a balance"))?;
    let sql = format!(
        "INSERT INTO ledger_entries ({ENTRY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         RETURNING {ENTRY_COLUMNS}"
    );
    let row: EntryRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(request.key.entry_id().as_uuid().hyphenated())
        .bind(request.user.as_uuid().hyphenated())
        .bind(request.kind.as_str())
        .bind(posting.delta)
        .bind(posting.balance_after.as_i64())
        .bind(request.key.as_str())
        .bind(request.instance.map(|i| i.as_uuid().hyphenated()))
        .bind(ms(request.at))
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                // the entry id of this key is already taken
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

/// Milliseconds since the epoch at the start of `day` (UTC).
pub(super) fn day_start(day: NaiveDate) -> i64 {
    ms(day.and_time(NaiveTime::MIN).and_utc())
}

/// The UTC day with this number since the epoch.
fn day_number(n: i64) -> Result<NaiveDate, BackendError> {
    DateTime::from_timestamp_millis(n.saturating_mul(DAY_MS))
        .map(|t| t.date_naive())
        .ok_or_else(|| BackendError::new(format!("stored day {n} is out of range")))
}

#[async_trait]
impl LedgerStore for SqliteStore {
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
            sqlx::query_as("SELECT balance FROM users WHERE id = ?1 AND deleted_at IS NULL")
                .bind(user.as_uuid().hyphenated())
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
        let filter = "user_id = ?1 AND (?2 IS NULL OR instance_id = ?2)";
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE {filter}
             ORDER BY seq DESC LIMIT ?3 OFFSET ?4"
        );
        let instance = instance.map(|i| i.as_uuid().hyphenated());
        let rows: Vec<EntryRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(user.as_uuid().hyphenated())
            .bind(instance)
            .bind(i64::from(page.limit))
            .bind(sql::bind_i64("page offset", page.offset)?)
            .fetch_all(&self.pool)
            .await
            .map_err(db("read ledger history"))?;
        let count = format!("SELECT count(*) FROM ledger_entries WHERE {filter}");
        let (total,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(count))
            .bind(user.as_uuid().hyphenated())
            .bind(instance)
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
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT created_at / ?4 AS day, sum(delta) FROM ledger_entries
             WHERE user_id = ?1 AND kind IN ('harvest', 'streak_bonus')
               AND created_at >= ?2 AND created_at < ?3
             GROUP BY day ORDER BY day",
        )
        .bind(user.as_uuid().hyphenated())
        .bind(day_start(from))
        .bind(day_start(to).saturating_add(DAY_MS))
        .bind(DAY_MS)
        .fetch_all(&self.pool)
        .await
        .map_err(db("sum daily harvests"))?;
        rows.into_iter()
            .map(|(day, lemons)| {
                Ok(DailyHarvest {
                    day: day_number(day)?,
                    lemons: sql::u64_of("harvest sum", lemons)?,
                })
            })
            .collect()
    }

    async fn total_harvested(&self) -> Result<u64, BackendError> {
        let (sum,): (i64,) = sqlx::query_as(
            "SELECT COALESCE(sum(delta), 0) FROM ledger_entries WHERE kind = 'harvest'",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db("sum harvests"))?;
        sql::u64_of("harvest total", sum)
    }
}
