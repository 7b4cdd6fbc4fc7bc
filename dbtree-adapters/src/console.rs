//! A mailer that writes to the log instead of sending email: for development and the embedded
//! default only.

use async_trait::async_trait;
use dbtree_core::boundary::{MailError, Mailer};
use dbtree_core::mail::{Envelope, Notification, render};

/// The log target every line of this mailer is written under.
pub const TARGET: &str = "dbtree::mail";

/// Logs notifications with [`tracing`] (level INFO, target [`TARGET`]) instead of sending them.
///
/// **It prints sign-in codes in clear text.** A sign-in code becomes exactly one line,
/// `sign-in code for ann@example.org: 042042`, so that a person or a script can find it in the
/// log and sign in without a mail server. Every other notification becomes one line with the
/// recipient and the rendered subject; bodies are never logged.
///
/// Use it for development, tests and the embedded single-machine default only: anyone who can
/// read the log can sign in as any user. Production deployments use a real mailer such as
/// `SesMailer` (feature `ses`).
///
/// It never fails.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConsoleMailer;

#[async_trait]
impl Mailer for ConsoleMailer {
    async fn send(&self, envelope: &Envelope) -> Result<(), MailError> {
        let to = &envelope.to;
        match &envelope.notification {
            Notification::SignInCode { code, .. } => {
                tracing::info!(target: TARGET, "sign-in code for {to}: {}", code.expose());
            }
            other => {
                let subject = render(other).subject;
                tracing::info!(target: TARGET, "mail for {to}: {subject}");
            }
        }
        Ok(())
    }
}
