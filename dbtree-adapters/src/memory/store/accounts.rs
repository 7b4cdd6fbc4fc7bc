//! Users, sign-in codes, sessions and support inquiries in memory.

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use dbtree_core::auth::{
    AuthPolicy, CodeHash, CodeVerdict, Email, IssuedCode, Session, TokenHash, check_code_issue,
    judge_code,
};
use dbtree_core::boundary::{
    BackendError, InquiryId, IssueCodeError, NewCode, NewUser, PostOutcome, PostRequest,
    PurgeReport, Registration, SignInStore, SupportStore, User, UserStore,
};
use dbtree_core::ids::UserId;
use dbtree_core::ledger::{EntryKind, IdempotencyKey, LedgerPolicy};
use dbtree_core::lemons::Lemons;
use dbtree_core::streak::Streak;
use dbtree_core::support::SupportInquiry;

use super::{MemoryStore, UserRow, post_error_to_backend};

#[async_trait]
impl UserStore for MemoryStore {
    async fn register(
        &self,
        new: &NewUser,
        policy: &LedgerPolicy,
    ) -> Result<Registration, BackendError> {
        let mut s = self.state.lock();
        if let Some(user) = s
            .live_by_email
            .get(&new.email)
            .and_then(|id| s.live_user(*id))
        {
            return Ok(Registration {
                user,
                created: false,
                welcome: None,
            });
        }
        if s.users.contains_key(&new.id) {
            return Err(BackendError::new("user id already in use"));
        }
        s.users.insert(
            new.id,
            UserRow {
                id: new.id,
                email: Some(new.email.clone()),
                balance: Lemons::ZERO,
                earned_total: 0,
                spent_total: 0,
                last_harvest_at: None,
                streak: Streak::default(),
                created_at: new.now,
            },
        );
        s.live_by_email.insert(new.email.clone(), new.id);
        let key = IdempotencyKey::welcome(&new.email);
        let welcome = if s.entry(&key).is_some() || policy.welcome_bonus == Lemons::ZERO {
            None
        } else {
            let request = PostRequest {
                user: new.id,
                kind: EntryKind::WelcomeBonus,
                amount: policy.welcome_bonus,
                key,
                instance: None,
                at: new.now,
            };
            match s.post(&request, policy).map_err(post_error_to_backend)? {
                PostOutcome::Posted(e) | PostOutcome::Replayed(e) => Some(e),
            }
        };
        let user = s
            .live_user(new.id)
            .ok_or_else(|| BackendError::new("user vanished"))?;
        Ok(Registration {
            user,
            created: true,
            welcome,
        })
    }

    async fn user(&self, id: UserId) -> Result<Option<User>, BackendError> {
        Ok(self.state.lock().live_user(id))
    }

    async fn delete_user(&self, id: UserId, _now: DateTime<Utc>) -> Result<bool, BackendError> {
        let mut s = self.state.lock();
        let Some(email) = s.users.get_mut(&id).and_then(|u| u.email.take()) else {
            return Ok(false);
        };
        s.live_by_email.remove(&email);
        s.sessions.retain(|_, session| session.user != id);
        s.codes.retain(|c| c.email != email);
        Ok(true)
    }

    async fn richest(&self, n: u32) -> Result<Vec<(Email, Lemons)>, BackendError> {
        let s = self.state.lock();
        let mut users: Vec<User> = s.users.values().filter_map(UserRow::live).collect();
        users.sort_by(|a, b| {
            b.balance
                .cmp(&a.balance)
                .then(a.created_at.cmp(&b.created_at))
                .then(a.id.cmp(&b.id))
        });
        Ok(users
            .into_iter()
            .take(n as usize)
            .map(|u| (u.email, u.balance))
            .collect())
    }

    async fn count_live_users(&self) -> Result<u64, BackendError> {
        Ok(self.state.lock().live_by_email.len() as u64)
    }

    async fn mark_low_balance_warned(
        &self,
        id: UserId,
        now: DateTime<Utc>,
    ) -> Result<bool, BackendError> {
        let mut s = self.state.lock();
        if s.live_user(id).is_none() || s.low_balance_warned.contains_key(&id) {
            return Ok(false);
        }
        s.low_balance_warned.insert(id, now);
        Ok(true)
    }

