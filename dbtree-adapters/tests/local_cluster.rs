#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The local cluster against real engines: `redis-server`, PostgreSQL and FerretDB run as
//! processes on this machine, reached with real clients. Every test removes its processes (and,
//! as root, the instance accounts), even on failure.

mod local {
    pub(crate) mod fixture;
    pub(crate) mod lifetime;
    pub(crate) mod mongo_client;
    pub(crate) mod mongodb;
}

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use dbtree_adapters::local::{LocalCluster, LocalConfig};
use dbtree_core::boundary::{Cluster, Observation};
use dbtree_core::instance::{Credentials, Engine, NodePort, RunState};
use redis::AsyncCommands;
use sqlx::{Connection, Row};

use local::fixture::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_lives_stops_starts_rotates_and_is_deleted() {
    let mut fx = Fixture::new().await;
    let pw = password();
    let (id, port) = fx.provision(Engine::Redis, &pw).await;
    ready(&mut fx.events, id).await;

    let dir = fx.instance_dir(id);
    for file in ["redis.conf", "admin.pw", "instance.json", "engine.log"] {
        let meta = std::fs::metadata(dir.join(file)).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600, "{file}");
        assert_eq!(meta.uid(), own_uid(), "{file} is the driver's");
    }
    let engine_dir = std::fs::metadata(dir.join("engine")).unwrap();
    assert_eq!(engine_dir.mode() & 0o777, 0o700);
    assert_no_secret_on_disk(&dir, &pw, &[]);
    // The data directory: its owner only, plus traversal (never listing) for the instances'
    // own accounts when running as root; the one rule the server applies too.
    let data_dir = std::fs::metadata(fx.dir.path()).unwrap().mode() & 0o777;
    let expected = if is_root() { 0o701 } else { 0o700 };
    assert_eq!(data_dir, expected, "data directory mode {data_dir:o}");
    assert_eq!(dbtree_adapters::local::data_dir_mode(), expected);

    let mut con = redis_with(port, &pw).await.unwrap();
    let () = con.set("fruit", "lemon").await.unwrap();
    assert!(
        redis_with(port, &password()).await.is_err(),
        "a wrong password works"
    );
    let pid = fx.cluster.pid(id).await.unwrap();
    let owner = std::fs::metadata(format!("/proc/{pid}")).unwrap().uid();
    if is_root() {
        let account = uid_of(&account_of(id)).expect("the instance has an account of its own");
        assert_eq!(
            owner, account,
            "redis-server runs as the instance's account"
        );
        assert_eq!(engine_dir.uid(), account);
        assert_ne!(Some(owner), uid_of("redis"));
        assert_ne!(Some(owner), uid_of("postgres"));
    } else {
        assert_eq!(owner, own_uid());
    }
    let mut anonymous = redis::Client::open(format!("redis://127.0.0.1:{port}/0"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let denied: redis::RedisResult<Option<String>> = anonymous.get("fruit").await;
    assert!(denied.is_err(), "no password needed");

    // A repeated provision changes nothing and reports readiness again.
    let (mut again, _) = request(Engine::Redis, &password());
    again.instance = id;
    again.node_port = NodePort(port);
    fx.cluster.provision(&again).await.unwrap();
    ready(&mut fx.events, id).await;

    fx.cluster
        .set_run_state(id, RunState::Stopped)
        .await
        .unwrap();
    assert!(refused(port), "a stopped instance accepts connections");
    fx.cluster
        .set_run_state(id, RunState::Stopped)
        .await
        .unwrap();
    fx.cluster
        .set_run_state(id, RunState::Running)
        .await
        .unwrap();
    ready(&mut fx.events, id).await;
    let mut con = redis_with(port, &pw).await.unwrap();
    let fruit: String = con.get("fruit").await.unwrap();
    assert_eq!(fruit, "lemon");

    let new = password();
    let pid = fx.cluster.pid(id).await;
    fx.cluster
        .rotate_credentials(id, &Credentials::new(Engine::Redis, new.clone()))
        .await
        .unwrap();
    assert_eq!(
        fx.cluster.pid(id).await,
        pid,
        "applied by a restart, not CONFIG SET"
    );
    let survived: redis::RedisResult<String> = con.get("fruit").await;
    assert!(
        survived.is_err(),
        "a session signed in with the old password survives"
    );
    assert!(
        redis_with(port, &pw).await.is_err(),
        "the old password still works"
    );
    let mut con = redis_with(port, &new).await.unwrap();
    let fruit: String = con.get("fruit").await.unwrap();
    assert_eq!(fruit, "lemon");
    assert_no_secret_on_disk(&dir, &pw, &[]);

    delete_and_check(&mut fx, id, port).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lives_stops_starts_rotates_and_is_deleted() {
    let mut fx = Fixture::new().await;
    let pw = password();
    let began = std::time::Instant::now();
    let (id, port) = fx.provision(Engine::Postgresql, &pw).await;
    let provisioned = began.elapsed();
    ready(&mut fx.events, id).await;
    eprintln!(
        "postgres: provision returned after {provisioned:?}, ready after {:?}",
        began.elapsed()
    );

    let dir = fx.instance_dir(id);
    assert!(
        !dir.join("engine/initdb.pw").exists(),
        "the password file is left"
    );
    assert_no_secret_on_disk(&dir, &pw, &[]);
    let hba = std::fs::read_to_string(dir.join("pg_hba.conf")).unwrap();
    assert!(!hba.contains("trust"), "{hba}");

    let mut con = pg_with(port, &pw).await.unwrap();
    sqlx::raw_sql("CREATE TABLE fruit (name text); INSERT INTO fruit VALUES ('lemon')")
        .execute(&mut con)
        .await
        .unwrap();
    con.close().await.unwrap();
    assert_refused_password(&pg_with(port, &password()).await.unwrap_err());

    fx.cluster
        .set_run_state(id, RunState::Paused)
        .await
        .unwrap();
    assert!(refused(port), "a paused instance accepts connections");
    fx.cluster
        .set_run_state(id, RunState::Running)
        .await
        .unwrap();
    ready(&mut fx.events, id).await;
    let mut con = pg_with(port, &pw).await.unwrap();
    let row = sqlx::query("SELECT name FROM fruit")
        .fetch_one(&mut con)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>("name"), "lemon");

    let new = password();
    fx.cluster
        .rotate_credentials(id, &Credentials::new(Engine::Postgresql, new.clone()))
        .await
        .unwrap();
    assert!(
        sqlx::query("SELECT 1").execute(&mut con).await.is_err(),
        "a session signed in with the old password survives"
    );
    assert_refused_password(&pg_with(port, &pw).await.unwrap_err());
    let mut con = pg_with(port, &new).await.unwrap();
    let row = sqlx::query("SELECT name FROM fruit")
        .fetch_one(&mut con)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>("name"), "lemon");
    con.close().await.unwrap();
    assert_no_secret_on_disk(&dir, &new, &[]);

    // A killed server is reported, its orphans are cleared, and it comes back.
    let pid = fx.cluster.pid(id).await.unwrap();
    kill9(pid);
    match next_of(&mut fx.events, id, |_| true).await {
        Observation::Failed { reason } => assert!(reason.contains("SIGKILL"), "{reason}"),
        other => panic!("expected Failed, got {other:?}"),
    }
    ready(&mut fx.events, id).await;
    let mut con = pg_with(port, &new).await.unwrap();
    let row = sqlx::query("SELECT name FROM fruit")
        .fetch_one(&mut con)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>("name"), "lemon");
    con.close().await.unwrap();

    delete_and_check(&mut fx, id, port).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_driver_adopts_running_engines_and_restarts_dead_ones() {
    let mut fx = Fixture::new().await;
    let (pw_live, pw_dead) = (password(), password());
    let (live, live_port) = fx.provision(Engine::Redis, &pw_live).await;
    let (dead, dead_port) = fx.provision(Engine::Redis, &pw_dead).await;
    all_ready(&mut fx.events, &[live, dead]).await;
    for (port, pw) in [(live_port, &pw_live), (dead_port, &pw_dead)] {
        let mut con = redis_with(port, pw).await.unwrap();
        let () = con.set("fruit", "lemon").await.unwrap();
    }
    let live_pid = fx.cluster.pid(live).await.unwrap();
    let dead_pid = fx.cluster.pid(dead).await.unwrap();

    // The driver goes away; one engine dies while none watches.
    let old = std::mem::replace(
        &mut fx.cluster,
        LocalCluster::start(LocalConfig::new(fx.dir.path().join("unused")))
            .await
            .unwrap(),
    );
    drop(old);
    kill9(dead_pid);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        redis_with(live_port, &pw_live).await.is_ok(),
        "the engine died with its driver"
    );

    fx.cluster = LocalCluster::start(LocalConfig::new(fx.dir.path()))
        .await
        .unwrap();
    fx.events = fx.cluster.events();
    all_ready(&mut fx.events, &[live, dead]).await;
    assert_eq!(
        fx.cluster.pid(live).await,
        Some(live_pid),
        "not adopted but restarted"
    );
    assert_ne!(fx.cluster.pid(dead).await, Some(dead_pid));
    for (port, pw) in [(live_port, &pw_live), (dead_port, &pw_dead)] {
        let mut con = redis_with(port, pw).await.unwrap();
        let fruit: String = con.get("fruit").await.unwrap();
        assert_eq!(fruit, "lemon");
    }

    // The adopted engine is still supervised and still stoppable.
    kill9(live_pid);
    match next_of(&mut fx.events, live, |_| true).await {
        Observation::Failed { reason } => assert!(reason.contains("redis-server"), "{reason}"),
        other => panic!("expected Failed, got {other:?}"),
    }
    ready(&mut fx.events, live).await;
    fx.cluster
        .set_run_state(dead, RunState::Stopped)
        .await
        .unwrap();
    assert!(refused(dead_port));

    delete_and_check(&mut fx, live, live_port).await;
    delete_and_check(&mut fx, dead, dead_port).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_engine_is_reported_failed_and_restarted() {
    let mut fx = Fixture::new().await;
    let pw = password();
    let (id, port) = fx.provision(Engine::Redis, &pw).await;
    ready(&mut fx.events, id).await;
    let mut con = redis_with(port, &pw).await.unwrap();
    let () = con.set("fruit", "lemon").await.unwrap();

    let pid = fx.cluster.pid(id).await.unwrap();
    kill9(pid);
    match next_of(&mut fx.events, id, |_| true).await {
        Observation::Failed { reason } => {
            assert!(reason.contains("SIGKILL"), "{reason}");
            assert!(!reason.contains(pw.expose()));
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    ready(&mut fx.events, id).await;
    assert_ne!(fx.cluster.pid(id).await, Some(pid));
    let mut con = redis_with(port, &pw).await.unwrap();
    let fruit: String = con.get("fruit").await.unwrap();
    assert_eq!(fruit, "lemon");

    delete_and_check(&mut fx, id, port).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_that_cannot_start_is_reported_with_its_last_log_line() {
    let mut fx = Fixture::new().await;
    let pw = password();
    let (id, port) = fx.provision(Engine::Redis, &pw).await;
    ready(&mut fx.events, id).await;
    fx.cluster
        .set_run_state(id, RunState::Stopped)
        .await
        .unwrap();
    let conf = fx.instance_dir(id).join("redis.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("no-such-directive yes\n");
    std::fs::write(&conf, text).unwrap();

    fx.cluster
        .set_run_state(id, RunState::Running)
        .await
        .unwrap();
    match next_of(&mut fx.events, id, |_| true).await {
        Observation::Failed { reason } => {
            assert!(
                reason.starts_with("redis-server stopped before accepting connections"),
                "{reason}"
            );
            assert!(reason.contains("exited with status 1"), "{reason}");
            assert!(reason.contains("Bad directive"), "{reason}");
            assert!(!reason.contains(pw.expose()));
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    // Deleting ends the restart attempts.
    delete_and_check(&mut fx, id, port).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(refused(port));
}

fn own_uid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}
