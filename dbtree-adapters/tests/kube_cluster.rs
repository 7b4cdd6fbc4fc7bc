//! `KubeCluster` against a fake Kubernetes API server (`tower_test`): each test is a scenario
//! that asserts the exact requests the driver makes and answers them as the API server would,
//! including the failures (409, 500) the driver must retry.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use dbtree_adapters::kube::{
    KubeCluster, RetryPolicy, instance_object, namespace_for, object_name, secret_name,
};
use dbtree_adapters::memory::Sandbox;
use dbtree_core::boundary::{
    Cluster, ClusterErrorKind, ClusterEvent, LedgerStore, Observation, PostRequest,
    ProvisionRequest, Teardown,
};
use dbtree_core::ids::{InstanceId, UserId};
use dbtree_core::instance::{
    Credentials, Engine, InstanceName, InstanceSpec, InstanceStatus, MilliCpu, NodePort, Password,
    PresetSize, Resources, RunState,
};
use dbtree_core::ledger::{EntryKind, IdempotencyKey};
use dbtree_core::lemons::Lemons;
use dbtree_core::service::App;
use futures_util::StreamExt;
use http::{Method, Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{Handle, SendResponse};

/// The fake API server's side of the connection.
struct ApiServer(Handle<Request<Body>, Response<Body>>);

/// One request the driver made, waiting for its answer.
struct Call {
    method: Method,
    path: String,
    query: String,
    content_type: String,
    body: Value,
    reply: SendResponse<Response<Body>>,
}

impl ApiServer {
    async fn next(&mut self) -> Call {
        let (request, reply) = tokio::time::timeout(Duration::from_secs(10), self.0.next_request())
            .await
            .expect("the driver made no further request")
            .expect("the driver hung up");
        let (parts, body) = request.into_parts();
        let bytes = body.collect_bytes().await.unwrap();
        Call {
            method: parts.method,
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().unwrap_or_default().to_owned(),
            content_type: parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default(),
            body: if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap()
            },
            reply,
        }
    }

    /// The next request, which must be `method path`.
    async fn expect(&mut self, method: Method, path: &str) -> Call {
        let call = self.next().await;
        assert_eq!(
            (&call.method, call.path.as_str()),
            (&method, path),
            "query: {}",
            call.query
        );
        call
    }
}

impl Call {
    fn respond(self, status: u16, body: &Value) {
        let response = Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap();
        self.reply.send_response(response);
    }

    /// Answers with the object the request carried, as the API server stores it.
    fn echo(self, resource_version: &str) {
        let mut body = self.body.clone();
        body["metadata"]["resourceVersion"] = json!(resource_version);
        body["metadata"]["generation"] = json!(1);
        self.respond(200, &body);
    }

    fn fail(self, code: u16, reason: &str) {
        let status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("fake API server says {reason}"), "reason": reason, "code": code,
        });
        self.respond(code, &status);
    }

    fn assert_server_side_apply(&self) {
        assert_eq!(self.content_type, "application/apply-patch+yaml");
        assert!(
            self.query.contains("fieldManager=dbtree-server"),
            "{}",
            self.query
        );
        assert!(self.query.contains("force=true"), "{}", self.query);
    }
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        base: Duration::from_millis(1),
        max: Duration::from_millis(5),
    }
}

fn connect() -> (KubeCluster, ApiServer) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    (
        KubeCluster::new(client).with_retry_policy(fast()),
        ApiServer(handle),
    )
}

fn request() -> ProvisionRequest {
    let mut n = 11u32;
    let password = Password::generate(|| {
        n = n.wrapping_mul(2_654_435_761).wrapping_add(1);
        n
    })
    .unwrap();
    ProvisionRequest {
        instance: InstanceId::from_random_bytes([3; 16]),
        owner: UserId::from_random_bytes([4; 16]),
        name: InstanceName::parse("cache-one").unwrap(),
        engine: Engine::Redis,
        resources: Resources {
            cpu: MilliCpu(250),
            memory_mib: 256,
            disk_gib: 1,
        },
        node_port: NodePort(30007),
        run_state: RunState::Running,
        credentials: Credentials::new(Engine::Redis, password),
    }
}

fn instance_path(owner: UserId, id: InstanceId) -> String {
    format!(
        "/apis/dbtree.cloud/v1/namespaces/{}/dbinstances/{}",
        namespace_for(owner),
        object_name(id)
    )
}

