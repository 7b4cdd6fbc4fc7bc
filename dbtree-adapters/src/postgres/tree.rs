//! Lemons, quiz attempts, the harvest claim and the quiz bank on PostgreSQL.

use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use dbtree_core::auth::Email;
use dbtree_core::boundary::{
    AddQuizError, BackendError, ClaimError, NewAttempt, PlantError, QuizStore, RecordAnswerError,
    StartAttemptError, TreeStore,
};
use dbtree_core::harvest::{ClaimPlan, ClickChallenge, HarvestReceipt, HarvestState, plan_claim};
use dbtree_core::ids::{AttemptId, QuizId, UserId};
use dbtree_core::policy::Policy;
use dbtree_core::quiz::{AnswerRecord, Attempt, NewQuiz, Quiz};
use dbtree_core::tree::{Lemon, LemonState, Position, QuizUsage, choose_next_quiz};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use super::accounts::live_user;
use super::ledger::{post_tx, unexpected};
use super::{PgStore, commit, db, is_unique_violation};
use crate::sql;

/// Advisory lock key serialising planting and regrowth ("dbtree:tree").
const TREE_LOCK: i64 = 0x6462_7472_6565_7472;

#[derive(sqlx::FromRow)]
struct LemonRow {
    position: i16,
    quiz_id: i64,
    cycle: i64,
    ripe: bool,
    harvested_at: Option<DateTime<Utc>>,
    regrows_at: Option<DateTime<Utc>>,
    harvested_by: Option<Uuid>,
}

const LEMON_COLUMNS: &str =
    "position, quiz_id, cycle, ripe, harvested_at, regrows_at, harvested_by";

impl LemonRow {
    fn into_lemon(self) -> Result<Lemon, BackendError> {
        let state = match (self.ripe, self.harvested_at, self.regrows_at) {
            (true, _, _) => LemonState::Ripe,
            (false, Some(harvested_at), Some(regrows_at)) => LemonState::Regrowing {
                harvested_at,
                regrows_at,
            },
            _ => return Err(BackendError::new("stored lemon is regrowing without times")),
        };
        Ok(Lemon {
            position: Position::new(i64::from(self.position))
                .map_err(|e| BackendError::with_source("stored position", e))?,
            quiz: QuizId(self.quiz_id),
            cycle: sql::u64_of("cycle", self.cycle)?,
            state,
            harvested_by: self.harvested_by.map(UserId::from_uuid),
        })
    }
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    id: Uuid,
    user_id: Uuid,
    position: i16,
    lemon_cycle: i64,
    quiz_id: i64,
    started_at: DateTime<Utc>,
    time_limit_ms: i64,
    answer_option: Option<i16>,
    answer_correct: Option<bool>,
    answer_on_time: Option<bool>,
    answered_at: Option<DateTime<Utc>>,
    challenge: Option<Json<ClickChallenge>>,
    harvest: Json<HarvestState>,
}

const ATTEMPT_COLUMNS: &str = "id, user_id, position, lemon_cycle, quiz_id, started_at, time_limit_ms, \
     answer_option, answer_correct, answer_on_time, answered_at, challenge, harvest";

impl AttemptRow {
    fn into_attempt(self) -> Result<Attempt, BackendError> {
        let answer = match (
            self.answer_option,
            self.answer_correct,
            self.answer_on_time,
            self.answered_at,
        ) {
            (Some(option), Some(correct), Some(on_time), Some(at)) => Some(AnswerRecord {
                option: u8::try_from(option)
                    .map_err(|_| BackendError::new("stored answer option out of range"))?,
                correct,
                on_time,
                at,
                challenge: self.challenge.map(|c| c.0),
            }),
            (None, None, None, None) => None,
            _ => return Err(BackendError::new("stored answer is incomplete")),
        };
        Ok(Attempt {
            id: AttemptId::from_uuid(self.id),
            user: UserId::from_uuid(self.user_id),
            position: Position::new(i64::from(self.position))
                .map_err(|e| BackendError::with_source("stored position", e))?,
            lemon_cycle: sql::u64_of("lemon_cycle", self.lemon_cycle)?,
            quiz: QuizId(self.quiz_id),
            started_at: self.started_at,
            time_limit: TimeDelta::milliseconds(self.time_limit_ms),
            answer,
            harvest: self.harvest.0,
        })
    }
}

