//! The CRD as the API server sees it: accepted, Established, and its CEL rules enforced by the
//! API server itself (before any webhook is called).

use dbtree_adapters::kube::{DBInstance, EngineKind};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::support::{
    CONVERGE, Who, api_of, client, components_up, create_with_secret, delete_and_wait,
    ensure_namespace, instance, refusal,
};

/// The namespace of this file's objects; owner `admin` (the requester: the webhook makes an
/// untrusted creator the owner).
const NS: &str = "e2e-crd";

#[tokio::test]
#[ignore = "needs a real cluster: run .ci/kube-e2e"]
async fn the_crd_is_established_with_its_printer_columns_and_status_subresource() {
    let _up = components_up().await;
    let admin = client(Who::Admin).await;
    let crds: Api<CustomResourceDefinition> = Api::all(admin);
    let crd = crds.get("dbinstances.dbtree.cloud").await.unwrap();
    let status = crd.status.expect("a status");
    let conditions = status.conditions.unwrap_or_default();
    for wanted in ["Established", "NamesAccepted"] {
        let c = conditions
            .iter()
            .find(|c| c.type_ == wanted)
            .unwrap_or_else(|| panic!("no {wanted} condition: {conditions:?}"));
        assert_eq!(c.status, "True", "{wanted}: {c:?}");
    }
    assert_eq!(
        status.accepted_names.and_then(|n| n.short_names),
        Some(vec!["dbi".to_owned()])
    );
    let version = &crd.spec.versions[0];
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
    assert_eq!(
        version.additional_printer_columns.as_ref().map(Vec::len),
        Some(6)
    );
}

#[tokio::test]
#[ignore = "needs a real cluster: run .ci/kube-e2e"]
async fn cel_rules_refuse_with_the_api_servers_own_messages() {
    let _up = components_up().await;
    let admin = client(Who::Admin).await;
    ensure_namespace(&admin, NS).await;

    // A NodePort out of range, on create.
    let mut bad_port = instance(NS, "admin", EngineKind::Redis, 40000);
    bad_port.metadata.name = Some("e2e-bad-port".into());
    let api: Api<DBInstance> = Api::namespaced(admin.clone(), NS);
    let status = refusal(
        api.create(&PostParams::default(), &bad_port).await,
        "a NodePort of 40000",
    );
    assert_cel(&status, "spec.nodePort must be within 30000-32767");

    // An engine change and a disk shrink, on update of a stored object. A custom size, so that
    // the disk may change at all (a preset fixes it).
    let mut dbi = instance(NS, "admin", EngineKind::Redis, 31010);
    dbi.spec.preset = None;
    dbi.spec.resources.disk_gib = 3;
    let stored = create_with_secret(&admin, &dbi).await;
    let api = api_of(&admin, &stored);
    let name = stored.name_any();

    let engine = json!({ "spec": { "engine": "postgresql" } });
    let status = refusal(
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&engine))
            .await,
        "an engine change",
    );
    assert_cel(&status, "spec.engine is immutable");

    let shrink = json!({ "spec": { "resources": { "diskGib": 2 } } });
    let status = refusal(
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&shrink))
            .await,
        "a disk shrink",
    );
    assert_cel(&status, "spec.resources.diskGib cannot shrink");

    // A disk that grows passes both the CEL rules and the webhook.
    let grow = json!({ "spec": { "resources": { "diskGib": 4 } } });
    let grown = api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&grow))
        .await
        .unwrap();
    assert_eq!(grown.spec.resources.disk_gib, 4);

    delete_and_wait(&admin, &stored, CONVERGE).await;
}

/// A 422 `Invalid` from the API server's schema validation: the CEL rule's message, and not a
/// denial from the webhook (which is called only after the schema passed).
fn assert_cel(status: &kube::core::Status, rule_message: &str) {
    assert_eq!(status.code, 422, "{status:?}");
    assert_eq!(status.reason, "Invalid", "{status:?}");
    assert!(
        status.message.contains(rule_message),
        "expected the CEL message {rule_message:?}, got {:?}",
        status.message
    );
    assert!(
        !status.message.contains("admission webhook"),
        "the API server itself must refuse, not the webhook: {:?}",
        status.message
    );
}