    async fn clear_low_balance_warning(&self, id: UserId) -> Result<bool, BackendError> {
        Ok(self.state.lock().low_balance_warned.remove(&id).is_some())
    }

    async fn low_balance_warned(&self) -> Result<Vec<UserId>, BackendError> {
        let s = self.state.lock();
        Ok(s.low_balance_warned
            .keys()
            .copied()
            .filter(|id| s.live_user(*id).is_some())
            .collect())
    }
}

#[async_trait]
impl SignInStore for MemoryStore {
    async fn issue_code(&self, code: &NewCode, policy: &AuthPolicy) -> Result<(), IssueCodeError> {
        let mut s = self.state.lock();
        let previous: Vec<DateTime<Utc>> = s
            .codes
            .iter()
            .filter(|c| c.email == code.email)
            .map(|c| c.issued_at)
            .collect();
        check_code_issue(&previous, code.issued_at, policy)?;
        for old in s.codes.iter_mut().filter(|c| c.email == code.email) {
            old.used = true;
        }
        s.codes.push(IssuedCode {
            email: code.email.clone(),
            hash: code.hash,
            issued_at: code.issued_at,
            expires_at: code.expires_at,
            wrong_attempts: 0,
            used: false,
        });
        Ok(())
    }

    async fn withdraw_code(
        &self,
        email: &Email,
        issued_at: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        self.state
            .lock()
            .codes
            .retain(|c| !(c.email == *email && c.issued_at == issued_at));
        Ok(())
    }

    async fn redeem_code(
        &self,
        email: &Email,
        presented: &CodeHash,
        now: DateTime<Utc>,
        policy: &AuthPolicy,
    ) -> Result<CodeVerdict, BackendError> {
        let mut s = self.state.lock();
        let newest = s
            .codes
            .iter_mut()
            .filter(|c| c.email == *email)
            .max_by_key(|c| c.issued_at);
        let verdict = judge_code(newest.as_deref(), presented, now, policy);
        if let Some(code) = newest {
            match verdict {
                CodeVerdict::Accepted => code.used = true,
                CodeVerdict::Wrong { .. } => code.wrong_attempts += 1,
                CodeVerdict::Locked | CodeVerdict::Expired | CodeVerdict::NoCode => {}
            }
        }
        Ok(verdict)
    }

    async fn create_session(&self, session: &Session) -> Result<(), BackendError> {
        let mut s = self.state.lock();
        if s.sessions.contains_key(session.token_hash.as_bytes()) {
            return Err(BackendError::new("session token collision"));
        }
        s.sessions
            .insert(*session.token_hash.as_bytes(), session.clone());
        Ok(())
    }

    async fn session(
        &self,
        token: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, BackendError> {
        let s = self.state.lock();
        Ok(s.sessions
            .get(token.as_bytes())
            .filter(|session| session.is_valid_at(now) && s.live_user(session.user).is_some())
            .cloned())
    }

    async fn end_session(&self, token: &TokenHash) -> Result<bool, BackendError> {
        Ok(self
            .state
            .lock()
            .sessions
            .remove(token.as_bytes())
            .is_some())
    }

    async fn end_all_sessions(&self, user: UserId) -> Result<u64, BackendError> {
        let mut s = self.state.lock();
        let before = s.sessions.len();
        s.sessions.retain(|_, session| session.user != user);
        Ok((before - s.sessions.len()) as u64)
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<PurgeReport, BackendError> {
        let mut s = self.state.lock();
        let (codes, sessions) = (s.codes.len(), s.sessions.len());
        s.codes.retain(|c| c.issued_at > now - TimeDelta::hours(1));
        s.sessions.retain(|_, session| session.is_valid_at(now));
        Ok(PurgeReport {
            codes: (codes - s.codes.len()) as u64,
            sessions: (sessions - s.sessions.len()) as u64,
        })
    }
}

#[async_trait]
impl SupportStore for MemoryStore {
    async fn record_inquiry(
        &self,
        user: UserId,
        inquiry: &SupportInquiry,
        at: DateTime<Utc>,
    ) -> Result<InquiryId, BackendError> {
        Ok(self.state.lock().next_inquiry(user, inquiry, at))
    }
}
