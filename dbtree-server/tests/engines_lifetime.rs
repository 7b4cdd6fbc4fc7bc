//! The local engines follow the real `dbtree-server` binary's lifetime, and a busy port does not
//! block creation: a port another program holds is skipped (and said so in the log), SIGTERM
//! stops every engine (data kept) and the next start brings them back, and after a SIGKILL in
//! the middle of a provisioning no engine process of an instance that is not running survives
//! the restart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod engines {
    pub(crate) mod clients;
    pub(crate) mod server;
}

use std::collections::HashSet;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use engines::clients::*;
use engines::server::{
    Server, bindable, engine_processes, engine_processes_by_instance, free_block, refused,
};

async fn sign_in(server: &Server, email: &str) -> String {
    server.sign_in(email).await["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Creates a tiny instance; its id, port and connection URI.
async fn create(server: &Server, token: &str, name: &str, engine: &str) -> (String, u16, String) {
    let created = server
        .post(
            "/api/v1/instances",
            token,
            json!({ "name": name, "engine": engine, "preset": "tiny" }),
        )
        .await;
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
    (
        created.1["instance"]["id"].as_str().unwrap().to_owned(),
        created.1["instance"]["nodePort"].as_u64().unwrap() as u16,
        created.1["credentials"]["uri"].as_str().unwrap().to_owned(),
    )
}

async fn status_becomes(server: &Server, token: &str, id: &str, want: &str) -> Value {
    let path = format!("/api/v1/instances/{id}");
    eventually(&format!("{id} becomes {want}"), || async {
        let detail = server.get(&path, token).await;
        assert_eq!(detail.0, StatusCode::OK, "{}", detail.1);
        assert_ne!(detail.1["status"], "error", "{}", detail.1);
        (detail.1["status"] == want).then_some(detail.1)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_busy_on_the_host_is_skipped_and_the_creation_succeeds() {
    let block = free_block();
    let foreign = TcpListener::bind(("127.0.0.1", block.0)).unwrap();
    let server = Server::start_with(block, &[]).await;
    let token = sign_in(&server, "ports@example.org").await;

    let (id, port, uri) = create(&server, &token, "cache", "redis").await;
    assert_eq!(port, block.0 + 1, "the busy port was handed out");
    status_becomes(&server, &token, &id, "running").await;
    serving("redis", &uri).await;
    let log = server.log_text();
    assert!(
        log.contains(&format!("port {} skipped", block.0)) && log.contains("another program"),
        "the log does not say which port was skipped and why"
    );
    let history = server
        .get("/api/v1/me/transactions?limit=100", &token)
        .await;
    assert!(
        history.1["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["kind"] != "instance_refund"),
        "{}",
        history.1
    );

    // the busy port is held aside: the next creation does not try it again
    let before = server.log_text().matches("skipped").count();
    let (second, second_port, _) = create(&server, &token, "queue", "redis").await;
    assert_eq!(second_port, block.0 + 2);
    assert_eq!(server.log_text().matches("skipped").count(), before);
    status_becomes(&server, &token, &second, "running").await;
    drop(foreign);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_every_engine_and_the_next_start_brings_them_back() {
    let mut server = Server::start().await;
    let token = sign_in(&server, "lifetime@example.org").await;
    let (redis, redis_port, redis_uri) = create(&server, &token, "cache", "redis").await;
    let (pg, pg_port, pg_uri) = create(&server, &token, "orders", "postgresql").await;
    status_becomes(&server, &token, &redis, "running").await;
    status_becomes(&server, &token, &pg, "running").await;
    serving("redis", &redis_uri).await;
    serving("postgresql", &pg_uri).await;
    redis_write(&redis_uri, "lemon").await;
    pg_write(&pg_uri, "lemon").await;
    assert!(!engine_processes(&server.data_dir).is_empty());

    server.shut_down().await;
    assert!(
        engine_processes(&server.data_dir).is_empty(),
        "engines survive a graceful shutdown"
    );
    assert!(refused(redis_port) && refused(pg_port));
    assert!(server.log_text().contains("local engines stopped"));

    let server = server.restart().await;
    status_becomes(&server, &token, &redis, "running").await;
    serving("redis", &redis_uri).await;
    serving("postgresql", &pg_uri).await;
    assert_eq!(redis_read(&redis_uri).await.as_deref(), Some("lemon"));
    assert_eq!(pg_read(&pg_uri).await, ["lemon"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_sigkill_mid_provisioning_no_engine_of_an_instance_not_running_survives() {
    let mut server = Server::start().await;
    let token = sign_in(&server, "crash@example.org").await;
    let (running, _, running_uri) = create(&server, &token, "cache", "redis").await;
    status_becomes(&server, &token, &running, "running").await;

    // a PostgreSQL creation (initdb takes seconds) killed half-way
    let base = server.base.clone();
    let creating = tokio::spawn({
        let token = token.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{base}/api/v1/instances"))
                .bearer_auth(token)
                .json(&json!({ "name": "orders", "engine": "postgresql", "preset": "tiny" }))
                .send()
                .await
        }
    });
    let started = Instant::now();
    let instances = server.data_dir.join("instances");
    while std::fs::read_dir(&instances)
        .map(|d| d.count())
        .unwrap_or(0)
        < 2
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "provisioning never began"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill9();
    let _ = creating.await;

    let server = server.restart().await;
    status_becomes(&server, &token, &running, "running").await;
    serving("redis", &running_uri).await;
    // give the restarted server time to start anything it would wrongly start
    tokio::time::sleep(Duration::from_secs(5)).await;
    let listed = server.get("/api/v1/instances", &token).await;
    let running_ids: HashSet<String> = listed
        .1
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"] == "running")
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    let survivors = engine_processes_by_instance(&server.data_dir);
    for (pid, instance) in &survivors {
        assert!(
            running_ids.contains(instance),
            "process {pid} of instance {instance} survives, which is not running: {}",
            listed.1
        );
    }
    assert!(
        survivors.iter().any(|(_, i)| *i == running),
        "the running instance has no engine"
    );
    for instance in listed.1.as_array().unwrap() {
        if instance["status"] != "running" {
            let port = instance["nodePort"].as_u64().map(|p| p as u16);
            if let Some(port) = port {
                assert!(bindable(port) || refused(port), "{instance}");
            }
        }
    }
}
