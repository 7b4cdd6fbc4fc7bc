//! The instance store and the NodePort store.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::BackendError;
use crate::billing::BillingHour;
use crate::ids::{InstanceId, UserId};
use crate::instance::{
    CapacityExceeded, CreateRefusal, Instance, InstanceEvent, InstanceName, InstancePolicy,
    InstanceSpec, InstanceStatus, NodePort, NodePortError, NodePortPolicy, Price, StartRefusal,
    TransitionRefused, Usage,
};
use crate::ledger::LedgerEntry;
use crate::lemons::Lemons;

/// An instance to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewInstance {
    /// Its identifier.
    pub id: InstanceId,
    /// Its owner.
    pub owner: UserId,
    /// Its name.
    pub name: InstanceName,
    /// What was asked for.
    pub spec: InstanceSpec,
    /// Its price ([`crate::instance::price`] of `spec`).
    pub price: Price,
    /// Now.
    pub created_at: DateTime<Utc>,
}

/// A recorded, paid-for instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatedInstance {
    /// The instance, `provisioning`, with its NodePort.
    pub instance: Instance,
    /// The creation-cost entry.
    pub debit: LedgerEntry,
}

/// Why an instance was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreateInstanceError {
    /// A rule refuses (limit, name, balance, capacity).
    #[error(transparent)]
    Refused(#[from] CreateRefusal),
    /// No NodePort is free.
    #[error(transparent)]
    Ports(NodePortError),
    /// No live user with that id.
    #[error("unknown user")]
    UnknownUser,
    /// Infrastructure failure.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Why a state change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    /// The state machine refuses it from the current state.
    #[error(transparent)]
    Refused(#[from] TransitionRefused),
    /// No such instance.
    #[error("unknown instance")]
    UnknownInstance,
    /// Infrastructure failure.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Why a start did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StartInstanceError {
    /// Balance or capacity refuses.
    #[error(transparent)]
    Refused(#[from] StartRefusal),
    /// Not stopped or paused.
    #[error(transparent)]
    Transition(#[from] TransitionRefused),
    /// No such instance.
    #[error("unknown instance")]
    UnknownInstance,
    /// Infrastructure failure.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// The result of charging one hour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChargeOutcome {
    /// Charged now.
    Charged(LedgerEntry),
    /// This hour was charged before; nothing changed.
    AlreadyCharged,
    /// The balance does not cover the hour; nothing changed.
    Short {
        /// The hourly cost.
        required: Lemons,
        /// The balance.
        available: Lemons,
    },
    /// The instance is not running; nothing changed.
    NotRunning(InstanceStatus),
    /// No instance with that id; nothing changed.
    UnknownInstance,
}

/// The result of resuming a paused instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResumeOutcome {
    /// Running again, and charged for the hour.
    Resumed(Box<Instance>, LedgerEntry),
    /// The balance does not cover the hour; nothing changed.
    Short {
        /// The hourly cost.
        required: Lemons,
        /// The balance.
        available: Lemons,
    },
    /// The node has no room for it now; nothing changed (it stays paused, and is not deleted
    /// while its owner can pay).
    NoCapacity(CapacityExceeded),
    /// Not paused (any more); nothing changed.
    NotPaused(InstanceStatus),
    /// No instance with that id; nothing changed.
    UnknownInstance,
}

/// Instances.
#[async_trait]
pub trait InstanceStore: Send + Sync {
    /// Records a new instance and debits its creation cost.
    ///
    /// In one atomic step the store MUST: apply [`crate::instance::check_creation`] to the
    /// owner's live instances, name and balance and to the current [`Usage`] (so two concurrent
    /// creates can never exceed the limit or the capacity); reserve the lowest free NodePort
    /// (as [`NodePortStore::reserve_node_port`]); record the instance as `provisioning`; and
    /// debit the creation cost with key `create:{id}`. A repeated call with the same id MUST
    /// return the recorded instance and its debit without charging again.
    ///
    /// # Errors
    /// [`CreateInstanceError`]; nothing is written on error.
    async fn create_instance(
        &self,
        new: &NewInstance,
        policy: &InstancePolicy,
    ) -> Result<CreatedInstance, CreateInstanceError>;

    /// One instance (deleted ones included).
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn instance(&self, id: InstanceId) -> Result<Option<Instance>, BackendError>;

    /// An owner's visible (not deleted) instances, newest first.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn instances_of(&self, owner: UserId) -> Result<Vec<Instance>, BackendError>;

    /// Every instance in one of `statuses`, oldest first.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn instances_in(
        &self,
        statuses: &[InstanceStatus],
    ) -> Result<Vec<Instance>, BackendError>;

    /// Applies an event with [`crate::instance::next_status`], compare-and-set on the current
    /// state, with `reason` as the new status reason.
    ///
    /// MUST apply what [`crate::instance::plan_transition`] plans, in the same atomic step: set
    /// `paused_at` on `BillingPaused` and clear it when leaving `paused`; on
    /// `ProvisioningFailed`, refund the creation cost once (key `refund:{id}`, never refused by
    /// the cap); on `TeardownConfirmed`, release the NodePort.
    ///
    /// # Errors
    /// [`TransitionError::Refused`] when the state machine refuses.
    async fn apply_event(
        &self,
        id: InstanceId,
        event: InstanceEvent,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Instance, TransitionError>;

    /// Starts a stopped or paused instance at its owner's request: MUST apply
    /// [`crate::instance::check_start`] (one hour affordable, capacity) and the transition in one
    /// atomic step. Nothing is charged here; billing charges running hours.
    ///
    /// # Errors
    /// [`StartInstanceError`].
    async fn start_instance(
        &self,
        id: InstanceId,
        now: DateTime<Utc>,
        policy: &InstancePolicy,
    ) -> Result<Instance, StartInstanceError>;

    /// Charges a running instance its hourly cost for `hour`: MUST debit (key
    /// `bill:{id}:{hour}`) and record the hour as billed in one atomic step, only if the
    /// instance is running ([`crate::instance::plan_hour_charge`]). At most one charge per
    /// (instance, hour), whatever the concurrency. MUST answer an unknown instance with
    /// [`ChargeOutcome::UnknownInstance`], changing nothing.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn charge_hour(
        &self,
        id: InstanceId,
        hour: BillingHour,
        now: DateTime<Utc>,
    ) -> Result<ChargeOutcome, BackendError>;

    /// Resumes a paused instance whose owner can pay again: MUST check capacity, debit the hour
    /// (key `bill:{id}:{hour}`; if that hour was already charged, nothing more), move it to
    /// `running` and clear `paused_at`, all in one atomic step, as
    /// [`crate::instance::plan_resume`] plans it. MUST answer an unknown instance with
    /// [`ResumeOutcome::UnknownInstance`], changing nothing.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn resume_paid(
        &self,
        id: InstanceId,
        hour: BillingHour,
        now: DateTime<Utc>,
        policy: &InstancePolicy,
    ) -> Result<ResumeOutcome, BackendError>;

    /// Replaces the status reason without changing the state (for observations such as "engine
    /// not ready").
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn set_status_reason(
        &self,
        id: InstanceId,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), BackendError>;

    /// Resources held right now ([`Usage::of`] over every instance).
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn usage(&self) -> Result<Usage, BackendError>;

    /// Instances ever created.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn count_created(&self) -> Result<u64, BackendError>;
}

