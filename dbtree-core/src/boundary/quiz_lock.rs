//! The one-quiz-per-user lock.

use async_trait::async_trait;
use chrono::TimeDelta;

use super::BackendError;
use crate::ids::{AttemptId, UserId};

/// The result of trying to take the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockOutcome {
    /// Taken by this attempt.
    Acquired,
    /// Another attempt of the user holds it.
    Held,
}

/// A per-user lock with a lifetime, held by one quiz attempt at a time.
#[async_trait]
pub trait QuizLock: Send + Sync {
    /// Takes the user's lock for `holder` for `ttl`. MUST take it only if nobody holds it, and
    /// MUST set the holder and the expiry in one atomic operation (set-if-absent with expiry), so
    /// a crash can never leave a lock without a lifetime.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn acquire(
        &self,
        user: UserId,
        holder: AttemptId,
        ttl: TimeDelta,
    ) -> Result<LockOutcome, BackendError>;

    /// Releases the user's lock. MUST delete it only if `holder` holds it, atomically
    /// (compare-and-delete), so a late release never frees another attempt's lock; returns
    /// whether it did.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn release(&self, user: UserId, holder: AttemptId) -> Result<bool, BackendError>;

    /// The attempt holding the user's lock. MUST NOT report an expired lock.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn holder(&self, user: UserId) -> Result<Option<AttemptId>, BackendError>;
}
