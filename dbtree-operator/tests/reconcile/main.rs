//! Reconcile paths against a fake API server, one scenario per path: the exact requests the
//! controller sends (method, path, query, key body fields) and what it does with the answers.
//! Leader election is driven the same way (`leader`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin_secret;
mod api_server;
mod leader;
mod rejected_child;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use api_server::{ApiServer, Exchange};
use dbtree_adapters::kube::{
    DBInstance, DBInstanceSpec, EngineKind, PresetKind, ResourcesSpec, RunStateSpec, SecretRef,
};
use dbtree_operator::children::FINALIZER;
use dbtree_operator::controller::{Context, Settings, error_policy, reconcile};
use dbtree_operator::error::Error;
use dbtree_operator::metrics::Metrics;
use http::Method;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::Reporter;
use serde_json::{Value, json};

const NS: &str = "dbtree-user-0190c1c6-6c5f-4a8e-9d4c-2f0a1b2c3d4e";
const NAME: &str = "dbi-0190c1c6-6c5f-4a8e-9d4c-2f0a1b2c3d4f";
const UID: &str = "5d0c1c3a-1111-2222-3333-444455556666";
const NOW: i64 = 1_800_000_000;

fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap()
}

fn no_jitter() -> f64 {
    0.0
}

fn instance(engine: EngineKind) -> DBInstance {
    let mut dbi = DBInstance::new(
        NAME,
        DBInstanceSpec {
            engine,
            preset: Some(PresetKind::Tiny),
            resources: ResourcesSpec {
                cpu_millis: 100,
                memory_mib: 512,
                disk_gib: 2,
            },
            owner: "0190c1c6-6c5f-4a8e-9d4c-2f0a1b2c3d4e".into(),
            instance_id: "0190c1c6-6c5f-4a8e-9d4c-2f0a1b2c3d4f".into(),
            display_name: "orders".into(),
            node_port: 30042,
            run_state: RunStateSpec::Running,
            secret_ref: SecretRef {
                name: format!("{NAME}-credentials"),
            },
            credentials_version: 0,
            engine_config: BTreeMap::new(),
            backup_schedule: None,
        },
    );
    dbi.metadata.namespace = Some(NS.into());
    dbi.metadata.uid = Some(UID.into());
    dbi.metadata.resource_version = Some("100".into());
    dbi.metadata.generation = Some(2);
    dbi.metadata.finalizers = Some(vec![FINALIZER.into()]);
    dbi
}

fn context(client: kube::Client) -> Arc<Context> {
    context_with(client, Settings::default())
}

fn context_with(client: kube::Client, settings: Settings) -> Arc<Context> {
    let reporter = Reporter {
        controller: "dbtree-operator".into(),
        instance: Some("test".into()),
    };
    Arc::new(
        Context::new(client, reporter, Metrics::new().unwrap(), settings)
            .with_clock(now)
            .with_jitter(no_jitter),
    )
}

/// Answers the adoption of the credentials Secret (a strategic merge patch) with success.
async fn reply_secret_adopted(api: &mut ApiServer) {
    api.expect(
        Method::PATCH,
        &path("secrets", &format!("{NAME}-credentials")),
    )
    .await
    .reply(
        200,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
    );
}

/// The name the fake API server gives the administrator Secret it is asked to create.
const ADMIN_SECRET: &str = "dbi-0190c1c6-6c5f-4a8e-9d4c-2f0a1b2c3d4f-admin-x7k2p";

/// Answers the look-up of the administrator Secret (no StatefulSet yet) and its creation, after
/// checking what is created: a name the API server completes, the instance as controller, a
/// random password, immutable.
async fn reply_admin_secret_created(api: &mut ApiServer) {
    api.expect(Method::GET, &path("statefulsets", NAME))
        .await
        .reply_failure(404, "NotFound");
    let e = api
        .expect(Method::POST, path("secrets", "").trim_end_matches('/'))
        .await;
    assert_eq!(e.body["metadata"]["generateName"], format!("{NAME}-admin-"));
    assert!(e.body["metadata"].get("name").is_none(), "{}", e.body);
    assert_owned_by_instance(&e.body);
    assert_eq!(e.body["immutable"], true);
    let password = e.body["stringData"]["password"].as_str().unwrap();
    assert_eq!(password.len(), 32);
    assert!(password.chars().all(|c| c.is_ascii_alphanumeric()));
    let mut created = e.body.clone();
    created["metadata"]["name"] = json!(ADMIN_SECRET);
    e.reply(201, created);
}

