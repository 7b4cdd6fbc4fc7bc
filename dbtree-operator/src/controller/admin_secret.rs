//! dbtree's administrative Secret for an instance's engine: found again through the StatefulSet,
//! or created with a name the API server makes up and a fresh random password.

use dbtree_adapters::kube::DBInstance;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::{Api, Resource, ResourceExt};

use super::Context;
use crate::children::{
    ADMIN_PASSWORD_ENV, ADMIN_PASSWORD_LEN, ChildNames, admin_password, admin_secret,
};
use crate::error::Error;

/// The name of dbtree's administrative Secret for the engine, creating it when needed.
///
/// The Secret has a name the API server makes up (`generateName`), so nobody can create it in
/// advance with a password they know, and it is created once with a fresh random password and
/// never changed. The StatefulSet (which only the operator writes) is where its name is kept:
/// the Secret its pod template reads is used again while it exists and the instance controls
/// it; otherwise a new one is created (and the pods restart with it).
pub(super) async fn name(
    ctx: &Context,
    dbi: &DBInstance,
    namespace: &str,
) -> Result<String, Error> {
    let names = ChildNames::for_instance(&dbi.name_any());
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let statefulsets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), namespace);
    let current = statefulsets
        .get_opt(&names.workload)
        .await?
        .as_ref()
        .and_then(admin_secret_of)
        .filter(|name| name.starts_with(&names.admin_secret));
    if let Some(name) = current
        && let Some(existing) = secrets.get_opt(&name).await?
        && controlled_by(&existing, dbi)
    {
        return Ok(name);
    }
    let mut random = [0u8; 4 * ADMIN_PASSWORD_LEN];
    getrandom::fill(&mut random).map_err(|e| Error::Entropy(e.to_string()))?;
    let password = admin_password(&random)
        .ok_or_else(|| Error::Entropy("too few usable random bytes".to_owned()))?;
    // The children were built from the same metadata, so this cannot fail here.
    let secret = admin_secret(dbi, &password).map_err(|_| Error::Unaddressable("name"))?;
    let created = secrets.create(&PostParams::default(), &secret).await?;
    created
        .metadata
        .name
        .ok_or(Error::Unaddressable("the created Secret's name"))
}

/// The Secret a StatefulSet's pods read the administrator's password from.
fn admin_secret_of(sts: &StatefulSet) -> Option<String> {
    let pod = sts.spec.as_ref()?.template.spec.as_ref()?;
    pod.containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
        .flat_map(|c| c.env.iter().flatten())
        .find(|e| e.name == ADMIN_PASSWORD_ENV)
        .and_then(|e| e.value_from.as_ref()?.secret_key_ref.as_ref())
        .map(|r| r.name.clone())
}

fn controlled_by(secret: &Secret, dbi: &DBInstance) -> bool {
    secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && Some(&r.uid) == dbi.meta().uid.as_ref())
}
