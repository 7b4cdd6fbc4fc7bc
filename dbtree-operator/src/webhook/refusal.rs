//! Why a review is refused, each reason with its HTTP-like code, the field it concerns and a
//! message a person can act on.

use dbtree_core::instance::{CapacityExceeded, MilliCpu, Scarce};
use kube::core::Status;
use kube::core::response::{StatusCause, StatusDetails};

/// A refusal. The code of every variant is fixed by [`Refusal::code`]; the message is its
/// `Display`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The body or its object cannot be read as a review of a `DBInstance` (400).
    #[error("{reason}")]
    Malformed {
        /// What is wrong with it.
        reason: String,
    },
    /// A user who is not trusted named someone else as the owner (403).
    #[error(
        "{field} is {owner:?}, but you are {user:?}: you can only create DBInstances you own \
         (leave the owner as your own user name)"
    )]
    OwnerNotRequester {
        /// `spec.owner` or the owner label.
        field: &'static str,
        /// The owner it names.
        owner: String,
        /// The requesting user.
        user: String,
    },
    /// A user who is neither the owner nor trusted changed an instance's spec (403).
    #[error("this DBInstance belongs to {owner:?}; {user:?} may not change its spec")]
    NotTheOwner {
        /// The instance's owner.
        owner: String,
        /// The requesting user.
        user: String,
    },
    /// The owner already has the maximum number of live instances (403).
    #[error(
        "{owner:?} already has {used} live DBInstances and the limit is {limit}; \
         delete one before creating another"
    )]
    InstanceLimit {
        /// The owner.
        owner: String,
        /// Live instances the owner has.
        used: u32,
        /// The limit.
        limit: u32,
    },
    /// The cluster has no room for the instance (403).
    #[error("{}", capacity_message(.0))]
    Capacity(CapacityExceeded),
    /// Another live instance of the owner has this name (409).
    #[error(
        "{owner:?} already has a live DBInstance named {name:?}; choose another spec.displayName"
    )]
    NameTaken {
        /// The owner.
        owner: String,
        /// The name.
        name: String,
    },
    /// Another `DBInstance` uses this NodePort (409).
    #[error(
        "spec.nodePort {port} is already used by another DBInstance; \
         choose a free port (a deleted instance's port frees up once it is gone)"
    )]
    NodePortTaken {
        /// The port.
        port: i32,
    },
    /// A field is invalid (422).
    #[error("{field}: {message}")]
    Invalid {
        /// The field, as named in the object's JSON (`spec.resources.memoryMib`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// An immutable field changed (422).
    #[error("{field} is immutable: it was {old}, the update sets {new}")]
    Immutable {
        /// The field.
        field: &'static str,
        /// Its value before.
        old: String,
        /// The value the update asked for.
        new: String,
    },
    /// The cache of `DBInstance`s has not synced yet, so no quota can be checked (503).
    #[error("the webhook is still loading the cluster's DBInstances; retry in a few seconds")]
    NotReady,
}

impl Refusal {
    /// The HTTP-like code carried in the response's `status.code`.
    pub fn code(&self) -> u16 {
        match self {
            Refusal::Malformed { .. } => 400,
            Refusal::OwnerNotRequester { .. }
            | Refusal::NotTheOwner { .. }
            | Refusal::InstanceLimit { .. }
            | Refusal::Capacity(_) => 403,
            Refusal::NameTaken { .. } | Refusal::NodePortTaken { .. } => 409,
            Refusal::Invalid { .. } | Refusal::Immutable { .. } => 422,
            Refusal::NotReady => 503,
        }
    }

    /// The Kubernetes `StatusReason` that goes with the code.
    pub fn reason(&self) -> &'static str {
        match self.code() {
            400 => "BadRequest",
            403 => "Forbidden",
            409 => "Conflict",
            422 => "Invalid",
            _ => "ServiceUnavailable",
        }
    }

    /// The field the refusal concerns, if one field is to blame.
    pub fn field(&self) -> Option<&str> {
        match self {
            Refusal::OwnerNotRequester { field, .. } | Refusal::Immutable { field, .. } => {
                Some(field)
            }
            Refusal::Invalid { field, .. } => Some(field),
            Refusal::NameTaken { .. } => Some("spec.displayName"),
            Refusal::NodePortTaken { .. } => Some("spec.nodePort"),
            Refusal::InstanceLimit { .. } => Some("spec.owner"),
            Refusal::Capacity(c) => Some(match c.resource {
                Scarce::Cpu => "spec.resources.cpuMillis",
                Scarce::Memory => "spec.resources.memoryMib",
            }),
            Refusal::Malformed { .. } | Refusal::NotTheOwner { .. } | Refusal::NotReady => None,
        }
    }

    /// The `status` of a denying response.
    pub fn status(&self) -> Status {
        let message = self.to_string();
        let status = Status::failure(&message, self.reason()).with_code(self.code());
        match self.field() {
            Some(field) => status.with_details(StatusDetails {
                name: String::new(),
                group: "dbtree.cloud".to_owned(),
                kind: "DBInstance".to_owned(),
                uid: String::new(),
                causes: vec![StatusCause {
                    reason: cause_reason(self).to_owned(),
                    message,
                    field: field.to_owned(),
                }],
                retry_after_seconds: 0,
            }),
            None => status,
        }
    }
}

/// Kubernetes' `CauseType` for the field.
fn cause_reason(refusal: &Refusal) -> &'static str {
    match refusal {
        Refusal::Invalid { .. } | Refusal::Immutable { .. } => "FieldValueInvalid",
        Refusal::NameTaken { .. } | Refusal::NodePortTaken { .. } => "FieldValueDuplicate",
        Refusal::OwnerNotRequester { .. }
        | Refusal::NotTheOwner { .. }
        | Refusal::InstanceLimit { .. }
        | Refusal::Capacity(_) => "FieldValueForbidden",
        Refusal::Malformed { .. } | Refusal::NotReady => "",
    }
}

fn capacity_message(c: &CapacityExceeded) -> String {
    let (what, requested, free) = match c.resource {
        Scarce::Cpu => (
            "CPU",
            format!("{} cores", cores(c.requested)),
            format!("{} cores", cores(c.free)),
        ),
        Scarce::Memory => (
            "memory",
            format!("{} MiB", c.requested),
            format!("{} MiB", c.free),
        ),
    };
    format!(
        "the cluster has no room for this instance: it needs {requested} of {what} and only \
         {free} are free; stop or delete an instance, or choose a smaller size"
    )
}

fn cores(milli: u64) -> String {
    MilliCpu(u32::try_from(milli).unwrap_or(u32::MAX)).to_string()
}
