//! Session bearer tokens: 32 random bytes, handed out once, stored only as SHA-256.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A bearer token as handed to the client. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken([u8; 32]);

/// The text given as a bearer token is not one dbtree issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed bearer token")]
pub struct InvalidToken;

impl SessionToken {
    /// A token made of 32 random bytes.
    pub const fn from_random_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses the 64-character hexadecimal form sent back by clients.
    ///
    /// # Errors
    /// [`InvalidToken`] for anything but 64 hexadecimal characters.
    pub fn parse(text: &str) -> Result<Self, InvalidToken> {
        crate::hex::decode::<32>(text.trim())
            .map(Self)
            .ok_or(InvalidToken)
    }

    /// The token's text form, for the one response that hands it out.
    pub fn expose(&self) -> String {
        crate::hex::encode(&self.0)
    }

    /// The stored form of the token.
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0).into())
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(..)")
    }
}

/// SHA-256 of a session token: the only form the store sees. Compared in constant time.
#[derive(Clone, Copy)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Wraps a digest loaded from storage.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest as lower-case hexadecimal (for use as a map or cache key).
    pub fn to_hex(&self) -> String {
        crate::hex::encode(&self.0)
    }
}

impl PartialEq for TokenHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for TokenHash {}

impl std::hash::Hash for TokenHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_hash_stably() {
        let t = SessionToken::from_random_bytes([9; 32]);
        let text = t.expose();
        assert_eq!(text.len(), 64);
        let back = SessionToken::parse(&text).unwrap();
        assert_eq!(back.hash(), t.hash());
        assert_ne!(t.hash(), SessionToken::from_random_bytes([8; 32]).hash());
        assert!(!format!("{t:?}").contains(&text));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        assert_eq!(SessionToken::parse("abc"), Err(InvalidToken));
        assert_eq!(SessionToken::parse(&"g".repeat(64)), Err(InvalidToken));
    }
}
