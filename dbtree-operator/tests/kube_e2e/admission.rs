//! The webhook, called by the real API server through deploy/'s `ValidatingWebhookConfiguration`
//! (CA bundle, path, failure policy, timeout, dry run): alice, a plain user with the
//! `dbtree-tenant` role in her namespace, gets dbtree's quotas however she creates instances.

use dbtree_adapters::kube::{DBInstance, EngineKind, Phase};
use dbtree_operator::webhook::{BACKUPS_NOT_IMPLEMENTED_WARNING, DRY_RUN_WARNING};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::support::{
    CONVERGE, Env, Stopped, Who, api_of, client, components_exclusive, components_up,
    create_with_secret, delete_and_wait, ensure_namespace, eventually, instance, refusal,
    wait_phase,
};

const ALICE_NS: &str = "alice";
const WEBHOOK: &str = "admission webhook \"dbinstances.validate.dbtree.cloud\"";

/// A create sent by hand, to read what kube's typed API drops: the `Warning` headers.
async fn create_raw(
    client: &Client,
    dbi: &DBInstance,
    dry_run: bool,
) -> (u16, Vec<String>, serde_json::Value) {
    let ns = dbi.metadata.namespace.as_deref().unwrap();
    let request =
        kube::core::Request::new(format!("/apis/dbtree.cloud/v1/namespaces/{ns}/dbinstances"))
            .create(
                &PostParams {
                    dry_run,
                    ..PostParams::default()
                },
                serde_json::to_vec(dbi).unwrap(),
            )
            .unwrap();
    let response = client
        .send(request.map(kube::client::Body::from))
        .await
        .unwrap();
    let status = response.status().as_u16();
    let warnings = response
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let body = response.into_body().collect_bytes().await.unwrap();
    (
        status,
        warnings,
        serde_json::from_slice(&body).unwrap_or_default(),
    )
}

#[tokio::test]
#[ignore = "needs a real cluster: run .ci/kube-e2e"]
async fn alice_gets_the_webhooks_quotas_warnings_and_refusals() {
    let _up = components_up().await;
    let alice = client(Who::Alice).await;
    let api: Api<DBInstance> = Api::namespaced(alice.clone(), ALICE_NS);
    // A cluster brought up by hand may hold instances of an earlier run: start from none.
    for left in api.list(&ListParams::default()).await.unwrap() {
        delete_and_wait(&alice, &left, CONVERGE).await;
    }

    // A dry run is allowed with our warning, and stores nothing.
    let probe = instance(ALICE_NS, "alice", EngineKind::Redis, 31020);
    let (status, warnings, body) = create_raw(&alice, &probe, true).await;
    assert_eq!(status, 201, "{body}");
    assert!(
        warnings.iter().any(|w| w.contains(DRY_RUN_WARNING)),
        "the dry run's warnings: {warnings:?}"
    );
    assert!(
        api.get_opt(&probe.name_any()).await.unwrap().is_none(),
        "a dry run stored it"
    );

    // A backup schedule is accepted, but not silently: backups do not exist yet.
    let mut scheduled = instance(ALICE_NS, "alice", EngineKind::Redis, 31021);
    scheduled.spec.backup_schedule = Some("0 3 * * *".into());
    let (status, warnings, body) = create_raw(&alice, &scheduled, true).await;
    assert_eq!(status, 201, "{body}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains(BACKUPS_NOT_IMPLEMENTED_WARNING)),
        "the warnings of an instance with a backup schedule: {warnings:?}"
    );

    // Another owner is refused: alice owns what she creates.
    let spoofed = instance(ALICE_NS, "bob", EngineKind::Redis, 31022);
    let refused = refusal(
        api.create(&PostParams::default(), &spoofed).await,
        "alice naming bob as the owner",
    );
    assert_webhook(
        &refused,
        403,
        "spec.owner is \"bob\", but you are \"alice\"",
    );

    // Two instances are admitted, the third is refused by our webhook with its 403.
    let first = create_with_secret(
        &alice,
        &instance(ALICE_NS, "alice", EngineKind::Redis, 31023),
    )
    .await;
    let second = create_with_secret(
        &alice,
        &instance(ALICE_NS, "alice", EngineKind::Redis, 31024),
    )
    .await;
    let third = instance(ALICE_NS, "alice", EngineKind::Redis, 31025);
    let refused = refusal(
        api.create(&PostParams::default(), &third).await,
        "alice's third live instance",
    );
    assert_webhook(
        &refused,
        403,
        "\"alice\" already has 2 live DBInstances and the limit is 2",
    );

    // An immutable field: the NodePort (the CRD's rules allow the change; our webhook does not).
    let move_port = json!({ "spec": { "nodePort": 31026 } });
    let refused = refusal(
        api.patch(
            &first.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&move_port),
        )
        .await,
        "moving alice's NodePort",
    );
    assert_webhook(&refused, 422, "spec.nodePort is immutable");

    // What alice created becomes Ready (the operator provisions it; kwok plays the kubelet),
    // and she can read its status with her own role.
    let ready = wait_phase(&alice, &first, Phase::Ready, CONVERGE).await;
    let ready_condition = ready
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready").cloned())
        .expect("a Ready condition");
    assert_eq!(ready_condition.status, "True");
    assert_eq!(
        ready_condition.observed_generation,
        ready.metadata.generation
    );

    delete_and_wait(&alice, &first, CONVERGE).await;
    // With one deleted, a new one fits again.
    let replacement = create_with_secret(&alice, &third).await;
    delete_and_wait(&alice, &second, CONVERGE).await;
    delete_and_wait(&alice, &replacement, CONVERGE).await;
}

