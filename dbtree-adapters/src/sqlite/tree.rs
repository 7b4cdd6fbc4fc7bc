//! Lemons, quiz attempts and the harvest claim on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use dbtree_core::auth::Email;
use dbtree_core::boundary::{
    BackendError, ClaimError, NewAttempt, PlantError, RecordAnswerError, StartAttemptError,
    TreeStore,
};
use dbtree_core::harvest::{ClaimPlan, ClickChallenge, HarvestReceipt, HarvestState, plan_claim};
use dbtree_core::ids::{AttemptId, QuizId, UserId};
use dbtree_core::policy::Policy;
use dbtree_core::quiz::{AnswerRecord, Attempt};
use dbtree_core::tree::{Lemon, LemonState, Position};
use sqlx::SqliteConnection;
use sqlx::types::Json;
use uuid::fmt::Hyphenated;

use super::accounts::{live_user, stored_email};
use super::harvest::{flip_lemon, pay_harvest, set_harvest};
use super::ledger::{DAY_MS, day_start};
use super::quizzes::next_quiz;
use super::{SqliteStore, at, commit, db, ms};
use crate::sql;

#[derive(sqlx::FromRow)]
struct LemonRow {
    position: i64,
    quiz_id: i64,
    cycle: i64,
    ripe: bool,
    harvested_at: Option<i64>,
    regrows_at: Option<i64>,
    harvested_by: Option<Hyphenated>,
}

const LEMON_COLUMNS: &str =
    "position, quiz_id, cycle, ripe, harvested_at, regrows_at, harvested_by";

impl LemonRow {
    fn into_lemon(self) -> Result<Lemon, BackendError> {
        let state = match (self.ripe, self.harvested_at, self.regrows_at) {
            (true, _, _) => LemonState::Ripe,
            (false, Some(harvested_at), Some(regrows_at)) => LemonState::Regrowing {
                harvested_at: at(harvested_at)?,
                regrows_at: at(regrows_at)?,
            },
            _ => return Err(BackendError::new("stored lemon is regrowing without times")),
        };
        Ok(Lemon {
            position: position(self.position)?,
            quiz: QuizId(self.quiz_id),
            cycle: sql::u64_of("cycle", self.cycle)?,
            state,
            harvested_by: self.harvested_by.map(|u| UserId::from_uuid(u.into_uuid())),
        })
    }
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    id: Hyphenated,
    user_id: Hyphenated,
    position: i64,
    lemon_cycle: i64,
    quiz_id: i64,
    started_at: i64,
    time_limit_ms: i64,
    answer_option: Option<i64>,
    answer_correct: Option<bool>,
    answer_on_time: Option<bool>,
    answered_at: Option<i64>,
    challenge: Option<Json<ClickChallenge>>,
    harvest: Json<HarvestState>,
}

const ATTEMPT_COLUMNS: &str = "id, user_id, position, lemon_cycle, quiz_id, started_at, \
     time_limit_ms, answer_option, answer_correct, answer_on_time, answered_at, challenge, harvest";

impl AttemptRow {
    fn into_attempt(self) -> Result<Attempt, BackendError> {
        let answer = (self.answer_option, self.answer_correct, self.answer_on_time);
        let answer = match (answer, self.answered_at) {
            ((Some(option), Some(correct), Some(on_time)), Some(answered_at)) => {
                Some(AnswerRecord {
                    option: u8::try_from(option)
                        .map_err(|_| BackendError::new("stored answer option out of range"))?,
                    correct,
                    on_time,
                    at: at(answered_at)?,
                    challenge: self.challenge.map(|c| c.0),
                })
            }
            ((None, None, None), None) => None,
            _ => return Err(BackendError::new("stored answer is incomplete")),
        };
        Ok(Attempt {
            id: AttemptId::from_uuid(self.id.into_uuid()),
            user: UserId::from_uuid(self.user_id.into_uuid()),
            position: position(self.position)?,
            lemon_cycle: sql::u64_of("lemon_cycle", self.lemon_cycle)?,
            quiz: QuizId(self.quiz_id),
            started_at: at(self.started_at)?,
            time_limit: TimeDelta::milliseconds(self.time_limit_ms),
            answer,
            harvest: self.harvest.0,
        })
    }
}

/// A stored position.
fn position(n: i64) -> Result<Position, BackendError> {
    Position::new(n).map_err(|e| BackendError::with_source("stored position", e))
}

