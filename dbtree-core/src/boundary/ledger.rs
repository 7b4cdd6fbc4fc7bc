//! The ledger store: balance changes with their entries, and ledger queries.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use super::BackendError;
use crate::ids::{InstanceId, UserId};
use crate::ledger::{EntryKind, IdempotencyKey, LedgerEntry, LedgerPolicy, LedgerRefusal};
use crate::lemons::Lemons;
use crate::stats::{DailyHarvest, Page, PageRequest};

/// A balance change to post.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostRequest {
    /// Whose balance.
    pub user: UserId,
    /// Why.
    pub kind: EntryKind,
    /// How much (before clipping).
    pub amount: Lemons,
    /// The business event.
    pub key: IdempotencyKey,
    /// The instance it concerns, if any.
    pub instance: Option<InstanceId>,
    /// Now.
    pub at: DateTime<Utc>,
}

/// The result of a post.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PostOutcome {
    /// The entry was written now.
    Posted(LedgerEntry),
    /// The key was posted before: nothing changed; here is the original entry.
    Replayed(LedgerEntry),
}

impl PostOutcome {
    /// The entry, new or original.
    pub fn entry(&self) -> &LedgerEntry {
        match self {
            PostOutcome::Posted(e) | PostOutcome::Replayed(e) => e,
        }
    }
}

/// Why a post changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// The posting rule refuses (short balance, full storage).
    #[error(transparent)]
    Refused(#[from] LedgerRefusal),
    /// No live user with that id.
    #[error("unknown user")]
    UnknownUser,
    /// The key was already used by a different event (other user or kind).
    #[error("idempotency key {0} was already used for a different event")]
    KeyConflict(IdempotencyKey),
    /// Infrastructure failure.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// The ledger.
#[async_trait]
pub trait LedgerStore: Send + Sync {
    /// Posts a balance change.
    ///
    /// MUST plan it with [`crate::ledger::plan_posting`] on the current balance and write the new
    /// balance and the entry in one atomic step, so the balance always equals the sum of the
    /// user's entries and never goes negative. MUST change nothing and return
    /// [`PostOutcome::Replayed`] if the key was posted before for the same user and kind.
    ///
    /// # Errors
    /// [`PostError::Refused`], [`PostError::UnknownUser`], [`PostError::KeyConflict`].
    async fn post(
        &self,
        request: &PostRequest,
        policy: &LedgerPolicy,
    ) -> Result<PostOutcome, PostError>;

    /// A user's current balance (`None` for an unknown or deleted user).
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn balance(&self, user: UserId) -> Result<Option<Lemons>, BackendError>;

    /// A user's entries, newest first, optionally only those about one instance.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn history(
        &self,
        user: UserId,
        instance: Option<InstanceId>,
        page: PageRequest,
    ) -> Result<Page<LedgerEntry>, BackendError>;

    /// Lemons from harvests and streak bonuses per UTC day in `from..=to` (days without any are
    /// omitted).
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn daily_harvests(
        &self,
        user: UserId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DailyHarvest>, BackendError>;

    /// Sum of every harvest reward ever credited.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn total_harvested(&self) -> Result<u64, BackendError>;
}
