//! Sliding-window rate limits.

use std::fmt;
use std::net::IpAddr;

use async_trait::async_trait;
use chrono::TimeDelta;
use sha2::{Digest, Sha256};

use super::BackendError;
use crate::auth::Email;
use crate::ids::UserId;

/// What is being counted.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RateKey(String);

impl RateKey {
    /// Sign-in codes requested from one client address.
    pub fn code_requests_from(ip: IpAddr) -> Self {
        Self(format!("codes:ip:{}", client_block(ip)))
    }

    /// Sign-in codes requested for one email from one client address. The email appears only
    /// as a digest.
    pub fn code_requests_for(email: &Email, ip: IpAddr) -> Self {
        let digest = Sha256::digest(format!("dbtree-rate\0{}", email.as_str()).as_bytes());
        Self(format!(
            "codes:email-ip:{}:{}",
            crate::hex::encode(&digest[..16]),
            client_block(ip)
        ))
    }

    /// Code verifications from one client address.
    pub fn verifications_from(ip: IpAddr) -> Self {
        Self(format!("verify:ip:{}", client_block(ip)))
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

/// The unit a client address is counted in: an IPv4 address, or the /64 an IPv6 address
/// belongs to (one subscriber's network holds a whole /64, so counting single IPv6 addresses
/// would give each client 2^64 allowances). IPv4-mapped IPv6 addresses count as IPv4.
pub fn client_block(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
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

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn client_addresses_count_per_ipv4_address_and_per_ipv6_64() {
        let v6 = |s: &str| IpAddr::V6(s.parse::<Ipv6Addr>().unwrap());
        let v4 = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));
        assert_eq!(
            RateKey::code_requests_from(v4).as_str(),
            "codes:ip:203.0.113.9"
        );
        assert_eq!(
            RateKey::code_requests_from(v6("2001:db8:1:2:aaaa::1")),
            RateKey::code_requests_from(v6("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            RateKey::code_requests_from(v6("2001:db8:1:2::1")),
            RateKey::code_requests_from(v6("2001:db8:1:3::1"))
        );
        assert_eq!(
            RateKey::code_requests_from(v6("::ffff:203.0.113.9")),
            RateKey::code_requests_from(v4)
        );
    }

    #[test]
    fn per_email_keys_hide_the_address() {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let ann = Email::parse("ann@example.org").unwrap();
        let bob = Email::parse("bob@example.org").unwrap();
        let key = RateKey::code_requests_for(&ann, ip);
        assert!(!key.as_str().contains("ann"), "{key}");
        assert_ne!(key, RateKey::code_requests_for(&bob, ip));
        assert_ne!(key, RateKey::code_requests_from(ip));
    }
}
