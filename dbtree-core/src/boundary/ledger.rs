//! The ledger store: balance changes with their entries, and ledger queries.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use super::BackendError;
use crate::ids::{InstanceId, UserId};
use crate::ledger::{EntryKind, IdempotencyKey, LedgerEntry, LedgerPolicy, LedgerRefusal, Posting};
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

impl PostRequest {
    /// The entry this request writes once `posting` was planned for it: its id is the key's
    /// ([`IdempotencyKey::entry_id`]), so a key can only ever name one entry.
    pub fn entry(&self, posting: &Posting) -> LedgerEntry {
        LedgerEntry {
            id: self.key.entry_id(),
            user: self.user,
            kind: self.kind,
            delta: posting.delta,
            balance_after: posting.balance_after,
            key: self.key.clone(),
            instance: self.instance,
            at: self.at,
        }
    }
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

/// What a post whose key was posted before does: the same user and kind replay the original
/// entry (nothing changes); anything else is a conflicting reuse of the key. Every
/// [`LedgerStore::post`] calls this when it finds `existing` under `request.key`, inside its
/// atomic step.
///
/// # Errors
/// [`PostError::KeyConflict`] when `existing` belongs to another user or is of another kind.
pub fn replay_or_conflict(
    existing: LedgerEntry,
    request: &PostRequest,
) -> Result<PostOutcome, PostError> {
    if existing.user == request.user && existing.kind == request.kind {
        Ok(PostOutcome::Replayed(existing))
    } else {
        Err(PostError::KeyConflict(request.key.clone()))
    }
}

/// The ledger.
#[async_trait]
pub trait LedgerStore: Send + Sync {
    /// Posts a balance change.
    ///
    /// MUST plan it with [`crate::ledger::plan_posting`] on the current balance and write the new
    /// balance and the entry in one atomic step, so the balance always equals the sum of the
    /// user's entries and never goes negative. If the key was posted before, MUST change nothing
    /// and answer what [`replay_or_conflict`] decides (a replay for the same user and kind).
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::ids::AttemptId;

    fn request(user: u8, kind: EntryKind) -> PostRequest {
        PostRequest {
            user: UserId::from_random_bytes([user; 16]),
            kind,
            amount: Lemons::new(3),
            key: IdempotencyKey::harvest(AttemptId::from_random_bytes([5; 16])),
            instance: None,
            at: Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap(),
        }
    }

    fn posted(request: &PostRequest) -> LedgerEntry {
        LedgerEntry {
            id: request.key.entry_id(),
            user: request.user,
            kind: request.kind,
            delta: 3,
            balance_after: Lemons::new(13),
            key: request.key.clone(),
            instance: None,
            at: request.at,
        }
    }

    #[test]
    fn the_same_user_and_kind_replay_the_original_entry() {
        let first = request(1, EntryKind::Harvest);
        let mut again = first.clone();
        again.amount = Lemons::new(99);
        again.at += chrono::TimeDelta::minutes(1);
        match replay_or_conflict(posted(&first), &again) {
            Ok(PostOutcome::Replayed(entry)) => assert_eq!(entry, posted(&first)),
            other => panic!("expected a replay, got {other:?}"),
        }
    }

    #[test]
    fn a_request_writes_the_entry_its_key_names() {
        let request = request(1, EntryKind::Harvest);
        let posting = Posting {
            delta: 3,
            balance_after: Lemons::new(13),
        };
        assert_eq!(request.entry(&posting), posted(&request));
    }

    #[test]
    fn another_user_or_kind_is_a_key_conflict() {
        let first = request(1, EntryKind::Harvest);
        for other in [
            request(2, EntryKind::Harvest),
            request(1, EntryKind::StreakBonus),
        ] {
            match replay_or_conflict(posted(&first), &other) {
                Err(PostError::KeyConflict(key)) => assert_eq!(key, first.key),
                got => panic!("expected a conflict, got {got:?}"),
            }
        }
    }
}
