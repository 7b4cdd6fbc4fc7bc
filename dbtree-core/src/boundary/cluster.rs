//! The cluster that runs instances: Kubernetes through the operator, or local processes.

use std::pin::Pin;

use async_trait::async_trait;
use futures_core::Stream;

use crate::ids::{InstanceId, UserId};
use crate::instance::{Credentials, Engine, InstanceName, NodePort, Resources, RunState};

/// Everything the cluster needs to bring an instance up.
#[derive(Clone, Debug)]
pub struct ProvisionRequest {
    /// The instance (cluster objects are named after it, not after the user's name).
    pub instance: InstanceId,
    /// Its owner.
    pub owner: UserId,
    /// Its display name.
    pub name: InstanceName,
    /// Its engine.
    pub engine: Engine,
    /// What it gets.
    pub resources: Resources,
    /// The port it is reached on.
    pub node_port: NodePort,
    /// The run state to start in.
    pub run_state: RunState,
    /// The credentials to configure (never stored by dbtree).
    pub credentials: Credentials,
}

/// Whether a delete has finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Teardown {
    /// Everything is gone; the NodePort may be reused.
    Complete,
    /// Deletion is under way; a [`Observation::Gone`] event will follow.
    Pending,
}

/// What the cluster observed about an instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    /// Up and accepting connections.
    Ready,
    /// Not serving, with the reason (a failed provisioning, a crashed engine).
    Failed {
        /// Why.
        reason: String,
    },
    /// Every resource of the instance is gone.
    Gone,
}

/// One observation of one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterEvent {
    /// The instance.
    pub instance: InstanceId,
    /// What was observed.
    pub observation: Observation,
}

/// What an instance's engine reports about its own use. Each figure is `None` when the engine
/// (or the driver) does not report it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineUsage {
    /// Memory the engine uses, bytes.
    pub memory_used_bytes: Option<u64>,
    /// Disk its data uses, bytes.
    pub disk_used_bytes: Option<u64>,
    /// Client connections open now.
    pub connections: Option<u32>,
}

/// The answer to a usage question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UsageReport {
    /// The engine answered.
    Measured(EngineUsage),
    /// The cluster cannot tell (the engine does not run, or the driver has no way to ask):
    /// why, in words fit for the user.
    NotAvailable {
        /// Why.
        reason: String,
    },
}

/// A stream of cluster events.
pub type EventStream = Pin<Box<dyn Stream<Item = ClusterEvent> + Send + 'static>>;

/// How a cluster call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterErrorKind {
    /// Worth retrying (timeouts, conflicts, API server errors).
    Transient,
    /// Will not succeed by retrying (a missing engine binary, an invalid object).
    Permanent,
    /// The instance is unknown to the cluster.
    NotFound,
    /// The instance's NodePort is taken on the host by something that is not this instance
    /// (another program listens there). From `provision`: the cluster holds nothing of the
    /// instance, and the same request with another port may succeed. From `set_run_state`
    /// (running): the instance is kept, but its engine cannot start until the port is free.
    PortBusy,
}

/// A cluster call failed.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct ClusterError {
    /// What kind of failure.
    pub kind: ClusterErrorKind,
    /// A message fit for the instance's status reason (no secrets).
    pub message: String,
}

impl ClusterError {
    /// A failure worth retrying.
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            kind: ClusterErrorKind::Transient,
            message: message.into(),
        }
    }

    /// A failure retrying will not fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            kind: ClusterErrorKind::Permanent,
            message: message.into(),
        }
    }

    /// The instance is unknown to the cluster.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            kind: ClusterErrorKind::NotFound,
            message: message.into(),
        }
    }

    /// The instance's NodePort is taken on the host by something else.
    pub fn port_busy(message: impl Into<String>) -> Self {
        Self {
            kind: ClusterErrorKind::PortBusy,
            message: message.into(),
        }
    }
}

/// Whether a cluster can run an engine, and with which server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineSupport {
    /// Instances of the engine can be created.
    Available {
        /// The server software that runs them, for people ("PostgreSQL 15", "MongoDB-compatible:
        /// FerretDB 1.24"), if the cluster knows.
        server: Option<String>,
    },
    /// This cluster cannot run the engine (a missing binary), and why.
    Unavailable {
        /// Why, fit to show a user.
        reason: String,
    },
}

/// Runs instances.
#[async_trait]
pub trait Cluster: Send + Sync {
    /// Starts bringing an instance up. MUST be idempotent per instance id (a repeat after a crash
    /// converges on one instance). MUST NOT wait for readiness: readiness and failures arrive as
    /// [`ClusterEvent`]s. MUST NOT log or persist the password outside the engine's own auth
    /// (or the cluster's Secret).
    ///
    /// # Errors
    /// [`ClusterError`] if the request could not be accepted.
    async fn provision(&self, request: &ProvisionRequest) -> Result<(), ClusterError>;

    /// Sets the run state (scale to one or to zero). MUST keep the instance's data, and MUST be
    /// idempotent: asking for the state already held changes nothing.
    ///
    /// # Errors
    /// [`ClusterError`]; a cluster whose instances listen on host ports MUST answer
    /// [`ClusterErrorKind::PortBusy`] when another program holds the port of an instance asked
    /// to run.
    async fn set_run_state(
        &self,
        instance: InstanceId,
        state: RunState,
    ) -> Result<(), ClusterError>;

    /// Replaces the instance's password; the old one MUST stop working.
    ///
    /// # Errors
    /// [`ClusterError`].
    async fn rotate_credentials(
        &self,
        instance: InstanceId,
        credentials: &Credentials,
    ) -> Result<(), ClusterError>;

    /// Deletes the instance and its data. MUST be idempotent (deleting an unknown instance is
    /// [`Teardown::Complete`]) and MUST answer [`Teardown::Complete`] only when everything of the
    /// instance is gone; otherwise [`Teardown::Pending`], and an [`Observation::Gone`] follows.
    ///
    /// # Errors
    /// [`ClusterError`].
    async fn delete(&self, instance: InstanceId) -> Result<Teardown, ClusterError>;

    /// Observations of every instance, as they happen. Each call returns a new stream.
    fn events(&self) -> EventStream;

    /// What the instance's engine itself reports about its use (memory, disk, connections).
    /// MUST NOT invent figures: a driver that cannot ask answers
    /// [`UsageReport::NotAvailable`] with the reason. MUST NOT block for long (a few seconds at
    /// most).
    ///
    /// # Errors
    /// [`ClusterError`] ([`ClusterErrorKind::NotFound`] for an unknown instance).
    async fn usage(&self, instance: InstanceId) -> Result<UsageReport, ClusterError>;
    /// Whether this cluster can run `engine`. MUST NOT block. The default: every engine, server
    /// unknown.
    fn engine_support(&self, engine: Engine) -> EngineSupport {
        let _ = engine;
        EngineSupport::Available { server: None }
    }

    /// The server software that runs an instance, for people ("MongoDB-compatible: FerretDB
    /// 1.24"), if the cluster knows. The default: unknown.
    async fn instance_server(&self, instance: InstanceId) -> Option<String> {
        let _ = instance;
        None
    }

    /// Every instance the cluster holds anything of (processes, files), so that dbtree can remove
    /// those it no longer owns (its record is in `error`, deleted or unknown). A cluster that
    /// cannot list returns an empty list (the default).
    ///
    /// # Errors
    /// [`ClusterError`].
    async fn held_instances(&self) -> Result<Vec<InstanceId>, ClusterError> {
        Ok(Vec::new())
    }
}
