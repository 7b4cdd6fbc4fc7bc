//! Redis coordination shared by every replica: the one-quiz-per-user lock and sliding-window
//! rate limits. Both go through a reconnecting [`ConnectionManager`]; both decide atomically on
//! the server (`SET NX PX`, Lua scripts), timed by the Redis server's clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use chrono::TimeDelta;
use dbtree_core::boundary::{
    BackendError, LockOutcome, QuizLock, RateDecision, RateKey, RateLimit, RateLimiter,
};
use dbtree_core::ids::{AttemptId, UserId};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, ExistenceCheck, Script, SetExpiry, SetOptions};

/// Deletes the key only if it still holds the caller's token.
const COMPARE_AND_DELETE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
";

/// Sliding window over a sorted set of hit times (ms, server clock). Returns {1, 0} when the hit
/// is counted, {0, retry_after_ms} when it is refused (refused hits are not counted).
const SLIDING_WINDOW: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
    redis.call('ZADD', KEYS[1], now, ARGV[3])
    redis.call('PEXPIRE', KEYS[1], window)
    return {1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(oldest[2]) + window - now}
";

/// Connects a reconnecting connection manager.
///
/// # Errors
/// [`BackendError`] if the URL is invalid or the server does not answer.
pub async fn connect(url: &str) -> Result<ConnectionManager, BackendError> {
    let client =
        redis::Client::open(url).map_err(|e| BackendError::with_source("invalid Redis URL", e))?;
    ConnectionManager::new(client)
        .await
        .map_err(|e| BackendError::with_source("cannot connect to Redis", e))
}

fn redis_error(context: &'static str) -> impl Fn(redis::RedisError) -> BackendError {
    move |e| BackendError::with_source(format!("Redis: {context}"), e)
}

fn millis(d: TimeDelta) -> u64 {
    u64::try_from(d.num_milliseconds()).unwrap_or(0).max(1)
}

/// The one-quiz-per-user lock in Redis: `SET key attempt NX PX ttl`, released by a Lua
/// compare-and-delete, keyed by user id.
#[derive(Clone)]
pub struct RedisQuizLock {
    conn: ConnectionManager,
    prefix: String,
    release: Script,
}

impl std::fmt::Debug for RedisQuizLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQuizLock")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisQuizLock {
    /// Locks under keys `{prefix}quiz:{user}`.
    pub fn new(conn: ConnectionManager, prefix: impl Into<String>) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
            release: Script::new(COMPARE_AND_DELETE),
        }
    }

    fn key(&self, user: UserId) -> String {
        format!("{}quiz:{user}", self.prefix)
    }
}

#[async_trait]
impl QuizLock for RedisQuizLock {
    async fn acquire(
        &self,
        user: UserId,
        holder: AttemptId,
        ttl: TimeDelta,
    ) -> Result<LockOutcome, BackendError> {
        let options = SetOptions::default()
            .conditional_set(ExistenceCheck::NX)
            .with_expiration(SetExpiry::PX(millis(ttl)));
        let set: Option<String> = self
            .conn
            .clone()
            .set_options(self.key(user), holder.to_string(), options)
            .await
            .map_err(redis_error("take a quiz lock"))?;
        Ok(if set.is_some() {
            LockOutcome::Acquired
        } else {
            LockOutcome::Held
        })
    }

    async fn release(&self, user: UserId, holder: AttemptId) -> Result<bool, BackendError> {
        let deleted: i64 = self
            .release
            .key(self.key(user))
            .arg(holder.to_string())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_error("release a quiz lock"))?;
        Ok(deleted == 1)
    }

    async fn holder(&self, user: UserId) -> Result<Option<AttemptId>, BackendError> {
        let held: Option<String> = self
            .conn
            .clone()
            .get(self.key(user))
            .await
            .map_err(redis_error("read a quiz lock"))?;
        // a value that is not an attempt id was not written by dbtree: nobody we know holds it
        Ok(held.and_then(|h| h.parse::<AttemptId>().ok()))
    }
}

/// Sliding-window rate limits in Redis, shared by every replica.
pub struct RedisRateLimiter {
    conn: ConnectionManager,
    prefix: String,
    script: Script,
    /// Makes each hit's set member unique across replicas and calls.
    nonce: u64,
    counter: AtomicU64,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisRateLimiter {
    /// Limits under keys `{prefix}rate:{key}`.
    pub fn new(conn: ConnectionManager, prefix: impl Into<String>) -> Self {
        let nonce = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()).rotate_left(32);
        Self {
            conn,
            prefix: prefix.into(),
            script: Script::new(SLIDING_WINDOW),
            nonce,
            counter: AtomicU64::new(0),
        }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn hit(&self, key: &RateKey, limit: RateLimit) -> Result<RateDecision, BackendError> {
        let member = format!(
            "{:x}-{}",
            self.nonce,
            self.counter.fetch_add(1, Ordering::Relaxed)
        );
        let (allowed, retry_ms): (i64, i64) = self
            .script
            .key(format!("{}rate:{}", self.prefix, key.as_str()))
            .arg(millis(limit.window))
            .arg(limit.max)
            .arg(member)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_error("count a rate-limited hit"))?;
        if allowed == 1 {
            return Ok(RateDecision::Allowed);
        }
        let retry_after_secs = u32::try_from((retry_ms.max(1) + 999) / 1000).unwrap_or(u32::MAX);
        Ok(RateDecision::Limited { retry_after_secs })
    }
}