fn secret_path(owner: UserId, id: InstanceId) -> String {
    format!(
        "/api/v1/namespaces/{}/secrets/{}",
        namespace_for(owner),
        secret_name(id)
    )
}

/// Serves the three applies of a provisioning, asserting each.
async fn serve_provisioning(api: &mut ApiServer, request: &ProvisionRequest) {
    let ns = namespace_for(request.owner);
    let call = api
        .expect(Method::PATCH, &format!("/api/v1/namespaces/{ns}"))
        .await;
    call.assert_server_side_apply();
    assert_eq!(call.body["kind"], "Namespace");
    assert_eq!(
        call.body["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "dbtree"
    );
    assert_eq!(
        call.body["metadata"]["labels"]["dbtree.cloud/owner"],
        request.owner.to_string()
    );
    assert_eq!(
        call.body["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    call.echo("1");

    let call = api
        .expect(Method::PATCH, &secret_path(request.owner, request.instance))
        .await;
    call.assert_server_side_apply();
    assert_eq!(call.body["kind"], "Secret");
    assert_eq!(
        call.body["stringData"]["username"],
        request.engine.username()
    );
    assert_eq!(
        call.body["stringData"]["password"],
        request.credentials.password.expose()
    );
    assert_eq!(
        call.body["metadata"]["labels"]["dbtree.cloud/instance-id"],
        request.instance.to_string()
    );
    call.echo("2");

    let call = api
        .expect(
            Method::PATCH,
            &instance_path(request.owner, request.instance),
        )
        .await;
    call.assert_server_side_apply();
    assert_eq!(call.body["apiVersion"], "dbtree.cloud/v1");
    assert_eq!(call.body["kind"], "DBInstance");
    let spec = &call.body["spec"];
    assert_eq!(spec["engine"], "redis");
    assert_eq!(
        spec["resources"],
        json!({"cpuMillis": 250, "memoryMib": 256, "diskGib": 1})
    );
    assert_eq!(spec["owner"], request.owner.to_string());
    assert_eq!(spec["instanceId"], request.instance.to_string());
    assert_eq!(spec["displayName"], "cache-one");
    assert_eq!(spec["nodePort"], 30007);
    assert_eq!(spec["runState"], "Running");
    assert_eq!(
        spec["secretRef"],
        json!({"name": secret_name(request.instance)})
    );
    assert!(
        call.body.get("status").is_none_or(Value::is_null),
        "the server never writes status"
    );
    assert!(
        !call
            .body
            .to_string()
            .contains(request.credentials.password.expose()),
        "no password in the DBInstance"
    );
    call.echo("3");
}

#[tokio::test]
async fn provisioning_applies_namespace_secret_and_object_then_patches_the_run_state() {
    let (cluster, mut api) = connect();
    let request = request();
    let (result, ()) = tokio::join!(
        cluster.provision(&request),
        serve_provisioning(&mut api, &request)
    );
    result.unwrap();

    // The run state travels in the spec, as a merge patch of that one field.
    let (result, ()) = tokio::join!(
        cluster.set_run_state(request.instance, RunState::Stopped),
        async {
            let call = api
                .expect(
                    Method::PATCH,
                    &instance_path(request.owner, request.instance),
                )
                .await;
            assert_eq!(call.content_type, "application/merge-patch+json");
            assert_eq!(call.body, json!({"spec": {"runState": "Stopped"}}));
            let mut object = serde_json::to_value(instance_object(&request)).unwrap();
            object["spec"]["runState"] = json!("Stopped");
            call.respond(200, &object);
        }
    );
    result.unwrap();
}

#[tokio::test]
async fn a_repeated_provisioning_converges_on_the_same_objects() {
    // After a crash between the ledger debit and the answer, the same request is applied again:
    // the same three applies to the same names, no create that could fail with "exists".
    let (cluster, mut api) = connect();
    let request = request();
    for _ in 0..2 {
        let (result, ()) = tokio::join!(
            cluster.provision(&request),
            serve_provisioning(&mut api, &request)
        );
        result.unwrap();
    }
}

#[tokio::test]
async fn conflicts_and_server_errors_are_retried() {
    let (cluster, mut api) = connect();
    let request = request();
    let ns_path = format!("/api/v1/namespaces/{}", namespace_for(request.owner));
    let (result, ()) = tokio::join!(cluster.provision(&request), async {
        api.expect(Method::PATCH, &ns_path)
            .await
            .fail(500, "InternalError");
        api.expect(Method::PATCH, &ns_path)
            .await
            .fail(409, "Conflict");
        serve_provisioning(&mut api, &request).await;
    });
    result.unwrap();

    // Attempts run out on a lasting outage: a transient error, after exactly `attempts` tries.
    let (result, ()) = tokio::join!(
        cluster.set_run_state(request.instance, RunState::Running),
        async {
            for _ in 0..4 {
                api.expect(
                    Method::PATCH,
                    &instance_path(request.owner, request.instance),
                )
                .await
                .fail(503, "ServiceUnavailable");
            }
        }
    );
    let error = result.unwrap_err();
    assert_eq!(error.kind, ClusterErrorKind::Transient);
    assert!(error.message.contains("503"), "{}", error.message);
}

#[tokio::test]
async fn a_refusal_is_not_retried_and_fails_the_provisioning_for_good() {
    let (cluster, mut api) = connect();
    let request = request();
    let (result, ()) = tokio::join!(cluster.provision(&request), async {
        let ns = namespace_for(request.owner);
        api.expect(Method::PATCH, &format!("/api/v1/namespaces/{ns}"))
            .await
            .echo("1");
        api.expect(Method::PATCH, &secret_path(request.owner, request.instance))
            .await
            .echo("2");
        api.expect(
            Method::PATCH,
            &instance_path(request.owner, request.instance),
        )
        .await
        .fail(422, "Invalid");
    });
    let error = result.unwrap_err();
    assert_eq!(error.kind, ClusterErrorKind::Permanent);
    assert!(
        error.message.contains("applying the DBInstance"),
        "{}",
        error.message
    );
    assert!(
        !error
            .message
            .contains(request.credentials.password.expose())
    );
}

#[tokio::test]
async fn an_instance_unknown_to_the_cluster_is_found_by_label_or_reported_not_found() {
    let (cluster, mut api) = connect();
    let id = InstanceId::from_random_bytes([5; 16]);
    let selector = format!("labelSelector=dbtree.cloud%2Finstance-id%3D{id}");
    let empty = json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": {"resourceVersion": "9"}, "items": []});
    let (result, ()) = tokio::join!(cluster.set_run_state(id, RunState::Running), async {
        let call = api
            .expect(Method::GET, "/apis/dbtree.cloud/v1/dbinstances")
            .await;
        assert!(call.query.contains(&selector), "{}", call.query);
        call.respond(200, &empty);
        let call = api.expect(Method::GET, "/api/v1/secrets").await;
        assert!(call.query.contains(&selector), "{}", call.query);
        call.respond(200, &empty);
    });
    assert_eq!(
        result.unwrap_err().kind,
        ClusterErrorKind::NotFound,
        "resync refunds on this"
    );

    // Deleting what the cluster never had is complete at once.
    let (result, ()) = tokio::join!(cluster.delete(id), async {
        api.expect(Method::GET, "/apis/dbtree.cloud/v1/dbinstances")
            .await
            .respond(200, &empty);
        api.expect(Method::GET, "/api/v1/secrets")
            .await
            .respond(200, &empty);
    });
    assert_eq!(result.unwrap(), Teardown::Complete);

    // After a restart the namespace is learned from the object's labels.
    let owner = UserId::from_random_bytes([6; 16]);
    let found = json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": {}, "items": [
        {"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": {"name": object_name(id), "namespace": namespace_for(owner)}}
    ]});
    let (result, ()) = tokio::join!(cluster.set_run_state(id, RunState::Paused), async {
        api.expect(Method::GET, "/apis/dbtree.cloud/v1/dbinstances")
            .await
            .respond(200, &found);
        let call = api.expect(Method::PATCH, &instance_path(owner, id)).await;
        assert_eq!(call.body, json!({"spec": {"runState": "Paused"}}));
        call.fail(404, "NotFound");
    });
    assert_eq!(result.unwrap_err().kind, ClusterErrorKind::NotFound);
}

