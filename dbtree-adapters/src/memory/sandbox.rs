//! Every memory adapter wired into one `App`, for tests, examples and doctests.

use std::sync::Arc;

use dbtree_core::boundary::{QuizStore, TreeStore};
use dbtree_core::ids::AttemptId;
use dbtree_core::policy::Policy;
use dbtree_core::service::{App, Deps};

use super::{
    ManualClock, MemoryCluster, MemoryQuizLock, MemoryRateLimiter, MemoryStore, RecordingMailer,
    SeededEntropy,
};

/// The memory adapters, wired, with handles for tests to look inside.
#[derive(Clone)]
pub struct Sandbox {
    /// The store.
    pub store: Arc<MemoryStore>,
    /// The clock (starts at 2026-01-05 09:00 UTC).
    pub clock: Arc<ManualClock>,
    /// The mailer.
    pub mailer: Arc<RecordingMailer>,
    /// The cluster.
    pub cluster: Arc<MemoryCluster>,
    /// The policy.
    pub policy: Arc<Policy>,
    deps: Deps,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").finish_non_exhaustive()
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    /// A sandbox with the published policy and randomness seeded with 42.
    pub fn new() -> Self {
        Self::with_policy(Policy::default(), 42)
    }

    /// A sandbox with a custom policy and seed.
    pub fn with_policy(policy: Policy, seed: u64) -> Self {
        let store = Arc::new(MemoryStore::new());
        let clock = Arc::new(ManualClock::fixed());
        let mailer = Arc::new(RecordingMailer::new());
        let cluster = Arc::new(MemoryCluster::new());
        let policy = Arc::new(policy);
        let deps = Deps {
            store: store.clone(),
            quiz_lock: Arc::new(MemoryQuizLock::new(clock.clone())),
            rate_limiter: Arc::new(MemoryRateLimiter::new(clock.clone())),
            mailer: mailer.clone(),
            cluster: cluster.clone(),
            clock: clock.clone(),
            entropy: Arc::new(SeededEntropy::new(seed)),
            policy: policy.clone(),
        };
        Self {
            store,
            clock,
            mailer,
            cluster,
            policy,
            deps,
        }
    }

    /// The wiring.
    pub fn deps(&self) -> Deps {
        self.deps.clone()
    }

    /// Every use case over this sandbox.
    pub fn app(&self) -> App {
        App::new(self.deps())
    }

    /// The correct option of an attempt's quiz (a test's cheat sheet); 0 if unknown.
    pub async fn correct_option(&self, attempt: AttemptId) -> u8 {
        let Ok(Some(a)) = self.store.attempt(attempt).await else {
            return 0;
        };
        match self.store.quiz(a.quiz).await {
            Ok(Some(q)) => q.content.correct_option,
            _ => 0,
        }
    }
}
