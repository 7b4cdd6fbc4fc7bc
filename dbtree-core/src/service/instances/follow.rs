//! Following the cluster: observations, resync, teardowns and run-state pushes.

use chrono::TimeDelta;

use super::super::{Deps, InternalError};
use super::{InstanceService, ResyncReport};
use crate::boundary::{
    ClusterError, ClusterErrorKind, ClusterEvent, Observation, Teardown, TransitionError,
};
use crate::ids::InstanceId;
use crate::instance::{Instance, InstanceEvent, InstanceStatus, RunState};

/// Status reasons written while the cluster has not applied a change yet start with this.
const PENDING_PREFIX: &str = "waiting for the cluster";

/// How long a `provisioning` instance may exist before a resync that finds it unknown to the
/// cluster concludes its provisioning was interrupted.
const INTERRUPTED_AFTER: TimeDelta = TimeDelta::minutes(5);

impl InstanceService {
    /// Follows one observation of the cluster: readiness finishes provisioning, a failed
    /// provisioning is refunded, a confirmed teardown releases the NodePort. Returns the instance
    /// if its record changed.
    ///
    /// # Errors
    /// [`InternalError`].
    pub async fn observe(&self, event: &ClusterEvent) -> Result<Option<Instance>, InternalError> {
        let deps = &self.deps;
        let Some(instance) = deps.store.instance(event.instance).await? else {
            return Ok(None);
        };
        let now = deps.clock.now();
        let id = instance.id;
        let changed = match (instance.status, &event.observation) {
            (InstanceStatus::Provisioning, Observation::Ready) => ignore_refused(
                deps.store
                    .apply_event(id, InstanceEvent::Provisioned, None, now)
                    .await,
            )?,
            (InstanceStatus::Provisioning, Observation::Failed { reason }) => {
                fail_provisioning(deps, id, reason).await?
            }
            (InstanceStatus::Running, Observation::Failed { reason }) => {
                deps.store.set_status_reason(id, Some(reason), now).await?;
                true
            }
            (InstanceStatus::Running, Observation::Ready) if instance.status_reason.is_some() => {
                deps.store.set_status_reason(id, None, now).await?;
                true
            }
            (InstanceStatus::Deleting, Observation::Gone) => ignore_refused(
                deps.store
                    .apply_event(id, InstanceEvent::TeardownConfirmed, None, now)
                    .await,
            )?,
            (InstanceStatus::Error, Observation::Gone) => {
                deps.store.release_node_port(id).await?.is_some()
            }
            _ => false,
        };
        if changed {
            Ok(deps.store.instance(id).await?)
        } else {
            Ok(None)
        }
    }

    /// Makes the cluster match dbtree's records: pushes every desired run state again, retries
    /// pending teardowns, releases the ports of failed instances the cluster no longer holds,
    /// refunds provisionings interrupted by a crash (unknown to the cluster after five minutes),
    /// and removes what the cluster holds of instances dbtree no longer owns.
    ///
    /// # Errors
    /// [`InternalError`] for storage failures; cluster failures are counted, not fatal.
    pub async fn resync(&self) -> Result<ResyncReport, InternalError> {
        let deps = &self.deps;
        let mut report = ResyncReport::default();
        let now = deps.clock.now();
        use InstanceStatus as S;
        for instance in deps
            .store
            .instances_in(&[
                S::Provisioning,
                S::Running,
                S::Stopped,
                S::Paused,
                S::Deleting,
                S::Error,
            ])
            .await?
        {
            match instance.status {
                S::Provisioning => {
                    if now - instance.created_at < INTERRUPTED_AFTER {
                        continue;
                    }
                    match deps
                        .cluster
                        .set_run_state(instance.id, RunState::Running)
                        .await
                    {
                        Err(e) if e.kind == ClusterErrorKind::NotFound => {
                            fail_provisioning(
                                deps,
                                instance.id,
                                "provisioning was interrupted; the creation cost was refunded",
                            )
                            .await?;
                            report.interrupted_refunded += 1;
                        }
                        Err(_) => report.failures += 1,
                        Ok(()) => {}
                    }
                }
                S::Running | S::Stopped | S::Paused => {
                    if push_run_state(deps, instance).await?.1 {
                        report.run_states_applied += 1;
                    } else {
                        report.failures += 1;
                    }
                }
                S::Deleting => match teardown(deps, instance.id).await? {
                    Some(true) => report.teardowns_completed += 1,
                    Some(false) => {}
                    None => report.failures += 1,
                },
                S::Error if instance.node_port.is_some() => {
                    match teardown(deps, instance.id).await? {
                        Some(true) => report.teardowns_completed += 1,
                        Some(false) => {}
                        None => report.failures += 1,
                    }
                }
                S::Error | S::Deleted => {}
            }
        }
        self.remove_orphans(&mut report).await?;
        Ok(report)
    }

