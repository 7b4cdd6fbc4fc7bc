//! Instances: creation with refund on failure, lifecycle, credentials, and following the cluster.

mod follow;

pub(crate) use follow::{
    delete_instance, fail_provisioning, push_run_state, push_run_state_or_refusal,
};

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};

use super::{Deps, InternalError, internal_errors, random_bytes, with_random_u32s};
use crate::boundary::{
    ClusterError, ClusterErrorKind, CreateInstanceError, NewInstance, ProvisionRequest,
    ReservePortError, StartInstanceError, TransitionError, UsageReport, User,
};
use crate::ids::{InstanceId, UserId};
use crate::instance::{
    BusyPorts, CreateRefusal, Credentials, Instance, InstanceEvent, InstanceName, InstanceSpec,
    InstanceStatus, NodePort, NodePortError, NodePortPolicy, Password, Price, RunState,
    StartRefusal, TransitionRefused,
};
use crate::ledger::LedgerEntry;

/// How long a port found busy on the host is skipped before it is tried again.
const BUSY_PORT_HOLD: TimeDelta = TimeDelta::minutes(10);
/// How many busy ports one creation skips before it gives up.
const BUSY_PORT_RETRIES: u32 = 8;

/// Instances.
#[derive(Clone, Debug)]
pub struct InstanceService {
    deps: Deps,
    /// Ports the cluster found taken by something else, shared by every clone.
    busy_ports: Arc<Mutex<BusyPorts>>,
}

/// The credentials of a new (or rotated) instance: shown once, never stored by dbtree.
#[derive(Clone, Debug)]
pub struct NewInstanceCredentials {
    /// User name and password.
    pub credentials: Credentials,
}

/// A created instance.
#[derive(Clone, Debug)]
pub struct ProvisionedInstance {
    /// The instance (`provisioning`, with its NodePort).
    pub instance: Instance,
    /// Its credentials, shown once.
    pub credentials: Credentials,
    /// The creation-cost entry.
    pub debit: LedgerEntry,
}