/// The credentials Secret adopted, then the administrator Secret created.
async fn reply_secrets(api: &mut ApiServer) {
    reply_secret_adopted(api).await;
    reply_admin_secret_created(api).await;
}

/// Answers the read of the data claim that precedes its apply: the claim, or 404 for `None`.
async fn reply_claim_read(api: &mut ApiServer, existing: Option<Value>) {
    let e = api
        .expect(
            Method::GET,
            &path("persistentvolumeclaims", &format!("{NAME}-data")),
        )
        .await;
    match existing {
        Some(claim) => e.reply(200, claim),
        None => e.reply_failure(404, "NotFound"),
    }
}

fn path(kind_path: &str, name: &str) -> String {
    match kind_path {
        "dbinstances" => format!("/apis/dbtree.cloud/v1/namespaces/{NS}/dbinstances/{name}"),
        "statefulsets" => format!("/apis/apps/v1/namespaces/{NS}/statefulsets/{name}"),
        "networkpolicies" => {
            format!("/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies/{name}")
        }
        "events" => format!("/apis/events.k8s.io/v1/namespaces/{NS}/events"),
        core => format!("/api/v1/namespaces/{NS}/{core}/{name}"),
    }
}

fn assert_owned_by_instance(object: &Value) {
    let owners = &object["metadata"]["ownerReferences"];
    assert_eq!(owners.as_array().unwrap().len(), 1, "{object}");
    assert_eq!(owners[0]["apiVersion"], "dbtree.cloud/v1");
    assert_eq!(owners[0]["kind"], "DBInstance");
    assert_eq!(owners[0]["name"], NAME);
    assert_eq!(owners[0]["uid"], UID);
    assert_eq!(owners[0]["controller"], true);
    assert_eq!(object["metadata"]["namespace"], NS);
    assert_eq!(
        object["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "dbtree"
    );
}

/// The applied bodies of one provisioning pass, by kind.
struct Applied {
    config_map: Value,
    data: Value,
    service: Value,
    network_policy: Value,
    stateful_set: Value,
}

/// Serves the Secret adoption and the five applies; the StatefulSet answer carries `sts_status`.
async fn serve_children(api: &mut ApiServer, sts_status: Value) -> Applied {
    let secret = api
        .expect(
            Method::PATCH,
            &path("secrets", &format!("{NAME}-credentials")),
        )
        .await;
    assert_eq!(
        secret.content_type,
        "application/strategic-merge-patch+json"
    );
    let owner = &secret.body["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["uid"].as_str()),
        (Some("DBInstance"), Some(UID))
    );
    assert!(
        owner.get("controller").is_none(),
        "the server's Secret is adopted, not controlled"
    );
    secret.reply(
        200,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
    );
    reply_admin_secret_created(api).await;

    let take = |e: Exchange| {
        e.assert_apply();
        assert_owned_by_instance(&e.body);
        let body = e.body.clone();
        (e, body)
    };
    let (e, config_map) = take(
        api.expect(
            Method::PATCH,
            &path("configmaps", &format!("{NAME}-config")),
        )
        .await,
    );
    e.reply_applied(Value::Null);
    // A claim's storage class is immutable: the controller reads it before applying.
    reply_claim_read(api, None).await;
    let (e, data) = take(
        api.expect(
            Method::PATCH,
            &path("persistentvolumeclaims", &format!("{NAME}-data")),
        )
        .await,
    );
    e.reply_applied(json!({"phase": "Bound"}));
    let (e, service) = take(api.expect(Method::PATCH, &path("services", NAME)).await);
    e.reply_applied(Value::Null);
    let (e, network_policy) = take(
        api.expect(Method::PATCH, &path("networkpolicies", NAME))
            .await,
    );
    e.reply_applied(Value::Null);
    let (e, stateful_set) = take(api.expect(Method::PATCH, &path("statefulsets", NAME)).await);
    assert!(
        stateful_set.to_string().contains(&format!(
            "\"secretKeyRef\":{{\"key\":\"password\",\"name\":\"{ADMIN_SECRET}\""
        )),
        "the pods read the administrator password from the created Secret: {stateful_set}"
    );
    e.reply_applied(sts_status);
    Applied {
        config_map,
        data,
        service,
        network_policy,
        stateful_set,
    }
}

/// The data claim as the API server returns it, created with `class`.
fn existing_claim(class: Option<&str>) -> Value {
    json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": format!("{NAME}-data"), "namespace": NS},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": class,
                 "resources": {"requests": {"storage": "2Gi"}}},
        "status": {"phase": "Bound"},
    })
}

