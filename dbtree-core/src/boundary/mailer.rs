//! Sending email.

use async_trait::async_trait;

use crate::mail::Envelope;

/// A message was not sent.
#[derive(Clone, Debug, thiserror::Error)]
pub enum MailError {
    /// The provider refused the recipient.
    #[error("the recipient address was rejected")]
    Rejected,
    /// The provider could not be reached or failed.
    #[error("mail delivery is unavailable: {0}")]
    Unavailable(String),
}

/// Delivers notifications.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends one message, rendered with [`crate::mail::render`].
    ///
    /// # Errors
    /// [`MailError`]. MUST NOT log the message body (it may hold a sign-in code).
    async fn send(&self, envelope: &Envelope) -> Result<(), MailError>;
}