#[derive(sqlx::FromRow)]
struct QuizRow {
    id: i64,
    category: String,
    difficulty: String,
    question: String,
    options: Vec<String>,
    correct_option: i16,
    time_limit_seconds: i32,
    explanation: String,
    uses: i64,
    retired: bool,
}

const QUIZ_COLUMNS: &str = "id, category, difficulty, question, options, correct_option, time_limit_seconds, explanation, uses, retired";

impl QuizRow {
    fn into_quiz(self) -> Result<Quiz, BackendError> {
        Ok(Quiz {
            id: QuizId(self.id),
            content: NewQuiz {
                category: sql::parse("category", &self.category)?,
                difficulty: sql::parse("difficulty", &self.difficulty)?,
                question: self.question,
                options: self.options,
                correct_option: u8::try_from(self.correct_option)
                    .map_err(|_| BackendError::new("stored correct option"))?,
                time_limit_seconds: sql::u32_of(
                    "time_limit_seconds",
                    i64::from(self.time_limit_seconds),
                )?,
                explanation: self.explanation,
            },
            uses: sql::u64_of("uses", self.uses)?,
            retired: self.retired,
        })
    }
}

async fn lock_tree(conn: &mut PgConnection) -> Result<(), BackendError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(TREE_LOCK)
        .execute(conn)
        .await
        .map_err(db("take the tree lock"))?;
    Ok(())
}

/// Picks the least-used active quiz not on the tree (tree lock held), and counts a use.
async fn next_quiz(
    conn: &mut PgConnection,
    fallback_to_any: bool,
) -> Result<Option<QuizId>, BackendError> {
    let candidates: Vec<(i64, i64)> =
        sqlx::query_as("SELECT id, uses FROM quizzes WHERE NOT retired")
            .fetch_all(&mut *conn)
            .await
            .map_err(db("read quiz usage"))?;
    let candidates: Vec<QuizUsage> = candidates
        .into_iter()
        .map(|(id, uses)| {
            Ok(QuizUsage {
                quiz: QuizId(id),
                uses: sql::u64_of("uses", uses)?,
            })
        })
        .collect::<Result<_, BackendError>>()?;
    let on_tree: Vec<(i64,)> = sqlx::query_as("SELECT quiz_id FROM lemons")
        .fetch_all(&mut *conn)
        .await
        .map_err(db("read the tree"))?;
    let on_tree: BTreeSet<QuizId> = on_tree.into_iter().map(|(q,)| QuizId(q)).collect();
    let chosen = choose_next_quiz(&candidates, &on_tree).or_else(|| {
        fallback_to_any
            .then(|| choose_next_quiz(&candidates, &BTreeSet::new()))
            .flatten()
    });
    if let Some(quiz) = chosen {
        sqlx::query("UPDATE quizzes SET uses = uses + 1 WHERE id = $1")
            .bind(quiz.0)
            .execute(&mut *conn)
            .await
            .map_err(db("count a quiz use"))?;
    }
    Ok(chosen)
}

