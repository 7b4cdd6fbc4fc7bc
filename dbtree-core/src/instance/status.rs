//! The instance state machine.
//!
//! ```text
//! provisioning ──Provisioned──▶ running ──StopRequested──▶ stopped
//!      │  │                      │  ▲ ▲                      │  │
//!      │  └ProvisioningFailed▶ error │ └──StartRequested─────┘  │
//!      │                         │   BillingResumed/StartRequested
//!      │                    BillingPaused  │                    │
//!      │                         ▼         │                    │
//!      │                       paused ─────┘                    │
//!      └─────────┬───────────────┴── DeleteRequested / GraceExpired ──┘
//!                ▼
//!            deleting ──TeardownConfirmed──▶ deleted
//! ```
//!
//! `deleting` never returns to a live state: its only exit is the cluster's confirmation that
//! everything is gone, into the terminal `deleted`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where an instance is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceStatus {
    /// Created and paid for; the cluster is bringing it up.
    Provisioning,
    /// Up and billed hourly.
    Running,
    /// Stopped by its owner; not billed; data kept.
    Stopped,
    /// Stopped by billing for lack of lemons; deleted after the grace period.
    Paused,
    /// Provisioning failed; the creation cost was refunded.
    Error,
    /// Being torn down.
    Deleting,
    /// Gone from the cluster; kept for history.
    Deleted,
}

/// Something that moves an instance between states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceEvent {
    /// The cluster reports the instance ready.
    Provisioned,
    /// Provisioning failed.
    ProvisioningFailed,
    /// The owner stops it.
    StopRequested,
    /// The owner starts it.
    StartRequested,
    /// Billing pauses it for lack of lemons.
    BillingPaused,
    /// Billing resumes it after a top-up.
    BillingResumed,
    /// The owner (or account deletion) deletes it.
    DeleteRequested,
    /// The pause grace period ran out with the balance still short.
    GraceExpired,
    /// The cluster confirms every resource of the instance is gone.
    TeardownConfirmed,
}

/// A transition the state machine does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot apply {event:?} to an instance that is {from}")]
pub struct TransitionRefused {
    /// The current state.
    pub from: InstanceStatus,
    /// The refused event.
    pub event: InstanceEvent,
}

/// The state after `event` in state `from`.
///
/// # Errors
/// [`TransitionRefused`] for every pair not drawn in the module diagram.
pub fn next_status(
    from: InstanceStatus,
    event: InstanceEvent,
) -> Result<InstanceStatus, TransitionRefused> {
    use InstanceEvent as E;
    use InstanceStatus as S;
    let to = match (from, event) {
        (S::Provisioning, E::Provisioned) => S::Running,
        (S::Provisioning, E::ProvisioningFailed) => S::Error,
        (S::Running, E::StopRequested) => S::Stopped,
        (S::Running, E::BillingPaused) => S::Paused,
        (S::Stopped | S::Paused, E::StartRequested) => S::Running,
        (S::Paused, E::BillingResumed) => S::Running,
        (S::Paused, E::GraceExpired) => S::Deleting,
        (S::Provisioning | S::Running | S::Stopped | S::Paused | S::Error, E::DeleteRequested) => {
            S::Deleting
        }
        (S::Deleting, E::TeardownConfirmed) => S::Deleted,
        _ => return Err(TransitionRefused { from, event }),
    };
    Ok(to)
}

impl InstanceStatus {
    /// Every state.
    pub const ALL: [InstanceStatus; 7] = [
        InstanceStatus::Provisioning,
        InstanceStatus::Running,
        InstanceStatus::Stopped,
        InstanceStatus::Paused,
        InstanceStatus::Error,
        InstanceStatus::Deleting,
        InstanceStatus::Deleted,
    ];