fn sts_status(pods: i32, ready: i32) -> Value {
    json!({ "observedGeneration": 1, "replicas": pods, "readyReplicas": ready })
}

async fn expect_status(api: &mut ApiServer, dbi: &DBInstance) -> Value {
    let e = api
        .expect(
            Method::PATCH,
            &format!("{}/status", path("dbinstances", NAME)),
        )
        .await;
    e.assert_apply();
    assert_eq!(e.body["apiVersion"], "dbtree.cloud/v1");
    assert_eq!(e.body["kind"], "DBInstance");
    let status = e.body["status"].clone();
    e.reply_instance(dbi);
    status
}

async fn expect_event(api: &mut ApiServer, reason: &str, type_: &str) {
    let e = api.expect(Method::POST, &path("events", "")).await;
    assert_eq!(e.body["reason"], reason);
    assert_eq!(e.body["type"], type_);
    assert_eq!(e.body["regarding"]["kind"], "DBInstance");
    assert_eq!(e.body["regarding"]["name"], NAME);
    assert_eq!(e.body["reportingController"], "dbtree-operator");
    let body = e.body.clone();
    e.reply(201, body);
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap()
}

#[tokio::test]
async fn first_reconcile_adds_the_finalizer_and_nothing_else() {
    let (client, mut api) = api_server::client();
    let mut dbi = instance(EngineKind::Redis);
    dbi.metadata.finalizers = Some(vec!["example.com/keep".into()]);
    let ctx = context(client);
    let scenario = async {
        let e = api.expect(Method::PATCH, &path("dbinstances", NAME)).await;
        assert_eq!(e.content_type, "application/merge-patch+json");
        assert_eq!(
            e.body,
            json!({"metadata": {"resourceVersion": "100", "finalizers": ["example.com/keep", FINALIZER]}})
        );
        e.reply_instance(&instance(EngineKind::Redis));
        api
    };
    let (result, mut api) = tokio::join!(reconcile(Arc::new(dbi), ctx), scenario);
    assert_eq!(result.unwrap(), Action::await_change());
    api.assert_idle().await;
}