async fn fetch_attempt(
    conn: &mut PgConnection,
    id: AttemptId,
    lock: bool,
) -> Result<Option<Attempt>, BackendError> {
    let sql = format!(
        "SELECT {ATTEMPT_COLUMNS} FROM quiz_attempts WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    sqlx::query_as::<_, AttemptRow>(sqlx::AssertSqlSafe(sql))
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await
        .map_err(db("read an attempt"))?
        .map(AttemptRow::into_attempt)
        .transpose()
}

async fn set_harvest(
    conn: &mut PgConnection,
    id: AttemptId,
    state: &HarvestState,
) -> Result<(), BackendError> {
    sqlx::query("UPDATE quiz_attempts SET harvest = $2 WHERE id = $1")
        .bind(id.as_uuid())
        .bind(Json(state))
        .execute(conn)
        .await
        .map_err(db("record a harvest outcome"))?;
    Ok(())
}

#[async_trait]
impl TreeStore for PgStore {
    async fn plant(&self, _now: DateTime<Utc>) -> Result<Vec<Lemon>, PlantError> {
        let mut tx = self.begin().await?;
        lock_tree(&mut tx).await?;
        let existing: Vec<(i16,)> = sqlx::query_as("SELECT position FROM lemons")
            .fetch_all(&mut *tx)
            .await
            .map_err(db("read the tree"))?;
        for position in Position::all() {
            if existing
                .iter()
                .any(|(p,)| i64::from(*p) == i64::from(position))
            {
                continue;
            }
            let quiz = next_quiz(&mut tx, true)
                .await?
                .ok_or(PlantError::EmptyBank)?;
            sqlx::query(
                "INSERT INTO lemons (position, quiz_id, cycle, ripe) VALUES ($1, $2, 0, true)",
            )
            .bind(i16::from(position.get()))
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
            "INSERT INTO quiz_attempts (id, user_id, position, lemon_cycle, quiz_id, started_at, time_limit_ms, harvest)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8
             WHERE EXISTS (SELECT 1 FROM lemons WHERE position = $3 AND ripe AND cycle = $4 AND quiz_id = $5)
             RETURNING {ATTEMPT_COLUMNS}"
        );
        let row: Option<AttemptRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(new.id.as_uuid())
            .bind(new.user.as_uuid())
            .bind(i16::from(new.position.get()))
            .bind(sql::bind_i64("lemon cycle", new.lemon_cycle)?)
            .bind(new.quiz.0)
            .bind(new.started_at)
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
        fetch_attempt(&mut conn, id, false).await
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
            "UPDATE quiz_attempts SET answer_option = $2, answer_correct = $3, answer_on_time = $4,
                 answered_at = $5, challenge = $6, harvest = $7
             WHERE id = $1 AND answered_at IS NULL AND harvest->>'state' = 'awaiting_answer'
             RETURNING {ATTEMPT_COLUMNS}"
        );
        let row: Option<AttemptRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id.as_uuid())
            .bind(i16::from(answer.option))
            .bind(answer.correct)
            .bind(answer.on_time)
            .bind(answer.at)
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
            "UPDATE quiz_attempts SET harvest = $2
             WHERE id = $1 AND answered_at IS NULL AND harvest->>'state' = 'awaiting_answer'",
        )
        .bind(id.as_uuid())
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
            "UPDATE quiz_attempts SET harvest = $2 WHERE id = $1 AND harvest->>'state' = 'open'",
        )
        .bind(id.as_uuid())
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
        let attempt = fetch_attempt(&mut tx, id, true).await?;
        let player = live_user(&mut tx, user, true).await?;
        let claim = match plan_claim(attempt.as_ref(), user, player.as_ref(), now, policy)? {
            ClaimPlan::Replay(receipt) => return Ok(receipt),
            ClaimPlan::Race(claim) => claim,
        };
        // The conditional update: only one claimant per ripening can match.
        let flipped = sqlx::query(
            "UPDATE lemons SET ripe = false, harvested_at = $3, regrows_at = $4, harvested_by = $5
             WHERE position = $1 AND ripe AND cycle = $2",
        )
        .bind(i16::from(claim.position.get()))
        .bind(sql::bind_i64("lemon cycle", claim.cycle)?)
        .bind(claim.harvested_at)
        .bind(claim.regrows_at)
        .bind(user.as_uuid())
        .execute(&mut *tx)
        .await
        .map_err(db("claim a lemon"))?
        .rows_affected()
            == 1;
        if !flipped {
            let (lost, refusal) = claim.gone();
            set_harvest(&mut tx, id, &lost).await?;
            commit(tx).await?;
            return Err(refusal);
        }
        let reward = post_tx(&mut tx, &claim.reward, &policy.ledger)
            .await
            .map_err(unexpected)?
            .entry()
            .clone();
        let bonus = match &claim.streak_bonus {
            Some(request) => Some(
                post_tx(&mut tx, request, &policy.ledger)
                    .await
                    .map_err(unexpected)?
                    .entry()
                    .clone(),
            ),
            None => None,
        };
        sqlx::query("UPDATE users SET last_harvest_at = $2, streak_days = $3, streak_last_day = $4 WHERE id = $1")
            .bind(user.as_uuid())
            .bind(claim.harvested_at)
            .bind(sql::bind_i32("streak days", claim.streak_after.days)?)
            .bind(claim.streak_after.last_day)
            .execute(&mut *tx)
            .await
            .map_err(db("record a harvest on the user"))?;
        let receipt = claim.receipt(&reward, bonus.as_ref());
        set_harvest(&mut tx, id, &HarvestState::Won(receipt)).await?;
        commit(tx).await?;
        Ok(receipt)
    }

    async fn regrow_due(&self, now: DateTime<Utc>) -> Result<Vec<Lemon>, BackendError> {
        let mut tx = self.begin().await?;
        lock_tree(&mut tx).await?;
        let due: Vec<(i16,)> = sqlx::query_as(
            "SELECT position FROM lemons WHERE NOT ripe AND regrows_at <= $1 ORDER BY position",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await
        .map_err(db("find due lemons"))?;
        let mut regrown = Vec::with_capacity(due.len());
        for (position,) in due {
            let quiz = next_quiz(&mut tx, false).await?;
            let sql = format!(
                "UPDATE lemons SET ripe = true, cycle = cycle + 1, quiz_id = COALESCE($2, quiz_id),
                     harvested_at = NULL, regrows_at = NULL, harvested_by = harvested_by
                 WHERE position = $1 RETURNING {LEMON_COLUMNS}"
            );
            let row: LemonRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
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
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT u.email, count(*) AS correct FROM quiz_attempts a JOIN users u ON u.id = a.user_id
             WHERE a.answer_correct AND a.answer_on_time AND u.deleted_at IS NULL
               AND a.answered_at >= ($1::date)::timestamp AT TIME ZONE 'UTC'
               AND a.answered_at < ($1::date + 1)::timestamp AT TIME ZONE 'UTC'
             GROUP BY u.email ORDER BY correct DESC, u.email LIMIT $2",
        )
        .bind(day)
        .bind(i64::from(n))
        .fetch_all(&self.pool)
        .await
        .map_err(db("rank quiz masters"))?;
        rows.into_iter()
            .map(|(email, c)| {
                Ok((
                    Email::parse(&email)
                        .map_err(|e| BackendError::with_source("stored email", e))?,
                    sql::u64_of("count", c)?,
                ))
            })
            .collect()
    }
}