    /// Removes from the cluster every instance it still holds that dbtree no longer owns: its
    /// record is in `error`, deleted, or unknown (a crash between steps, an engine left over).
    async fn remove_orphans(&self, report: &mut ResyncReport) -> Result<(), InternalError> {
        let deps = &self.deps;
        let held = match deps.cluster.held_instances().await {
            Ok(held) => held,
            Err(_) => {
                report.failures += 1;
                return Ok(());
            }
        };
        for id in held {
            let owned = deps.store.instance(id).await?.is_some_and(|i| {
                !matches!(i.status, InstanceStatus::Error | InstanceStatus::Deleted)
            });
            if owned {
                continue;
            }
            match teardown(deps, id).await? {
                Some(true) => report.orphans_removed += 1,
                Some(false) => {}
                None => report.failures += 1,
            }
        }
        Ok(())
    }
}

/// `Ok(true)` if the transition happened, `Ok(false)` if the state machine refused it (another
/// replica or an earlier event got there first).
fn ignore_refused(result: Result<Instance, TransitionError>) -> Result<bool, InternalError> {
    match result {
        Ok(_) => Ok(true),
        Err(TransitionError::Refused(_) | TransitionError::UnknownInstance) => Ok(false),
        Err(TransitionError::Backend(b)) => Err(b.into()),
    }
}

/// Moves a provisioning instance to `error` (refunding its creation cost once, in the store's
/// transition) and removes whatever the cluster holds of it. Returns whether this call failed it.
pub(crate) async fn fail_provisioning(
    deps: &Deps,
    id: InstanceId,
    reason: &str,
) -> Result<bool, InternalError> {
    let now = deps.clock.now();
    let failed = ignore_refused(
        deps.store
            .apply_event(id, InstanceEvent::ProvisioningFailed, Some(reason), now)
            .await,
    )?;
    teardown(deps, id).await?;
    Ok(failed)
}

/// Asks the cluster to delete an instance. On a completed teardown, a `deleting` instance becomes
/// `deleted` and any instance's NodePort is released. Returns `Some(completed)`, or `None` if
/// the cluster call failed (the reason is recorded; the next resync retries).
async fn teardown(deps: &Deps, id: InstanceId) -> Result<Option<bool>, InternalError> {
    let now = deps.clock.now();
    match deps.cluster.delete(id).await {
        Ok(Teardown::Complete) => {
            let instance = deps.store.instance(id).await?;
            if instance.is_some_and(|i| i.status == InstanceStatus::Deleting) {
                ignore_refused(
                    deps.store
                        .apply_event(id, InstanceEvent::TeardownConfirmed, None, now)
                        .await,
                )?;
            } else {
                deps.store.release_node_port(id).await?;
            }
            Ok(Some(true))
        }
        Ok(Teardown::Pending) => Ok(Some(false)),
        Err(e) => {
            let reason = format!("{PENDING_PREFIX} to delete it: {}", e.message);
            deps.store.set_status_reason(id, Some(&reason), now).await?;
            Ok(None)
        }
    }
}

/// Deletes an instance (any visible state): `deleting` now, `deleted` once the cluster confirms.
/// Returns whether this call started the deletion.
pub(crate) async fn delete_instance(
    deps: &Deps,
    instance: &Instance,
    reason: &str,
) -> Result<bool, InternalError> {
    let now = deps.clock.now();
    let started = match instance.status {
        InstanceStatus::Deleted => return Ok(false),
        InstanceStatus::Deleting => false,
        _ => ignore_refused(
            deps.store
                .apply_event(
                    instance.id,
                    InstanceEvent::DeleteRequested,
                    Some(reason),
                    now,
                )
                .await,
        )?,
    };
    teardown(deps, instance.id).await?;
    Ok(started)
}

/// Asks the cluster to hold the run state the instance's status wants. On failure a pending
/// reason is recorded (the next resync retries); on success a pending reason left by an earlier
/// failure is cleared. Returns the instance as stored afterwards and whether the cluster applied
/// the state.
pub(crate) async fn push_run_state(
    deps: &Deps,
    instance: Instance,
) -> Result<(Instance, bool), InternalError> {
    let (instance, refused) = push_run_state_or_refusal(deps, instance).await?;
    Ok((instance, refused.is_none()))
}

/// [`push_run_state`], returning the cluster's refusal (if any) instead of whether it applied.
pub(crate) async fn push_run_state_or_refusal(
    deps: &Deps,
    instance: Instance,
) -> Result<(Instance, Option<ClusterError>), InternalError> {
    let Some(state) = instance.status.desired_run_state() else {
        return Ok((instance, None));
    };
    let now = deps.clock.now();
    let (reason, refused) = match deps.cluster.set_run_state(instance.id, state).await {
        Ok(()) => (None, None),
        Err(e) => (
            Some(format!(
                "{PENDING_PREFIX} to apply {state:?}: {}",
                e.message
            )),
            Some(e),
        ),
    };
    let was_pending = instance
        .status_reason
        .as_deref()
        .is_some_and(|r| r.starts_with(PENDING_PREFIX));
    if reason.is_none() && !was_pending {
        return Ok((instance, None));
    }
    deps.store
        .set_status_reason(instance.id, reason.as_deref(), now)
        .await?;
    let stored = deps
        .store
        .instance(instance.id)
        .await?
        .ok_or_else(|| InternalError::Inconsistent("instance vanished".into()))?;
    Ok((stored, refused))
}
