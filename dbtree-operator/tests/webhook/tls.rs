//! One real round trip: the production routes over rustls with a certificate from a throwaway
//! CA, a client that trusts only that CA, and a reflector store filled by hand.

use std::net::SocketAddr;

use dbtree_adapters::kube::DBInstance;
use dbtree_operator::webhook::server::{self, WebhookState};
use kube::runtime::reflector;
use kube::runtime::watcher::Event;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::support::{Obj, Pki, config, fixture, set};

async fn post(client: &reqwest::Client, addr: SocketAddr, body: Vec<u8>) -> (u16, Value) {
    let response = client
        .post(format!("https://localhost:{}/validate", addr.port()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn healthz(client: &reqwest::Client, addr: SocketAddr) -> u16 {
    client
        .get(format!("https://localhost:{}/healthz", addr.port()))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_server_answers_admission_reviews_over_tls() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let pki = Pki::new();
    let (store, mut writer) = reflector::store::<DBInstance>();
    let state = WebhookState::new(store, config());
    let bound = server::bind(
        "127.0.0.1:0".parse().unwrap(),
        server::tls(
            pki.server_cert_pem.clone().into_bytes(),
            pki.server_key_pem.clone().into_bytes(),
        ),
    )
    .await
    .unwrap();
    let addr = bound.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(bound.serve(server::route(state), async {
        let _ = stopped.await;
    }));
    let client = pki.client();
    let alice = serde_json::to_vec(&fixture("create_kubectl")).unwrap();

    // before the cache has synced: not ready, and no quota can be vouched for
    assert_eq!(healthz(&client, addr).await, 503);
    let (status, answer) = post(&client, addr, alice.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(answer["response"]["allowed"], false);
    assert_eq!(answer["response"]["status"]["code"], 503);

    // the first list arrives: alice already has two live instances
    writer.apply_watcher_event(&Event::Init);
    for o in [
        Obj::new("alice", "one", 30010),
        Obj::new("alice", "two", 30011),
    ] {
        writer.apply_watcher_event(&Event::InitApply(o.build()));
    }
    writer.apply_watcher_event(&Event::InitDone);
    assert_eq!(healthz(&client, addr).await, 200);

    let (status, answer) = post(&client, addr, alice.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer["kind"], "AdmissionReview");
    let response = &answer["response"];
    assert_eq!(response["uid"], "3f1c0f7e-2a4b-4c1d-8e9f-0a1b2c3d4e5f");
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 403);
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap()
            .contains("limit is 2"),
        "{response}"
    );

    // a watch event deletes one of them: the very next review sees it, no list call involved
    writer.apply_watcher_event(&Event::Delete(Obj::new("alice", "two", 30011).build()));
    let (_, answer) = post(&client, addr, alice.clone()).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");

    // bob's kubectl apply naming alice as owner
    let mut bob = fixture("create_kubectl");
    set(&mut bob, "/request/userInfo/username", json!("bob"));
    let (_, answer) = post(&client, addr, serde_json::to_vec(&bob).unwrap()).await;
    assert_eq!(answer["response"]["status"]["code"], 403);
    assert_eq!(
        answer["response"]["status"]["details"]["causes"][0]["field"],
        "spec.owner"
    );

    // a DELETE with `object: null`
    let (_, answer) = post(
        &client,
        addr,
        serde_json::to_vec(&fixture("delete")).unwrap(),
    )
    .await;
    assert_eq!(answer["response"]["allowed"], true);

    // garbage is a 400 with an AdmissionReview body saying why
    let (status, answer) = post(&client, addr, b"{\"kind\":".to_vec()).await;
    assert_eq!(status, 400);
    assert_eq!(answer["response"]["allowed"], false);
    assert!(
        answer["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("not an AdmissionReview")
    );

    // so is a body over the limit, refused before it is parsed
    let (status, answer) = post(&client, addr, vec![b' '; server::MAX_BODY_BYTES + 1]).await;
    assert_eq!(status, 413);
    assert_eq!(answer["response"]["allowed"], false);

    // a client that does not trust the CA cannot talk to it
    let stranger = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    let refused = stranger
        .get(format!("https://localhost:{}/healthz", addr.port()))
        .send()
        .await;
    assert!(
        refused.is_err(),
        "an untrusted certificate must not be accepted"
    );

    let _ = stop.send(());
    serving.await.unwrap().unwrap();
}
