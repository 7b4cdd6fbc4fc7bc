//! Randomness: codes, tokens, passwords, identifiers and click challenges draw from it.

/// The random source failed.
#[derive(Clone, Debug, thiserror::Error)]
#[error("random source unavailable: {0}")]
pub struct EntropyError(pub String);

/// A source of random bytes.
pub trait Entropy: Send + Sync {
    /// Fills `dest` with random bytes.
    ///
    /// # Errors
    /// MUST return [`EntropyError`] rather than weak bytes when the source fails. Production
    /// adapters MUST be cryptographically secure.
    fn fill(&self, dest: &mut [u8]) -> Result<(), EntropyError>;
}
