//! Redis coordination shared by every replica: the one-quiz-per-user lock and sliding-window
//! rate limits. Both go through a reconnecting [`ConnectionManager`]; both decide atomically on
//! the server (`SET NX PX`, Lua scripts), timed by the Redis server's clock.
//!
//! Redis being down never skips a rule: every operation answers within
//! [`OPERATION_DEADLINE`] with either the decision or a [`BackendError`] marked
//! [unavailable](BackendError::is_unavailable), and the caller refuses the request.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use chrono::TimeDelta;
use dbtree_core::boundary::{
    BackendError, LockOutcome, QuizLock, RateDecision, RateKey, RateLimit, RateLimiter,
};
use dbtree_core::ids::{AttemptId, UserId};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{
    AsyncCommands, ErrorKind, ExistenceCheck, Script, ServerErrorKind, SetExpiry, SetOptions,
};

/// The longest any Redis operation takes before it is reported unavailable (reconnection
/// attempts included).
pub const OPERATION_DEADLINE: Duration = Duration::from_millis(1500);
/// One TCP connection attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// One command's answer.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

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

/// Connects a reconnecting connection manager with short timeouts: a connection attempt gives
/// up after 0.5 s, a command after 1 s, and a lost connection is retried twice, quickly, before
/// the caller hears that Redis is unavailable (the next call tries again).
///
/// # Errors
/// [`BackendError`] if the URL is invalid or the server does not answer.
pub async fn connect(url: &str) -> Result<ConnectionManager, BackendError> {
    let client =
        redis::Client::open(url).map_err(|e| BackendError::with_source("invalid Redis URL", e))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(200));
    ConnectionManager::new_with_config(client, config)
        .await
        .map_err(redis_error("connect"))
}

/// Whether Redis answers `PING` within [`OPERATION_DEADLINE`] (readiness).
///
/// # Errors
/// [`BackendError`] (unavailable) if it does not.
pub async fn ping(conn: &ConnectionManager) -> Result<(), BackendError> {
    let mut conn = conn.clone();
    let pong: String = within("ping", async move {
        redis::cmd("PING").query_async(&mut conn).await
    })
    .await?;
    if pong == "PONG" {
        Ok(())
    } else {
        Err(BackendError::new(format!("Redis: PING answered {pong:?}")))
    }
}

/// Runs one Redis operation, translating its error and bounding its time.
async fn within<T>(
    context: &'static str,
    operation: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, BackendError> {
    match tokio::time::timeout(OPERATION_DEADLINE, operation).await {
        Ok(result) => result.map_err(redis_error(context)),
        Err(elapsed) => Err(BackendError::unavailable(
            format!("Redis: {context}: no answer within {OPERATION_DEADLINE:?}"),
            elapsed,
        )),
    }
}

/// Translates a driver error: unreachable, lost, timed out or still loading is
/// [unavailable](BackendError::unavailable); anything else is a plain failure.
fn redis_error(context: &'static str) -> impl Fn(redis::RedisError) -> BackendError {
    move |e| {
        let message = format!("Redis: {context}");
        let down = e.is_io_error()
            || e.is_timeout()
            || e.is_connection_refusal()
            || e.is_connection_dropped()
            || e.is_unrecoverable_error()
            || matches!(
                e.kind(),
                ErrorKind::Server(ServerErrorKind::BusyLoading | ServerErrorKind::MasterDown)
            );
        if down {
            BackendError::unavailable(message, e)
        } else {
            BackendError::with_source(message, e)
        }
    }
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
        let mut conn = self.conn.clone();
        let set: Option<String> = within(
            "take a quiz lock",
            conn.set_options(self.key(user), holder.to_string(), options),
        )
        .await?;
        Ok(if set.is_some() {
            LockOutcome::Acquired
        } else {
            LockOutcome::Held
        })
    }

    async fn release(&self, user: UserId, holder: AttemptId) -> Result<bool, BackendError> {
        let mut conn = self.conn.clone();
        let mut invocation = self.release.key(self.key(user));
        invocation.arg(holder.to_string());
        let deleted: i64 =
            within("release a quiz lock", invocation.invoke_async(&mut conn)).await?;
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
        let mut conn = self.conn.clone();
        let mut invocation = self
            .script
            .key(format!("{}rate:{}", self.prefix, key.as_str()));
        invocation
            .arg(millis(limit.window))
            .arg(limit.max)
            .arg(member);
        let (allowed, retry_ms): (i64, i64) = within(
            "count a rate-limited hit",
            invocation.invoke_async(&mut conn),
        )
        .await?;
        if allowed == 1 {
            return Ok(RateDecision::Allowed);
        }
        let retry_after_secs = u32::try_from((retry_ms.max(1) + 999) / 1000).unwrap_or(u32::MAX);
        Ok(RateDecision::Limited { retry_after_secs })
    }
}