#[tokio::test]
async fn rotation_applies_the_secret_and_raises_the_credentials_version_retrying_a_conflict() {
    let (cluster, mut api) = connect();
    let request = request();
    let (result, ()) = tokio::join!(
        cluster.provision(&request),
        serve_provisioning(&mut api, &request)
    );
    result.unwrap();
    let new_password = Password::generate(|| 77).unwrap();
    let credentials = Credentials::new(Engine::Redis, new_password);
    let path = instance_path(request.owner, request.instance);
    let stored = |rv: &str, version: i64| {
        let mut object = serde_json::to_value(instance_object(&request)).unwrap();
        object["metadata"]["resourceVersion"] = json!(rv);
        object["spec"]["credentialsVersion"] = json!(version);
        object
    };
    let (result, ()) = tokio::join!(
        cluster.rotate_credentials(request.instance, &credentials),
        async {
            api.expect(Method::GET, &path)
                .await
                .respond(200, &stored("3", 0));
            let call = api
                .expect(Method::PATCH, &secret_path(request.owner, request.instance))
                .await;
            call.assert_server_side_apply();
            assert_eq!(
                call.body["stringData"]["password"],
                credentials.password.expose()
            );
            assert_eq!(
                call.body["metadata"]["labels"]["dbtree.cloud/owner"],
                request.owner.to_string()
            );
            call.echo("4");
            api.expect(Method::GET, &path)
                .await
                .respond(200, &stored("3", 0));
            let call = api.expect(Method::PATCH, &path).await;
            assert_eq!(call.content_type, "application/merge-patch+json");
            assert_eq!(call.body["metadata"]["resourceVersion"], "3");
            assert_eq!(call.body["spec"]["credentialsVersion"], 1);
            call.fail(409, "Conflict"); // someone changed the object meanwhile
            api.expect(Method::GET, &path)
                .await
                .respond(200, &stored("5", 1));
            let call = api.expect(Method::PATCH, &path).await;
            assert_eq!(call.body["metadata"]["resourceVersion"], "5");
            assert_eq!(call.body["spec"]["credentialsVersion"], 2);
            call.respond(200, &stored("6", 2));
        }
    );
    result.unwrap();
}

