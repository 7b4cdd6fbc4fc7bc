//! Leader election against the fake API server: create, wait, take over, renew, lose a race.

use dbtree_operator::leader::{LeaderElector, LeaseConfig};
use http::Method;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use crate::api_server;

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/dbtree/leases/dbtree-operator";

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(second).unwrap()
}

fn micro(second: i64) -> serde_json::Value {
    serde_json::to_value(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        at(second),
    ))
    .unwrap()
}

fn lease(holder: &str, renewed: i64, transitions: i32) -> serde_json::Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "dbtree-operator", "namespace": "dbtree", "resourceVersion": "7"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                 "acquireTime": micro(renewed - 100), "renewTime": micro(renewed),
                 "leaseTransitions": transitions},
    })
}

fn elector(client: kube::Client) -> LeaderElector {
    LeaderElector::new(
        client,
        LeaseConfig::new("dbtree-operator", "dbtree", "pod-a"),
    )
}

#[tokio::test]
async fn an_absent_lease_is_created_held_by_us() {
    let (client, mut api) = api_server::client();
    let scenario = async {
        api.expect(Method::GET, LEASE)
            .await
            .reply_failure(404, "NotFound");
        let e = api
            .expect(
                Method::POST,
                "/apis/coordination.k8s.io/v1/namespaces/dbtree/leases",
            )
            .await;
        assert_eq!(e.body["metadata"]["name"], "dbtree-operator");
        assert_eq!(e.body["spec"]["holderIdentity"], "pod-a");
        assert_eq!(e.body["spec"]["leaseDurationSeconds"], 15);
        assert_eq!(e.body["spec"]["leaseTransitions"], 0);
        assert_eq!(e.body["spec"]["renewTime"], micro(1_000));
        let body = e.body.clone();
        e.reply(201, body);
        api
    };
    let elector = elector(client);
    let (held, mut api) = tokio::join!(elector.try_acquire_or_renew(at(1_000)), scenario);
    assert!(held.unwrap());
    api.assert_idle().await;
}

#[tokio::test]
async fn a_live_lease_of_another_replica_is_left_alone() {
    let (client, mut api) = api_server::client();
    let scenario = async {
        api.expect(Method::GET, LEASE)
            .await
            .reply(200, lease("pod-b", 995, 3));
        api
    };
    let elector = elector(client);
    let (held, mut api) = tokio::join!(elector.try_acquire_or_renew(at(1_000)), scenario);
    assert!(!held.unwrap());
    api.assert_idle().await;
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_conditionally_and_a_lost_race_is_not_an_error() {
    let (client, mut api) = api_server::client();
    let scenario = async {
        api.expect(Method::GET, LEASE)
            .await
            .reply(200, lease("pod-b", 900, 3));
        let e = api.expect(Method::PUT, LEASE).await;
        assert_eq!(
            e.body["metadata"]["resourceVersion"], "7",
            "conditional on what was read"
        );
        assert_eq!(e.body["spec"]["holderIdentity"], "pod-a");
        assert_eq!(e.body["spec"]["leaseTransitions"], 4);
        assert_eq!(e.body["spec"]["acquireTime"], micro(1_000));
        e.reply_failure(409, "Conflict");
        api
    };
    let elector = elector(client);
    let (held, mut api) = tokio::join!(elector.try_acquire_or_renew(at(1_000)), scenario);
    assert!(!held.unwrap(), "another replica wrote first");
    api.assert_idle().await;
}

#[tokio::test]
async fn the_holder_renews_and_keeps_its_acquire_time() {
    let (client, mut api) = api_server::client();
    let scenario = async {
        api.expect(Method::GET, LEASE)
            .await
            .reply(200, lease("pod-a", 998, 2));
        let e = api.expect(Method::PUT, LEASE).await;
        assert_eq!(e.body["spec"]["renewTime"], micro(1_000));
        assert_eq!(e.body["spec"]["acquireTime"], micro(898));
        assert_eq!(e.body["spec"]["leaseTransitions"], 2);
        let body = e.body.clone();
        e.reply(200, body);
        api
    };
    let elector = elector(client);
    let (held, mut api) = tokio::join!(elector.try_acquire_or_renew(at(1_000)), scenario);
    assert!(held.unwrap());
    api.assert_idle().await;
}
