//! The status an instance should show, decided from what was observed: a pure function of the
//! spec, the StatefulSet as the API server returned it, the previous status and `now`.

use std::time::Duration;

use dbtree_adapters::kube::{DBInstanceStatus, Phase, RunStateSpec};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::children::desired_replicas;

/// Condition type: the engine accepts connections.
pub const READY: &str = "Ready";
/// Condition type: every child object has been applied.
pub const PROVISIONED: &str = "Provisioned";

/// What stopped the children from being applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blocker {
    /// The credentials Secret does not exist (yet): wait for it.
    SecretMissing {
        /// Its name.
        name: String,
    },
    /// The spec cannot be turned into children; only a spec change helps.
    InvalidSpec {
        /// Why, naming the field.
        message: String,
    },
    /// The API server refused a child as invalid (a 422), e.g. a NodePort another Service
    /// holds; the same object cannot be applied until something changes.
    Rejected {
        /// The condition reason (`NodePortUnavailable`, `ChildRejected`).
        reason: &'static str,
        /// The API server's message, naming the child.
        message: String,
    },
    /// Other instances hold what this one needs (see [`crate::arbiter`]); it waits for them.
    Contended {
        /// The condition reason ([`crate::arbiter::Contention::reason`]).
        reason: &'static str,
        /// What holds it back, for a person.
        message: String,
    },
}

/// Everything the status decision reads.
#[derive(Clone, Debug)]
pub struct Observation<'a> {
    /// `metadata.generation` of the instance.
    pub generation: Option<i64>,
    /// The desired run state.
    pub run_state: RunStateSpec,
    /// The StatefulSet after apply, or `None` when a blocker stopped the apply.
    pub stateful_set: Option<&'a StatefulSet>,
    /// Why the children were not applied, if they were not.
    pub blocker: Option<Blocker>,
    /// The status the instance has now.
    pub previous: Option<&'a DBInstanceStatus>,
    /// The current time.
    pub now: Timestamp,
    /// How long a running instance may stay not ready before its phase is `Failed`.
    pub start_timeout: Duration,
}

/// The status to write. Equal to `previous` when nothing changed (transition times are kept),
/// so the caller can skip the write.
///
/// A condition's `lastTransitionTime` moves when its status **or its reason** changes, so that
/// `Ready=False` with reason `Starting` dates the current start attempt rather than the moment
/// the instance was stopped.
pub fn desired_status(obs: &Observation<'_>) -> DBInstanceStatus {
    let (phase, message, provisioned, ready, ready_replicas) = decide(obs);
    let previous = obs
        .previous
        .map(|p| p.conditions.as_slice())
        .unwrap_or_default();
    let condition = |type_: &str, (status, reason, message): (bool, &str, String)| {
        merge_condition(
            previous,
            type_,
            status,
            reason,
            message,
            obs.generation,
            obs.now,
        )
    };
    DBInstanceStatus {
        phase: Some(phase),
        message: Some(message),
        conditions: vec![condition(PROVISIONED, provisioned), condition(READY, ready)],
        observed_generation: obs.generation,
        ready_replicas,
    }
}

type Verdict = (bool, &'static str, String);

fn decide(obs: &Observation<'_>) -> (Phase, String, Verdict, Verdict, Option<i32>) {
    match (&obs.blocker, obs.stateful_set) {
        (Some(Blocker::InvalidSpec { message }), _) => (
            Phase::Failed,
            message.clone(),
            (false, "InvalidSpec", message.clone()),
            (
                false,
                "InvalidSpec",
                "the spec cannot be provisioned".into(),
            ),
            None,
        ),
        (
            Some(Blocker::Contended { reason, message } | Blocker::Rejected { reason, message }),
            _,
        ) => (
            Phase::Failed,
            message.clone(),
            (false, reason, message.clone()),
            (
                false,
                "NotProvisioned",
                "the objects are not applied".into(),
            ),
            None,
        ),
        (Some(Blocker::SecretMissing { name }), _) => {
            let message = format!("waiting for the credentials Secret {name}");
            (
                Phase::Provisioning,
                message.clone(),
                (false, "SecretMissing", message),
                (
                    false,
                    "NotProvisioned",
                    "the objects are not all applied yet".into(),
                ),
                None,
            )
        }
        (None, None) => (
            Phase::Provisioning,
            "the objects are being applied".into(),
            (false, "Applying", "the objects are being applied".into()),
            (
                false,
                "NotProvisioned",
                "the objects are not all applied yet".into(),
            ),
            None,
        ),
        (None, Some(sts)) => observe_workload(obs, sts),
    }
}

fn observe_workload(
    obs: &Observation<'_>,
    sts: &StatefulSet,
) -> (Phase, String, Verdict, Verdict, Option<i32>) {
    let provisioned = (
        true,
        "ChildrenApplied",
        "every object is applied".to_owned(),
    );
    let status = sts.status.as_ref();
    let pods = status.map_or(0, |s| s.replicas);
    let ready = status.and_then(|s| s.ready_replicas).unwrap_or(0);
    let current = match (
        sts.metadata.generation,
        status.and_then(|s| s.observed_generation),
    ) {
        (Some(wanted), Some(seen)) => seen >= wanted,
        _ => false,
    };
    if desired_replicas(obs.run_state) == 0 {
        let reason = if obs.run_state == RunStateSpec::Paused {
            "Paused"
        } else {
            "Stopped"
        };
        if current && pods == 0 {
            let message = "scaled to zero as asked".to_owned();
            return (
                Phase::Stopped,
                message.clone(),
                provisioned,
                (false, reason, message),
                Some(0),
            );
        }
        let message = format!("stopping: {pods} pod(s) still running");
        return (
            Phase::Provisioning,
            message.clone(),
            provisioned,
            (false, "Stopping", message),
            Some(ready),
        );
    }
    if current && ready >= 1 {
        let message = "the database accepts connections".to_owned();
        return (
            Phase::Ready,
            message.clone(),
            provisioned,
            (true, "DatabaseReady", message),
            Some(ready),
        );
    }
    let since = starting_since(obs.previous).unwrap_or(obs.now);
    let waited = obs.now.as_second().saturating_sub(since.as_second());
    let timeout = i64::try_from(obs.start_timeout.as_secs()).unwrap_or(i64::MAX);
    let (phase, message) = if waited > timeout {
        let minutes = timeout / 60;
        let text =
            format!("the database has not become ready within {minutes} minute(s); still retrying");
        (Phase::Failed, text)
    } else {
        (
            Phase::Provisioning,
            "waiting for the database to accept connections".to_owned(),
        )
    };
    (
        phase,
        message.clone(),
        provisioned,
        (false, "Starting", message),
        Some(ready),
    )
}

/// When the current start attempt began: the previous `Ready=False/Starting` condition's time.
fn starting_since(previous: Option<&DBInstanceStatus>) -> Option<Timestamp> {
    previous?
        .conditions
        .iter()
        .find(|c| c.type_ == READY && c.status == "False" && c.reason == "Starting")
        .map(|c| c.last_transition_time.0)
}

fn merge_condition(
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if status { "True" } else { "False" };
    let kept = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status && c.reason == reason)
        .map(|c| c.last_transition_time.clone());
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: generation,
        last_transition_time: kept.unwrap_or(Time(now)),
    }
}

#[cfg(test)]
mod tests;
