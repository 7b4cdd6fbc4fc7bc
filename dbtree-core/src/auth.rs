//! Sign-in policy: email normalisation, one-time codes, session tokens and their limits.

mod code;
mod email;
mod token;

use chrono::{DateTime, TimeDelta, Utc};
pub use code::{
    CodeHash, CodeIssueRefusal, CodeKey, CodeVerdict, InvalidCode, InvalidCodeKey, IssuedCode,
    SignInCode,
};
pub use code::{check_code_issue, judge_code};
pub use email::{Email, EmailError};
pub use token::{InvalidToken, SessionToken, TokenHash};

use crate::ids::UserId;

/// The numbers of sign-in and sessions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthPolicy {
    /// How long a sign-in code stays valid (default 10 min).
    pub code_ttl: TimeDelta,
    /// Wrong tries after which a code is locked (default 5).
    pub max_wrong_attempts: u32,
    /// Minimum gap between two codes for one email (default 60 s).
    pub resend_gap: TimeDelta,
    /// Codes per email per sliding hour from all client addresses together (default 10).
    pub codes_per_hour_per_email: u32,
    /// Codes per email per sliding hour from one client address (default 5): a stranger
    /// requesting codes for someone else's address uses up only this share, never the whole
    /// per-email allowance.
    pub codes_per_hour_per_email_and_ip: u32,
    /// Codes requested per client address per sliding hour, for any emails (default 30: an
    /// office or classroom behind one address can sign in).
    pub codes_per_hour_per_ip: u32,
    /// Code verifications per client IP per sliding hour (default 30).
    pub verifications_per_hour_per_ip: u32,
    /// Session lifetime (default 24 h).
    pub session_ttl: TimeDelta,
    /// Normalised addresses allowed to manage the quiz bank.
    pub admin_emails: Vec<Email>,
    /// The key sign-in codes are stored under (HMAC-SHA-256). The default is a public
    /// development key: a server sets its own, kept outside the database.
    pub code_key: CodeKey,
}

impl Default for AuthPolicy {
    fn default() -> Self {
        Self {
            code_ttl: TimeDelta::minutes(10),
            max_wrong_attempts: 5,
            resend_gap: TimeDelta::seconds(60),
            codes_per_hour_per_email: 10,
            codes_per_hour_per_email_and_ip: 5,
            codes_per_hour_per_ip: 30,
            verifications_per_hour_per_ip: 30,
            session_ttl: TimeDelta::hours(24),
            admin_emails: Vec::new(),
            code_key: CodeKey::default(),
        }
    }
}

impl AuthPolicy {
    /// Whether `email` is one of the configured administrators.
    pub fn is_admin(&self, email: &Email) -> bool {
        self.admin_emails.iter().any(|a| a == email)
    }

    /// When a code issued at `issued_at` stops being accepted.
    pub fn code_expires_at(&self, issued_at: DateTime<Utc>) -> DateTime<Utc> {
        issued_at + self.code_ttl
    }

    /// When a session created at `created_at` expires.
    pub fn session_expires_at(&self, created_at: DateTime<Utc>) -> DateTime<Utc> {
        created_at + self.session_ttl
    }
}

/// A signed-in device: one row per sign-in, identified by the hash of its bearer token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The signed-in user.
    pub user: UserId,
    /// SHA-256 of the bearer token; the token itself is never stored.
    pub token_hash: TokenHash,
    /// When the session was created.
    pub created_at: DateTime<Utc>,
    /// When it stops being accepted.
    pub expires_at: DateTime<Utc>,
}

impl Session {
    /// Whether the session is still valid at `now`.
    pub fn is_valid_at(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at
    }
}