#[tokio::test]
async fn provisioning_applies_every_child_for_each_engine() {
    for (engine, port, file, image) in [
        (EngineKind::Postgresql, 5432, "postgresql.conf", "postgres:"),
        (EngineKind::Redis, 6379, "redis.conf", "redis:"),
        (EngineKind::Mongodb, 27017, "mongod.conf", "mongo:"),
    ] {
        let (client, mut api) = api_server::client();
        let dbi = instance(engine);
        let scenario = async {
            let applied = serve_children(&mut api, sts_status(1, 0)).await;
            let status = expect_status(&mut api, &dbi).await;
            expect_event(&mut api, "Provisioning", "Normal").await;
            (api, applied, status)
        };
        let (result, (mut api, applied, status)) =
            tokio::join!(reconcile(Arc::new(dbi.clone()), context(client)), scenario);
        assert_eq!(
            result.unwrap(),
            Action::requeue(Duration::from_secs(10)),
            "{engine:?}"
        );
        api.assert_idle().await;

        assert!(
            applied.config_map["data"][file]
                .as_str()
                .unwrap()
                .contains("dbtree-operator")
        );
        assert_eq!(
            applied.data["spec"]["resources"]["requests"]["storage"],
            "2Gi"
        );
        assert_eq!(applied.service["spec"]["type"], "NodePort");
        assert_eq!(applied.service["spec"]["ports"][0]["nodePort"], 30042);
        assert_eq!(applied.service["spec"]["ports"][0]["port"], port);
        assert_eq!(
            applied.network_policy["spec"]["ingress"][0]["ports"][0]["port"],
            port
        );
        assert_eq!(applied.network_policy["spec"]["egress"], json!([]));
        let sts = &applied.stateful_set;
        assert_eq!(sts["spec"]["replicas"], 1);
        let container = &sts["spec"]["template"]["spec"]["containers"][0];
        assert!(
            container["image"].as_str().unwrap().contains(image),
            "{engine:?}"
        );
        assert_eq!(
            container["resources"]["limits"],
            json!({"cpu": "100m", "memory": "512Mi"})
        );
        assert!(container["readinessProbe"].is_object() && container["livenessProbe"].is_object());
        let volumes = sts["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .unwrap();
        assert!(
            volumes
                .iter()
                .any(|v| v["persistentVolumeClaim"]["claimName"] == format!("{NAME}-data"))
        );

        assert_eq!(status["phase"], "Provisioning");
        assert_eq!(status["observedGeneration"], 2);
        assert_eq!(status["readyReplicas"], 0);
        let provisioned = condition(&status, "Provisioned");
        assert_eq!(
            (&provisioned["status"], &provisioned["reason"]),
            (&json!("True"), &json!("ChildrenApplied"))
        );
        assert_eq!(provisioned["observedGeneration"], 2);
        let ready = condition(&status, "Ready");
        assert_eq!(
            (&ready["status"], &ready["reason"]),
            (&json!("False"), &json!("Starting"))
        );
        assert_eq!(
            ready["lastTransitionTime"],
            serde_json::to_value(Time(now())).unwrap()
        );
    }
}

#[tokio::test]
async fn a_missing_secret_waits_without_applying_anything() {
    let (client, mut api) = api_server::client();
    let dbi = instance(EngineKind::Postgresql);
    let scenario = async {
        let e = api
            .expect(
                Method::PATCH,
                &path("secrets", &format!("{NAME}-credentials")),
            )
            .await;
        e.reply_failure(404, "NotFound");
        let status = expect_status(&mut api, &dbi).await;
        expect_event(&mut api, "Provisioning", "Normal").await;
        (api, status)
    };
    let (result, (mut api, status)) =
        tokio::join!(reconcile(Arc::new(dbi.clone()), context(client)), scenario);
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(10)));
    api.assert_idle().await;
    assert_eq!(status["phase"], "Provisioning");
    assert_eq!(
        status["message"],
        format!("waiting for the credentials Secret {NAME}-credentials")
    );
    assert_eq!(condition(&status, "Provisioned")["reason"], "SecretMissing");
}

/// One pass with `run_state` whose StatefulSet answers `sts`; returns the applied replicas and
/// the status written.
async fn pass(dbi: &DBInstance, sts: Value, event: &str) -> (Value, Value, Action) {
    let (client, mut api) = api_server::client();
    let scenario = async {
        let applied = serve_children(&mut api, sts).await;
        let status = expect_status(&mut api, dbi).await;
        expect_event(&mut api, event, "Normal").await;
        (api, applied, status)
    };
    let (result, (mut api, applied, status)) =
        tokio::join!(reconcile(Arc::new(dbi.clone()), context(client)), scenario);
    api.assert_idle().await;
    (
        applied.stateful_set["spec"]["replicas"].clone(),
        status,
        result.unwrap(),
    )
}

#[tokio::test]
async fn stopped_scales_to_zero_and_running_back_to_one() {
    let mut dbi = instance(EngineKind::Redis);
    let (_, ready, _) = pass(&dbi, sts_status(1, 1), "Ready").await;
    assert_eq!(ready["phase"], "Ready");
    dbi.status = Some(serde_json::from_value(ready).unwrap());

    dbi.spec.run_state = RunStateSpec::Stopped;
    let (replicas, stopped, action) = pass(&dbi, sts_status(0, 0), "Stopped").await;
    assert_eq!(replicas, 0);
    assert_eq!(stopped["phase"], "Stopped");
    assert_eq!(condition(&stopped, "Ready")["reason"], "Stopped");
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    dbi.status = Some(serde_json::from_value(stopped).unwrap());

    dbi.spec.run_state = RunStateSpec::Running;
    let (replicas, running, _) = pass(&dbi, sts_status(1, 1), "Ready").await;
    assert_eq!(replicas, 1);
    assert_eq!(running["phase"], "Ready");
    assert_eq!(condition(&running, "Ready")["status"], "True");
    dbi.status = Some(serde_json::from_value(running).unwrap());

    dbi.spec.run_state = RunStateSpec::Paused;
    let (replicas, paused, _) = pass(&dbi, sts_status(0, 0), "Stopped").await;
    assert_eq!(replicas, 0);
    assert_eq!(condition(&paused, "Ready")["reason"], "Paused");
}

