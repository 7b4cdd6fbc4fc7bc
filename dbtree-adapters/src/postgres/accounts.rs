//! Users, sign-in codes, sessions and support inquiries on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use dbtree_core::auth::{
    AuthPolicy, CodeHash, CodeVerdict, Email, IssuedCode, Session, TokenHash, check_code_issue,
    judge_code,
};
use dbtree_core::boundary::{
    BackendError, InquiryId, IssueCodeError, NewCode, NewUser, PostOutcome, PostRequest,
    PurgeReport, Registration, SignInStore, SupportStore, User, UserStore,
};
use dbtree_core::ids::UserId;
use dbtree_core::ledger::{EntryKind, IdempotencyKey, LedgerPolicy};
use dbtree_core::lemons::Lemons;
use dbtree_core::streak::Streak;
use dbtree_core::support::SupportInquiry;
use sqlx::PgConnection;
use uuid::Uuid;

use super::ledger::{entry_by_key, post_tx, unexpected};
use super::{PgStore, commit, db};
use crate::sql;

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    id: Uuid,
    email: Option<String>,
    balance: i64,
    earned_total: i64,
    spent_total: i64,
    last_harvest_at: Option<DateTime<Utc>>,
    streak_days: i32,
    streak_last_day: Option<NaiveDate>,
    created_at: DateTime<Utc>,
}

pub(super) const USER_COLUMNS: &str = "id, email, balance, earned_total, spent_total, last_harvest_at, streak_days, streak_last_day, created_at";

impl UserRow {
    /// The account, if it is live.
    pub(super) fn into_live(self) -> Result<Option<User>, BackendError> {
        let Some(email) = self.email else {
            return Ok(None);
        };
        Ok(Some(User {
            id: UserId::from_uuid(self.id),
            email: Email::parse(&email)
                .map_err(|e| BackendError::with_source("stored email", e))?,
            balance: sql::lemons("balance", self.balance)?,
            earned_total: sql::u64_of("earned_total", self.earned_total)?,
            spent_total: sql::u64_of("spent_total", self.spent_total)?,
            last_harvest_at: self.last_harvest_at,
            streak: Streak {
                days: sql::u32_of("streak_days", i64::from(self.streak_days))?,
                last_day: self.streak_last_day,
            },
            created_at: self.created_at,
        }))
    }
}

/// The live user, optionally locking the row.
pub(super) async fn live_user(
    conn: &mut PgConnection,
    id: UserId,
    lock: bool,
) -> Result<Option<User>, BackendError> {
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await
        .map_err(db("read a user"))?
        .map(UserRow::into_live)
        .transpose()
        .map(Option::flatten)
}

async fn user_by_email(
    conn: &mut PgConnection,
    email: &Email,
) -> Result<Option<User>, BackendError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1 AND deleted_at IS NULL");
    sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
        .bind(email.as_str())
        .fetch_optional(conn)
        .await
        .map_err(db("find a user by email"))?
        .map(UserRow::into_live)
        .transpose()
        .map(Option::flatten)
}

#[async_trait]
impl UserStore for PgStore {
    async fn register(
        &self,
        new: &NewUser,
        policy: &LedgerPolicy,
    ) -> Result<Registration, BackendError> {
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO users (id, email, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (email) WHERE deleted_at IS NULL DO NOTHING",
        )
        .bind(new.id.as_uuid())
        .bind(new.email.as_str())
        .bind(new.now)
        .execute(&mut *tx)
        .await
        .map_err(db("create a user"))?
        .rows_affected()
            == 1;
        if !inserted {
            let user = user_by_email(&mut tx, &new.email)
                .await?
                .ok_or_else(|| BackendError::new("user vanished during registration"))?;
            commit(tx).await?;
            return Ok(Registration {
                user,
                created: false,
                welcome: None,
            });
        }
        let key = IdempotencyKey::welcome(&new.email);
        let welcome = if policy.welcome_bonus == Lemons::ZERO
            || entry_by_key(&mut tx, &key).await?.is_some()
        {
            None
        } else {
            let request = PostRequest {
                user: new.id,
                kind: EntryKind::WelcomeBonus,
                amount: policy.welcome_bonus,
                key,
                instance: None,
                at: new.now,
            };
            match post_tx(&mut tx, &request, policy)
                .await
                .map_err(unexpected)?
            {
                PostOutcome::Posted(e) | PostOutcome::Replayed(e) => Some(e),
            }
        };
        let user = live_user(&mut tx, new.id, false)
            .await?
            .ok_or_else(|| BackendError::new("new user vanished"))?;
        commit(tx).await?;
        Ok(Registration {
            user,
            created: true,
            welcome,
        })
    }

