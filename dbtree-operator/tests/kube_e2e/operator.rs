//! The operator on the real API server: finalizer, the adopted Secret, every child with its
//! owner reference, conditions with `observedGeneration`, stop and start, deletion through the
//! finalizer and the garbage collector, a NodePort the API server will not allocate, and
//! failover between two replicas over a real Lease.

use std::time::Duration;

use dbtree_adapters::kube::{DBInstance, EngineKind, Phase};
use dbtree_operator::children::{ChildNames, FINALIZER};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolumeClaim, Pod, Secret, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::support::{
    CONVERGE, Stopped, Who, api_of, client, components_exclusive, components_up,
    create_with_secret, delete_and_wait, describe, ensure_namespace, eventually, instance, uuid,
    wait_phase,
};

/// A new owner's namespace, created by the platform identity as the server does: Pod Security
/// `restricted` enforced, so every pod the operator renders is checked against it.
async fn owner_namespace(server: &Client) -> (String, String) {
    let owner = uuid();
    let ns = format!("dbtree-user-{owner}");
    let api: Api<Namespace> = Api::all(server.clone());
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(ns.clone()),
            labels: Some(std::collections::BTreeMap::from([(
                "pod-security.kubernetes.io/enforce".to_owned(),
                "restricted".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    api.create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    (owner, ns)
}

async fn get<K>(client: &Client, ns: &str, name: &str) -> Option<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()
}

/// `object` is controlled by `dbi`, blocking its deletion until it is gone.
fn assert_controlled_by(kind: &str, meta: &ObjectMeta, dbi: &DBInstance) {
    let refs = meta.owner_references.clone().unwrap_or_default();
    let owner = refs
        .iter()
        .find(|r| Some(&r.uid) == dbi.metadata.uid.as_ref())
        .unwrap_or_else(|| panic!("{kind} has no owner reference to the DBInstance: {refs:?}"));
    assert_eq!(owner.kind, "DBInstance", "{kind}");
    assert_eq!(owner.api_version, "dbtree.cloud/v1", "{kind}");
    assert_eq!(owner.controller, Some(true), "{kind}");
    assert_eq!(owner.block_owner_deletion, Some(true), "{kind}");
}

fn condition(dbi: &DBInstance, type_: &str) -> (String, String, Option<i64>) {
    let c = dbi
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .unwrap_or_else(|| panic!("no {type_} condition: {}", describe(dbi)));
    (c.status.clone(), c.reason.clone(), c.observed_generation)
}

async fn set_run_state(server: &Client, dbi: &DBInstance, state: &str) {
    // As KubeCluster does it: a merge patch of the spec under the server's field manager.
    let patch = json!({ "spec": { "runState": state } });
    api_of(server, dbi)
        .patch(
            &dbi.name_any(),
            &PatchParams {
                field_manager: Some("dbtree-server".into()),
                ..PatchParams::default()
            },
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();
}

#[tokio::test]
#[ignore = "needs a real cluster: run .ci/kube-e2e"]
async fn the_operator_provisions_stops_starts_and_deletes_an_instance() {
    let _up = components_up().await;
    let server = client(Who::Server).await;
    let admin = client(Who::Admin).await;
    let (owner, ns) = owner_namespace(&server).await;
    let dbi = create_with_secret(&server, &instance(&ns, &owner, EngineKind::Redis, 31040)).await;
    let name = dbi.name_any();
    let names = ChildNames::for_instance(&name);

    let ready = wait_phase(&admin, &dbi, Phase::Ready, CONVERGE).await;
    assert!(
        ready.finalizers().iter().any(|f| f == FINALIZER),
        "{:?}",
        ready.finalizers()
    );
    for type_ in ["Ready", "Provisioned"] {
        let (status, _, observed) = condition(&ready, type_);
        assert_eq!(status, "True", "{type_}: {}", describe(&ready));
        assert_eq!(
            observed, ready.metadata.generation,
            "{type_}.observedGeneration"
        );
    }
    assert_eq!(
        ready.status.as_ref().and_then(|s| s.ready_replicas),
        Some(1)
    );

    // Every child exists, controlled by the instance.
    let sts: StatefulSet = get(&admin, &ns, &names.workload)
        .await
        .expect("StatefulSet");
    assert_controlled_by("StatefulSet", &sts.metadata, &ready);
    assert_eq!(sts.spec.as_ref().and_then(|s| s.replicas), Some(1));
    assert_eq!(sts.status.as_ref().and_then(|s| s.ready_replicas), Some(1));
    let svc: Service = get(&admin, &ns, &names.workload).await.expect("Service");
    assert_controlled_by("Service", &svc.metadata, &ready);
    let spec = svc.spec.as_ref().unwrap();
    assert_eq!(spec.type_.as_deref(), Some("NodePort"));
    assert_eq!(spec.ports.as_ref().unwrap()[0].node_port, Some(31040));
    let cm: ConfigMap = get(&admin, &ns, &names.config_map)
        .await
        .expect("ConfigMap");
    assert_controlled_by("ConfigMap", &cm.metadata, &ready);
    assert!(cm.data.unwrap_or_default().contains_key("redis.conf"));
    let pvc: PersistentVolumeClaim = get(&admin, &ns, &names.data).await.expect("PVC");
    assert_controlled_by("PersistentVolumeClaim", &pvc.metadata, &ready);
    assert_eq!(
        pvc.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Bound"),
        "the claim is bound by the host-path provisioner"
    );
    let policy: NetworkPolicy = get(&admin, &ns, &names.workload)
        .await
        .expect("NetworkPolicy");
    assert_controlled_by("NetworkPolicy", &policy.metadata, &ready);
    let secret: Secret = get(&admin, &ns, &ready.spec.secret_ref.name)
        .await
        .expect("Secret");
    let adopted = secret.metadata.owner_references.clone().unwrap_or_default();
    assert!(
        adopted
            .iter()
            .any(|r| Some(&r.uid) == ready.metadata.uid.as_ref()),
        "the Secret is adopted: {adopted:?}"
    );
    let pod: Pod = get(&admin, &ns, &format!("{}-0", names.workload))
        .await
        .expect("the StatefulSet's pod");
    assert_eq!(
        pod.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some("kwok-node-0"),
        "scheduled by kube-scheduler"
    );
    let events: Api<Event> = Api::namespaced(admin.clone(), &ns);
    let events = events.list(&ListParams::default()).await.unwrap();
    assert!(
        events
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("Ready")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name.as_str())),
        "a Ready event about the instance"
    );

    // Stopped: zero replicas, the pod goes, phase Stopped for the new generation.
    set_run_state(&server, &dbi, "Stopped").await;
    let stopped = wait_phase(&admin, &dbi, Phase::Stopped, CONVERGE).await;
    assert!(stopped.metadata.generation > ready.metadata.generation);
    let sts: StatefulSet = get(&admin, &ns, &names.workload).await.unwrap();
    assert_eq!(sts.spec.as_ref().and_then(|s| s.replicas), Some(0));
    assert!(
        get::<Pod>(&admin, &ns, &format!("{name}-0"))
            .await
            .is_none()
    );
    let (status, reason, _) = condition(&stopped, "Ready");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Stopped"));

    // Running again.
    set_run_state(&server, &dbi, "Running").await;
    wait_phase(&admin, &dbi, Phase::Ready, CONVERGE).await;

    // Deleted as the server deletes (foreground): the finalizer removes the Service, the
    // workload and the claim; the garbage collector the rest; then the object goes.
    api_of(&server, &dbi)
        .delete(&name, &DeleteParams::foreground())
        .await
        .unwrap();
    delete_and_wait(&server, &dbi, CONVERGE).await;
    eventually("every child is gone", CONVERGE, || {
        let admin = admin.clone();
        let (ns, names, secret) = (ns.clone(), names.clone(), dbi.spec.secret_ref.name.clone());
        async move {
            let mut left = Vec::new();
            if get::<StatefulSet>(&admin, &ns, &names.workload)
                .await
                .is_some()
            {
                left.push("StatefulSet");
            }
            if get::<Service>(&admin, &ns, &names.workload).await.is_some() {
                left.push("Service");
            }
            if get::<ConfigMap>(&admin, &ns, &names.config_map)
                .await
                .is_some()
            {
                left.push("ConfigMap");
            }
            if get::<PersistentVolumeClaim>(&admin, &ns, &names.data)
                .await
                .is_some()
            {
                left.push("PersistentVolumeClaim");
            }
            if get::<NetworkPolicy>(&admin, &ns, &names.workload)
                .await
                .is_some()
            {
                left.push("NetworkPolicy");
            }
            if get::<Secret>(&admin, &ns, &secret).await.is_some() {
                left.push("Secret");
            }
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("left: {left:?}"))
            }
        }
    })
    .await;
}

