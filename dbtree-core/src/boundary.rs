//! Boundary traits: what dbtree needs from the outside world (storage, locks, rate limits, mail,
//! a cluster, a clock, randomness). Adapters implement them; use cases call them.
//!
//! Every store operation is an **atomic domain operation**: the adapter applies the rule it names
//! (calling the pure functions of this crate inside its own transaction) so that no caller ever
//! reads, decides and writes in separate steps. Each method documents its MUST clauses; the
//! adapters' contract suite checks them, concurrency included.

mod clock;
mod cluster;
mod entropy;
mod error;
mod instances;
mod ledger;
mod mailer;
mod quiz_lock;
mod quizzes;
mod rate_limit;
mod sign_in;
mod support;
mod tree;
mod users;

pub use clock::Clock;
pub use cluster::{
    Cluster, ClusterError, ClusterErrorKind, ClusterEvent, EngineSupport, EngineUsage, EventStream,
    Observation, ProvisionRequest, Teardown, UsageReport,
};
pub use entropy::{Entropy, EntropyError};
pub use error::BackendError;
pub use instances::{
    ChargeOutcome, CreateInstanceError, CreatedInstance, InstanceStore, NewInstance, NodePortStore,
    ReservePortError, ResumeOutcome, StartInstanceError, TransitionError,
};
pub use ledger::{LedgerStore, PostError, PostOutcome, PostRequest, replay_or_conflict};
pub use mailer::{MailError, Mailer};
pub use quiz_lock::{LockOutcome, QuizLock};
pub use quizzes::{AddQuizError, QuizStore};
pub use rate_limit::{RateDecision, RateKey, RateLimit, RateLimiter, client_block};
pub use sign_in::{IssueCodeError, NewCode, PurgeReport, SignInStore};
pub use support::{InquiryId, SupportStore};
pub use tree::{
    ClaimError, NewAttempt, PlantError, RecordAnswerError, StartAttemptError, TreeStore,
};
pub use users::{NewUser, Registration, User, UserStore};

/// Everything a storage backend provides. Implemented automatically for any type that implements
/// every store trait, so one database adapter serves every use case.
pub trait Store:
    UserStore
    + SignInStore
    + LedgerStore
    + TreeStore
    + QuizStore
    + InstanceStore
    + NodePortStore
    + SupportStore
{
}

impl<T> Store for T where
    T: UserStore
        + SignInStore
        + LedgerStore
        + TreeStore
        + QuizStore
        + InstanceStore
        + NodePortStore
        + SupportStore
{
}
