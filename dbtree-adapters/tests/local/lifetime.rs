//! The engines' lifetime around the driver's: a busy port refuses a new instance without
//! leaving anything, a shutdown stops every engine (data kept) and the next driver brings them
//! back, and processes or accounts no instance owns are removed at start.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use dbtree_adapters::local::{LocalCluster, LocalConfig};
use dbtree_core::boundary::{Cluster, ClusterErrorKind};
use dbtree_core::ids::InstanceId;
use dbtree_core::instance::{Engine, RunState};
use mongodb::bson::{Document, doc};
use redis::AsyncCommands;

use super::fixture::*;
use super::mongo_client::mongo_with;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_port_is_refused_as_busy_and_leaves_nothing() {
    let fx = Fixture::new().await;
    let (request, port) = request(Engine::Redis, &password());
    let _foreign = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let err = fx.cluster.provision(&request).await.unwrap_err();
    assert_eq!(err.kind, ClusterErrorKind::PortBusy, "{}", err.message);
    assert!(err.message.contains(&port.to_string()), "{}", err.message);
    assert!(!fx.instance_dir(request.instance).exists());
    if is_root() {
        assert_eq!(uid_of(&account_of(request.instance)), None);
    }
    assert_eq!(
        fx.cluster
            .set_run_state(request.instance, RunState::Running)
            .await
            .unwrap_err()
            .kind,
        ClusterErrorKind::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_instance_whose_port_was_taken_does_not_start_and_says_so() {
    let mut fx = Fixture::new().await;
    let pw = password();
    let (id, port) = fx.provision(Engine::Redis, &pw).await;
    ready(&mut fx.events, id).await;
    fx.cluster
        .set_run_state(id, RunState::Stopped)
        .await
        .unwrap();
    let foreign = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let err = fx
        .cluster
        .set_run_state(id, RunState::Running)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ClusterErrorKind::PortBusy, "{}", err.message);
    assert!(
        err.message.contains(&port.to_string()) && err.message.contains("another program"),
        "{}",
        err.message
    );
    assert_eq!(fx.cluster.pid(id).await, None, "an engine was started");
    // dbtree keeps it stopped; once the port is free it starts, data and password as before
    fx.cluster
        .set_run_state(id, RunState::Stopped)
        .await
        .unwrap();
    drop(foreign);
    fx.cluster
        .set_run_state(id, RunState::Running)
        .await
        .unwrap();
    ready(&mut fx.events, id).await;
    redis_with(port, &pw).await.unwrap();
    delete_and_check(&mut fx, id, port).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_stops_every_engine_and_the_next_driver_brings_them_back() {
    let mut fx = Fixture::new().await;
    fx.require_mongodb();
    let (pw_redis, pw_pg, pw_mongo) = (password(), password(), password());
    let (redis_id, redis_port) = fx.provision(Engine::Redis, &pw_redis).await;
    let (pg_id, pg_port) = fx.provision(Engine::Postgresql, &pw_pg).await;
    let (mongo_id, mongo_port) = fx.provision(Engine::Mongodb, &pw_mongo).await;
    let all = [redis_id, pg_id, mongo_id];
    all_ready(&mut fx.events, &all).await;
    let mut con = redis_with(redis_port, &pw_redis).await.unwrap();
    let () = con.set("fruit", "lemon").await.unwrap();
    drop(con);
    let mut pg = pg_with(pg_port, &pw_pg).await.unwrap();
    sqlx::raw_sql("CREATE TABLE fruit (name text); INSERT INTO fruit VALUES ('lemon')")
        .execute(&mut pg)
        .await
        .unwrap();
    drop(pg);
    let mongo = mongo_with(mongo_port, &pw_mongo).await.unwrap();
    mongo
        .database("dbtree")
        .collection::<Document>("fruit")
        .insert_one(doc! { "name": "lemon" })
        .await
        .unwrap();
    drop(mongo);

    assert_eq!(fx.cluster.shut_down().await, 3);
    assert!(
        refused(redis_port) && refused(pg_port) && refused(mongo_port),
        "an engine still listens"
    );
    assert!(
        working_in_instances(&fx).is_empty(),
        "engine processes survive the shutdown"
    );

    fx.cluster = LocalCluster::start(LocalConfig::new(fx.dir.path()))
        .await
        .unwrap();
    fx.events = fx.cluster.events();
    all_ready(&mut fx.events, &all).await;
    let mut con = redis_with(redis_port, &pw_redis).await.unwrap();
    let fruit: String = con.get("fruit").await.unwrap();
    assert_eq!(fruit, "lemon");
    let mut pg = pg_with(pg_port, &pw_pg).await.unwrap();
    let name: String = sqlx::query_scalar("SELECT name FROM fruit")
        .fetch_one(&mut pg)
        .await
        .unwrap();
    assert_eq!(name, "lemon");
    drop(pg);
    let mongo = mongo_with(mongo_port, &pw_mongo).await.unwrap();
    let found = mongo
        .database("dbtree")
        .collection::<Document>("fruit")
        .find_one(doc! {})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.get_str("name").unwrap(), "lemon");
    drop(mongo);
    delete_and_check(&mut fx, redis_id, redis_port).await;
    delete_and_check(&mut fx, pg_id, pg_port).await;
    delete_and_check(&mut fx, mongo_id, mongo_port).await;
}

/// Pids of processes whose working directory is under the fixture's `instances/`.
fn working_in_instances(fx: &Fixture) -> Vec<i32> {
    let instances = fx.dir.path().canonicalize().unwrap().join("instances");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let cwd = std::fs::read_link(e.path().join("cwd")).ok()?;
            let text = cwd.to_str()?.trim_end_matches(" (deleted)").to_owned();
            let state = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let zombie = state
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
            (text.starts_with(instances.to_str()?) && !zombie).then_some(pid)
        })
        .collect()
}

