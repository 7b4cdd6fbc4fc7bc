//! The `DBInstance` controller: reconcile (finalizer, children by server-side apply, status,
//! events), cleanup on deletion, and the error policy (exponential backoff with jitter).
//!
//! Decisions are made by pure functions ([`crate::children::desired_children`],
//! [`crate::status::desired_status`], [`crate::backoff::Backoff::delay`]); this module only
//! talks to the API server around them.

mod admin_secret;
mod apply;
mod cleanup;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use dbtree_adapters::kube::{
    DBInstance, DBInstanceStatus, MANAGED_BY_LABEL, MANAGED_BY_VALUE, Phase,
};
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use crate::arbiter::{Arbiter, key_of};
use crate::backoff::{Backoff, random_jitter};
use crate::children::{ChildrenConfig, FIELD_MANAGER, FINALIZER, desired_children};
use crate::error::Error;
use crate::metrics::Metrics;
use crate::status::{Blocker, Observation, desired_status};

/// What the controller is configured with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Images and storage of the children.
    pub children: ChildrenConfig,
    /// How long a running instance may stay not ready before its phase is `Failed`.
    pub start_timeout: Duration,
    /// Retry timing after a failed reconcile.
    pub backoff: Backoff,
    /// When to look again at an instance that is Ready or Stopped (drift repair).
    pub resync: Duration,
    /// When to look again at an instance that is still provisioning.
    pub poll: Duration,
    /// Live instances one owner may have provisioned (the webhook's limit; see
    /// [`crate::arbiter`]).
    pub max_live_per_owner: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            children: ChildrenConfig::default(),
            start_timeout: Duration::from_secs(600),
            backoff: Backoff::default(),
            resync: Duration::from_secs(300),
            poll: Duration::from_secs(10),
            max_live_per_owner: dbtree_core::instance::InstancePolicy::default().max_live_per_user,
        }
    }
}