#[tokio::test]
async fn delete_removes_the_object_and_secret_and_waits_for_the_operator() {
    let (cluster, mut api) = connect();
    let request = request();
    let (result, ()) = tokio::join!(
        cluster.provision(&request),
        serve_provisioning(&mut api, &request)
    );
    result.unwrap();
    let (result, ()) = tokio::join!(cluster.delete(request.instance), async {
        let call = api
            .expect(
                Method::DELETE,
                &instance_path(request.owner, request.instance),
            )
            .await;
        assert_eq!(call.body["propagationPolicy"], "Foreground");
        let mut object = serde_json::to_value(instance_object(&request)).unwrap();
        object["metadata"]["deletionTimestamp"] = json!("2026-11-24T10:00:00Z");
        object["metadata"]["finalizers"] = json!(["dbtree.cloud/cleanup"]);
        call.respond(200, &object);
        api.expect(
            Method::DELETE,
            &secret_path(request.owner, request.instance),
        )
        .await
        .respond(
            200,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
        );
    });
    assert_eq!(
        result.unwrap(),
        Teardown::Pending,
        "the finalizer still runs; a Gone event follows"
    );

    let (result, ()) = tokio::join!(cluster.delete(request.instance), async {
        api.expect(
            Method::DELETE,
            &instance_path(request.owner, request.instance),
        )
        .await
        .fail(404, "NotFound");
        api.expect(
            Method::DELETE,
            &secret_path(request.owner, request.instance),
        )
        .await
        .fail(404, "NotFound");
    });
    assert_eq!(result.unwrap(), Teardown::Complete);
}

fn with_phase(request: &ProvisionRequest, rv: &str, phase: &str, message: Option<&str>) -> Value {
    let mut object = serde_json::to_value(instance_object(request)).unwrap();
    object["metadata"]["resourceVersion"] = json!(rv);
    object["metadata"]["generation"] = json!(1);
    object["status"] = json!({"phase": phase, "observedGeneration": 1, "message": message});
    object
}

/// Answers the watcher's initial list with `items`, then its watch with `events`.
async fn serve_watch(api: &mut ApiServer, items: Vec<Value>, events: Vec<(&str, Value)>) {
    let call = api
        .expect(Method::GET, "/apis/dbtree.cloud/v1/dbinstances")
        .await;
    assert!(
        call.query
            .contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Ddbtree"),
        "{}",
        call.query
    );
    assert!(!call.query.contains("watch=true"));
    call.respond(
        200,
        &json!({"apiVersion": "dbtree.cloud/v1", "kind": "DBInstanceList", "metadata": {"resourceVersion": "10"}, "items": items}),
    );
    let call = api
        .expect(Method::GET, "/apis/dbtree.cloud/v1/dbinstances")
        .await;
    assert!(call.query.contains("watch=true"), "{}", call.query);
    let mut lines = Vec::new();
    for (kind, object) in events {
        lines.extend(serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap());
        lines.push(b'\n');
    }
    call.reply.send_response(
        Response::builder()
            .status(200)
            .body(Body::from(lines))
            .unwrap(),
    );
}

