//! Sliding-window rate limits.

use std::fmt;
use std::net::IpAddr;

use async_trait::async_trait;
use chrono::TimeDelta;

use super::BackendError;
use crate::ids::UserId;

/// What is being counted.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RateKey(String);

impl RateKey {
    /// Sign-in codes requested from one client address.
    pub fn code_requests_from(ip: IpAddr) -> Self {
        Self(format!("codes:ip:{ip}"))
    }

    /// Code verifications from one client address.
    pub fn verifications_from(ip: IpAddr) -> Self {
        Self(format!("verify:ip:{ip}"))
    }

    /// Support inquiries from one user.
    pub fn inquiries_from(user: UserId) -> Self {
        Self(format!("support:user:{user}"))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// At most `max` hits per sliding `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Hits allowed in any window.
    pub max: u32,
    /// The window.
    pub window: TimeDelta,
}

/// Whether a hit is allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateDecision {
    /// Allowed and counted.
    Allowed,
    /// Refused and not counted.
    Limited {
        /// Seconds until a hit would be allowed.
        retry_after_secs: u32,
    },
}

/// Counts hits per key over a sliding window.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts a hit on `key` if fewer than `limit.max` hits happened in the last
    /// `limit.window`, atomically (concurrent hits MUST NOT exceed the limit together).
    /// Refused hits are not counted.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn hit(&self, key: &RateKey, limit: RateLimit) -> Result<RateDecision, BackendError>;
}