/// A cycle number for its column (cycles count ripenings, far below `i64::MAX`; a larger one is
/// refused rather than clamped).
pub(super) fn cycle(n: u64) -> Result<i64, BackendError> {
    sql::bind_i64("lemon cycle", n)
}

/// One attempt.
async fn fetch_attempt(
    conn: &mut SqliteConnection,
    id: AttemptId,
) -> Result<Option<Attempt>, BackendError> {
    let sql = format!("SELECT {ATTEMPT_COLUMNS} FROM quiz_attempts WHERE id = ?1");
    sqlx::query_as::<_, AttemptRow>(sqlx::AssertSqlSafe(sql))
        .bind(id.as_uuid().hyphenated())
        .fetch_optional(conn)
        .await
        .map_err(db("read an attempt"))?
        .map(AttemptRow::into_attempt)
        .transpose()
}

#[async_trait]
impl TreeStore for SqliteStore {
    async fn plant(&self, _now: DateTime<Utc>) -> Result<Vec<Lemon>, PlantError> {
        let mut tx = self.begin().await?;
        let existing: Vec<(i64,)> = sqlx::query_as("SELECT position FROM lemons")
            .fetch_all(&mut *tx)
            .await
            .map_err(db("read the tree"))?;
        for position in Position::all() {
            let n = i64::from(position.get());
            if existing.iter().any(|(p,)| *p == n) {
                continue;
            }
            let quiz = next_quiz(&mut tx, true)
                .await?
                .ok_or(PlantError::EmptyBank)?;
            sqlx::query(
                "INSERT INTO lemons (position, quiz_id, cycle, ripe) VALUES (?1, ?2, 0, 1)",
            )
            .bind(n)
            .bind(quiz.0)
            .execute(&mut *tx)
            .await
            .map_err(db("plant a lemon"))?;
        }
        commit(tx).await?;
        Ok(self.lemons().await?)
    }

    async fn lemons(&self) -> Result<Vec<Lemon>, BackendError> {
        let sql = format!("SELECT {LEMON_COLUMNS} FROM lemons ORDER BY position");
        sqlx::query_as::<_, LemonRow>(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await
            .map_err(db("read the tree"))?
            .into_iter()
            .map(LemonRow::into_lemon)
            .collect()
    }

    async fn start_attempt(&self, new: &NewAttempt) -> Result<Attempt, StartAttemptError> {
        let sql = format!(
            "INSERT INTO quiz_attempts (id, user_id, position, lemon_cycle, quiz_id, started_at,
                 time_limit_ms, harvest)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8
             WHERE EXISTS (SELECT 1 FROM lemons
                 WHERE position = ?3 AND ripe = 1 AND cycle = ?4 AND quiz_id = ?5)
             RETURNING {ATTEMPT_COLUMNS}"
        );
        let row: Option<AttemptRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(new.id.as_uuid().hyphenated())
            .bind(new.user.as_uuid().hyphenated())
            .bind(i64::from(new.position.get()))
            .bind(cycle(new.lemon_cycle)?)
            .bind(new.quiz.0)
            .bind(ms(new.started_at))
            .bind(new.time_limit.num_milliseconds())
            .bind(Json(HarvestState::AwaitingAnswer))
            .fetch_optional(&self.pool)
            .await
            .map_err(db("record an attempt"))?;
        match row {
            Some(row) => Ok(row.into_attempt()?),
            None => Err(StartAttemptError::NotRipe),
        }
    }

