//! The embedded default end to end: the real `dbtree-server` binary with nothing configured
//! (SQLite in its data directory, the local engine driver running real `redis-server` and
//! PostgreSQL processes), driven only through its HTTP API. A user signs in with the code from
//! the log, wins a lemon, creates a Redis and a PostgreSQL instance, uses them with real clients
//! through stop, start, password rotation and deletion, and no password is ever found in
//! dbtree's database files or its log.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod engines {
    pub(crate) mod clients;
    pub(crate) mod server;
}

use std::str::FromStr;
use std::time::Instant;

use dbtree_adapters::sqlite::SqliteStore;
use dbtree_core::boundary::{QuizStore, TreeStore};
use dbtree_core::harvest::ClickChallenge;
use dbtree_core::ids::AttemptId;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use engines::clients::*;
use engines::server::{Server, bindable, ferretdb, files_containing, refused};

const EMAIL: &str = "engines@example.org";

/// One created instance as the user knows it.
struct Created {
    engine: &'static str,
    id: String,
    port: u16,
    uri: String,
    password: String,
}

/// Signs in with the code the console mailer logged; returns the token.
async fn sign_in(server: &Server) -> String {
    let session = server.sign_in(EMAIL).await;
    assert_eq!(session["profile"]["balance"], 15, "the welcome bonus");
    session["token"].as_str().unwrap().to_owned()
}

/// Wins a ripe lemon: answers its quiz right (the right option read from dbtree's database, the
/// test's cheat sheet) and clicks where the circle is at the moment of the click.
async fn harvest(server: &Server, store: &SqliteStore, token: &str) {
    let tree = server.get("/api/v1/tree", token).await;
    let position = tree.1["lemons"]
        .as_array()
        .unwrap()
        .iter()
        .position(|l| l["state"] == "ripe")
        .expect("a ripe lemon");
    let started = server
        .post(&format!("/api/v1/tree/{position}/quiz"), token, json!({}))
        .await;
    assert_eq!(started.0, StatusCode::CREATED, "{}", started.1);
    let attempt_id = started.1["attemptId"].as_str().unwrap().to_owned();
    let attempt = store
        .attempt(AttemptId::from_str(&attempt_id).unwrap())
        .await
        .unwrap()
        .unwrap();
    let option = store
        .quiz(attempt.quiz)
        .await
        .unwrap()
        .unwrap()
        .content
        .correct_option;
    let answer = server
        .post(
            &format!("/api/v1/quiz-attempts/{attempt_id}/answer"),
            token,
            json!({ "option": option }),
        )
        .await;
    let shown = Instant::now();
    assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);
    assert_eq!(answer.1["correct"], true, "{}", answer.1);
    let c = &answer.1["challenge"];
    let challenge = ClickChallenge {
        window_ms: c["windowMs"].as_u64().unwrap() as u32,
        period_ms: c["periodMs"].as_u64().unwrap() as u32,
        fx: c["fx"].as_u64().unwrap() as u8,
        fy: c["fy"].as_u64().unwrap() as u8,
        phase: c["phase"].as_f64().unwrap(),
        radius: c["radius"].as_f64().unwrap(),
        hit_tolerance: c["hitTolerance"].as_f64().unwrap(),
        lag_allowance_ms: c["lagAllowanceMs"].as_u64().unwrap() as u32,
    };
    let offset_ms = shown.elapsed().as_millis().min(4000) as i64;
    let (x, y) = challenge.centre_at(offset_ms as f64);
    let won = server
        .post(
            &format!("/api/v1/quiz-attempts/{attempt_id}/harvest"),
            token,
            json!({ "clickOffsetMs": offset_ms, "x": x, "y": y }),
        )
        .await;
    assert_eq!(won.0, StatusCode::OK, "{}", won.1);
    assert_eq!(
        (won.1["reward"].as_u64(), won.1["balance"].as_u64()),
        (Some(3), Some(18))
    );
}

async fn create(server: &Server, token: &str, name: &str, engine: &'static str) -> Created {
    let created = server
        .post(
            "/api/v1/instances",
            token,
            json!({ "name": name, "engine": engine, "preset": "tiny" }),
        )
        .await;
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
    let instance = &created.1["instance"];
    assert_eq!(instance["status"], "provisioning", "{}", created.1);
    let port = instance["nodePort"].as_u64().unwrap() as u16;
    assert!(
        (server.node_ports.0..=server.node_ports.1).contains(&port),
        "{port}"
    );
    let credentials = &created.1["credentials"];
    let password = credentials["password"].as_str().unwrap().to_owned();
    assert_eq!(password.len(), 24);
    let uri = credentials["uri"].as_str().unwrap().to_owned();
    assert!(
        uri.contains(&password) && uri.contains(&format!("127.0.0.1:{port}")),
        "{uri}"
    );
    Created {
        engine,
        id: instance["id"].as_str().unwrap().to_owned(),
        port,
        uri,
        password,
    }
}

