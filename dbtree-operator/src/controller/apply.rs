//! Applying an instance's children by server-side apply, and telling a child the API server
//! refuses as invalid (reported on the instance) from a failure worth retrying.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::children::{Children, FIELD_MANAGER, keep_storage_class};
use crate::error::Error;
use crate::status::Blocker;

/// Applies the children in order and returns the StatefulSet as stored. A child the API server
/// refuses as invalid (422) stops the rest and comes back as a [`Blocker::Rejected`]: applying
/// the same object again cannot succeed, so it is reported on the instance rather than retried
/// with backoff. The usual case is a NodePort that something other than a `DBInstance` holds.
pub(super) async fn children(
    client: &Client,
    namespace: &str,
    children: Children,
) -> Result<Result<StatefulSet, Blocker>, Error> {
    if let Err(error) = apply(client, namespace, &children.config_map).await {
        return rejected("ConfigMap", error).map(Err);
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let existing = claims
        .get_opt(children.data.metadata.name.as_deref().unwrap_or_default())
        .await?;
    let data = keep_storage_class(children.data, existing.as_ref());
    if let Err(error) = apply(client, namespace, &data).await {
        return rejected("PersistentVolumeClaim", error).map(Err);
    }
    if let Err(error) = apply(client, namespace, &children.service).await {
        return rejected("Service", error).map(Err);
    }
    if let Err(error) = apply(client, namespace, &children.network_policy).await {
        return rejected("NetworkPolicy", error).map(Err);
    }
    match apply(client, namespace, &children.stateful_set).await {
        Ok(sts) => Ok(Ok(sts)),
        Err(error) => rejected("StatefulSet", error).map(Err),
    }
}

/// The blocker for a child the API server refused as invalid, or the error itself when it is
/// anything else (retried with backoff).
fn rejected(kind: &'static str, error: Error) -> Result<Blocker, Error> {
    match error {
        Error::Kube(kube::Error::Api(status)) if status.code == 422 => {
            let reason = if kind == "Service" && status.message.contains("already allocated") {
                "NodePortUnavailable"
            } else {
                "ChildRejected"
            };
            Ok(Blocker::Rejected {
                reason,
                message: format!("the API server refused the {kind}: {}", status.message),
            })
        }
        other => Err(other),
    }
}

/// Server-side apply of one child as `dbtree-operator`, taking ownership of the fields it sets.
async fn apply<K>(client: &Client, namespace: &str, object: &K) -> Result<K, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let name = object.meta().name.clone().unwrap_or_default();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    Ok(api.patch(&name, &params, &Patch::Apply(object)).await?)
}