/// Why no NodePort was reserved.
#[derive(Debug, thiserror::Error)]
pub enum ReservePortError {
    /// Every port is taken.
    #[error(transparent)]
    Exhausted(NodePortError),
    /// Infrastructure failure.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// NodePort allocations.
#[async_trait]
pub trait NodePortStore: Send + Sync {
    /// Reserves a NodePort for an instance: the lowest port of the policy that is neither
    /// reserved nor held ([`NodePortPolicy::lowest_free`]). MUST be idempotent per instance
    /// (a second call returns the same port) and MUST never give one port to two instances,
    /// whatever the concurrency.
    ///
    /// # Errors
    /// [`ReservePortError::Exhausted`] when every port is held.
    async fn reserve_node_port(
        &self,
        instance: InstanceId,
        policy: &NodePortPolicy,
    ) -> Result<NodePort, ReservePortError>;

    /// Releases an instance's port (call only once the cluster confirmed its Service is gone).
    /// Returns the released port.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn release_node_port(
        &self,
        instance: InstanceId,
    ) -> Result<Option<NodePort>, BackendError>;

    /// Every held port and its instance, by port.
    ///
    /// # Errors
    /// [`BackendError`] only for infrastructure failures.
    async fn node_ports(&self) -> Result<Vec<(NodePort, InstanceId)>, BackendError>;
}