/// Why an instance was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// A rule refuses: limit, name, balance or capacity.
    #[error(transparent)]
    Refused(#[from] CreateRefusal),
    /// No NodePort is free.
    #[error(transparent)]
    NoNodePort(NodePortError),
    /// The cluster refused the instance; the creation cost was refunded and the instance shows
    /// `error` with the reason.
    #[error("provisioning failed: {reason}")]
    ProvisioningFailed {
        /// The failed instance.
        instance: InstanceId,
        /// Why.
        reason: String,
    },
    /// Infrastructure failure.
    #[error(transparent)]
    Internal(#[from] InternalError),
}

/// Why an action on an instance did not happen.
#[derive(Debug, thiserror::Error)]
pub enum InstanceActionError {
    /// No such instance of this user.
    #[error("unknown instance")]
    NotFound,
    /// Not allowed from the current state.
    #[error(transparent)]
    Transition(#[from] TransitionRefused),
    /// Balance or capacity refuses a start.
    #[error(transparent)]
    Start(#[from] StartRefusal),
    /// The action needs a running instance.
    #[error("the instance must be running (it is {status})")]
    NotRunning {
        /// Its state.
        status: InstanceStatus,
    },
    /// The cluster could not apply the action (nothing changed).
    #[error("the cluster could not apply the change: {0}")]
    Cluster(ClusterError),
    /// Another program holds the instance's port on the host: it was not started and stays
    /// stopped, keeping its port.
    #[error("the instance was not started: {message}")]
    PortBusy {
        /// The cluster's words, naming the port.
        message: String,
    },
    /// Infrastructure failure.
    #[error(transparent)]
    Internal(#[from] InternalError),
}

internal_errors!(CreateError);

impl From<crate::boundary::BackendError> for InstanceActionError {
    fn from(e: crate::boundary::BackendError) -> Self {
        Self::Internal(e.into())
    }
}

impl From<crate::boundary::EntropyError> for InstanceActionError {
    fn from(e: crate::boundary::EntropyError) -> Self {
        Self::Internal(e.into())
    }
}

fn transition_error(e: TransitionError) -> InstanceActionError {
    match e {
        TransitionError::Refused(r) => InstanceActionError::Transition(r),
        TransitionError::UnknownInstance => InstanceActionError::NotFound,
        TransitionError::Backend(b) => b.into(),
    }
}

/// What a resync did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResyncReport {
    /// Run states pushed successfully.
    pub run_states_applied: u32,
    /// Teardowns completed.
    pub teardowns_completed: u32,
    /// Interrupted provisionings refunded.
    pub interrupted_refunded: u32,
    /// Instances the cluster still held although dbtree no longer owns them (failed, deleted or
    /// unknown), removed.
    pub orphans_removed: u32,
    /// Cluster calls that failed (retried next time).
    pub failures: u32,
}

impl InstanceService {
    pub(crate) fn new(deps: Deps) -> Self {
        Self {
            deps,
            busy_ports: Arc::default(),
        }
    }

    /// `policy` without the ports held aside as busy at `now`.
    fn ports_without_busy(&self, policy: &NodePortPolicy, now: DateTime<Utc>) -> NodePortPolicy {
        self.busy_ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .policy_without_held(policy, now)
    }

    /// Holds a port the cluster found busy aside, and moves the instance to the lowest free
    /// port that is not. `None` if no port is left.
    async fn skip_busy_port(
        &self,
        id: InstanceId,
        busy: NodePort,
        now: DateTime<Utc>,
    ) -> Result<Option<NodePort>, InternalError> {
        self.busy_ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .hold(busy, now + BUSY_PORT_HOLD);
        let store = &self.deps.store;
        store.release_node_port(id).await?;
        let ports = self.ports_without_busy(&self.deps.policy.instances.node_ports, now);
        match store.reserve_node_port(id, &ports).await {
            Ok(port) => Ok(Some(port)),
            Err(ReservePortError::Exhausted(_)) => Ok(None),
            Err(ReservePortError::Backend(b)) => Err(b.into()),
        }
    }

    /// The price of a specification (the same function creation charges with).
    pub fn quote(&self, spec: &InstanceSpec) -> Price {
        spec.price()
    }

    /// Creates an instance: records it and debits its creation cost atomically, then asks the
    /// cluster to provision it. If the cluster refuses, the cost is refunded exactly once, the
    /// NodePort is released once the cluster holds nothing of it, and the instance shows
    /// `error` with the reason.
    ///
    /// # Errors
    /// [`CreateError`].
    pub async fn create(
        &self,
        owner: &User,
        name: InstanceName,
        spec: InstanceSpec,
    ) -> Result<ProvisionedInstance, CreateError> {
        let deps = &self.deps;
        let id = InstanceId::from_random_bytes(random_bytes(deps.entropy.as_ref())?);
        let password = with_random_u32s(deps.entropy.as_ref(), |draw| Password::generate(draw))?
            .ok_or_else(|| InternalError::Inconsistent("random source kept failing".into()))?;
        let credentials = Credentials::new(spec.engine(), password);
        let now = deps.clock.now();
        let new = NewInstance {
            id,
            owner: owner.id,
            name: name.clone(),
            spec,
            price: spec.price(),
            created_at: now,
        };
        let mut policy = deps.policy.instances.clone();
        policy.node_ports = self.ports_without_busy(&policy.node_ports, now);
        let mut created = deps
            .store
            .create_instance(&new, &policy)
            .await
            .map_err(|e| match e {
                CreateInstanceError::Refused(r) => CreateError::Refused(r),
                CreateInstanceError::Ports(p) => CreateError::NoNodePort(p),
                CreateInstanceError::UnknownUser => CreateError::Internal(
                    InternalError::Inconsistent("creating for an unknown user".into()),
                ),
                CreateInstanceError::Backend(b) => b.into(),
            })?;
        let mut skipped = 0;
        loop {
            let node_port = created.instance.node_port.ok_or_else(|| {
                InternalError::Inconsistent("created instance without a NodePort".into())
            })?;
            let request = ProvisionRequest {
                instance: id,
                owner: owner.id,
                name: name.clone(),
                engine: spec.engine(),
                resources: spec.resources(),
                node_port,
                run_state: RunState::Running,
                credentials: credentials.clone(),
            };
            let failure = match deps.cluster.provision(&request).await {
                Ok(()) => break,
                Err(failure) => failure,
            };
            let moved = if failure.kind == ClusterErrorKind::PortBusy && skipped < BUSY_PORT_RETRIES
            {
                skipped += 1;
                self.skip_busy_port(id, node_port, now).await?
            } else {
                None
            };
            match moved {
                Some(port) => created.instance.node_port = Some(port),
                None => {
                    fail_provisioning(deps, id, &failure.message).await?;
                    return Err(CreateError::ProvisioningFailed {
                        instance: id,
                        reason: failure.message,
                    });
                }
            }
        }
        Ok(ProvisionedInstance {
            instance: created.instance,
            credentials,
            debit: created.debit,
        })
    }

    /// The server software that runs an instance, for people ("MongoDB-compatible: FerretDB
    /// 1.24"), if the cluster knows.
    pub async fn server_of(&self, instance: &Instance) -> Option<String> {
        self.deps.cluster.instance_server(instance.id).await
    }

    /// The user's visible instances, newest first.
    ///
    /// # Errors
    /// [`InternalError`].
    pub async fn list(&self, owner: UserId) -> Result<Vec<Instance>, InternalError> {
        Ok(self.deps.store.instances_of(owner).await?)
    }

    /// One of the user's visible instances.
    ///
    /// # Errors
    /// [`InstanceActionError::NotFound`] for another user's or a deleted instance.
    pub async fn get(
        &self,
        owner: UserId,
        id: InstanceId,
    ) -> Result<Instance, InstanceActionError> {
        self.deps
            .store
            .instance(id)
            .await?
            .filter(|i| i.owner == owner && i.status.is_visible())
            .ok_or(InstanceActionError::NotFound)
    }

    /// Stops a running instance (data kept, billing stops).
    ///
    /// # Errors
    /// [`InstanceActionError`].
    pub async fn stop(
        &self,
        owner: UserId,
        id: InstanceId,
    ) -> Result<Instance, InstanceActionError> {
        self.get(owner, id).await?;
        let now = self.deps.clock.now();
        let stopped = self
            .deps
            .store
            .apply_event(
                id,
                InstanceEvent::StopRequested,
                Some("stopped by its owner"),
                now,
            )
            .await
            .map_err(transition_error)?;
        Ok(push_run_state(&self.deps, stopped).await?.0)
    }

    /// Starts a stopped or paused instance after checking one affordable hour and capacity.
    ///
    /// If the cluster refuses because another program holds the instance's port on the host,
    /// the instance stays stopped (its reason says why) and the refusal is returned: an
    /// instance keeps its port (its connection details do not change), so it can start once
    /// the port is free. Any other cluster failure leaves it starting, retried on each resync.
    ///
    /// # Errors
    /// [`InstanceActionError`]; [`InstanceActionError::PortBusy`] for a busy port.
    pub async fn start(
        &self,
        owner: UserId,
        id: InstanceId,
    ) -> Result<Instance, InstanceActionError> {
        self.get(owner, id).await?;
        let now = self.deps.clock.now();
        let started = self
            .deps
            .store
            .start_instance(id, now, &self.deps.policy.instances)
            .await
            .map_err(|e| match e {
                StartInstanceError::Refused(r) => InstanceActionError::Start(r),
                StartInstanceError::Transition(t) => InstanceActionError::Transition(t),
                StartInstanceError::UnknownInstance => InstanceActionError::NotFound,
                StartInstanceError::Backend(b) => b.into(),
            })?;
        let (started, refused) = push_run_state_or_refusal(&self.deps, started).await?;
        match refused {
            Some(e) if e.kind == ClusterErrorKind::PortBusy => {
                let reason = format!("not started: {}", e.message);
                let stopped = self
                    .deps
                    .store
                    .apply_event(id, InstanceEvent::StopRequested, Some(&reason), now)
                    .await
                    .map_err(transition_error)?;
                push_run_state(&self.deps, stopped).await?;
                Err(InstanceActionError::PortBusy { message: e.message })
            }
            _ => Ok(started),
        }
    }

    /// Deletes an instance and its data. The NodePort is released once the cluster confirms
    /// everything is gone.
    ///
    /// # Errors
    /// [`InstanceActionError`].
    pub async fn delete(
        &self,
        owner: UserId,
        id: InstanceId,
    ) -> Result<Instance, InstanceActionError> {
        let instance = self.get(owner, id).await?;
        if instance.status == InstanceStatus::Deleting {
            return Err(TransitionRefused {
                from: instance.status,
                event: InstanceEvent::DeleteRequested,
            }
            .into());
        }
        delete_instance(&self.deps, &instance, "deleted by its owner").await?;
        self.deps
            .store
            .instance(id)
            .await?
            .ok_or(InstanceActionError::NotFound)
    }

    /// What the instance's engine reports about its use (memory, disk, connections). Only a
    /// running instance is asked; for any other the report says why nothing is measured.
    ///
    /// # Errors
    /// [`InstanceActionError::NotFound`], [`InstanceActionError::Cluster`].
    pub async fn usage(
        &self,
        owner: UserId,
        id: InstanceId,
    ) -> Result<(Instance, UsageReport), InstanceActionError> {
        let instance = self.get(owner, id).await?;
        if instance.status != InstanceStatus::Running {
            let reason = format!("the instance is {}: nothing to measure", instance.status);
            return Ok((instance, UsageReport::NotAvailable { reason }));
        }
        let report = self
            .deps
            .cluster
            .usage(id)
            .await
            .map_err(InstanceActionError::Cluster)?;
        Ok((instance, report))
    }

    /// Replaces the password of a running instance; the new one is shown once.
    ///
    /// # Errors
    /// [`InstanceActionError::NotRunning`], [`InstanceActionError::Cluster`].
    pub async fn rotate_credentials(
        &self,
        owner: UserId,
        id: InstanceId,
    ) -> Result<(Instance, Credentials), InstanceActionError> {
        let instance = self.get(owner, id).await?;
        if instance.status != InstanceStatus::Running {
            return Err(InstanceActionError::NotRunning {
                status: instance.status,
            });
        }
        let password =
            with_random_u32s(self.deps.entropy.as_ref(), |draw| Password::generate(draw))?
                .ok_or_else(|| InternalError::Inconsistent("random source kept failing".into()))?;
        let credentials = Credentials::new(instance.engine(), password);
        self.deps
            .cluster
            .rotate_credentials(id, &credentials)
            .await
            .map_err(InstanceActionError::Cluster)?;
        Ok((instance, credentials))
    }
}