    /// The stable snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            InstanceStatus::Provisioning => "provisioning",
            InstanceStatus::Running => "running",
            InstanceStatus::Stopped => "stopped",
            InstanceStatus::Paused => "paused",
            InstanceStatus::Error => "error",
            InstanceStatus::Deleting => "deleting",
            InstanceStatus::Deleted => "deleted",
        }
    }

    /// Whether the instance counts toward its owner's limit and holds its name: provisioning,
    /// running, stopped and paused. A failed (refunded) instance is shown to its owner but no
    /// longer counts.
    pub const fn is_live(self) -> bool {
        matches!(
            self,
            InstanceStatus::Provisioning
                | InstanceStatus::Running
                | InstanceStatus::Stopped
                | InstanceStatus::Paused
        )
    }

    /// Whether the instance holds node capacity: everything but stopped, paused, error and
    /// deleted.
    pub const fn holds_resources(self) -> bool {
        matches!(
            self,
            InstanceStatus::Provisioning | InstanceStatus::Running | InstanceStatus::Deleting
        )
    }

    /// Whether the instance is shown to its owner (everything but deleted).
    pub const fn is_visible(self) -> bool {
        !matches!(self, InstanceStatus::Deleted)
    }

    /// The run state the cluster should hold for an instance in this state, if any.
    pub const fn desired_run_state(self) -> Option<RunState> {
        match self {
            InstanceStatus::Provisioning | InstanceStatus::Running => Some(RunState::Running),
            InstanceStatus::Stopped => Some(RunState::Stopped),
            InstanceStatus::Paused => Some(RunState::Paused),
            InstanceStatus::Error | InstanceStatus::Deleting | InstanceStatus::Deleted => None,
        }
    }
}

impl fmt::Display for InstanceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A stored status name dbtree does not know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown instance status `{0}`")]
pub struct UnknownStatus(pub String);

impl FromStr for InstanceStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        InstanceStatus::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// The run state the cluster is asked to hold (the custom resource's `spec.runState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RunState {
    /// Scaled to one replica.
    Running,
    /// Scaled to zero by the owner.
    Stopped,
    /// Scaled to zero by billing.
    Paused,
}

#[cfg(test)]
mod tests {
    use super::*;
    use InstanceEvent as E;
    use InstanceStatus as S;

    #[test]
    fn the_allowed_transitions() {
        let allowed = [
            (S::Provisioning, E::Provisioned, S::Running),
            (S::Provisioning, E::ProvisioningFailed, S::Error),
            (S::Provisioning, E::DeleteRequested, S::Deleting),
            (S::Running, E::StopRequested, S::Stopped),
            (S::Running, E::BillingPaused, S::Paused),
            (S::Running, E::DeleteRequested, S::Deleting),
            (S::Stopped, E::StartRequested, S::Running),
            (S::Stopped, E::DeleteRequested, S::Deleting),
            (S::Paused, E::StartRequested, S::Running),
            (S::Paused, E::BillingResumed, S::Running),
            (S::Paused, E::DeleteRequested, S::Deleting),
            (S::Paused, E::GraceExpired, S::Deleting),
            (S::Error, E::DeleteRequested, S::Deleting),
            (S::Deleting, E::TeardownConfirmed, S::Deleted),
        ];
        for (from, event, to) in allowed {
            assert_eq!(next_status(from, event), Ok(to), "{from} {event:?}");
        }
        let mut count = 0;
        for from in S::ALL {
            for event in [
                E::Provisioned,
                E::ProvisioningFailed,
                E::StopRequested,
                E::StartRequested,
                E::BillingPaused,
                E::BillingResumed,
                E::DeleteRequested,
                E::GraceExpired,
                E::TeardownConfirmed,
            ] {
                if next_status(from, event).is_ok() {
                    count += 1;
                } else {
                    assert_eq!(
                        next_status(from, event),
                        Err(TransitionRefused { from, event })
                    );
                }
            }
        }
        assert_eq!(count, allowed.len(), "no transition beyond the table");
    }

    #[test]
    fn which_states_count() {
        let live: Vec<_> = S::ALL.into_iter().filter(|s| s.is_live()).collect();
        assert_eq!(live, [S::Provisioning, S::Running, S::Stopped, S::Paused]);
        let holding: Vec<_> = S::ALL.into_iter().filter(|s| s.holds_resources()).collect();
        assert_eq!(holding, [S::Provisioning, S::Running, S::Deleting]);
        assert_eq!("paused".parse::<S>(), Ok(S::Paused));
    }
}
