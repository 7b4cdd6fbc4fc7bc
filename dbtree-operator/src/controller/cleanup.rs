//! Deletion: what owner references do not guarantee.
//!
//! Garbage collection would remove every child eventually, but only *after* the `DBInstance`
//! is gone, and in no particular order. The server releases an instance's NodePort when it sees
//! the object disappear, so the Service must be gone first; and the data volume must really be
//! erased (its PVC is protected while a pod uses it) before the deletion is reported done. So
//! the finalizer deletes the Service, the StatefulSet and the PVC by name, waits until each is
//! gone, and only then lets the object go. The ConfigMap, the NetworkPolicy and the adopted
//! credentials Secret follow by owner reference.

use std::time::Duration;

use dbtree_adapters::kube::DBInstance;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service};
use kube::api::DeleteParams;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::{Context, publish, set_finalizers};
use crate::children::{ChildNames, FINALIZER};
use crate::error::Error;

/// How soon to look again while children are still going away.
const WAIT: Duration = Duration::from_secs(2);

pub(super) async fn run(
    dbi: &DBInstance,
    ctx: &Context,
    api: &Api<DBInstance>,
    namespace: &str,
    name: &str,
) -> Result<Action, Error> {
    let names = ChildNames::for_instance(name);
    let client = &ctx.client;
    let mut remaining = Vec::new();
    if !gone::<Service>(client, namespace, &names.workload).await? {
        remaining.push("Service");
    }
    if !gone::<StatefulSet>(client, namespace, &names.workload).await? {
        remaining.push("StatefulSet");
    }
    if !gone::<PersistentVolumeClaim>(client, namespace, &names.data).await? {
        remaining.push("PersistentVolumeClaim");
    }
    if !remaining.is_empty() {
        tracing::info!(instance = %name, waiting_for = ?remaining, "deleting; children still present");
        return Ok(Action::requeue(WAIT));
    }
    let event = Event {
        type_: EventType::Normal,
        reason: "Deleted".into(),
        note: Some("the Service, the workload and the data volume are gone".into()),
        action: "Cleanup".into(),
        secondary: None,
    };
    publish(ctx, dbi, event).await;
    let finalizers = dbi
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    set_finalizers(api, dbi, name, finalizers).await?;
    ctx.arbiter.release(dbi);
    ctx.report_held_back();
    Ok(Action::await_change())
}

/// Deletes the named object; `true` once it no longer exists (already absent, or deleted at
/// once), `false` while its deletion is still in progress (finalizers or protection pending).
async fn gone<K>(client: &kube::Client, namespace: &str, name: &str) -> Result<bool, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    match api.delete(name, &DeleteParams::background()).await {
        Ok(outcome) => Ok(outcome.is_right()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(true),
        Err(error) => Err(error.into()),
    }
}