    async fn attempt(&self, id: AttemptId) -> Result<Option<Attempt>, BackendError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(db("acquire a connection"))?;
        fetch_attempt(&mut conn, id).await
    }

    async fn record_answer(
        &self,
        id: AttemptId,
        answer: &AnswerRecord,
    ) -> Result<Attempt, RecordAnswerError> {
        let harvest = if answer.opens_window() {
            HarvestState::Open
        } else {
            HarvestState::NotEligible
        };
        let sql = format!(
            "UPDATE quiz_attempts SET answer_option = ?2, answer_correct = ?3,
                 answer_on_time = ?4, answered_at = ?5, challenge = ?6, harvest = ?7
             WHERE id = ?1 AND answered_at IS NULL
                 AND json_extract(harvest, '$.state') = 'awaiting_answer'
             RETURNING {ATTEMPT_COLUMNS}"
        );
        let row: Option<AttemptRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id.as_uuid().hyphenated())
            .bind(i64::from(answer.option))
            .bind(answer.correct)
            .bind(answer.on_time)
            .bind(ms(answer.at))
            .bind(answer.challenge.map(Json))
            .bind(Json(&harvest))
            .fetch_optional(&self.pool)
            .await
            .map_err(db("record an answer"))?;
        if let Some(row) = row {
            return Ok(row.into_attempt()?);
        }
        match self.attempt(id).await? {
            Some(stored) => Err(RecordAnswerError::AlreadyAnswered(Box::new(stored))),
            None => Err(RecordAnswerError::UnknownAttempt),
        }
    }

    async fn abandon_attempt(&self, id: AttemptId) -> Result<Option<Attempt>, BackendError> {
        sqlx::query(
            "UPDATE quiz_attempts SET harvest = ?2
             WHERE id = ?1 AND answered_at IS NULL
                 AND json_extract(harvest, '$.state') = 'awaiting_answer'",
        )
        .bind(id.as_uuid().hyphenated())
        .bind(Json(HarvestState::Abandoned))
        .execute(&self.pool)
        .await
        .map_err(db("abandon an attempt"))?;
        self.attempt(id).await
    }

    async fn settle_attempt(
        &self,
        id: AttemptId,
        state: &HarvestState,
    ) -> Result<Option<Attempt>, BackendError> {
        sqlx::query(
            "UPDATE quiz_attempts SET harvest = ?2
             WHERE id = ?1 AND json_extract(harvest, '$.state') = 'open'",
        )
        .bind(id.as_uuid().hyphenated())
        .bind(Json(state))
        .execute(&self.pool)
        .await
        .map_err(db("settle an attempt"))?;
        self.attempt(id).await
    }

    async fn claim_lemon(
        &self,
        id: AttemptId,
        user: UserId,
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<HarvestReceipt, ClaimError> {
        let mut tx = self.begin().await?;
        let attempt = fetch_attempt(&mut tx, id).await?;
        let player = live_user(&mut tx, user).await?;
        let claim = match plan_claim(attempt.as_ref(), user, player.as_ref(), now, policy)? {
            ClaimPlan::Replay(receipt) => return Ok(receipt),
            ClaimPlan::Race(claim) => claim,
        };
        if !flip_lemon(&mut tx, &claim).await? {
            let (lost, refusal) = claim.gone();
            set_harvest(&mut tx, id, &lost).await?;
            commit(tx).await?;
            return Err(refusal);
        }
        let receipt = pay_harvest(&mut tx, &claim, policy).await?;
        set_harvest(&mut tx, id, &HarvestState::Won(receipt)).await?;
        commit(tx).await?;
        Ok(receipt)
    }

    async fn regrow_due(&self, now: DateTime<Utc>) -> Result<Vec<Lemon>, BackendError> {
        let mut tx = self.begin().await?;
        let due: Vec<(i64,)> = sqlx::query_as(
            "SELECT position FROM lemons WHERE ripe = 0 AND regrows_at <= ?1 ORDER BY position",
        )
        .bind(ms(now))
        .fetch_all(&mut *tx)
        .await
        .map_err(db("find due lemons"))?;
        let sql = format!(
            "UPDATE lemons SET ripe = 1, cycle = cycle + 1, quiz_id = COALESCE(?2, quiz_id),
                 harvested_at = NULL, regrows_at = NULL
             WHERE position = ?1 RETURNING {LEMON_COLUMNS}"
        );
        let mut regrown = Vec::with_capacity(due.len());
        for (position,) in due {
            let quiz = next_quiz(&mut tx, false).await?;
            let row: LemonRow = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(position)
                .bind(quiz.map(|q| q.0))
                .fetch_one(&mut *tx)
                .await
                .map_err(db("regrow a lemon"))?;
            regrown.push(row.into_lemon()?);
        }
        commit(tx).await?;
        Ok(regrown)
    }

    async fn quiz_masters(
        &self,
        day: NaiveDate,
        n: u32,
    ) -> Result<Vec<(Email, u64)>, BackendError> {
        let start = day_start(day);
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT u.email, count(*) AS correct
             FROM quiz_attempts a JOIN users u ON u.id = a.user_id
             WHERE a.answer_correct AND a.answer_on_time AND u.deleted_at IS NULL
               AND a.answered_at >= ?1 AND a.answered_at < ?2
             GROUP BY u.email ORDER BY correct DESC, u.email LIMIT ?3",
        )
        .bind(start)
        .bind(start.saturating_add(DAY_MS))
        .bind(i64::from(n))
        .fetch_all(&self.pool)
        .await
        .map_err(db("rank quiz masters"))?;
        rows.into_iter()
            .map(|(email, c)| Ok((stored_email(&email)?, sql::u64_of("count", c)?)))
            .collect()
    }
}
