//! The quiz bank on SQLite.

use std::collections::BTreeSet;

use async_trait::async_trait;
use dbtree_core::boundary::{AddQuizError, BackendError, QuizStore};
use dbtree_core::ids::QuizId;
use dbtree_core::quiz::{NewQuiz, Quiz};
use dbtree_core::tree::{QuizUsage, choose_next_quiz};
use sqlx::query::Query;
use sqlx::sqlite::SqliteArguments;
use sqlx::types::Json;
use sqlx::{FromRow, Sqlite, SqliteConnection};

use super::{SqliteStore, commit, db, is_unique_violation};
use crate::sql;

#[derive(sqlx::FromRow)]
struct QuizRow {
    id: i64,
    category: String,
    difficulty: String,
    question: String,
    options: Json<Vec<String>>,
    correct_option: i64,
    time_limit_seconds: i64,
    explanation: String,
    uses: i64,
    retired: bool,
}

const QUIZ_COLUMNS: &str = "id, category, difficulty, question, options, correct_option, \
     time_limit_seconds, explanation, uses, retired";

const QUIZ_INSERT: &str = "INSERT INTO quizzes (category, difficulty, question, options, \
     correct_option, time_limit_seconds, explanation) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

impl QuizRow {
    fn into_quiz(self) -> Result<Quiz, BackendError> {
        Ok(Quiz {
            id: QuizId(self.id),
            content: NewQuiz {
                category: sql::parse("category", &self.category)?,
                difficulty: sql::parse("difficulty", &self.difficulty)?,
                question: self.question,
                options: self.options.0,
                correct_option: u8::try_from(self.correct_option)
                    .map_err(|_| BackendError::new("stored correct option out of range"))?,
                time_limit_seconds: sql::u32_of("time_limit_seconds", self.time_limit_seconds)?,
                explanation: self.explanation,
            },
            uses: sql::u64_of("uses", self.uses)?,
            retired: self.retired,
        })
    }
}

/// Binds a quiz's columns to [`QUIZ_INSERT`] (or a query extending it).
fn bind_quiz<'q>(
    query: Query<'q, Sqlite, SqliteArguments>,
    quiz: &NewQuiz,
) -> Query<'q, Sqlite, SqliteArguments> {
    query
        .bind(quiz.category.as_str())
        .bind(quiz.difficulty.as_str())
        .bind(&quiz.question)
        .bind(Json(&quiz.options))
        .bind(i64::from(quiz.correct_option))
        .bind(i64::from(quiz.time_limit_seconds))
        .bind(&quiz.explanation)
}

/// Picks the least-used active quiz not on the tree (write lock held), and counts a use.
pub(super) async fn next_quiz(
    conn: &mut SqliteConnection,
    fallback_to_any: bool,
) -> Result<Option<QuizId>, BackendError> {
    let candidates: Vec<(i64, i64)> =
        sqlx::query_as("SELECT id, uses FROM quizzes WHERE retired = 0")
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
        sqlx::query("UPDATE quizzes SET uses = uses + 1 WHERE id = ?1")
            .bind(quiz.0)
            .execute(&mut *conn)
            .await
            .map_err(db("count a quiz use"))?;
    }
    Ok(chosen)
}

#[async_trait]
impl QuizStore for SqliteStore {
    async fn seed_quizzes(&self, bank: &[NewQuiz]) -> Result<u64, BackendError> {
        let mut tx = self.begin().await?;
        let sql = format!("{QUIZ_INSERT} ON CONFLICT (question) DO NOTHING");
        let mut added = 0;
        for quiz in bank {
            added += bind_quiz(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), quiz)
                .execute(&mut *tx)
                .await
                .map_err(db("seed a quiz"))?
                .rows_affected();
        }
        commit(tx).await?;
        Ok(added)
    }

    async fn add_quiz(&self, quiz: &NewQuiz) -> Result<Quiz, AddQuizError> {
        let sql = format!("{QUIZ_INSERT} RETURNING {QUIZ_COLUMNS}");
        let row = bind_quiz(sqlx::query(sqlx::AssertSqlSafe(sql)), quiz)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    AddQuizError::Duplicate
                } else {
                    AddQuizError::Backend(db("add a quiz")(e))
                }
            })?;
        Ok(QuizRow::from_row(&row)
            .map_err(db("read a new quiz"))?
            .into_quiz()?)
    }

    async fn quiz(&self, id: QuizId) -> Result<Option<Quiz>, BackendError> {
        let sql = format!("SELECT {QUIZ_COLUMNS} FROM quizzes WHERE id = ?1");
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
        let done = sqlx::query("UPDATE quizzes SET retired = 1 WHERE id = ?1 AND retired = 0")
            .bind(id.0)
            .execute(&self.pool)
            .await
            .map_err(db("retire a quiz"))?;
        Ok(done.rows_affected() == 1)
    }
}
