//! Database instances: engines, names, presets, custom specifications, the pricing function, the
//! state machine, per-user limit, node capacity, NodePorts and credentials.

mod capacity;
mod creation;
mod credentials;
mod engine;
mod name;
mod node_port;
mod preset;
mod pricing;
mod resources;
mod spec;
mod status;
mod transition;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use capacity::{CapacityExceeded, NodeBudget, Scarce, Usage, check_capacity, sizes_that_fit};
pub use creation::{CreateRefusal, OwnerSnapshot, StartRefusal, check_creation, check_start};
pub use credentials::{Credentials, Password};
pub use engine::{Engine, UnknownEngine};
pub use name::{InstanceName, InvalidName};
pub use node_port::{BusyPorts, NodePort, NodePortError, NodePortPolicy};
pub use preset::{Preset, PresetSize, UnknownPreset, catalogue, preset};
pub use pricing::{Price, custom_hourly_cost, custom_price, price};
pub use resources::{MilliCpu, Resources, SpecError};
pub use spec::InstanceSpec;
pub use status::{
    InstanceEvent, InstanceStatus, RunState, TransitionRefused, UnknownStatus, next_status,
};
pub use transition::{
    NotRunning, ResumePlan, ResumeRefusal, TransitionPlan, hourly_charge, plan_hour_charge,
    plan_resume, plan_transition, short_balance,
};

use crate::billing::BillingHour;
use crate::ids::{InstanceId, UserId};

/// The numbers of instances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstancePolicy {
    /// Live instances per user (default 2).
    pub max_live_per_user: u32,
    /// The node's capacity.
    pub budget: NodeBudget,
    /// Which NodePorts instances may get.
    pub node_ports: NodePortPolicy,
}

impl Default for InstancePolicy {
    fn default() -> Self {
        Self {
            max_live_per_user: 2,
            budget: NodeBudget::default(),
            node_ports: NodePortPolicy::default(),
        }
    }
}

/// An instance as dbtree records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Its identifier.
    pub id: InstanceId,
    /// Who owns it.
    pub owner: UserId,
    /// Its name, unique among the owner's live instances.
    pub name: InstanceName,
    /// What was asked for.
    pub spec: InstanceSpec,
    /// Its price, fixed at creation.
    pub price: Price,
    /// Where it is in its life.
    pub status: InstanceStatus,
    /// Why it is in that state, when there is something to say (errors, pauses).
    pub status_reason: Option<String>,
    /// Its NodePort, until the cluster confirms the old Service is gone.
    pub node_port: Option<NodePort>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its state last changed.
    pub updated_at: DateTime<Utc>,
    /// When billing paused it, while paused.
    pub paused_at: Option<DateTime<Utc>>,
    /// The last hour it was charged for.
    pub last_billed_hour: Option<BillingHour>,
}

impl Instance {
    /// Its engine.
    pub fn engine(&self) -> Engine {
        self.spec.engine()
    }

    /// Its resources.
    pub fn resources(&self) -> Resources {
        self.spec.resources()
    }
}
