//! In-process quiz locks and sliding-window rate limits (one process only; use Redis for
//! several replicas).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use dbtree_core::boundary::{
    BackendError, Clock, LockOutcome, QuizLock, RateDecision, RateKey, RateLimit, RateLimiter,
};
use dbtree_core::ids::{AttemptId, UserId};
use parking_lot::Mutex;

/// Per-user quiz locks with expiry, in memory.
pub struct MemoryQuizLock {
    clock: Arc<dyn Clock>,
    held: Mutex<HashMap<UserId, (AttemptId, DateTime<Utc>)>>,
}

impl std::fmt::Debug for MemoryQuizLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryQuizLock")
            .field("held", &self.held.lock().len())
            .finish()
    }
}

impl MemoryQuizLock {
    /// Locks that expire by `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            held: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl QuizLock for MemoryQuizLock {
    async fn acquire(
        &self,
        user: UserId,
        holder: AttemptId,
        ttl: TimeDelta,
    ) -> Result<LockOutcome, BackendError> {
        let now = self.clock.now();
        let mut held = self.held.lock();
        match held.get(&user) {
            Some((_, expires)) if *expires > now => Ok(LockOutcome::Held),
            _ => {
                held.insert(user, (holder, now + ttl));
                Ok(LockOutcome::Acquired)
            }
        }
    }

    async fn release(&self, user: UserId, holder: AttemptId) -> Result<bool, BackendError> {
        let now = self.clock.now();
        let mut held = self.held.lock();
        match held.get(&user) {
            Some((h, expires)) if *h == holder && *expires > now => {
                held.remove(&user);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn holder(&self, user: UserId) -> Result<Option<AttemptId>, BackendError> {
        let now = self.clock.now();
        Ok(self
            .held
            .lock()
            .get(&user)
            .filter(|(_, expires)| *expires > now)
            .map(|(holder, _)| *holder))
    }
}

/// Sliding-window rate limits, in memory.
pub struct MemoryRateLimiter {
    clock: Arc<dyn Clock>,
    hits: Mutex<HashMap<String, VecDeque<DateTime<Utc>>>>,
}

impl std::fmt::Debug for MemoryRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryRateLimiter")
            .field("keys", &self.hits.lock().len())
            .finish()
    }
}

impl MemoryRateLimiter {
    /// Windows measured by `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            hits: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn hit(&self, key: &RateKey, limit: RateLimit) -> Result<RateDecision, BackendError> {
        let now = self.clock.now();
        let mut all = self.hits.lock();
        let hits = all.entry(key.as_str().to_owned()).or_default();
        while hits.front().is_some_and(|t| *t <= now - limit.window) {
            hits.pop_front();
        }
        if hits.len() < limit.max as usize {
            hits.push_back(now);
            return Ok(RateDecision::Allowed);
        }
        let oldest = hits.front().copied().unwrap_or(now);
        let ms = (oldest + limit.window - now).num_milliseconds().max(1);
        let retry_after_secs = u32::try_from((ms + 999) / 1000).unwrap_or(u32::MAX);
        Ok(RateDecision::Limited { retry_after_secs })
    }
}
