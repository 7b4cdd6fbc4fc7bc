//! The lemon ledger: entry kinds, idempotency keys, and the posting rule every balance change obeys.
//!
//! Every balance change is one [`LedgerEntry`] written in the same atomic step as the balance, so
//! `balance(user) == Σ delta(entries of user)` always holds. Stores decide *whether* and *how much*
//! to post by calling [`plan_posting`] inside their transaction.

mod entry;
mod key;
mod posting;

pub use entry::{EntryKind, LedgerEntry};
pub use key::{IdempotencyKey, InvalidKey};
pub use posting::{LedgerPolicy, LedgerRefusal, Posting, clip_earning, plan_posting};
