//! Managing the quiz bank (administrators).

use super::{Deps, InternalError};
use crate::boundary::AddQuizError;
use crate::ids::QuizId;
use crate::quiz::{NewQuiz, Quiz, QuizError, shipped_bank};

/// The quiz bank.
#[derive(Clone, Debug)]
pub struct QuizAdminService {
    deps: Deps,
}

/// Why a quiz was not added.
#[derive(Debug, thiserror::Error)]
pub enum QuizAdminError {
    /// A rule refuses the content.
    #[error(transparent)]
    Invalid(#[from] QuizError),
    /// The question exists.
    #[error("a quiz with this question already exists")]
    Duplicate,
    /// Infrastructure failure.
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl QuizAdminService {
    pub(crate) fn new(deps: Deps) -> Self {
        Self { deps }
    }

    /// Adds the shipped bank's questions that are missing; returns how many were added.
    ///
    /// # Errors
    /// [`InternalError`] if storage fails or the shipped bank is malformed.
    pub async fn seed_shipped_bank(&self) -> Result<u64, InternalError> {
        let bank = shipped_bank().map_err(|e| InternalError::Inconsistent(e.to_string()))?;
        Ok(self.deps.store.seed_quizzes(&bank).await?)
    }

    /// Every quiz.
    ///
    /// # Errors
    /// [`InternalError`].
    pub async fn list(&self) -> Result<Vec<Quiz>, InternalError> {
        Ok(self.deps.store.quizzes().await?)
    }

    /// Validates and adds a quiz.
    ///
    /// # Errors
    /// [`QuizAdminError`].
    pub async fn add(&self, quiz: NewQuiz) -> Result<Quiz, QuizAdminError> {
        let quiz = quiz.validate()?;
        self.deps.store.add_quiz(&quiz).await.map_err(|e| match e {
            AddQuizError::Duplicate => QuizAdminError::Duplicate,
            AddQuizError::Backend(b) => QuizAdminError::Internal(b.into()),
        })
    }

    /// Retires a quiz; returns whether an active quiz was retired.
    ///
    /// # Errors
    /// [`InternalError`].
    pub async fn retire(&self, id: QuizId) -> Result<bool, InternalError> {
        Ok(self.deps.store.retire_quiz(id).await?)
    }
}
