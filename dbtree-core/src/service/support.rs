//! Support inquiries: stored, rate-limited, and emailed to the administrators.

use chrono::TimeDelta;

use super::{Deps, InternalError};
use crate::boundary::{InquiryId, RateDecision, RateKey, RateLimit, User};
use crate::mail::{Envelope, Notification};
use crate::support::SupportInquiry;

/// Support.
#[derive(Clone, Debug)]
pub struct SupportService {
    deps: Deps,
}

/// Why an inquiry was refused.
#[derive(Debug, thiserror::Error)]
pub enum SupportError {
    /// Too many inquiries from this user.
    #[error("too many inquiries; retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds to wait.
        retry_after_secs: u32,
    },
    /// Infrastructure failure.
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl SupportService {
    /// Inquiries per user per sliding hour.
    pub const PER_HOUR: u32 = 5;

    pub(crate) fn new(deps: Deps) -> Self {
        Self { deps }
    }

    /// Stores an inquiry, emails it to every administrator and confirms it to the user. Returns
    /// its number and how many emails could not be sent.
    ///
    /// # Errors
    /// [`SupportError::RateLimited`], or infrastructure failures.
    pub async fn submit(
        &self,
        user: &User,
        inquiry: SupportInquiry,
    ) -> Result<(InquiryId, u32), SupportError> {
        let limit = RateLimit {
            max: Self::PER_HOUR,
            window: TimeDelta::hours(1),
        };
        let decision = self
            .deps
            .rate_limiter
            .hit(&RateKey::inquiries_from(user.id), limit)
            .await
            .map_err(InternalError::from)?;
        if let RateDecision::Limited { retry_after_secs } = decision {
            return Err(SupportError::RateLimited { retry_after_secs });
        }
        let now = self.deps.clock.now();
        let id = self
            .deps
            .store
            .record_inquiry(user.id, &inquiry, now)
            .await
            .map_err(InternalError::from)?;
        let mut envelopes: Vec<Envelope> = self
            .deps
            .policy
            .auth
            .admin_emails
            .iter()
            .map(|admin| Envelope {
                to: admin.clone(),
                notification: Notification::SupportInquiry {
                    from: user.email.clone(),
                    user: user.id,
                    inquiry: inquiry.clone(),
                },
            })
            .collect();
        envelopes.push(Envelope {
            to: user.email.clone(),
            notification: Notification::SupportReceived { inquiry },
        });
        let mut failures = 0;
        for envelope in &envelopes {
            if self.deps.mailer.send(envelope).await.is_err() {
                failures += 1;
            }
        }
        Ok((id, failures))
    }
}