/// The comment (GECOS) field of a user.
fn comment_of(name: &str) -> String {
    std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .find_map(|l| {
            let f: Vec<_> = l.split(':').collect();
            (f[0] == name).then(|| f[4].to_owned())
        })
        .unwrap()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_no_instance_owns_is_removed_at_start() {
    let mut fx = Fixture::new().await;
    let pw = password();
    let (stopped, stopped_port) = fx.provision(Engine::Redis, &pw).await;
    ready(&mut fx.events, stopped).await;
    fx.cluster
        .set_run_state(stopped, RunState::Stopped)
        .await
        .unwrap();
    let instances = fx.dir.path().join("instances");

    // A process left in a stopped instance's directory, and one whose instance directory was
    // removed under it (what a killed server left behind).
    let mut in_stopped = Command::new("sleep")
        .arg("300")
        .current_dir(instances.join(stopped.to_string()))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let gone = InstanceId::from_random_bytes(random_bytes());
    let gone_dir = instances.join(gone.to_string());
    std::fs::create_dir_all(&gone_dir).unwrap();
    let mut in_gone = Command::new("sleep")
        .arg("300")
        .current_dir(&gone_dir)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    std::fs::remove_dir_all(&gone_dir).unwrap();
    // As root: an account of this data directory whose instance is gone, and one of another
    // data directory (another server on this machine), which is not ours to remove.
    let orphan_account = account_of(InstanceId::from_random_bytes(random_bytes()));
    let foreign_account = account_of(InstanceId::from_random_bytes(random_bytes()));
    if is_root() {
        let ours = comment_of(&account_of(stopped));
        assert!(ours.starts_with("dbtree "), "{ours}");
        for (account, comment) in [
            (&orphan_account, ours.as_str()),
            (&foreign_account, "dbtree 0000000000000000"),
        ] {
            let made = Command::new("useradd")
                .args([
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                ])
                .args(["--comment", comment])
                .arg(account)
                .status()
                .unwrap();
            assert!(made.success());
        }
    }

    drop(std::mem::replace(
        &mut fx.cluster,
        LocalCluster::start(LocalConfig::new(fx.dir.path()))
            .await
            .unwrap(),
    ));
    fx.events = fx.cluster.events();
    let reaped = |child: &mut std::process::Child| {
        let pid = child.id();
        let _ = child.try_wait();
        !alive(pid)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !(reaped(&mut in_stopped) && reaped(&mut in_gone)) {
        assert!(
            std::time::Instant::now() < deadline,
            "a process no instance owns survives the start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if is_root() {
        assert_eq!(uid_of(&orphan_account), None, "the orphan account is left");
        assert!(
            uid_of(&foreign_account).is_some(),
            "another data directory's account was removed"
        );
        let _ = Command::new("userdel").arg(&foreign_account).status();
        assert!(
            uid_of(&account_of(stopped)).is_some(),
            "a live instance lost its account"
        );
    }
    assert!(refused(stopped_port), "the stopped instance was started");
    delete_and_check(&mut fx, stopped, stopped_port).await;
}
