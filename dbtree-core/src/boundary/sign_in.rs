//! The sign-in store: one-time codes and sessions.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::BackendError;
use crate::auth::{AuthPolicy, CodeHash, CodeIssueRefusal, CodeVerdict, Email, Session, TokenHash};
use crate::ids::UserId;

/// A code to record.
#[derive(Clone, Debug)]
pub struct NewCode {
    /// The address it goes to.
    pub email: Email,
    /// Its digest.
    pub hash: CodeHash,
    /// Now.
    pub issued_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

/// Why a code was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum IssueCodeError {
    /// The per-address resend gap or hourly allowance refuses it.
    #[error(transparent)]
    Refused(#[from] CodeIssueRefusal),
    /// Infrastructure failure.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// What a purge removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Codes removed.
    pub codes: u64,
    /// Sessions removed.
    pub sessions: u64,
}

/// Codes and sessions.
#[async_trait]
pub trait SignInStore: Send + Sync {
    /// Records a new code for an address.
    ///
    /// MUST apply [`crate::auth::check_code_issue`] to the address's earlier codes and record
    /// the code in the same atomic step (two concurrent requests MUST NOT both pass the resend
    /// gap). A new code MUST supersede older unused codes of the address. MUST NOT touch sessions.
    ///
    /// # Errors
    /// [`IssueCodeError::Refused`] when the rule refuses.
    async fn issue_code(&self, code: &NewCode, policy: &AuthPolicy) -> Result<(), IssueCodeError>;

    /// Removes a code that could not be delivered, so the address may ask again at once.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn withdraw_code(
        &self,
        email: &Email,
        issued_at: DateTime<Utc>,
    ) -> Result<(), BackendError>;

    /// Presents a code for an address.
    ///
    /// MUST judge it with [`crate::auth::judge_code`] against the newest code of the address and
    /// apply the verdict atomically: `Accepted` marks the code used (so only one of two
    /// concurrent presentations is accepted), `Wrong` counts the wrong try.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn redeem_code(
        &self,
        email: &Email,
        presented: &CodeHash,
        now: DateTime<Utc>,
        policy: &AuthPolicy,
    ) -> Result<CodeVerdict, BackendError>;

    /// Records a session. Other sessions of the user MUST remain.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn create_session(&self, session: &Session) -> Result<(), BackendError>;

    /// The session with this token hash, if it exists and is valid at `now` (and its user is not
    /// deleted).
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn session(
        &self,
        token: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, BackendError>;

    /// Ends one session; returns whether it existed.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn end_session(&self, token: &TokenHash) -> Result<bool, BackendError>;

    /// Ends every session of a user; returns how many.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn end_all_sessions(&self, user: UserId) -> Result<u64, BackendError>;

    /// Removes expired sessions, and codes issued more than an hour ago (they no longer count
    /// toward any limit and can no longer be used).
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<PurgeReport, BackendError>;
}
