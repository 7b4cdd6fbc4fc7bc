//! Idempotency keys: one per business event, so a retry never pays or charges twice.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::Email;
use crate::billing::BillingHour;
use crate::ids::{AttemptId, EntryId, InstanceId};

/// The unique key of a business event that changes a balance.
///
/// Keys are globally unique in the ledger: posting twice with the same key changes nothing the
/// second time. The constructors below are the only keys dbtree itself writes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

/// A stored key that does not have the shape of an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid idempotency key: {0}")]
pub struct InvalidKey(&'static str);

impl IdempotencyKey {
    /// Longest accepted key, in bytes.
    pub const MAX_LEN: usize = 128;

    /// The welcome bonus of one mailbox, ever: keyed by the address's
    /// [canonical mailbox](Email::canonical_mailbox), so `ann+x@example.org` and
    /// `a.nn@gmail.com` find the bonus of `ann@example.org` and `ann@gmail.com` already paid.
    ///
    /// The mailbox is hashed so that the key survives account deletion (which removes the email)
    /// while still refusing a second bonus for the same mailbox. For an address that is its own
    /// canonical mailbox the key is the one earlier versions wrote for it.
    pub fn welcome(email: &Email) -> Self {
        let mailbox = email.canonical_mailbox();
        let digest = Sha256::digest(format!("dbtree-welcome\0{mailbox}").as_bytes());
        Self(format!("welcome:{}", crate::hex::encode(&digest)))
    }

    /// The reward of one harvest attempt.
    pub fn harvest(attempt: AttemptId) -> Self {
        Self(format!("harvest:{attempt}"))
    }

    /// The streak bonus paid together with one harvest attempt.
    pub fn streak(attempt: AttemptId) -> Self {
        Self(format!("streak:{attempt}"))
    }

    /// The creation cost of one instance.
    pub fn create(instance: InstanceId) -> Self {
        Self(format!("create:{instance}"))
    }

    /// The hourly charge of one instance for one clock hour.
    pub fn bill(instance: InstanceId, hour: BillingHour) -> Self {
        Self(format!("bill:{instance}:{}", hour.index()))
    }

    /// The refund of one instance's creation cost.
    pub fn refund(instance: InstanceId) -> Self {
        Self(format!("refund:{instance}"))
    }

    /// An administrator's grant, identified by a caller-chosen reference.
    ///
    /// # Errors
    /// [`InvalidKey`] if the reference is empty, too long or contains characters other than ASCII
    /// letters, digits, `-`, `_` and `.`.
    pub fn admin_grant(reference: &str) -> Result<Self, InvalidKey> {
        Self::parse(format!("grant:{reference}"))
    }

    /// Accepts a key loaded from storage or given by an embedding application.
    ///
    /// # Errors
    /// [`InvalidKey`] if the key is empty, longer than [`Self::MAX_LEN`], has no `kind:` prefix,
    /// or contains characters other than ASCII letters, digits, `:`, `-`, `_` and `.`.
    pub fn parse(key: impl Into<String>) -> Result<Self, InvalidKey> {
        let key = key.into();
        if key.is_empty() {
            return Err(InvalidKey("empty"));
        }
        if key.len() > Self::MAX_LEN {
            return Err(InvalidKey("longer than 128 bytes"));
        }
        let Some((kind, rest)) = key.split_once(':') else {
            return Err(InvalidKey("missing `kind:` prefix"));
        };
        if kind.is_empty() || rest.is_empty() {
            return Err(InvalidKey("empty kind or reference"));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.');
        if !key.chars().all(allowed) {
            return Err(InvalidKey("unexpected character"));
        }
        Ok(Self(key))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The ledger entry identifier this key maps to: the same key always gives the same id.
    pub fn entry_id(&self) -> EntryId {
        let digest = Sha256::digest(format!("dbtree-entry\0{}", self.0).as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        EntryId::from_random_bytes(bytes)
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = InvalidKey;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<IdempotencyKey> for String {
    fn from(key: IdempotencyKey) -> Self {
        key.0
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn instance() -> InstanceId {
        InstanceId::from_random_bytes([1; 16])
    }

    #[test]
    fn each_business_event_has_its_own_key() {
        let i = instance();
        let hour = BillingHour::containing(Utc.with_ymd_and_hms(2026, 1, 1, 10, 30, 0).unwrap());
        let keys = [
            IdempotencyKey::create(i),
            IdempotencyKey::refund(i),
            IdempotencyKey::bill(i, hour),
            IdempotencyKey::bill(i, hour.next()),
            IdempotencyKey::harvest(AttemptId::from_random_bytes([2; 16])),
            IdempotencyKey::streak(AttemptId::from_random_bytes([2; 16])),
        ];
        let unique: std::collections::BTreeSet<_> = keys.iter().collect();
        assert_eq!(unique.len(), keys.len());
        assert!(keys[2].as_str().starts_with("bill:"));
        assert!(
            keys.iter()
                .all(|k| IdempotencyKey::parse(k.as_str()) == Ok(k.clone()))
        );
    }

    #[test]
    fn welcome_key_hides_the_address_but_is_stable_per_address() {
        let a = IdempotencyKey::welcome(&Email::parse("Ann@Example.org").unwrap());
        let b = IdempotencyKey::welcome(&Email::parse(" ann@example.org ").unwrap());
        let c = IdempotencyKey::welcome(&Email::parse("bob@example.org").unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(!a.as_str().contains("example"));
        // stable across versions for a plain address (keys already in ledgers stay valid)
        assert_eq!(
            a.as_str(),
            "welcome:4fc1a74ab12ff3d5509a33d1be6040cc3767c19fea45b86066c1851cd5197ad5"
        );
    }

    #[test]
    fn welcome_key_is_per_canonical_mailbox() {
        let key = |e: &str| IdempotencyKey::welcome(&Email::parse(e).unwrap());
        assert_eq!(key("ann+promo@example.org"), key("ann@example.org"));
        assert_eq!(key("a.n.n@gmail.com"), key("ann@googlemail.com"));
        assert_eq!(key("a.nn+x@gmail.com"), key("ann@gmail.com"));
        assert_ne!(key("a.nn@example.org"), key("ann@example.org"));
    }

    #[test]
    fn entry_ids_are_derived_from_keys() {
        let k = IdempotencyKey::create(instance());
        assert_eq!(k.entry_id(), k.clone().entry_id());
        assert_ne!(k.entry_id(), IdempotencyKey::refund(instance()).entry_id());
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("nokind").is_err());
        assert!(IdempotencyKey::parse("x:").is_err());
        assert!(IdempotencyKey::parse("x:has space").is_err());
        assert!(IdempotencyKey::parse(format!("x:{}", "a".repeat(200))).is_err());
        assert!(IdempotencyKey::admin_grant("ticket-42").is_ok());
        assert!(IdempotencyKey::admin_grant("bad/ref").is_err());
    }
}