    async fn user(&self, id: UserId) -> Result<Option<User>, BackendError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(db("acquire a connection"))?;
        live_user(&mut conn, id, false).await
    }

    async fn delete_user(&self, id: UserId, now: DateTime<Utc>) -> Result<bool, BackendError> {
        let mut tx = self.begin().await?;
        let email: Option<(String,)> = sqlx::query_as(
            "SELECT email FROM users WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
        )
        .bind(id.as_uuid())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("lock a user"))?;
        let Some((email,)) = email else {
            return Ok(false);
        };
        sqlx::query("UPDATE users SET email = NULL, deleted_at = $2 WHERE id = $1")
            .bind(id.as_uuid())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db("delete a user"))?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(id.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(db("end a deleted user's sessions"))?;
        sqlx::query("DELETE FROM sign_in_codes WHERE email = $1")
            .bind(&email)
            .execute(&mut *tx)
            .await
            .map_err(db("remove a deleted user's codes"))?;
        commit(tx).await?;
        Ok(true)
    }

    async fn richest(&self, n: u32) -> Result<Vec<(Email, Lemons)>, BackendError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT email, balance FROM users WHERE deleted_at IS NULL
             ORDER BY balance DESC, created_at, id LIMIT $1",
        )
        .bind(i64::from(n))
        .fetch_all(&self.pool)
        .await
        .map_err(db("rank balances"))?;
        rows.into_iter()
            .map(|(email, balance)| {
                Ok((
                    Email::parse(&email)
                        .map_err(|e| BackendError::with_source("stored email", e))?,
                    sql::lemons("balance", balance)?,
                ))
            })
            .collect()
    }

    async fn count_live_users(&self) -> Result<u64, BackendError> {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM users WHERE deleted_at IS NULL")
            .fetch_one(&self.pool)
            .await
            .map_err(db("count users"))?;
        sql::u64_of("user count", n)
    }

    async fn mark_low_balance_warned(
        &self,
        id: UserId,
        now: DateTime<Utc>,
    ) -> Result<bool, BackendError> {
        let done = sqlx::query(
            "INSERT INTO low_balance_warnings (user_id, warned_at)
             SELECT id, $2 FROM users WHERE id = $1 AND deleted_at IS NULL
             ON CONFLICT (user_id) DO NOTHING",
        )
        .bind(id.as_uuid())
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db("mark a low-balance warning"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn clear_low_balance_warning(&self, id: UserId) -> Result<bool, BackendError> {
        let done = sqlx::query("DELETE FROM low_balance_warnings WHERE user_id = $1")
            .bind(id.as_uuid())
            .execute(&self.pool)
            .await
            .map_err(db("clear a low-balance warning"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn low_balance_warned(&self) -> Result<Vec<UserId>, BackendError> {
        let rows: Vec<(Uuid,)> = sqlx::query_as(
            "SELECT w.user_id FROM low_balance_warnings w
             JOIN users u ON u.id = w.user_id WHERE u.deleted_at IS NULL ORDER BY w.user_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("list low-balance warnings"))?;
        Ok(rows
            .into_iter()
            .map(|(id,)| UserId::from_uuid(id))
            .collect())
    }
}

#[async_trait]
impl SignInStore for PgStore {
    async fn issue_code(&self, code: &NewCode, policy: &AuthPolicy) -> Result<(), IssueCodeError> {
        let mut tx = self.begin().await?;
        // Serialise code requests of one address: a transaction-scoped lock on its hash.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))")
            .bind(code.email.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db("lock an address"))?;
        let previous: Vec<(DateTime<Utc>,)> =
            sqlx::query_as("SELECT issued_at FROM sign_in_codes WHERE email = $1")
                .bind(code.email.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(db("read earlier codes"))?;
        let previous: Vec<DateTime<Utc>> = previous.into_iter().map(|(t,)| t).collect();
        check_code_issue(&previous, code.issued_at, policy)?;
        sqlx::query("UPDATE sign_in_codes SET used = true WHERE email = $1 AND NOT used")
            .bind(code.email.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db("supersede earlier codes"))?;
        sqlx::query("INSERT INTO sign_in_codes (email, code_hash, issued_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(code.email.as_str())
            .bind(code.hash.as_bytes().as_slice())
            .bind(code.issued_at)
            .bind(code.expires_at)
            .execute(&mut *tx)
            .await
            .map_err(db("record a code"))?;
        commit(tx).await?;
        Ok(())
    }

    async fn withdraw_code(
        &self,
        email: &Email,
        issued_at: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        sqlx::query("DELETE FROM sign_in_codes WHERE email = $1 AND issued_at = $2")
            .bind(email.as_str())
            .bind(issued_at)
            .execute(&self.pool)
            .await
            .map_err(db("withdraw a code"))?;
        Ok(())
    }

    async fn redeem_code(
        &self,
        email: &Email,
        presented: &CodeHash,
        now: DateTime<Utc>,
        policy: &AuthPolicy,
    ) -> Result<CodeVerdict, BackendError> {
        let mut tx = self.begin().await?;
        let newest: Option<(i64, Vec<u8>, DateTime<Utc>, DateTime<Utc>, i32, bool)> = sqlx::query_as(
            "SELECT id, code_hash, issued_at, expires_at, wrong_attempts, used FROM sign_in_codes
             WHERE email = $1 ORDER BY issued_at DESC, id DESC LIMIT 1 FOR UPDATE",
        )
        .bind(email.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("read a code"))?;
        let Some((id, hash, issued_at, expires_at, wrong_attempts, used)) = newest else {
            return Ok(CodeVerdict::NoCode);
        };
        let hash: [u8; 32] = hash
            .try_into()
            .map_err(|_| BackendError::new("stored code hash is not 32 bytes"))?;
        let code = IssuedCode {
            email: email.clone(),
            hash: CodeHash::from_bytes(hash),
            issued_at,
            expires_at,
            wrong_attempts: sql::u32_of("wrong_attempts", i64::from(wrong_attempts))?,
            used,
        };
        let verdict = judge_code(Some(&code), presented, now, policy);
        let update = match verdict {
            CodeVerdict::Accepted => Some("UPDATE sign_in_codes SET used = true WHERE id = $1"),
            CodeVerdict::Wrong { .. } => {
                Some("UPDATE sign_in_codes SET wrong_attempts = wrong_attempts + 1 WHERE id = $1")
            }
            CodeVerdict::Locked | CodeVerdict::Expired | CodeVerdict::NoCode => None,
        };
        if let Some(update) = update {
            sqlx::query(update)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db("apply a code verdict"))?;
        }
        commit(tx).await?;
        Ok(verdict)
    }

    async fn create_session(&self, session: &Session) -> Result<(), BackendError> {
        sqlx::query("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(session.token_hash.as_bytes().as_slice())
            .bind(session.user.as_uuid())
            .bind(session.created_at)
            .bind(session.expires_at)
            .execute(&self.pool)
            .await
            .map_err(db("create a session"))?;
        Ok(())
    }

    async fn session(
        &self,
        token: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, BackendError> {
        let row: Option<(Uuid, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT s.user_id, s.created_at, s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.deleted_at IS NULL",
        )
        .bind(token.as_bytes().as_slice())
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("read a session"))?;
        Ok(row.map(|(user, created_at, expires_at)| Session {
            user: UserId::from_uuid(user),
            token_hash: *token,
            created_at,
            expires_at,
        }))
    }

    async fn end_session(&self, token: &TokenHash) -> Result<bool, BackendError> {
        let done = sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token.as_bytes().as_slice())
            .execute(&self.pool)
            .await
            .map_err(db("end a session"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn end_all_sessions(&self, user: UserId) -> Result<u64, BackendError> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user.as_uuid())
            .execute(&self.pool)
            .await
            .map_err(db("end sessions"))?;
        Ok(done.rows_affected())
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<PurgeReport, BackendError> {
        let codes = sqlx::query("DELETE FROM sign_in_codes WHERE issued_at <= $1")
            .bind(now - TimeDelta::hours(1))
            .execute(&self.pool)
            .await
            .map_err(db("purge codes"))?
            .rows_affected();
        let sessions = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db("purge sessions"))?
            .rows_affected();
        Ok(PurgeReport { codes, sessions })
    }
}

#[async_trait]
impl SupportStore for PgStore {
    async fn record_inquiry(
        &self,
        user: UserId,
        inquiry: &SupportInquiry,
        at: DateTime<Utc>,
    ) -> Result<InquiryId, BackendError> {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO support_inquiries (user_id, category, subject, message, created_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(user.as_uuid())
        .bind(inquiry.category().as_str())
        .bind(inquiry.subject())
        .bind(inquiry.message())
        .bind(at)
        .fetch_one(&self.pool)
        .await
        .map_err(db("record an inquiry"))?;
        Ok(InquiryId(id))
    }
}