#[tokio::test]
#[ignore = "needs a real cluster: run .ci/kube-e2e"]
async fn a_node_port_the_api_server_will_not_allocate_is_reported_on_the_instance() {
    let _up = components_up().await;
    let server = client(Who::Server).await;
    let admin = client(Who::Admin).await;

    // Something that is not a DBInstance holds the port: the webhook cannot know; the API
    // server refuses the operator's Service.
    let squatter_ns = "e2e-nodeport-squatter";
    ensure_namespace(&admin, squatter_ns).await;
    let services: Api<Service> = Api::namespaced(admin.clone(), squatter_ns);
    let squatter = Service {
        metadata: ObjectMeta {
            name: Some("squatter".into()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("NodePort".into()),
            ports: Some(vec![ServicePort {
                port: 80,
                node_port: Some(31050),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    };
    services
        .create(&PostParams::default(), &squatter)
        .await
        .unwrap();

    let (owner, ns) = owner_namespace(&server).await;
    let dbi = create_with_secret(&server, &instance(&ns, &owner, EngineKind::Redis, 31050)).await;
    let failed = wait_phase(&admin, &dbi, Phase::Failed, CONVERGE).await;
    let message = failed
        .status
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains("31050") && message.contains("already allocated"),
        "the API server's reason is on the instance: {message:?}"
    );
    let (status, reason, observed) = condition(&failed, "Provisioned");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "NodePortUnavailable")
    );
    assert_eq!(observed, failed.metadata.generation);
    // Not retried in a loop: the status stays as it is, no workload is created.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = api_of(&admin, &dbi).get(&dbi.name_any()).await.unwrap();
    assert_eq!(later.status, failed.status, "the failed status is stable");
    assert!(
        get::<StatefulSet>(&admin, &ns, &dbi.name_any())
            .await
            .is_none()
    );

    // The port is freed; the next look (any change to the instance) provisions it.
    services
        .delete("squatter", &DeleteParams::default())
        .await
        .unwrap();
    let nudge = json!({ "metadata": { "annotations": { "e2e.dbtree.cloud/nudge": "1" } } });
    api_of(&server, &dbi)
        .patch(
            &dbi.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&nudge),
        )
        .await
        .unwrap();
    wait_phase(&admin, &dbi, Phase::Ready, CONVERGE).await;
    delete_and_wait(&server, &dbi, CONVERGE).await;
}

#[tokio::test]
#[ignore = "needs a real cluster: run .ci/kube-e2e"]
async fn the_standby_replica_takes_the_lease_and_reconciles_when_the_leader_stops() {
    let _exclusive = components_exclusive().await;
    let admin = client(Who::Admin).await;
    let server = client(Who::Server).await;
    let leases: Api<Lease> = Api::namespaced(admin.clone(), "dbtree");
    let holder = |lease: &Lease| {
        lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.clone())
            .unwrap_or_default()
    };
    let before = leases.get("dbtree-operator").await.unwrap();
    let leader = holder(&before);
    let standby = match leader.as_str() {
        "operator-a" => "operator-b",
        "operator-b" => "operator-a",
        other => panic!("the lease is held by {other:?}, not one of the two replicas"),
    };
    let transitions = before
        .spec
        .as_ref()
        .and_then(|s| s.lease_transitions)
        .unwrap_or(0);

    let stopped = Stopped::stop(&leader);
    let after = eventually(
        "the standby holds the lease",
        Duration::from_secs(30),
        || {
            let leases = leases.clone();
            async move {
                let lease = leases
                    .get("dbtree-operator")
                    .await
                    .map_err(|e| e.to_string())?;
                if holder(&lease) == standby {
                    Ok(lease)
                } else {
                    Err(holder(&lease))
                }
            }
        },
    )
    .await;
    assert!(
        after
            .spec
            .as_ref()
            .and_then(|s| s.lease_transitions)
            .unwrap_or(0)
            > transitions,
        "a takeover counts as a transition"
    );

    // The new leader reconciles.
    let (owner, ns) = owner_namespace(&server).await;
    let dbi = create_with_secret(&server, &instance(&ns, &owner, EngineKind::Redis, 31060)).await;
    wait_phase(&admin, &dbi, Phase::Ready, CONVERGE).await;
    drop(stopped);
    delete_and_wait(&server, &dbi, CONVERGE).await;
}
