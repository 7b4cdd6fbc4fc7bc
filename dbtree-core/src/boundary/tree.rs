//! The tree store: lemons, quiz attempts, and the atomic harvest claim.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use super::BackendError;
use crate::auth::Email;
use crate::harvest::{HarvestReceipt, HarvestState};
use crate::ids::{AttemptId, QuizId, UserId};
use crate::lemons::Lemons;
use crate::policy::Policy;
use crate::quiz::{AnswerRecord, Attempt};
use crate::tree::{Lemon, Position};

/// An attempt to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAttempt {
    /// Its identifier.
    pub id: AttemptId,
    /// Who plays.
    pub user: UserId,
    /// For which lemon.
    pub position: Position,
    /// In which ripening of it.
    pub lemon_cycle: u64,
    /// Its quiz.
    pub quiz: QuizId,
    /// Now.
    pub started_at: DateTime<Utc>,
    /// The quiz's time limit.
    pub time_limit: TimeDelta,
}

/// Why an attempt was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum StartAttemptError {
    /// The lemon is not ripe in that cycle any more.
    #[error("the lemon is not ripe")]
    NotRipe,
    /// Infrastructure failure.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Why an answer was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum RecordAnswerError {
    /// The attempt was answered before; here it is.
    #[error("the quiz was already answered")]
    AlreadyAnswered(Box<Attempt>),
    /// No such attempt.
    #[error("unknown attempt")]
    UnknownAttempt,
    /// Infrastructure failure.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Why the tree was not planted.
#[derive(Debug, thiserror::Error)]
pub enum PlantError {
    /// No quiz in the bank to hang on a missing lemon (every quiz retired, or none seeded).
    #[error("the quiz bank is empty: cannot plant the tree")]
    EmptyBank,
    /// Infrastructure failure.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Why a claim paid nothing.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// Someone else won this lemon.
    #[error("the lemon was already harvested")]
    AlreadyHarvested,
    /// The user's balance is at the cap.
    #[error("lemon storage is full (cap {cap})")]
    StorageFull {
        /// The cap.
        cap: Lemons,
    },
    /// The user harvested another lemon within the cooldown.
    #[error("harvest cooldown until {until}")]
    Cooldown {
        /// End of the cooldown.
        until: DateTime<Utc>,
    },
    /// The attempt is not open for harvest (unknown, other user, unanswered, settled).
    #[error("the attempt is not open for harvest")]
    NotEligible,
    /// Infrastructure failure.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Lemons, quiz attempts and the harvest.
#[async_trait]
pub trait TreeStore: Send + Sync {
    /// Plants the tree: every position that does not exist yet is created ripe, each with the
    /// least-used quiz not on the tree ([`crate::tree::choose_next_quiz`]). Existing lemons are
    /// untouched. Idempotent. Returns all ten lemons. MUST refuse with
    /// [`PlantError::EmptyBank`], planting nothing, when a missing lemon finds no quiz.
    ///
    /// # Errors
    /// [`PlantError::EmptyBank`]; [`PlantError::Backend`] only for infrastructure failures.
    async fn plant(&self, now: DateTime<Utc>) -> Result<Vec<Lemon>, PlantError>;

    /// All lemons, by position.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn lemons(&self) -> Result<Vec<Lemon>, BackendError>;

    /// Records a quiz attempt. MUST refuse atomically unless the lemon at the position is ripe in
    /// `lemon_cycle` and carries `quiz`. Many users MAY hold attempts on the same lemon.
    ///
    /// # Errors
    /// [`StartAttemptError::NotRipe`].
    async fn start_attempt(&self, attempt: &NewAttempt) -> Result<Attempt, StartAttemptError>;

    /// An attempt by id.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn attempt(&self, id: AttemptId) -> Result<Option<Attempt>, BackendError>;

    /// Records the answer of an unanswered attempt, atomically: the first answer wins (an
    /// abandoned attempt counts as answered), and the harvest state becomes `Open` if the answer
    /// opens a window, else `NotEligible`.
    ///
    /// # Errors
    /// [`RecordAnswerError::AlreadyAnswered`] with the stored attempt,
    /// [`RecordAnswerError::UnknownAttempt`].
    async fn record_answer(
        &self,
        id: AttemptId,
        answer: &AnswerRecord,
    ) -> Result<Attempt, RecordAnswerError>;

    /// Marks an unanswered attempt as abandoned (harvest state `Abandoned`), atomically with
    /// respect to [`TreeStore::record_answer`]: whichever comes first wins, so an abandoned
    /// attempt can never be answered and an answered one is never abandoned. An attempt that is
    /// answered or abandoned already MUST stay as it is. Returns the attempt as stored
    /// afterwards; MUST return `None` for an unknown attempt, changing nothing.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn abandon_attempt(&self, id: AttemptId) -> Result<Option<Attempt>, BackendError>;

    /// Settles an `Open` attempt as missed or too late. If the attempt is no longer `Open`, MUST
    /// change nothing. Returns the attempt as stored afterwards; MUST return `None` for an
    /// unknown attempt, changing nothing.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn settle_attempt(
        &self,
        id: AttemptId,
        state: &HarvestState,
    ) -> Result<Option<Attempt>, BackendError>;

    /// Claims the lemon of an `Open` attempt of `user` at `now`.
    ///
    /// In one atomic step the store MUST apply what [`crate::harvest::plan_claim`] plans on the
    /// attempt and the player as stored, which is to: refuse unless the attempt belongs to
    /// `user` and is `Open` (a `Won` attempt returns its stored receipt again, paying nothing,
    /// and a `Lost` one stays lost as `AlreadyHarvested`); refuse during
    /// the user's cooldown (`policy.harvest.cooldown` after the last harvest); refuse when the
    /// balance is at the cap; flip the lemon to regrowing only if it is still ripe in the
    /// attempt's cycle, so **exactly one** claim per ripening succeeds (the others settle their
    /// attempt as `Lost`); credit what [`crate::harvest::plan_harvest_credit`] computes with the
    /// entries `harvest:{attempt}` and `streak:{attempt}`; update the user's streak and last
    /// harvest; and store the receipt on the attempt.
    ///
    /// # Errors
    /// [`ClaimError`], checked in the order NotEligible, Cooldown, StorageFull, AlreadyHarvested.
    async fn claim_lemon(
        &self,
        attempt: AttemptId,
        user: UserId,
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<HarvestReceipt, ClaimError>;

    /// Makes every lemon whose regrowth time has passed ripe again, in a new cycle, with the
    /// least-used quiz not on the tree (or its old quiz if none is free). Safe to run from
    /// several replicas at once: each lemon regrows once. Returns the lemons that regrew.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn regrow_due(&self, now: DateTime<Utc>) -> Result<Vec<Lemon>, BackendError>;

    /// The `n` live users with the most correct, on-time answers on `day` (UTC), most first.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn quiz_masters(&self, day: NaiveDate, n: u32)
    -> Result<Vec<(Email, u64)>, BackendError>;
}