/// Shared by every reconcile.
pub struct Context {
    client: Client,
    recorder: Recorder,
    metrics: Metrics,
    settings: Settings,
    clock: fn() -> Timestamp,
    jitter: fn() -> f64,
    failures: Mutex<HashMap<String, u32>>,
    arbiter: Arbiter,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context whose events are reported as `reporter`, reading the system clock.
    pub fn new(client: Client, reporter: Reporter, metrics: Metrics, settings: Settings) -> Self {
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            arbiter: Arbiter::new(settings.max_live_per_owner),
            settings,
            clock: Timestamp::now,
            jitter: random_jitter,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The same context reading time from `clock` (tests).
    #[must_use]
    pub fn with_clock(mut self, clock: fn() -> Timestamp) -> Self {
        self.clock = clock;
        self
    }

    /// The same context drawing retry jitter (in `[0, 1)`) from `jitter` (tests).
    #[must_use]
    pub fn with_jitter(mut self, jitter: fn() -> f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// What decides which instances may be provisioned; [`run`] gives it the controller's
    /// cache (tests may give it another with [`Arbiter::watch`] first).
    pub fn arbiter(&self) -> &Arbiter {
        &self.arbiter
    }

    /// The metrics this context records into.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Consecutive failures recorded for the object `key` (`namespace/name`).
    pub fn failures_of(&self, key: &str) -> u32 {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .copied()
            .unwrap_or(0)
    }

    fn record_failure(&self, key: String) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let count = failures.entry(key).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }

    /// Publishes the arbiter's held-back count as the gauge.
    fn report_held_back(&self) {
        let held_back = i64::try_from(self.arbiter.held_back_count()).unwrap_or(i64::MAX);
        self.metrics.held_back.set(held_back);
    }

    fn clear_failures(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

/// Runs the controller until `shutdown` resolves: watches every `DBInstance` and the children
/// dbtree labels, with at most `concurrency` reconciles at once.
pub async fn run(
    client: Client,
    context: Arc<Context>,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let children =
        watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
    let controller = Controller::new(
        Api::<DBInstance>::all(client.clone()),
        watcher::Config::default(),
    );
    context.arbiter.watch(controller.store());
    controller
        .owns(Api::<StatefulSet>::all(client.clone()), children.clone())
        .owns(Api::<Service>::all(client.clone()), children.clone())
        .owns(Api::<ConfigMap>::all(client.clone()), children.clone())
        .owns(
            Api::<PersistentVolumeClaim>::all(client.clone()),
            children.clone(),
        )
        .owns(Api::<NetworkPolicy>::all(client), children)
        .with_config(ControllerConfig::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(%object, "reconciled"),
                // A child's event for an instance already gone: nothing to do, nothing wrong.
                Err(kube::runtime::controller::Error::ObjectNotFound(object)) => {
                    tracing::debug!(%object, "already deleted");
                }
                Err(error) => tracing::warn!(%error, "reconcile failed"),
            }
        })
        .await;
}

/// Brings the cluster in line with one `DBInstance`.
///
/// # Errors
/// [`Error`] when an API request fails; [`error_policy`] schedules the retry.
pub async fn reconcile(dbi: Arc<DBInstance>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    ctx.metrics.reconciles.inc();
    let result = reconcile_inner(&dbi, &ctx).await;
    ctx.metrics
        .duration
        .observe(started.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.clear_failures(&key_of(&dbi));
    }
    result
}

/// After a failed reconcile: count the failure and retry after an exponentially growing,
/// jittered delay. Never gives up: a transient failure must not be terminal.
pub fn error_policy(dbi: Arc<DBInstance>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .failures
        .with_label_values(&[error.metric_label()])
        .inc();
    let failures = ctx.record_failure(key_of(&dbi));
    let delay = ctx.settings.backoff.delay(failures, (ctx.jitter)());
    tracing::warn!(
        instance = %key_of(&dbi),
        %error,
        failures,
        retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        "reconcile failed; retrying"
    );
    Action::requeue(delay)
}

async fn reconcile_inner(dbi: &DBInstance, ctx: &Context) -> Result<Action, Error> {
    let namespace = dbi.namespace().ok_or(Error::Unaddressable("namespace"))?;
    let name = dbi
        .meta()
        .name
        .clone()
        .ok_or(Error::Unaddressable("name"))?;
    let api: Api<DBInstance> = Api::namespaced(ctx.client.clone(), &namespace);
    let has_finalizer = dbi.finalizers().iter().any(|f| f == FINALIZER);
    if dbi.meta().deletion_timestamp.is_some() {
        if !has_finalizer {
            return Ok(Action::await_change());
        }
        return cleanup::run(dbi, ctx, &api, &namespace, &name).await;
    }
    if !has_finalizer {
        let mut finalizers = dbi.finalizers().to_vec();
        finalizers.push(FINALIZER.to_owned());
        set_finalizers(&api, dbi, &name, finalizers).await?;
        // The patch is itself a change the controller sees: provisioning follows from it.
        return Ok(Action::await_change());
    }
    provision(dbi, ctx, &api, &namespace, &name).await
}

/// Replaces the finalizer list, conditional on the resource version read (a concurrent change
/// makes the API server answer 409 and the reconcile is retried).
async fn set_finalizers(
    api: &Api<DBInstance>,
    dbi: &DBInstance,
    name: &str,
    finalizers: Vec<String>,
) -> Result<(), Error> {
    let patch = json!({
        "metadata": {
            "resourceVersion": dbi.resource_version(),
            "finalizers": finalizers,
        }
    });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

async fn provision(
    dbi: &DBInstance,
    ctx: &Context,
    api: &Api<DBInstance>,
    namespace: &str,
    name: &str,
) -> Result<Action, Error> {
    let children = desired_children(dbi, &ctx.settings.children);
    let admitted = match &children {
        Ok(_) => ctx.arbiter.admit(dbi).await,
        Err(_) => Ok(()),
    };
    ctx.report_held_back();
    let (blocker, stateful_set) = match (children, admitted) {
        (Err(error), _) => (
            Some(Blocker::InvalidSpec {
                message: error.to_string(),
            }),
            None,
        ),
        (Ok(_), Err(contention)) => {
            tracing::info!(instance = %key_of(dbi), %contention, "not provisioned");
            (
                Some(Blocker::Contended {
                    reason: contention.reason(),
                    message: contention.to_string(),
                }),
                None,
            )
        }
        (Ok(children), Ok(())) => {
            if adopt_secret(ctx, dbi, namespace).await? {
                let admin = admin_secret::name(ctx, dbi, namespace).await?;
                let children = children.with_admin_secret(&admin);
                match apply::children(&ctx.client, namespace, children).await? {
                    Ok(sts) => (None, Some(sts)),
                    Err(refused) => (Some(refused), None),
                }
            } else {
                let name = dbi.spec.secret_ref.name.clone();
                (Some(Blocker::SecretMissing { name }), None)
            }
        }
    };
    let previous = dbi.status.as_ref();
    let status = desired_status(&Observation {
        generation: dbi.meta().generation,
        run_state: dbi.spec.run_state,
        stateful_set: stateful_set.as_ref(),
        blocker,
        previous,
        now: (ctx.clock)(),
        start_timeout: ctx.settings.start_timeout,
    });
    if previous != Some(&status) {
        write_status(api, name, &status).await?;
    }
    let phase = status.phase.unwrap_or(Phase::Provisioning);
    if previous.and_then(|p| p.phase) != Some(phase) {
        publish(ctx, dbi, phase_event(phase, status.message.clone())).await;
    }
    Ok(match phase {
        Phase::Ready | Phase::Stopped => Action::requeue(ctx.settings.resync),
        Phase::Provisioning => Action::requeue(ctx.settings.poll),
        Phase::Failed => Action::requeue(ctx.settings.poll.saturating_mul(6)),
    })
}

/// Adds a (non-controller) owner reference to the credentials Secret the server created, so
/// that it goes with the instance. `false` when the Secret does not exist yet.
///
/// Only the Secret named for this instance (`<name>-credentials`, as the server names it) is
/// adopted: a `secretRef` written by hand may point at a Secret that must outlive the
/// instance, and the engine then just reads it.
async fn adopt_secret(ctx: &Context, dbi: &DBInstance, namespace: &str) -> Result<bool, Error> {
    let Some(owner) = dbi.owner_ref(&()) else {
        return Err(Error::Unaddressable("uid"));
    };
    if dbi.spec.secret_ref.name != format!("{}-credentials", dbi.name_any()) {
        return Ok(true);
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let patch = json!({ "metadata": { "ownerReferences": [owner] } });
    match secrets
        .patch(
            &dbi.spec.secret_ref.name,
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(error) => Err(error.into()),
    }
}

async fn write_status(
    api: &Api<DBInstance>,
    name: &str,
    status: &DBInstanceStatus,
) -> Result<(), Error> {
    let body = json!({
        "apiVersion": "dbtree.cloud/v1",
        "kind": "DBInstance",
        "status": serde_json::to_value(status)?,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(name, &params, &Patch::Apply(&body))
        .await?;
    Ok(())
}

fn phase_event(phase: Phase, note: Option<String>) -> Event {
    let (type_, reason) = match phase {
        Phase::Provisioning => (EventType::Normal, "Provisioning"),
        Phase::Ready => (EventType::Normal, "Ready"),
        Phase::Stopped => (EventType::Normal, "Stopped"),
        Phase::Failed => (EventType::Warning, "Failed"),
    };
    Event {
        type_,
        reason: reason.into(),
        note,
        action: "Reconcile".into(),
        secondary: None,
    }
}

/// Events are best effort: a refused event must not fail (and so repeat) the reconcile.
async fn publish(ctx: &Context, dbi: &DBInstance, event: Event) {
    if let Err(error) = ctx.recorder.publish(&event, &dbi.object_ref(&())).await {
        tracing::warn!(instance = %key_of(dbi), %error, "cannot publish an event");
    }
}
