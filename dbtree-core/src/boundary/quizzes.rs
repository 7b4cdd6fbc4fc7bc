//! The quiz store: the bank of questions.

use async_trait::async_trait;

use super::BackendError;
use crate::ids::QuizId;
use crate::quiz::{NewQuiz, Quiz};

/// Why a quiz was not added.
#[derive(Debug, thiserror::Error)]
pub enum AddQuizError {
    /// A quiz with the same question exists.
    #[error("a quiz with this question already exists")]
    Duplicate,
    /// Infrastructure failure.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// The quiz bank.
#[async_trait]
pub trait QuizStore: Send + Sync {
    /// Adds every quiz whose question is not in the bank yet; returns how many were added.
    /// Idempotent.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn seed_quizzes(&self, bank: &[NewQuiz]) -> Result<u64, BackendError>;

    /// Adds one (validated) quiz. Questions MUST be unique.
    ///
    /// # Errors
    /// [`AddQuizError::Duplicate`].
    async fn add_quiz(&self, quiz: &NewQuiz) -> Result<Quiz, AddQuizError>;

    /// One quiz.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn quiz(&self, id: QuizId) -> Result<Option<Quiz>, BackendError>;

    /// Every quiz, retired ones included, by id.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn quizzes(&self) -> Result<Vec<Quiz>, BackendError>;

    /// Retires a quiz: it is never put on the tree again (a lemon carrying it keeps it until
    /// harvested). Returns whether an active quiz was retired.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn retire_quiz(&self, id: QuizId) -> Result<bool, BackendError>;
}
