//! The failure of the infrastructure behind a boundary trait.

use std::error::Error as StdError;

/// The database, cache or network behind a boundary trait failed. Domain refusals are never
/// reported this way; they have their own error variants.
///
/// An adapter marks a failure [unavailable](BackendError::unavailable) when the service behind
/// it cannot be reached or did not answer in time (connection refused or lost, a timeout): the
/// operation did not happen and may be retried shortly. Everything else is a plain failure.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct BackendError {
    message: String,
    unavailable: bool,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl BackendError {
    /// A failure described by `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            unavailable: false,
            source: None,
        }
    }

    /// A failure caused by a driver error.
    pub fn with_source(
        message: impl Into<String>,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            unavailable: false,
            source: Some(Box::new(source)),
        }
    }

    /// The service behind the trait is unreachable or did not answer in time.
    pub fn unavailable(
        message: impl Into<String>,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            unavailable: true,
            source: Some(Box::new(source)),
        }
    }

    /// Whether the service was unreachable (retry later) rather than failing otherwise.
    pub fn is_unavailable(&self) -> bool {
        self.unavailable
    }
}