#[async_trait]
impl QuizStore for PgStore {
    async fn seed_quizzes(&self, bank: &[NewQuiz]) -> Result<u64, BackendError> {
        let mut tx = self.begin().await?;
        let mut added = 0;
        for quiz in bank {
            added += sqlx::query(
                "INSERT INTO quizzes (category, difficulty, question, options, correct_option, time_limit_seconds, explanation)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (question) DO NOTHING",
            )
            .bind(quiz.category.as_str())
            .bind(quiz.difficulty.as_str())
            .bind(&quiz.question)
            .bind(&quiz.options)
            .bind(i16::from(quiz.correct_option))
            .bind(sql::bind_i32("time limit", quiz.time_limit_seconds)?)
            .bind(&quiz.explanation)
            .execute(&mut *tx)
            .await
            .map_err(db("seed a quiz"))?
            .rows_affected();
        }
        commit(tx).await?;
        Ok(added)
    }

    async fn add_quiz(&self, quiz: &NewQuiz) -> Result<Quiz, AddQuizError> {
        let sql = format!(
            "INSERT INTO quizzes (category, difficulty, question, options, correct_option, time_limit_seconds, explanation)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {QUIZ_COLUMNS}"
        );
        let row: QuizRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(quiz.category.as_str())
            .bind(quiz.difficulty.as_str())
            .bind(&quiz.question)
            .bind(&quiz.options)
            .bind(i16::from(quiz.correct_option))
            .bind(sql::bind_i32("time limit", quiz.time_limit_seconds)?)
            .bind(&quiz.explanation)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    AddQuizError::Duplicate
                } else {
                    AddQuizError::Backend(db("add a quiz")(e))
                }
            })?;
        Ok(row.into_quiz()?)
    }

    async fn quiz(&self, id: QuizId) -> Result<Option<Quiz>, BackendError> {
        let sql = format!("SELECT {QUIZ_COLUMNS} FROM quizzes WHERE id = $1");
        sqlx::query_as::<_, QuizRow>(sqlx::AssertSqlSafe(sql))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read a quiz"))?
            .map(QuizRow::into_quiz)
            .transpose()
    }

    async fn quizzes(&self) -> Result<Vec<Quiz>, BackendError> {
        let sql = format!("SELECT {QUIZ_COLUMNS} FROM quizzes ORDER BY id");
        sqlx::query_as::<_, QuizRow>(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await
            .map_err(db("list quizzes"))?
            .into_iter()
            .map(QuizRow::into_quiz)
            .collect()
    }

    async fn retire_quiz(&self, id: QuizId) -> Result<bool, BackendError> {
        let done = sqlx::query("UPDATE quizzes SET retired = true WHERE id = $1 AND NOT retired")
            .bind(id.0)
            .execute(&self.pool)
            .await
            .map_err(db("retire a quiz"))?;
        Ok(done.rows_affected() == 1)
    }
}
