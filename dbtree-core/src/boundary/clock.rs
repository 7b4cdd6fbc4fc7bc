//! The clock: use cases read the time once per operation and hand it to the rules.

use chrono::{DateTime, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// The current UTC time. MUST be monotonic enough that two calls in one process never go
    /// backwards by more than the host clock's adjustments.
    fn now(&self) -> DateTime<Utc>;
}