#[tokio::test]
async fn a_deleted_child_is_recreated_without_rewriting_an_unchanged_status() {
    // The instance is Ready; its Service was deleted, which triggers this reconcile.
    let mut dbi = instance(EngineKind::Mongodb);
    let (_, ready, _) = pass(&dbi, sts_status(1, 1), "Ready").await;
    dbi.status = Some(serde_json::from_value(ready).unwrap());

    let (client, mut api) = api_server::client();
    let scenario = async {
        reply_secrets(&mut api).await;
        api.expect(
            Method::PATCH,
            &path("configmaps", &format!("{NAME}-config")),
        )
        .await
        .reply_applied(Value::Null);
        reply_claim_read(&mut api, Some(existing_claim(Some("local-path")))).await;
        api.expect(
            Method::PATCH,
            &path("persistentvolumeclaims", &format!("{NAME}-data")),
        )
        .await
        .reply_applied(Value::Null);
        let service = api.expect(Method::PATCH, &path("services", NAME)).await;
        service.assert_apply();
        assert_owned_by_instance(&service.body);
        assert_eq!(service.body["spec"]["ports"][0]["nodePort"], 30042);
        assert_eq!(
            service.body["spec"]["selector"]["dbtree.cloud/instance-id"],
            "0190c1c6-6c5f-4a8e-9d4c-2f0a1b2c3d4f"
        );
        // Absent before: server-side apply creates it (201).
        let created = service.body.clone();
        service.reply(201, created);
        api.expect(Method::PATCH, &path("networkpolicies", NAME))
            .await
            .reply_applied(Value::Null);
        api.expect(Method::PATCH, &path("statefulsets", NAME))
            .await
            .reply_applied(sts_status(1, 1));
        api
    };
    let (result, mut api) = tokio::join!(reconcile(Arc::new(dbi), context(client)), scenario);
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(300)));
    // Same phase, same conditions: no status write and no event.
    api.assert_idle().await;
}

#[tokio::test]
async fn an_api_error_is_retried_with_growing_backoff_and_never_marked_failed() {
    let dbi = Arc::new(instance(EngineKind::Postgresql));
    let (client, mut api) = api_server::client();
    let ctx = context(client);
    let key = format!("{NS}/{NAME}");
    for (attempt, expected_delay) in [(1, 1), (2, 2), (3, 4)] {
        let scenario = async {
            reply_secrets(&mut api).await;
            let e = api
                .expect(
                    Method::PATCH,
                    &path("configmaps", &format!("{NAME}-config")),
                )
                .await;
            e.reply_failure(503, "ServiceUnavailable");
        };
        let (result, ()) = tokio::join!(reconcile(dbi.clone(), ctx.clone()), scenario);
        let error = result.unwrap_err();
        assert!(
            matches!(&error, Error::Kube(kube::Error::Api(s)) if s.code == 503),
            "{error}"
        );
        assert_eq!(error.metric_label(), "api_server");
        // Nothing else was sent: in particular no status saying Failed.
        api.assert_idle().await;
        let action = error_policy(dbi.clone(), &error, ctx.clone());
        assert_eq!(
            action,
            Action::requeue(Duration::from_secs(expected_delay)),
            "attempt {attempt}"
        );
        assert_eq!(ctx.failures_of(&key), attempt);
    }
    let rendered = ctx.metrics().render();
    assert!(
        rendered.contains("dbtree_operator_reconcile_failures_total{error=\"api_server\"} 3"),
        "{rendered}"
    );

    // The API server recovers: the retry provisions and the failure count starts over.
    let scenario = async {
        serve_children(&mut api, sts_status(1, 1)).await;
        expect_status(&mut api, &dbi).await;
        expect_event(&mut api, "Ready", "Normal").await;
    };
    let (result, ()) = tokio::join!(reconcile(dbi.clone(), ctx.clone()), scenario);
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(300)));
    assert_eq!(ctx.failures_of(&key), 0);
    assert!(
        ctx.metrics()
            .render()
            .contains("dbtree_operator_reconciles_total 4")
    );
}

