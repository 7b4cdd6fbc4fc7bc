//! Sign-in with emailed codes, sessions, profiles and account deletion.

use std::net::IpAddr;

use chrono::{DateTime, TimeDelta, Utc};

use super::{Deps, InternalError, internal_errors, random_bytes, with_random_u32s};
use crate::auth::{
    CodeIssueRefusal, CodeVerdict, Email, EmailError, InvalidCode, Session, SessionToken,
    SignInCode,
};
use crate::boundary::{
    IssueCodeError, MailError, NewCode, NewUser, RateDecision, RateKey, RateLimit, User,
};
use crate::ids::UserId;
use crate::lemons::Lemons;
use crate::mail::{Envelope, Notification};
use crate::streak::utc_day;

/// Sign-in, sessions and accounts.
#[derive(Clone, Debug)]
pub struct AccountService {
    deps: Deps,
}

/// A code is on its way.
#[derive(Clone, Debug)]
pub struct CodeSent {
    /// The normalised address.
    pub email: Email,
    /// When the code expires.
    pub expires_at: DateTime<Utc>,
    /// Seconds before another code may be requested.
    pub resend_after_secs: u32,
}

/// Why no code was sent.
#[derive(Debug, thiserror::Error)]
pub enum RequestCodeError {
    /// The address is not acceptable.
    #[error(transparent)]
    InvalidEmail(#[from] EmailError),
    /// Too many codes from this client address.
    #[error("too many sign-in codes requested from this address; retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds to wait.
        retry_after_secs: u32,
    },
    /// The per-email resend gap or hourly allowance.
    #[error(transparent)]
    Refused(#[from] CodeIssueRefusal),
    /// The message could not be sent (nothing was recorded; the user may retry at once).
    #[error(transparent)]
    MailUnavailable(MailError),
    /// Infrastructure failure.
    #[error(transparent)]
    Internal(#[from] InternalError),
}

/// A completed sign-in.
#[derive(Debug)]
pub struct SignedIn {
    /// The bearer token, shown once.
    pub token: SessionToken,
    /// The new session.
    pub session: Session,
    /// Whether the account was created now.
    pub new_user: bool,
    /// The profile, welcome bonus included.
    pub profile: Profile,
    /// Set if the welcome email could not be sent (sign-in still succeeded).
    pub welcome_mail_failure: Option<MailError>,
}

/// Why a code was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The address is not acceptable.
    #[error(transparent)]
    InvalidEmail(#[from] EmailError),
    /// The code is not six digits.
    #[error(transparent)]
    InvalidCode(#[from] InvalidCode),
    /// Too many verifications from this client address.
    #[error("too many sign-in attempts from this address; retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds to wait.
        retry_after_secs: u32,
    },
    /// Wrong code.
    #[error("wrong code; {attempts_left} attempts left")]
    WrongCode {
        /// Tries left before the code locks.
        attempts_left: u32,
    },
    /// Too many wrong tries: request a new code.
    #[error("this code is locked after too many wrong attempts; request a new code")]
    CodeLocked,
    /// The code expired: request a new one.
    #[error("this code has expired; request a new code")]
    CodeExpired,
    /// No code is pending for this address.
    #[error("no sign-in code is pending for this address; request one first")]
    NoCode,
    /// Infrastructure failure.
    #[error(transparent)]
    Internal(#[from] InternalError),
}

/// A signed-in caller.
#[derive(Clone, Debug)]
pub struct Authenticated {
    /// The account.
    pub user: User,
    /// The session used.
    pub session: Session,
    /// Whether the account is an administrator.
    pub is_admin: bool,
}

/// Why a bearer token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The token is not one dbtree issues.
    #[error("malformed bearer token")]
    MalformedToken,
    /// Unknown, expired or logged-out session, or deleted account.
    #[error("the session is invalid or has expired")]
    InvalidSession,
    /// Infrastructure failure.
    #[error(transparent)]
    Internal(#[from] InternalError),
}

/// Why an account was not (completely) deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteAccountError {
    /// No live account.
    #[error("unknown account")]
    UnknownAccount,
    /// Infrastructure failure.
    #[error(transparent)]
    Internal(#[from] InternalError),
}

internal_errors!(RequestCodeError, VerifyError, AuthError, DeleteAccountError);

/// What a user sees about themselves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// The account.
    pub id: UserId,
    /// The address.
    pub email: Email,
    /// Current balance.
    pub balance: Lemons,
    /// The balance cap.
    pub balance_cap: Lemons,
    /// Lemons ever credited.
    pub earned_total: u64,
    /// Lemons ever debited.
    pub spent_total: u64,
    /// Current harvest streak in days (0 if broken).
    pub streak_days: u32,
    /// End of the harvest cooldown, if cooling down.
    pub cooldown_until: Option<DateTime<Utc>>,
    /// Whether the account manages the quiz bank.
    pub is_admin: bool,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

impl AccountService {
    pub(crate) fn new(deps: Deps) -> Self {
        Self { deps }
    }

    /// Counts a hit on `key` (none when the client address is unknown); returns the seconds to
    /// wait if refused. A limiter that cannot be reached is an error: the limit is never skipped.
    async fn limit(&self, key: Option<RateKey>, max: u32) -> Result<Option<u32>, InternalError> {
        let Some(key) = key else { return Ok(None) };
        let limit = RateLimit {
            max,
            window: TimeDelta::hours(1),
        };
        match self.deps.rate_limiter.hit(&key, limit).await? {
            RateDecision::Allowed => Ok(None),
            RateDecision::Limited { retry_after_secs } => Ok(Some(retry_after_secs)),
        }
    }

    /// Sends a sign-in code to an address. Never touches existing sessions.
    ///
    /// # Errors
    /// In order: [`RequestCodeError::InvalidEmail`], [`RequestCodeError::RateLimited`] (codes
    /// from this client address, any emails), [`RequestCodeError::Refused`] with
    /// [`CodeIssueRefusal::TooManyCodes`] (codes for this email from this client address), then
    /// [`RequestCodeError::Refused`] from the store (resend gap, codes for this email from all
    /// addresses), then delivery failures.
    pub async fn request_code(
        &self,
        email: &str,
        client: Option<IpAddr>,
    ) -> Result<CodeSent, RequestCodeError> {
        let email = Email::parse(email)?;
        let policy = &self.deps.policy.auth;
        if let Some(retry_after_secs) = self
            .limit(
                client.map(RateKey::code_requests_from),
                policy.codes_per_hour_per_ip,
            )
            .await?
        {
            return Err(RequestCodeError::RateLimited { retry_after_secs });
        }
        if let Some(retry_after_secs) = self
            .limit(
                client.map(|ip| RateKey::code_requests_for(&email, ip)),
                policy.codes_per_hour_per_email_and_ip,
            )
            .await?
        {
            return Err(RequestCodeError::Refused(CodeIssueRefusal::TooManyCodes {
                retry_after_secs,
            }));
        }
        let now = self.deps.clock.now();
        let code = with_random_u32s(self.deps.entropy.as_ref(), |draw| {
            SignInCode::generate(draw)
        })?
        .ok_or_else(|| InternalError::Inconsistent("random source kept failing".into()))?;
        let expires_at = policy.code_expires_at(now);
        let new = NewCode {
            email: email.clone(),
            hash: code.hash_for(&email, &policy.code_key),
            issued_at: now,
            expires_at,
        };
        self.deps
            .store
            .issue_code(&new, policy)
            .await
            .map_err(|e| match e {
                IssueCodeError::Refused(r) => RequestCodeError::Refused(r),
                IssueCodeError::Backend(b) => b.into(),
            })?;
        let envelope = Envelope {
            to: email.clone(),
            notification: Notification::SignInCode {
                code,
                valid_minutes: policy.code_ttl.num_minutes(),
            },
        };
        if let Err(failure) = self.deps.mailer.send(&envelope).await {
            self.deps.store.withdraw_code(&email, now).await?;
            return Err(RequestCodeError::MailUnavailable(failure));
        }
        let resend_after_secs = u32::try_from(policy.resend_gap.num_seconds()).unwrap_or(0);
        Ok(CodeSent {
            email,
            expires_at,
            resend_after_secs,
        })
    }

    /// Verifies a code and opens a new session (one per device; others stay). Creates the
    /// account on first sign-in, paying the welcome bonus once per canonical mailbox ever
    /// (`ann+x@…` and Gmail dot variants share one bonus; see [`Email::canonical_mailbox`]).
    ///
    /// # Errors
    /// In order: invalid email, invalid code, rate limit (per client address), then the verdict.
    pub async fn verify(
        &self,
        email: &str,
        code: &str,
        client: Option<IpAddr>,
    ) -> Result<SignedIn, VerifyError> {
        let email = Email::parse(email)?;
        let code = SignInCode::parse(code)?;
        let policy = &self.deps.policy.auth;
        if let Some(retry_after_secs) = self
            .limit(
                client.map(RateKey::verifications_from),
                policy.verifications_per_hour_per_ip,
            )
            .await?
        {
            return Err(VerifyError::RateLimited { retry_after_secs });
        }
        let now = self.deps.clock.now();
        match self
            .deps
            .store
            .redeem_code(
                &email,
                &code.hash_for(&email, &policy.code_key),
                now,
                policy,
            )
            .await?
        {
            CodeVerdict::Accepted => {}
            CodeVerdict::Wrong { attempts_left } => {
                return Err(VerifyError::WrongCode { attempts_left });
            }
            CodeVerdict::Locked => return Err(VerifyError::CodeLocked),
            CodeVerdict::Expired => return Err(VerifyError::CodeExpired),
            CodeVerdict::NoCode => return Err(VerifyError::NoCode),
        }
        let new_user = NewUser {
            id: UserId::from_random_bytes(random_bytes(self.deps.entropy.as_ref())?),
            email: email.clone(),
            now,
        };
        let registration = self
            .deps
            .store
            .register(&new_user, &self.deps.policy.ledger)
            .await?;
        let token = SessionToken::from_random_bytes(random_bytes(self.deps.entropy.as_ref())?);
        let session = Session {
            user: registration.user.id,
            token_hash: token.hash(),
            created_at: now,
            expires_at: policy.session_expires_at(now),
        };
        self.deps.store.create_session(&session).await?;
        // A bonus entry of another account means this mailbox was paid before (a concurrent
        // sign-up of the same canonical mailbox): nothing was paid here, nothing to announce.
        let welcome_mail_failure = match &registration.welcome {
            Some(entry) if entry.user == registration.user.id => {
                let bonus = Lemons::try_from_i64(entry.delta).unwrap_or(Lemons::ZERO);
                let envelope = Envelope {
                    to: email,
                    notification: Notification::Welcome { bonus },
                };
                self.deps.mailer.send(&envelope).await.err()
            }
            Some(_) | None => None,
        };
        Ok(SignedIn {
            token,
            session,
            new_user: registration.created,
            profile: self.profile_at(&registration.user, now),
            welcome_mail_failure,
        })
    }

    /// Resolves a bearer token to its session and account.
    ///
    /// # Errors
    /// [`AuthError::MalformedToken`], [`AuthError::InvalidSession`].
    pub async fn authenticate(&self, bearer: &str) -> Result<Authenticated, AuthError> {
        let token = SessionToken::parse(bearer).map_err(|_| AuthError::MalformedToken)?;
        let now = self.deps.clock.now();
        let session = self
            .deps
            .store
            .session(&token.hash(), now)
            .await?
            .ok_or(AuthError::InvalidSession)?;
        let user = self
            .deps
            .store
            .user(session.user)
            .await?
            .ok_or(AuthError::InvalidSession)?;
        let is_admin = self.deps.policy.auth.is_admin(&user.email);
        Ok(Authenticated {
            user,
            session,
            is_admin,
        })
    }

    /// Ends this session only.
    ///
    /// # Errors
    /// [`InternalError`].
    pub async fn logout(&self, session: &Session) -> Result<(), InternalError> {
        self.deps.store.end_session(&session.token_hash).await?;
        Ok(())
    }

    /// Ends every session of the user; returns how many.
    ///
    /// # Errors
    /// [`InternalError`].
    pub async fn logout_everywhere(&self, user: UserId) -> Result<u64, InternalError> {
        Ok(self.deps.store.end_all_sessions(user).await?)
    }

    /// The profile of an account at the current time.
    pub fn profile(&self, user: &User) -> Profile {
        self.profile_at(user, self.deps.clock.now())
    }

    fn profile_at(&self, user: &User, now: DateTime<Utc>) -> Profile {
        let policy = &self.deps.policy;
        Profile {
            id: user.id,
            email: user.email.clone(),
            balance: user.balance,
            balance_cap: policy.ledger.balance_cap,
            earned_total: user.earned_total,
            spent_total: user.spent_total,
            streak_days: user.streak.current(utc_day(now)),
            cooldown_until: policy.harvest.in_cooldown(user.last_harvest_at, now),
            is_admin: policy.auth.is_admin(&user.email),
            created_at: user.created_at,
        }
    }

    /// Removes expired sessions and codes older than an hour.
    ///
    /// # Errors
    /// [`InternalError`].
    pub async fn purge_expired(&self) -> Result<crate::boundary::PurgeReport, InternalError> {
        Ok(self.deps.store.purge_expired(self.deps.clock.now()).await?)
    }

    /// Deletes an account: its instances are deleted through the cluster, its sessions end, its
    /// ledger is kept for audit with the email removed. A later sign-up with the same address
    /// gets no second welcome bonus.
    ///
    /// # Errors
    /// [`DeleteAccountError::UnknownAccount`], or infrastructure failures (safe to retry).
    pub async fn delete_account(&self, user: UserId) -> Result<u32, DeleteAccountError> {
        if self.deps.store.user(user).await?.is_none() {
            return Err(DeleteAccountError::UnknownAccount);
        }
        let mut deleted = 0;
        for instance in self.deps.store.instances_of(user).await? {
            if super::instances::delete_instance(&self.deps, &instance, "account deleted").await? {
                deleted += 1;
            }
        }
        let now = self.deps.clock.now();
        self.deps.store.delete_user(user, now).await?;
        Ok(deleted)
    }
}