#[tokio::test]
#[ignore = "needs a real cluster: run .ci/kube-e2e"]
async fn the_trusted_platform_identity_may_name_any_owner() {
    let _up = components_up().await;
    let server = client(Who::Server).await;
    let owner = crate::support::uuid();
    let ns = format!("dbtree-user-{owner}");
    ensure_namespace(&server, &ns).await;

    // The owner label must agree with spec.owner, even for the platform.
    let mut mislabelled = instance(&ns, &owner, EngineKind::Redis, 31030);
    mislabelled
        .labels_mut()
        .insert("dbtree.cloud/owner".into(), "someone-else".into());
    let refused = refusal(
        api_of(&server, &mislabelled)
            .create(&PostParams::default(), &mislabelled)
            .await,
        "an owner label that disagrees with spec.owner",
    );
    assert_webhook(&refused, 422, "metadata.labels[dbtree.cloud/owner]");

    let dbi = create_with_secret(&server, &instance(&ns, &owner, EngineKind::Redis, 31030)).await;
    assert_eq!(dbi.spec.owner, owner);
    delete_and_wait(&server, &dbi, CONVERGE).await;
}

#[tokio::test]
#[ignore = "needs a real cluster: run .ci/kube-e2e"]
async fn with_the_webhook_stopped_creates_are_refused() {
    let _exclusive = components_exclusive().await;
    // The admin (not trusted by the webhook, so the owner of what it creates): alice's quota is
    // another scenario's business.
    let admin = client(Who::Admin).await;
    ensure_namespace(&admin, "e2e-webhook-down").await;
    let api: Api<DBInstance> = Api::namespaced(admin.clone(), "e2e-webhook-down");
    let dbi = instance("e2e-webhook-down", "admin", EngineKind::Redis, 31027);
    let existing = create_with_secret(
        &admin,
        &instance("e2e-webhook-down", "admin", EngineKind::Redis, 31028),
    )
    .await;
    wait_phase(&admin, &existing, Phase::Ready, CONVERGE).await;

    let stopped = Stopped::stop("webhook");
    let result = api
        .create(
            &PostParams {
                dry_run: true,
                ..PostParams::default()
            },
            &dbi,
        )
        .await;
    let stop = json!({ "spec": { "runState": "Stopped" } });
    let spec_change = api
        .patch(
            &existing.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&stop),
        )
        .await;
    // Deleting needs no webhook: the deletion is not sent to it, nor is the update by which
    // the operator then removes its finalizer.
    delete_and_wait(&admin, &existing, CONVERGE).await;
    drop(stopped);
    let refused = refusal(spec_change, "a spec change while the webhook is down");
    assert!(
        refused.message.contains("failed calling webhook"),
        "{refused:?}"
    );
    let refused = refusal(result, "a create while the webhook is down");
    assert!(
        refused
            .message
            .contains("failed calling webhook \"dbinstances.validate.dbtree.cloud\""),
        "failurePolicy Fail: {refused:?}"
    );
    assert_eq!(refused.code, 500, "{refused:?}");

    // Back up: the same request passes.
    let env = Env::get();
    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(env.path("WEBHOOK_CA")).unwrap()).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let healthz = format!("{}/healthz", env.var("WEBHOOK_URL"));
    eventually("the restarted webhook is ready", CONVERGE, || {
        let http = http.clone();
        let healthz = healthz.clone();
        async move {
            let r = http.get(&healthz).send().await.map_err(|e| e.to_string())?;
            if r.status().is_success() {
                Ok(())
            } else {
                Err(r.status().to_string())
            }
        }
    })
    .await;
    api.create(
        &PostParams {
            dry_run: true,
            ..PostParams::default()
        },
        &dbi,
    )
    .await
    .unwrap();
}

/// A denial by our webhook, relayed by the API server with our code and message.
pub(crate) fn assert_webhook(status: &kube::core::Status, code: u16, message: &str) {
    assert_eq!(status.code, code, "{status:?}");
    assert!(
        status.message.contains(WEBHOOK) && status.message.contains("denied the request"),
        "expected a denial by our webhook, got {:?}",
        status.message
    );
    assert!(
        status.message.contains(message),
        "expected {message:?} in {:?}",
        status.message
    );
}
