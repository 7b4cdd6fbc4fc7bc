//! Harvesting: the 5-second window, the click challenge, the per-user cooldown, and how much a
//! win credits.
//!
//! The flow is: a correct, on-time answer opens a window and returns a [`ClickChallenge`]; the
//! player clicks the moving circle; [`check_harvest_request`] judges the request in precedence
//! order; then the store claims the lemon atomically, crediting what [`plan_harvest_credit`]
//! computes inside its transaction.

mod challenge;
mod credit;
mod gate;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

pub use challenge::{ChallengeShape, CircleSpeed, Click, ClickChallenge, ClickRefusal};
pub use credit::{HarvestCredit, plan_harvest_credit};
pub use gate::{HarvestGate, HarvestRefusal, check_harvest_request, window_elapsed_ms};

use crate::ids::EntryId;
use crate::lemons::Lemons;

/// The numbers of the harvest race.
#[derive(Clone, Debug, PartialEq)]
pub struct HarvestPolicy {
    /// How long after a correct answer a harvest is accepted (default 5 s).
    pub window: TimeDelta,
    /// How long after a successful harvest a user may not start a quiz or harvest (default 1 h).
    pub cooldown: TimeDelta,
    /// Shape of the moving circle, hit tolerance and lag allowance included.
    pub challenge: ChallengeShape,
}

impl Default for HarvestPolicy {
    fn default() -> Self {
        Self {
            window: TimeDelta::seconds(5),
            cooldown: TimeDelta::hours(1),
            challenge: ChallengeShape::default(),
        }
    }
}

impl HarvestPolicy {
    /// The end of a user's cooldown, if they ever harvested.
    pub fn cooldown_until(&self, last_harvest_at: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        last_harvest_at.map(|t| t + self.cooldown)
    }

    /// Whether a user who last harvested at `last_harvest_at` is still cooling down at `now`;
    /// returns the end of the cooldown if so.
    pub fn in_cooldown(
        &self,
        last_harvest_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        self.cooldown_until(last_harvest_at)
            .filter(|until| now < *until)
    }
}

/// What a winning harvest paid. Stored with the attempt, so a repeated request returns it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HarvestReceipt {
    /// The ledger entry of the reward (the "transaction id").
    pub entry: EntryId,
    /// Lemons credited for the harvest (clipped to the cap).
    pub reward: Lemons,
    /// Streak bonus credited with it, zero if none.
    pub streak_bonus: Lemons,
    /// Balance after both.
    pub balance_after: Lemons,
    /// When the lemon was claimed.
    pub harvested_at: DateTime<Utc>,
}

/// Where an attempt's harvest stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum HarvestState {
    /// The quiz has not been answered yet.
    AwaitingAnswer,
    /// The answer was wrong or late: no window.
    NotEligible,
    /// The window is open: one click may be judged.
    Open,
    /// This attempt won the lemon.
    Won(HarvestReceipt),
    /// Someone else won the lemon first.
    Lost,
    /// The click missed the circle.
    Missed {
        /// Smallest distance of the click from the circle's centre over the lag allowance, in
        /// play-area fractions.
        distance: f64,
    },
    /// The player gave up the quiz before answering
    /// (`DELETE /api/v1/quiz-attempts/{attemptId}`).
    Abandoned,
    /// The click came after the window.
    TooLate {
        /// Milliseconds after the answer.
        elapsed_ms: i64,
    },
}
