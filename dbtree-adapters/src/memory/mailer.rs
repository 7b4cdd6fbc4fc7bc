//! A mailer that keeps what it is asked to send (for tests and the embedded sandbox).

use async_trait::async_trait;
use dbtree_core::boundary::{MailError, Mailer};
use dbtree_core::mail::{Envelope, Notification};
use parking_lot::Mutex;

/// Records every envelope; can be told to fail.
#[derive(Debug, Default)]
pub struct RecordingMailer {
    sent: Mutex<Vec<Envelope>>,
    failing: Mutex<bool>,
}

impl RecordingMailer {
    /// A mailer that accepts everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every following send fail (or succeed again).
    pub fn set_failing(&self, failing: bool) {
        *self.failing.lock() = failing;
    }

    /// Everything sent so far.
    pub fn sent(&self) -> Vec<Envelope> {
        self.sent.lock().clone()
    }

    /// The digits of the newest sign-in code sent to `email` (compared case-insensitively).
    pub fn last_code_for(&self, email: &str) -> Option<String> {
        let wanted = email.trim().to_ascii_lowercase();
        self.sent
            .lock()
            .iter()
            .rev()
            .find_map(|e| match &e.notification {
                Notification::SignInCode { code, .. } if e.to.as_str() == wanted => {
                    Some(code.expose())
                }
                _ => None,
            })
    }
}

#[async_trait]
impl Mailer for RecordingMailer {
    async fn send(&self, envelope: &Envelope) -> Result<(), MailError> {
        if *self.failing.lock() {
            return Err(MailError::Unavailable(
                "the recording mailer was told to fail".into(),
            ));
        }
        self.sent.lock().push(envelope.clone());
        Ok(())
    }
}