#[tokio::test]
async fn the_watch_reports_ready_failed_and_gone_once_each() {
    let (cluster, mut api) = connect();
    let request = request();
    let mut events = cluster.events();
    let server = tokio::spawn(async move {
        serve_watch(
            &mut api,
            vec![with_phase(&request, "10", "Provisioning", None)],
            vec![
                ("MODIFIED", with_phase(&request, "11", "Ready", None)),
                ("MODIFIED", with_phase(&request, "12", "Ready", None)), // a repeat says nothing new
                (
                    "MODIFIED",
                    with_phase(&request, "13", "Failed", Some("pod crash-looping")),
                ),
                (
                    "DELETED",
                    with_phase(&request, "14", "Failed", Some("pod crash-looping")),
                ),
            ],
        )
        .await;
        api
    });
    let mut seen = Vec::new();
    for _ in 0..3 {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .unwrap()
            .unwrap();
        seen.push(event.observation);
    }
    assert_eq!(
        seen,
        vec![
            Observation::Ready,
            Observation::Failed {
                reason: "pod crash-looping".into()
            },
            Observation::Gone
        ]
    );
    drop(server.await.unwrap());
}

async fn grant(sb: &Sandbox, user: UserId, amount: u32) {
    let request = PostRequest {
        user,
        kind: EntryKind::AdminGrant,
        amount: Lemons::new(amount),
        key: IdempotencyKey::admin_grant("kube-test").unwrap(),
        instance: None,
        at: dbtree_core::boundary::Clock::now(sb.clock.as_ref()),
    };
    sb.store.post(&request, &sb.policy.ledger).await.unwrap();
}

#[tokio::test]
async fn a_watched_status_drives_the_instance_state_without_anyone_asking() {
    let sb = Sandbox::new();
    let (cluster, mut api) = connect();
    let mut deps = sb.deps();
    deps.cluster = Arc::new(cluster.clone());
    let app = App::new(deps);
    app.prepare().await.unwrap();
    app.accounts
        .request_code("kim@example.org", None)
        .await
        .unwrap();
    let code = sb.mailer.last_code_for("kim@example.org").unwrap();
    let signed = app
        .accounts
        .verify("kim@example.org", &code, None)
        .await
        .unwrap();
    let user = app
        .accounts
        .authenticate(&signed.token.expose())
        .await
        .unwrap()
        .user;
    grant(&sb, user.id, 200).await;
    let user = app
        .accounts
        .authenticate(&signed.token.expose())
        .await
        .unwrap()
        .user;

    // Creation goes through the fake API server; the applies carry the password in the Secret.
    let spec = InstanceSpec::Preset {
        engine: Engine::Redis,
        size: PresetSize::Tiny,
    };
    let name = InstanceName::parse("queue").unwrap();
    let served = tokio::spawn(async move {
        let mut bodies = Vec::new();
        for _ in 0..3 {
            let call = api.next().await;
            bodies.push(call.body.clone());
            call.echo("1");
        }
        (api, bodies)
    });
    let created = app.instances.create(&user, name, spec).await.unwrap();
    let (mut api, bodies) = served.await.unwrap();
    assert_eq!(
        bodies[1]["stringData"]["password"],
        created.credentials.password.expose()
    );
    let id = created.instance.id;
    assert_eq!(
        app.instances.get(user.id, id).await.unwrap().status,
        InstanceStatus::Provisioning
    );

    // The operator reports Ready: the follower applies it, and the instance is running.
    let mut object = bodies[2].clone();
    object["metadata"]["resourceVersion"] = json!("2");
    object["metadata"]["generation"] = json!(1);
    object["status"] = json!({"phase": "Ready", "observedGeneration": 1});
    let mut events = cluster.events();
    let server = tokio::spawn(async move {
        serve_watch(&mut api, vec![], vec![("MODIFIED", object)]).await;
        api
    });
    let event: ClusterEvent = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        event,
        ClusterEvent {
            instance: id,
            observation: Observation::Ready
        }
    );
    app.instances.observe(&event).await.unwrap();
    assert_eq!(
        app.instances.get(user.id, id).await.unwrap().status,
        InstanceStatus::Running
    );
    drop(server.await.unwrap());
}
