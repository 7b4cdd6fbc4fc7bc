//! The user store: accounts, balances and the once-per-email welcome bonus.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::BackendError;
use crate::auth::Email;
use crate::ids::UserId;
use crate::ledger::{LedgerEntry, LedgerPolicy};
use crate::lemons::Lemons;
use crate::streak::Streak;

/// An account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Its identifier.
    pub id: UserId,
    /// Its normalised address.
    pub email: Email,
    /// Current balance; always the sum of the user's ledger entries.
    pub balance: Lemons,
    /// Lemons ever credited.
    pub earned_total: u64,
    /// Lemons ever debited.
    pub spent_total: u64,
    /// The last successful harvest (start of the cooldown).
    pub last_harvest_at: Option<DateTime<Utc>>,
    /// The harvest streak.
    pub streak: Streak,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

/// A user to create if the address has no live account.
#[derive(Clone, Debug)]
pub struct NewUser {
    /// Identifier for the new account (ignored if the account exists).
    pub id: UserId,
    /// The address.
    pub email: Email,
    /// Now.
    pub now: DateTime<Utc>,
}

/// The result of signing up or in.
#[derive(Clone, Debug)]
pub struct Registration {
    /// The account, after any welcome bonus.
    pub user: User,
    /// Whether the account was created by this call.
    pub created: bool,
    /// The welcome bonus entry, if this call paid it.
    pub welcome: Option<LedgerEntry>,
}

/// Accounts.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Returns the live account for `new.email`, creating it if there is none.
    ///
    /// MUST create the account and post the welcome bonus (`policy.welcome_bonus`, key
    /// [`crate::ledger::IdempotencyKey::welcome`]) in one atomic step. MUST NOT pay the bonus if
    /// that key was ever posted (deleted accounts included). Concurrent calls for one address
    /// MUST end with exactly one live account and at most one bonus.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn register(
        &self,
        new: &NewUser,
        policy: &LedgerPolicy,
    ) -> Result<Registration, BackendError>;

    /// The live account with this id.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn user(&self, id: UserId) -> Result<Option<User>, BackendError>;

    /// Deletes an account: MUST remove its sessions and erase its email, and MUST keep its ledger
    /// entries. Idempotent; returns whether a live account was deleted.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn delete_user(&self, id: UserId, now: DateTime<Utc>) -> Result<bool, BackendError>;

    /// The `n` live accounts with the highest balances, highest first (ties by earliest account).
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn richest(&self, n: u32) -> Result<Vec<(Email, Lemons)>, BackendError>;

    /// Number of live accounts.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn count_live_users(&self) -> Result<u64, BackendError>;

    /// Marks that the account was warned of a low balance, unless it already was (one atomic
    /// set-if-unset, so several replicas send one warning). Returns whether this call marked it.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn mark_low_balance_warned(
        &self,
        id: UserId,
        now: DateTime<Utc>,
    ) -> Result<bool, BackendError>;

    /// Forgets the low-balance warning (the episode is over). Returns whether one was set.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn clear_low_balance_warning(&self, id: UserId) -> Result<bool, BackendError>;

    /// The live accounts currently marked as warned of a low balance.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn low_balance_warned(&self) -> Result<Vec<UserId>, BackendError>;
}
