//! Use cases: each service reads the clock once, calls the rules, then the boundary traits.
//!
//! [`App::new`] builds every service from one [`Deps`]; the server, the operator and embedding
//! applications call these, never the stores directly.

mod account;
mod billing;
mod harvest;
mod instances;
mod quizzes;
mod stats;
mod support;

use std::cell::Cell;
use std::sync::Arc;

pub use account::{
    AccountService, AuthError, Authenticated, CodeSent, DeleteAccountError, Profile,
    RequestCodeError, SignedIn, VerifyError,
};
pub use billing::{BillingReport, BillingService};
pub use harvest::{
    AbandonError, AnswerError, AnswerOutcome, HarvestError, QuizStarted, StartQuizError,
    TreeService,
};
pub use instances::{
    CreateError, InstanceActionError, InstanceService, NewInstanceCredentials, ProvisionedInstance,
    ResyncReport,
};
pub use quizzes::{QuizAdminError, QuizAdminService};
pub use stats::{CapacityReport, EngineFit, Leaderboard, StatsService};
pub use support::{SupportError, SupportService};

use crate::boundary::{
    BackendError, Clock, Cluster, ClusterError, Entropy, EntropyError, MailError, Mailer, QuizLock,
    RateLimiter, Store,
};
use crate::policy::Policy;

/// Everything the use cases need, wired by the composition root.
#[derive(Clone)]
pub struct Deps {
    /// Storage.
    pub store: Arc<dyn Store>,
    /// The one-quiz-per-user lock.
    pub quiz_lock: Arc<dyn QuizLock>,
    /// Rate limits.
    pub rate_limiter: Arc<dyn RateLimiter>,
    /// Email.
    pub mailer: Arc<dyn Mailer>,
    /// Where instances run.
    pub cluster: Arc<dyn Cluster>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Randomness.
    pub entropy: Arc<dyn Entropy>,
    /// The numbers.
    pub policy: Arc<Policy>,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Every use case of dbtree.
#[derive(Clone, Debug)]
pub struct App {
    /// Sign-in, sessions, profile, account deletion.
    pub accounts: AccountService,
    /// The tree, quizzes and harvests.
    pub tree: TreeService,
    /// Instances.
    pub instances: InstanceService,
    /// Hourly billing.
    pub billing: BillingService,
    /// Public and personal figures.
    pub stats: StatsService,
    /// The quiz bank (administrators).
    pub quizzes: QuizAdminService,
    /// Support inquiries.
    pub support: SupportService,
    /// The numbers every service decides with (for figures shown next to their results).
    pub policy: Arc<Policy>,
}

impl App {
    /// Builds every service over the same dependencies.
    pub fn new(deps: Deps) -> App {
        App {
            accounts: AccountService::new(deps.clone()),
            tree: TreeService::new(deps.clone()),
            instances: InstanceService::new(deps.clone()),
            billing: BillingService::new(deps.clone()),
            stats: StatsService::new(deps.clone()),
            quizzes: QuizAdminService::new(deps.clone()),
            policy: deps.policy.clone(),
            support: SupportService::new(deps),
        }
    }

    /// Prepares a fresh or existing installation: seeds the shipped quiz bank (idempotently) and
    /// plants any missing lemon, ripe.
    ///
    /// # Errors
    /// [`InternalError`] if storage fails or the shipped bank is malformed.
    pub async fn prepare(&self) -> Result<(), InternalError> {
        self.quizzes.seed_shipped_bank().await?;
        self.tree.plant().await?;
        Ok(())
    }
}

/// A failure of the infrastructure (or an internal inconsistency) behind a use case. Maps to an
/// opaque 5xx at the edge; the cause chain is logged there once.
#[derive(Debug, thiserror::Error)]
pub enum InternalError {
    /// Storage failed.
    #[error("storage failed")]
    Backend(#[from] BackendError),
    /// Randomness failed.
    #[error("random source failed")]
    Entropy(#[from] EntropyError),
    /// The cluster failed.
    #[error("cluster call failed")]
    Cluster(#[from] ClusterError),
    /// Mail failed.
    #[error("mail delivery failed")]
    Mail(#[from] MailError),
    /// Something that cannot happen happened (a store broke its contract).
    #[error("internal inconsistency: {0}")]
    Inconsistent(String),
}

/// Implements `From` the infrastructure errors for a use-case error with an
/// `Internal(InternalError)` variant.
macro_rules! internal_errors {
    ($($ty:ty),+ $(,)?) => {$(
        impl From<crate::boundary::BackendError> for $ty {
            fn from(e: crate::boundary::BackendError) -> Self { Self::Internal(e.into()) }
        }
        impl From<crate::boundary::EntropyError> for $ty {
            fn from(e: crate::boundary::EntropyError) -> Self { Self::Internal(e.into()) }
        }
        impl From<crate::boundary::ClusterError> for $ty {
            fn from(e: crate::boundary::ClusterError) -> Self { Self::Internal(e.into()) }
        }
    )+};
}
pub(crate) use internal_errors;

/// Runs a rule that draws random `u32`s, feeding it from `entropy`; reports a failed source
/// instead of handing the rule weak numbers.
pub(crate) fn with_random_u32s<T>(
    entropy: &dyn Entropy,
    rule: impl FnOnce(&mut dyn FnMut() -> u32) -> T,
) -> Result<T, EntropyError> {
    let failure: Cell<Option<EntropyError>> = Cell::new(None);
    let mut draw = || {
        let mut bytes = [0u8; 4];
        match entropy.fill(&mut bytes) {
            Ok(()) => u32::from_le_bytes(bytes),
            Err(e) => {
                failure.set(Some(e));
                0
            }
        }
    };
    let out = rule(&mut draw);
    match failure.into_inner() {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Draws `N` random bytes.
pub(crate) fn random_bytes<const N: usize>(entropy: &dyn Entropy) -> Result<[u8; N], EntropyError> {
    let mut bytes = [0u8; N];
    entropy.fill(&mut bytes)?;
    Ok(bytes)
}
