//! MongoDB instances (FerretDB here: Debian does not package `mongod`) through the official
//! Rust driver, with the URI dbtree hands out.

use std::os::unix::fs::MetadataExt;

use dbtree_core::boundary::{Cluster, Observation};
use dbtree_core::instance::{Credentials, Engine, RunState};
use mongodb::bson::{Document, doc};

use super::fixture::*;
use super::mongo_client::{is_auth_failure, mongo_with};

async fn fruit(client: &mongodb::Client) -> Option<String> {
    client
        .database("dbtree")
        .collection::<Document>("fruit")
        .find_one(doc! {})
        .await
        .unwrap()
        .and_then(|d| d.get_str("name").ok().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_lives_stops_starts_rotates_and_is_deleted() {
    let mut fx = Fixture::new().await;
    fx.require_mongodb();
    let pw = password();
    let (id, port) = fx.provision(Engine::Mongodb, &pw).await;
    ready(&mut fx.events, id).await;
    let server = fx.cluster.instance_server(id).await.unwrap();
    eprintln!("mongodb served by {server}");
    assert!(
        server.starts_with("MongoDB-compatible: FerretDB 1.") || server.starts_with("MongoDB "),
        "{server}"
    );

    let dir = fx.instance_dir(id);
    let admin = std::fs::metadata(dir.join("admin.pw")).unwrap();
    assert_eq!(admin.mode() & 0o777, 0o600);
    assert_no_secret_on_disk(&dir, &pw, &[]);

    let client = mongo_with(port, &pw).await.unwrap();
    client
        .database("dbtree")
        .collection::<Document>("fruit")
        .insert_one(doc! { "name": "lemon" })
        .await
        .unwrap();
    assert_eq!(fruit(&client).await.as_deref(), Some("lemon"));
    let wrong = mongo_with(port, &password()).await.unwrap_err();
    assert!(is_auth_failure(&wrong), "{wrong}");
    let anonymous = mongodb::Client::with_uri_str(format!(
        "mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=5000"
    ))
    .await
    .unwrap();
    let denied = anonymous
        .database("dbtree")
        .collection::<Document>("fruit")
        .find_one(doc! {})
        .await;
    assert!(denied.is_err(), "read without signing in");

    fx.cluster
        .set_run_state(id, RunState::Stopped)
        .await
        .unwrap();
    assert!(refused(port), "a stopped instance accepts connections");
    fx.cluster
        .set_run_state(id, RunState::Running)
        .await
        .unwrap();
    ready(&mut fx.events, id).await;
    let client = mongo_with(port, &pw).await.unwrap();
    assert_eq!(fruit(&client).await.as_deref(), Some("lemon"), "data kept");

    let new = password();
    fx.cluster
        .rotate_credentials(id, &Credentials::new(Engine::Mongodb, new.clone()))
        .await
        .unwrap();
    ready(&mut fx.events, id).await;
    let old = mongo_with(port, &pw).await.unwrap_err();
    assert!(is_auth_failure(&old), "the old password still works: {old}");
    let client = mongo_with(port, &new).await.unwrap();
    assert_eq!(fruit(&client).await.as_deref(), Some("lemon"));
    assert_no_secret_on_disk(&dir, &new, &[]);

    // The driver restarted: rotation still works (as the administrator, not from memory).
    let old_cluster = std::mem::replace(
        &mut fx.cluster,
        dbtree_adapters::local::LocalCluster::start(dbtree_adapters::local::LocalConfig::new(
            fx.dir.path().join("unused"),
        ))
        .await
        .unwrap(),
    );
    drop(old_cluster);
    fx.cluster = dbtree_adapters::local::LocalCluster::start(
        dbtree_adapters::local::LocalConfig::new(fx.dir.path()),
    )
    .await
    .unwrap();
    fx.events = fx.cluster.events();
    ready(&mut fx.events, id).await;
    let newer = password();
    fx.cluster
        .rotate_credentials(id, &Credentials::new(Engine::Mongodb, newer.clone()))
        .await
        .unwrap();
    match next_of(&mut fx.events, id, |o| *o != Observation::Gone).await {
        Observation::Ready => {}
        other => panic!("expected Ready, got {other:?}"),
    }
    assert!(is_auth_failure(&mongo_with(port, &new).await.unwrap_err()));
    let client = mongo_with(port, &newer).await.unwrap();
    assert_eq!(fruit(&client).await.as_deref(), Some("lemon"));

    delete_and_check(&mut fx, id, port).await;
    if is_root() {
        assert_eq!(uid_of(&account_of(id)), None, "the account is left");
    }
}
