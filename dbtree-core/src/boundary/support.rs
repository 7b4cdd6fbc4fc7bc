//! The support store: inquiries are kept, not only emailed.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::BackendError;
use crate::ids::UserId;
use crate::support::SupportInquiry;

/// A stored inquiry's number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InquiryId(pub i64);

/// Support inquiries.
#[async_trait]
pub trait SupportStore: Send + Sync {
    /// Stores an inquiry. MUST keep it (a database store durably, in the same step) and MUST
    /// return a number no other stored inquiry has.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn record_inquiry(
        &self,
        user: UserId,
        inquiry: &SupportInquiry,
        at: DateTime<Utc>,
    ) -> Result<InquiryId, BackendError>;
}