#[tokio::test]
async fn deletion_waits_for_the_children_then_removes_only_its_finalizer() {
    let mut dbi = instance(EngineKind::Redis);
    dbi.metadata.deletion_timestamp = Some(Time(now()));
    dbi.metadata.finalizers = Some(vec![FINALIZER.into(), "example.com/keep".into()]);
    let dbi = Arc::new(dbi);
    let (client, mut api) = api_server::client();
    let ctx = context(client);

    // First pass: the Service and the StatefulSet go at once; the PVC is still in use.
    let scenario = async {
        let e = api.expect(Method::DELETE, &path("services", NAME)).await;
        assert_eq!(e.body["propagationPolicy"], "Background");
        e.reply_deleted();
        api.expect(Method::DELETE, &path("statefulsets", NAME))
            .await
            .reply_deleted();
        let pvc = api
            .expect(
                Method::DELETE,
                &path("persistentvolumeclaims", &format!("{NAME}-data")),
            )
            .await;
        pvc.reply(
            200,
            json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": format!("{NAME}-data"), "namespace": NS,
                             "deletionTimestamp": "2027-01-15T08:00:00Z",
                             "finalizers": ["kubernetes.io/pvc-protection"]},
            }),
        );
    };
    let (result, ()) = tokio::join!(reconcile(dbi.clone(), ctx.clone()), scenario);
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(2)));
    api.assert_idle().await;

    // Second pass: everything is gone; the finalizer goes, the other one stays.
    let scenario = async {
        api.expect(Method::DELETE, &path("services", NAME))
            .await
            .reply_failure(404, "NotFound");
        api.expect(Method::DELETE, &path("statefulsets", NAME))
            .await
            .reply_failure(404, "NotFound");
        api.expect(
            Method::DELETE,
            &path("persistentvolumeclaims", &format!("{NAME}-data")),
        )
        .await
        .reply_failure(404, "NotFound");
        expect_event(&mut api, "Deleted", "Normal").await;
        let e = api.expect(Method::PATCH, &path("dbinstances", NAME)).await;
        assert_eq!(e.content_type, "application/merge-patch+json");
        assert_eq!(
            e.body,
            json!({"metadata": {"resourceVersion": "100", "finalizers": ["example.com/keep"]}})
        );
        e.reply_instance(&dbi);
    };
    let (result, ()) = tokio::join!(reconcile(dbi.clone(), ctx.clone()), scenario);
    assert_eq!(result.unwrap(), Action::await_change());
    api.assert_idle().await;
}

#[tokio::test]
async fn an_invalid_spec_is_reported_failed_without_applying() {
    let mut dbi = instance(EngineKind::Redis);
    dbi.spec
        .engine_config
        .insert("requirepass".into(), "x".into());
    let (client, mut api) = api_server::client();
    let scenario = async {
        let status = expect_status(&mut api, &dbi).await;
        expect_event(&mut api, "Failed", "Warning").await;
        (api, status)
    };
    let (result, (mut api, status)) =
        tokio::join!(reconcile(Arc::new(dbi.clone()), context(client)), scenario);
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(60)));
    api.assert_idle().await;
    assert_eq!(status["phase"], "Failed");
    assert_eq!(
        status["message"],
        "spec.engineConfig.requirepass is not a setting dbtree accepts for redis"
    );
}

