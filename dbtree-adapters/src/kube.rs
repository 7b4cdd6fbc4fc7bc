//! Kubernetes: the `DBInstance` custom resource (shared with the operator) and `KubeCluster`,
//! the cluster driver that creates those objects and follows their status by watching.

mod cluster;
mod crd;
mod names;
mod retry;

pub use cluster::{KubeCluster, instance_object, observation};
pub use crd::{
    DBInstance, DBInstanceSpec, DBInstanceStatus, EngineKind, Phase, PresetKind, ResourcesSpec,
    RunStateSpec, SecretRef,
};
pub use names::{
    FIELD_MANAGER, INSTANCE_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, OWNER_LABEL, namespace_for,
    object_name, secret_name,
};
pub use retry::RetryPolicy;
