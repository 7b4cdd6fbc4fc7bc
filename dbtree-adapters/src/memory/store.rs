//! `MemoryStore`: every store trait over one mutex-guarded state.

mod accounts;
mod instances;
mod ledger;
mod tree;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use dbtree_core::auth::{Email, IssuedCode, Session};
use dbtree_core::boundary::{
    BackendError, InquiryId, PostError, PostOutcome, PostRequest, User, replay_or_conflict,
};
use dbtree_core::ids::{AttemptId, InstanceId, QuizId, UserId};
use dbtree_core::instance::Instance;
use dbtree_core::ledger::{IdempotencyKey, LedgerEntry, LedgerPolicy, plan_posting};
use dbtree_core::lemons::Lemons;
use dbtree_core::quiz::{Attempt, Quiz};
use dbtree_core::streak::Streak;
use dbtree_core::support::SupportInquiry;
use dbtree_core::tree::{Lemon, Position};
use parking_lot::Mutex;

/// Every store trait in memory. Each operation holds one lock for its whole duration, which
/// makes every operation atomic and linearisable.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every ledger entry of every user, in posting order (for audits and tests).
    pub fn all_entries(&self) -> Vec<LedgerEntry> {
        self.state.lock().ledger.clone()
    }

    /// Every user's id and balance, deleted accounts included (for audits and tests).
    pub fn all_balances(&self) -> Vec<(UserId, Lemons)> {
        self.state
            .lock()
            .users
            .values()
            .map(|u| (u.id, u.balance))
            .collect()
    }
}

#[derive(Debug, Clone)]
pub(super) struct UserRow {
    id: UserId,
    /// `None` once the account is deleted.
    email: Option<Email>,
    balance: Lemons,
    earned_total: u64,
    spent_total: u64,
    last_harvest_at: Option<DateTime<Utc>>,
    streak: Streak,
    created_at: DateTime<Utc>,
}

impl UserRow {
    fn live(&self) -> Option<User> {
        self.email.as_ref().map(|email| User {
            id: self.id,
            email: email.clone(),
            balance: self.balance,
            earned_total: self.earned_total,
            spent_total: self.spent_total,
            last_harvest_at: self.last_harvest_at,
            streak: self.streak,
            created_at: self.created_at,
        })
    }
}

#[derive(Debug, Default)]
pub(super) struct State {
    users: BTreeMap<UserId, UserRow>,
    live_by_email: HashMap<Email, UserId>,
    ledger: Vec<LedgerEntry>,
    by_key: HashMap<IdempotencyKey, usize>,
    codes: Vec<IssuedCode>,
    sessions: HashMap<[u8; 32], Session>,
    lemons: BTreeMap<Position, Lemon>,
    attempts: HashMap<AttemptId, Attempt>,
    quizzes: BTreeMap<QuizId, Quiz>,
    instances: HashMap<InstanceId, Instance>,
    ports: BTreeMap<u16, InstanceId>,
    port_of: HashMap<InstanceId, u16>,
    inquiries: Vec<(UserId, SupportInquiry, DateTime<Utc>)>,
    low_balance_warned: BTreeMap<UserId, DateTime<Utc>>,
}

impl State {
    fn live_user(&self, id: UserId) -> Option<User> {
        self.users.get(&id).and_then(UserRow::live)
    }

    fn entry(&self, key: &IdempotencyKey) -> Option<&LedgerEntry> {
        self.by_key.get(key).and_then(|i| self.ledger.get(*i))
    }

    /// Posts under the lock: the one place a balance changes.
    fn post(
        &mut self,
        request: &PostRequest,
        policy: &LedgerPolicy,
    ) -> Result<PostOutcome, PostError> {
        if let Some(existing) = self.entry(&request.key) {
            return replay_or_conflict(existing.clone(), request);
        }
        let row = self
            .users
            .get_mut(&request.user)
            .filter(|u| u.email.is_some())
            .ok_or(PostError::UnknownUser)?;
        let posting = plan_posting(request.kind, request.amount, row.balance, policy)?;
        row.balance = posting.balance_after;
        if posting.delta >= 0 {
            row.earned_total += posting.delta.unsigned_abs();
        } else {
            row.spent_total += posting.delta.unsigned_abs();
        }
        let entry = request.entry(&posting);
        self.by_key.insert(request.key.clone(), self.ledger.len());
        self.ledger.push(entry.clone());
        Ok(PostOutcome::Posted(entry))
    }

    fn instance_with_port(&self, id: InstanceId) -> Option<Instance> {
        self.instances.get(&id).map(|i| {
            let mut i = i.clone();
            i.node_port = self
                .port_of
                .get(&id)
                .map(|p| dbtree_core::instance::NodePort(*p));
            i
        })
    }

    fn next_inquiry(
        &mut self,
        user: UserId,
        inquiry: &SupportInquiry,
        at: DateTime<Utc>,
    ) -> InquiryId {
        self.inquiries.push((user, inquiry.clone(), at));
        InquiryId(i64::try_from(self.inquiries.len()).unwrap_or(i64::MAX))
    }
}

fn post_error_to_backend(e: PostError) -> BackendError {
    BackendError::new(format!("ledger posting failed unexpectedly: {e}"))
}