/// Two webhook replicas each admitted one of two simultaneous creations, so the owner has a
/// third live instance. The controller provisions nothing for it and says why; once the
/// owner deletes one of the other two, the next pass provisions it.
#[tokio::test]
async fn an_instance_over_its_owners_limit_waits_until_one_is_deleted() {
    let dbi = instance(EngineKind::Redis);
    let sibling = |name: &str, port: i32| {
        let mut other = instance(EngineKind::Redis);
        other.metadata.name = Some(name.into());
        other.metadata.uid = Some(format!("uid-{name}"));
        other.spec.node_port = port;
        other.status = Some(serde_json::from_value(json!({
            "phase": "Ready",
            "conditions": [{"type": "Provisioned", "status": "True", "reason": "ChildrenApplied",
                            "message": "every object is applied",
                            "lastTransitionTime": "2027-01-15T08:00:00Z"}],
        })).unwrap());
        other
    };
    let (first, second) = (sibling("dbi-a", 30040), sibling("dbi-b", 30041));
    let (store, mut writer) = kube::runtime::reflector::store::<DBInstance>();
    writer.apply_watcher_event(&kube::runtime::watcher::Event::Init);
    for object in [&first, &second, &dbi] {
        writer.apply_watcher_event(&kube::runtime::watcher::Event::InitApply(object.clone()));
    }
    writer.apply_watcher_event(&kube::runtime::watcher::Event::InitDone);
    let (client, mut api) = api_server::client();
    let ctx = context(client);
    ctx.arbiter().watch(store);

    // Over the limit: one status write and one event, no Secret adoption, no child applied.
    let scenario = async {
        let status = expect_status(&mut api, &dbi).await;
        expect_event(&mut api, "Failed", "Warning").await;
        status
    };
    let (result, status) = tokio::join!(reconcile(Arc::new(dbi.clone()), ctx.clone()), scenario);
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(60)));
    api.assert_idle().await;
    assert_eq!(status["phase"], "Failed");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("{NS}/dbi-a, {NS}/dbi-b")) && message.contains("delete one"),
        "{message}"
    );
    let provisioned = condition(&status, "Provisioned");
    assert_eq!(
        (&provisioned["status"], &provisioned["reason"]),
        (&json!("False"), &json!("OwnerLimitReached"))
    );
    let rendered = ctx.metrics().render();
    assert!(
        rendered.contains("dbtree_operator_instances_held_back 1"),
        "{rendered}"
    );

    // The owner deletes one: it leaves the cache, and the next pass provisions this one.
    writer.apply_watcher_event(&kube::runtime::watcher::Event::Delete(first));
    let scenario = async {
        let applied = serve_children(&mut api, sts_status(1, 0)).await;
        let status = expect_status(&mut api, &dbi).await;
        expect_event(&mut api, "Provisioning", "Normal").await;
        (applied, status)
    };
    let (result, (applied, status)) =
        tokio::join!(reconcile(Arc::new(dbi.clone()), ctx.clone()), scenario);
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(10)));
    api.assert_idle().await;
    assert_eq!(applied.service["spec"]["ports"][0]["nodePort"], 30042);
    assert_eq!(status["phase"], "Provisioning");
    assert_eq!(ctx.arbiter().granted_count(), 1);
    assert!(
        ctx.metrics()
            .render()
            .contains("dbtree_operator_instances_held_back 0")
    );
}

/// The operator's storage class was changed after this instance's claim was created: the claim
/// keeps the class it has (it is immutable; applying the new one would fail every reconcile),
/// and the other children are applied as usual.
#[tokio::test]
async fn a_changed_storage_class_leaves_an_existing_claim_alone() {
    let dbi = instance(EngineKind::Postgresql);
    let (client, mut api) = api_server::client();
    let mut settings = Settings::default();
    settings.children.storage_class = Some("fast-ssd".into());
    let ctx = context_with(client, settings);
    let scenario = async {
        reply_secrets(&mut api).await;
        api.expect(
            Method::PATCH,
            &path("configmaps", &format!("{NAME}-config")),
        )
        .await
        .reply_applied(Value::Null);
        reply_claim_read(&mut api, Some(existing_claim(Some("local-path")))).await;
        let claim = api
            .expect(
                Method::PATCH,
                &path("persistentvolumeclaims", &format!("{NAME}-data")),
            )
            .await;
        claim.assert_apply();
        assert_eq!(claim.body["spec"]["storageClassName"], "local-path");
        assert_eq!(
            claim.body["spec"]["resources"]["requests"]["storage"],
            "2Gi"
        );
        claim.reply_applied(json!({"phase": "Bound"}));
        for kind in ["services", "networkpolicies"] {
            api.expect(Method::PATCH, &path(kind, NAME))
                .await
                .reply_applied(Value::Null);
        }
        api.expect(Method::PATCH, &path("statefulsets", NAME))
            .await
            .reply_applied(sts_status(1, 1));
        expect_status(&mut api, &dbi).await;
        expect_event(&mut api, "Ready", "Normal").await;
    };
    let (result, ()) = tokio::join!(reconcile(Arc::new(dbi.clone()), ctx), scenario);
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(300)));
    api.assert_idle().await;
}
