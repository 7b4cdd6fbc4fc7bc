//! Every number of the product in one configurable value.

use crate::auth::AuthPolicy;
use crate::billing::BillingPolicy;
use crate::harvest::HarvestPolicy;
use crate::instance::InstancePolicy;
use crate::ledger::LedgerPolicy;
use crate::quiz::QuizPolicy;
use crate::streak::StreakPolicy;
use crate::tree::TreePolicy;

/// All policies. `Policy::default()` is the product's published numbers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policy {
    /// Lemon amounts and the cap.
    pub ledger: LedgerPolicy,
    /// Streak milestones.
    pub streaks: StreakPolicy,
    /// Regrowth.
    pub tree: TreePolicy,
    /// Quiz lock lifetime.
    pub quiz: QuizPolicy,
    /// The harvest race.
    pub harvest: HarvestPolicy,
    /// Instance limits, capacity and NodePorts.
    pub instances: InstancePolicy,
    /// Hourly billing.
    pub billing: BillingPolicy,
    /// Sign-in and sessions.
    pub auth: AuthPolicy,
}
