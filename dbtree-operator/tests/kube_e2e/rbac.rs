//! deploy/'s RBAC on the real authoriser: each component may make the calls its code makes
//! (the other scenarios run the components under exactly these identities) and no more; a call
//! outside its role is forbidden.

use dbtree_adapters::kube::{DBInstance, EngineKind};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::support::{
    CONVERGE, Who, client, components_up, create_with_secret, delete_and_wait, ensure_namespace,
    instance, refusal, uuid,
};

/// Whether `client`'s identity may `verb` `resource` (`group/resource[/subresource]`, with
/// `@name` for one object) in `ns`, as the API server's authoriser answers.
async fn may(client: &Client, verb: &str, resource: &str, ns: Option<&str>) -> bool {
    let (resource, name) = match resource.split_once('@') {
        Some((r, n)) => (r, Some(n.to_owned())),
        None => (resource, None),
    };
    let (group, rest) = resource.split_once('/').unwrap_or(("", resource));
    let (resource, subresource) = match rest.split_once('/') {
        Some((r, s)) => (r, Some(s.to_owned())),
        None => (rest, None),
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some(group.to_owned()),
                resource: Some(resource.to_owned()),
                subresource,
                verb: Some(verb.to_owned()),
                namespace: ns.map(str::to_owned),
                name,
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let answer = api.create(&PostParams::default(), &review).await.unwrap();
    answer.status.is_some_and(|s| s.allowed)
}

async fn assert_may(who: Who, calls: &[(&str, &str)], ns: Option<&str>) {
    let client = client(who).await;
    for (verb, resource) in calls {
        assert!(
            may(&client, verb, resource, ns).await,
            "{who:?} must be allowed to {verb} {resource} in {ns:?}"
        );
    }
}

fn assert_forbidden(status: &kube::core::Status, what: &str) {
    assert_eq!(status.code, 403, "{what}: {status:?}");
    assert_eq!(status.reason, "Forbidden", "{what}: {status:?}");
}

#[tokio::test]
#[ignore = "needs a real cluster: run .ci/kube-e2e"]
async fn each_component_may_make_its_calls_and_no_other() {
    let _up = components_up().await;
    let ns = "dbtree-user-rbac-probe";
    assert_may(
        Who::Operator,
        &[
            ("watch", "dbtree.cloud/dbinstances"),
            ("patch", "dbtree.cloud/dbinstances"),
            ("patch", "dbtree.cloud/dbinstances/status"),
            ("update", "dbtree.cloud/dbinstances/finalizers"),
            ("patch", "apps/statefulsets"),
            ("delete", "persistentvolumeclaims"),
            ("patch", "services"),
            ("patch", "configmaps"),
            ("patch", "networking.k8s.io/networkpolicies"),
            ("patch", "secrets"),
            ("create", "secrets"),
            ("get", "secrets"),
            ("create", "events.k8s.io/events"),
        ],
        Some(ns),
    )
    .await;
    assert_may(
        Who::Operator,
        &[
            ("create", "coordination.k8s.io/leases"),
            ("get", "coordination.k8s.io/leases@dbtree-operator"),
            ("update", "coordination.k8s.io/leases@dbtree-operator"),
        ],
        Some("dbtree"),
    )
    .await;
    assert_may(
        Who::Server,
        &[
            ("patch", "dbtree.cloud/dbinstances"),
            ("delete", "dbtree.cloud/dbinstances"),
            ("watch", "dbtree.cloud/dbinstances"),
            ("patch", "secrets"),
            ("delete", "secrets"),
        ],
        Some(ns),
    )
    .await;
    assert_may(Who::Server, &[("patch", "namespaces")], None).await;
    assert_may(
        Who::Webhook,
        &[
            ("list", "dbtree.cloud/dbinstances"),
            ("watch", "dbtree.cloud/dbinstances"),
        ],
        None,
    )
    .await;

    // One call outside each role, made for real.
    let server = client(Who::Server).await;
    let owner = uuid();
    let owned_ns = format!("dbtree-user-{owner}");
    ensure_namespace(&server, &owned_ns).await;
    let dbi = create_with_secret(
        &server,
        &instance(&owned_ns, &owner, EngineKind::Redis, 31080),
    )
    .await;

    // The webhook only reads: it cannot change an instance.
    let webhook = client(Who::Webhook).await;
    let webhook_api: Api<DBInstance> = Api::namespaced(webhook.clone(), &owned_ns);
    let patch = json!({ "spec": { "runState": "Stopped" } });
    let status = refusal(
        webhook_api
            .patch(
                &dbi.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await,
        "the webhook patching a DBInstance",
    );
    assert_forbidden(&status, "the webhook patching a DBInstance");

    // Only the operator writes status: the server cannot.
    let server_api: Api<DBInstance> = Api::namespaced(server.clone(), &owned_ns);
    let status_patch = json!({ "status": { "phase": "Ready" } });
    let status = refusal(
        server_api
            .patch_status(
                &dbi.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&status_patch),
            )
            .await,
        "the server writing a status",
    );
    assert_forbidden(&status, "the server writing a status");
    // Nor does the server touch the workloads.
    let statefulsets: Api<StatefulSet> = Api::namespaced(server.clone(), &owned_ns);
    let status = refusal(
        statefulsets.list(&ListParams::default()).await,
        "the server listing StatefulSets",
    );
    assert_forbidden(&status, "the server listing StatefulSets");

    // The operator reads a Secret by name (its own administrator Secret), never lists them, and
    // touches no other lease than its own.
    let operator = client(Who::Operator).await;
    let secrets: Api<Secret> = Api::namespaced(operator.clone(), &owned_ns);
    let status = refusal(
        secrets.list(&ListParams::default()).await,
        "the operator listing Secrets",
    );
    assert_forbidden(&status, "the operator listing Secrets");
    assert!(
        !may(
            &operator,
            "update",
            "coordination.k8s.io/leases@someone-else",
            Some("dbtree")
        )
        .await,
        "the operator may update only its own Lease"
    );
    let namespaces: Api<Namespace> = Api::all(operator);
    let status = refusal(
        namespaces.delete(&owned_ns, &DeleteParams::default()).await,
        "the operator deleting a namespace",
    );
    assert_forbidden(&status, "the operator deleting a namespace");

    // Alice: her namespace only.
    let alice = client(Who::Alice).await;
    let elsewhere: Api<DBInstance> = Api::namespaced(alice, &owned_ns);
    let status = refusal(
        elsewhere.list(&ListParams::default()).await,
        "alice listing another namespace",
    );
    assert_forbidden(&status, "alice listing another namespace");

    delete_and_wait(&server, &dbi, CONVERGE).await;
}