/// Polls the instance's detail until its status is `want`; fails at once on `error`.
async fn status_becomes(server: &Server, token: &str, instance: &Created, want: &str) -> Value {
    let path = format!("/api/v1/instances/{}", instance.id);
    eventually(&format!("{} becomes {want}", instance.engine), || async {
        let detail = server.get(&path, token).await;
        assert_eq!(detail.0, StatusCode::OK, "{}", detail.1);
        assert_ne!(detail.1["status"], "error", "{}", detail.1);
        (detail.1["status"] == want).then_some(detail.1)
    })
    .await
}

async fn write(instance: &Created) {
    match instance.engine {
        "redis" => redis_write(&instance.uri, "lemon").await,
        "mongodb" => mongo_write(&instance.uri, "lemon").await,
        _ => pg_write(&instance.uri, "lemon").await,
    }
}

async fn assert_value_there(instance: &Created) {
    match instance.engine {
        "redis" => assert_eq!(redis_read(&instance.uri).await.as_deref(), Some("lemon")),
        "mongodb" => assert_eq!(mongo_read(&instance.uri).await, ["lemon"]),
        _ => assert_eq!(pg_read(&instance.uri).await, ["lemon"]),
    }
}

async fn lifecycle(
    server: &Server,
    token: &str,
    instance: &mut Created,
    secrets: &mut Vec<String>,
) {
    let base = format!("/api/v1/instances/{}", instance.id);
    let detail = status_becomes(server, token, instance, "running").await;
    assert!(
        !detail.to_string().contains(&instance.password),
        "the password is shown again"
    );
    assert_eq!(detail["connection"]["port"], instance.port);
    let backed_by = detail["server"].as_str().unwrap_or_default();
    let expected = match instance.engine {
        "redis" => "Redis ",
        "postgresql" => "PostgreSQL ",
        _ => "MongoDB-compatible: FerretDB 1.24",
    };
    assert!(backed_by.starts_with(expected), "{}", detail);
    serving(instance.engine, &instance.uri).await;
    write(instance).await;
    assert_value_there(instance).await;
    let wrong = instance
        .uri
        .replace(&instance.password, "NotThePassword0123456789");
    password_refused(instance.engine, &wrong).await;

    // the console's figures come from the engine itself
    let usage = server.get(&format!("{base}/usage"), token).await;
    assert_eq!(usage.0, StatusCode::OK, "{}", usage.1);
    assert_eq!(usage.1["available"], true, "{}", usage.1);
    match instance.engine {
        "mongodb" => {
            // dbStats of the tenant's database, which now holds the value written above;
            // FerretDB's serverStatus gives neither connections nor memory, so neither is shown
            assert!(
                usage.1["diskUsedBytes"].as_u64().unwrap() > 0,
                "{}",
                usage.1
            );
            assert!(usage.1.get("connections").is_none(), "{}", usage.1);
            assert!(usage.1.get("memoryUsedBytes").is_none(), "{}", usage.1);
        }
        "redis" => {
            assert!(usage.1["connections"].is_u64(), "{}", usage.1);
            // INFO: used_memory, and the append-only file on disk
            assert!(
                usage.1["memoryUsedBytes"].as_u64().unwrap() > 100_000,
                "{}",
                usage.1
            );
            assert!(usage.1["diskUsedBytes"].is_u64(), "{}", usage.1);
        }
        _ => {
            assert!(usage.1["connections"].is_u64(), "{}", usage.1);
            // pg_database_size of every database (a fresh cluster is several MB); PostgreSQL
            // reports no memory figure, so none is given
            assert!(
                usage.1["diskUsedBytes"].as_u64().unwrap() > 1_000_000,
                "{}",
                usage.1
            );
            assert!(usage.1.get("memoryUsedBytes").is_none(), "{}", usage.1);
        }
    }

    // stop: the port refuses connections as soon as the API answers
    let stopped = server.post(&format!("{base}/stop"), token, json!({})).await;
    assert_eq!(
        (stopped.0, stopped.1["status"].as_str()),
        (StatusCode::OK, Some("stopped")),
        "{}",
        stopped.1
    );
    assert!(
        refused(instance.port),
        "a stopped {} accepts connections",
        instance.engine
    );
    let usage = server.get(&format!("{base}/usage"), token).await.1;
    assert_eq!(usage["available"], false, "{usage}");

    // start: the data is still there
    let started = server
        .post(&format!("{base}/start"), token, json!({}))
        .await;
    assert_eq!(started.0, StatusCode::OK, "{}", started.1);
    status_becomes(server, token, instance, "running").await;
    serving(instance.engine, &instance.uri).await;
    assert_value_there(instance).await;

    // rotate: the new password works, the old one is refused
    let rotated = server
        .post(&format!("{base}/credentials"), token, json!({}))
        .await;
    assert_eq!(rotated.0, StatusCode::OK, "{}", rotated.1);
    let new_password = rotated.1["password"].as_str().unwrap().to_owned();
    let new_uri = rotated.1["uri"].as_str().unwrap().to_owned();
    assert_ne!(new_password, instance.password);
    assert!(new_uri.contains(&new_password));
    secrets.push(new_password.clone());
    let old_uri = std::mem::replace(&mut instance.uri, new_uri);
    instance.password = new_password;
    serving(instance.engine, &instance.uri).await;
    password_refused(instance.engine, &old_uri).await;
    assert_value_there(instance).await;

    // delete: the port is free and the engine's data is gone
    let deleted = server.call(Method::DELETE, &base, Some(token), None).await;
    assert_eq!(deleted.0, StatusCode::OK, "{}", deleted.1);
    eventually("the deleted instance disappears", || async {
        (server.get(&base, token).await.0 == StatusCode::NOT_FOUND).then_some(())
    })
    .await;
    assert!(
        refused(instance.port),
        "a deleted {} accepts connections",
        instance.engine
    );
    assert!(
        bindable(instance.port),
        "port {} is still bound",
        instance.port
    );
    let dir = server.data_dir.join("instances").join(&instance.id);
    assert!(
        !dir.exists(),
        "the data of a deleted instance is left in {dir:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_postgresql_and_mongodb_through_the_api_on_the_embedded_default() {
    let began = Instant::now();
    ferretdb(); // fails at once, naming .ci/ferretdb, when it is missing
    let mut server = Server::start().await;
    let token = sign_in(&server).await;
    let store = SqliteStore::open(server.data_dir.join("dbtree.sqlite"))
        .await
        .unwrap();
    harvest(&server, &store, &token).await;

    let mut redis = create(&server, &token, "cache", "redis").await;
    let mut postgres = create(&server, &token, "orders", "postgresql").await;
    let mut secrets = vec![redis.password.clone(), postgres.password.clone()];
    let me = server.get("/api/v1/me", &token).await;
    assert_eq!(me.1["balance"], 18 - 3 - 5, "{}", me.1);

    let capacity = server.get("/api/v1/system/capacity", &token).await;
    for fit in capacity.1["fits"].as_array().unwrap() {
        assert_eq!(fit["available"], true, "{}", capacity.1);
    }
    lifecycle(&server, &token, &mut redis, &mut secrets).await;
    lifecycle(&server, &token, &mut postgres, &mut secrets).await;
    // the limit is two live instances: MongoDB once the others are gone
    let mut mongodb = create(&server, &token, "documents", "mongodb").await;
    secrets.push(mongodb.password.clone());
    lifecycle(&server, &token, &mut mongodb, &mut secrets).await;
    assert!(
        server
            .get("/api/v1/instances", &token)
            .await
            .1
            .as_array()
            .unwrap()
            .is_empty()
    );

    // the ledger: two creations debited, nothing refunded, balance = sum of entries
    let history = server
        .get("/api/v1/me/transactions?limit=100", &token)
        .await;
    assert_eq!(history.0, StatusCode::OK, "{}", history.1);
    let items = history.1["items"].as_array().unwrap();
    let creations: Vec<i64> = items
        .iter()
        .filter(|t| t["kind"] == "instance_create")
        .map(|t| t["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(creations.len(), 3, "{}", history.1);
    assert_eq!(creations.iter().sum::<i64>(), -13);
    assert!(
        items.iter().all(|t| t["kind"] != "instance_refund"),
        "{}",
        history.1
    );
    let sum: i64 = items.iter().map(|t| t["amount"].as_i64().unwrap()).sum();
    let balance = server.get("/api/v1/me", &token).await.1["balance"]
        .as_i64()
        .unwrap();
    assert_eq!(balance, sum);
    let report = store.check_invariants().await.unwrap();
    assert!(report.is_clean(), "{report}");
    store.pool().close().await;

    // no password in dbtree's database files (WAL included) while it runs …
    assert_eq!(secrets.len(), 6);
    let files = server.database_files();
    let email = vec![EMAIL.to_owned()];
    assert!(
        files
            .iter()
            .any(|f| !files_containing(f, &email).is_empty()),
        "the scan does not see what the database holds"
    );
    for file in &files {
        let hits = files_containing(file, &secrets);
        assert!(hits.is_empty(), "a password is stored in {hits:?}");
    }
    // … nor anywhere in its data directory or its log once it has stopped
    server.shut_down().await;
    let hits = files_containing(&server.data_dir, &secrets);
    assert!(hits.is_empty(), "a password is left in {hits:?}");
    let log = server.log_text();
    assert!(log.contains("sign-in code for"), "the log was not captured");
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "a password was logged");
    }
    eprintln!("engines end to end: {:?}", began.elapsed());
}
