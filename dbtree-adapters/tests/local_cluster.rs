#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The local cluster against real engines: `redis-server` and PostgreSQL run as processes on
//! this machine, reached with real clients. Every test removes its processes, even on failure.

use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use dbtree_adapters::local::{LocalCluster, LocalConfig};
use dbtree_core::boundary::{
    Cluster, ClusterErrorKind, EventStream, Observation, ProvisionRequest, Teardown,
};
use dbtree_core::ids::{InstanceId, UserId};
use dbtree_core::instance::{
    Credentials, Engine, InstanceName, MilliCpu, NodePort, Password, Resources, RunState,
};
use futures_util::StreamExt;
use redis::AsyncCommands;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::{Connection, Row};
use tempfile::TempDir;

const READY_WITHIN: Duration = Duration::from_secs(60);

static SEED: AtomicU64 = AtomicU64::new(0);

fn next_u32() -> u32 {
    if SEED.load(Ordering::SeqCst) == 0 {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let _ = SEED.compare_exchange(0, nanos | 1, Ordering::SeqCst, Ordering::SeqCst);
    }
    // splitmix64
    let mut z = SEED.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::SeqCst);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as u32
}

fn password() -> Password {
    Password::generate(next_u32).unwrap()
}

fn random_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    for chunk in bytes.chunks_mut(4) {
        chunk.copy_from_slice(&next_u32().to_le_bytes());
    }
    bytes
}

static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// A NodePort nothing listens on (ports 30000–31999, spread by process id between runs).
fn free_port() -> u16 {
    let offset = (std::process::id() % 1000) as u16;
    loop {
        let n = NEXT_PORT.fetch_add(1, Ordering::SeqCst);
        let port = 30000 + (offset + n * 7) % 2000;
        if port == 30080 {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() && refused(port) {
            return port;
        }
    }
}

fn refused(port: u16) -> bool {
    matches!(
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

/// Kills every engine under a data directory when dropped (a test that failed half-way).
struct Reaper(PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(self.0.join("instances")) else {
            return;
        };
        for entry in entries.flatten() {
            if let Ok(pid) = std::fs::read_to_string(entry.path().join("engine.pid")) {
                let pid = pid.trim();
                let group = format!("-{pid}");
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", "--", &group, pid])
                    .status();
            }
        }
    }
}

struct Fixture {
    cluster: LocalCluster,
    events: EventStream,
    _reaper: Reaper,
    dir: TempDir,
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let cluster = LocalCluster::start(LocalConfig::new(dir.path()))
            .await
            .unwrap();
        let events = cluster.events();
        Fixture {
            cluster,
            events,
            _reaper: Reaper(dir.path().to_path_buf()),
            dir,
        }
    }

    fn instance_dir(&self, id: InstanceId) -> PathBuf {
        self.dir.path().join("instances").join(id.to_string())
    }

    async fn provision(&mut self, engine: Engine, password: &Password) -> (InstanceId, u16) {
        let (request, port) = request(engine, password);
        self.cluster.provision(&request).await.unwrap();
        (request.instance, port)
    }
}

fn request(engine: Engine, password: &Password) -> (ProvisionRequest, u16) {
    let port = free_port();
    let request = ProvisionRequest {
        instance: InstanceId::from_random_bytes(random_bytes()),
        owner: UserId::from_random_bytes(random_bytes()),
        name: InstanceName::parse("local-test").unwrap(),
        engine,
        resources: Resources {
            cpu: MilliCpu(250),
            memory_mib: 256,
            disk_gib: 1,
        },
        node_port: NodePort(port),
        run_state: RunState::Running,
        credentials: Credentials::new(engine, password.clone()),
    };
    (request, port)
}

/// The next observation of `id` that `matches`, within a minute.
async fn next_of(
    events: &mut EventStream,
    id: InstanceId,
    matches: impl Fn(&Observation) -> bool,
) -> Observation {
    let wait = async {
        loop {
            let event = events.next().await.expect("the event stream ended");
            eprintln!("event: {event:?}");
            if event.instance == id && matches(&event.observation) {
                return event.observation;
            }
        }
    };
    tokio::time::timeout(READY_WITHIN, wait)
        .await
        .unwrap_or_else(|_| panic!("no matching event for {id} within {READY_WITHIN:?}"))
}

/// Waits for `Ready`, failing at once on `Failed`.
async fn ready(events: &mut EventStream, id: InstanceId) {
    match next_of(events, id, |o| !matches!(o, Observation::Gone)).await {
        Observation::Ready => {}
        other => panic!("expected Ready, got {other:?}"),
    }
}

/// Waits for `Ready` of every instance in `ids`, in any order.
async fn all_ready(events: &mut EventStream, ids: &[InstanceId]) {
    let mut waiting: Vec<InstanceId> = ids.to_vec();
    let wait = async {
        while !waiting.is_empty() {
            let event = events.next().await.expect("the event stream ended");
            eprintln!("event: {event:?}");
            match event.observation {
                Observation::Ready => waiting.retain(|id| *id != event.instance),
                Observation::Failed { reason } if ids.contains(&event.instance) => {
                    panic!("expected Ready, got Failed: {reason}")
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(READY_WITHIN, wait)
        .await
        .unwrap_or_else(|_| panic!("not all of {ids:?} ready within {READY_WITHIN:?}"));
}

async fn redis_with(
    port: u16,
    password: &Password,
) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let url = format!("redis://default:{}@127.0.0.1:{port}/0", password.expose());
    redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await
}

async fn pg_with(port: u16, password: &Password) -> Result<PgConnection, sqlx::Error> {
    let options = PgConnectOptions::new_without_pgpass()
        .host("127.0.0.1")
        .port(port)
        .username("dbtree")
        .password(password.expose())
        .database("postgres")
        .ssl_mode(PgSslMode::Disable);
    PgConnection::connect_with(&options).await
}

fn assert_refused_password(e: &sqlx::Error) {
    let code = e
        .as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("28P01"), "{e}");
}

async fn delete_and_check(fx: &mut Fixture, id: InstanceId, port: u16) {
    assert_eq!(fx.cluster.delete(id).await.unwrap(), Teardown::Complete);
    assert_eq!(
        next_of(&mut fx.events, id, |_| true).await,
        Observation::Gone
    );
    assert!(refused(port), "port {port} still accepts connections");
    assert!(!fx.instance_dir(id).exists(), "the directory is left");
    assert_eq!(fx.cluster.delete(id).await.unwrap(), Teardown::Complete);
}

fn assert_no_secret_on_disk(dir: &Path, password: &Password, allowed: &[&str]) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if !meta.is_file() || meta.len() > 4 << 20 {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let bytes = std::fs::read(&path).unwrap();
        let found = bytes
            .windows(Password::LEN)
            .any(|w| w == password.expose().as_bytes());
        assert!(
            !found || allowed.contains(&name.as_str()),
            "the password is in {path:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_lives_stops_starts_rotates_and_is_deleted() {
    let mut fx = Fixture::new().await;
    let pw = password();
    let (id, port) = fx.provision(Engine::Redis, &pw).await;
    ready(&mut fx.events, id).await;

    let dir = fx.instance_dir(id);
    let conf = std::fs::metadata(dir.join("redis.conf")).unwrap();
    assert_eq!(conf.mode() & 0o777, 0o600);
    if is_root() {
        assert_eq!(
            conf.uid(),
            postgres_uid(),
            "redis.conf belongs to the run-as user"
        );
    }
    assert_no_secret_on_disk(&dir, &pw, &["redis.conf"]);

    let mut con = redis_with(port, &pw).await.unwrap();
    let () = con.set("fruit", "lemon").await.unwrap();
    assert!(
        redis_with(port, &password()).await.is_err(),
        "a wrong password works"
    );
    if is_root() {
        let pid = fx.cluster.pid(id).await.unwrap();
        let owner = std::fs::metadata(format!("/proc/{pid}")).unwrap().uid();
        assert_eq!(
            owner,
            postgres_uid(),
            "redis-server does not run as the run-as user"
        );
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
    assert!(!dir.join("initdb.pw").exists(), "the password file is left");
    assert_no_secret_on_disk(&dir, &pw, &[]);

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

#[tokio::test]
async fn mongodb_without_mongod_is_refused_and_leaves_nothing() {
    if std::process::Command::new("sh")
        .args(["-c", "command -v mongod"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("mongod is installed here: nothing to check");
        return;
    }
    let fx = Fixture::new().await;
    let (request, _) = request(Engine::Mongodb, &password());
    let err = fx.cluster.provision(&request).await.unwrap_err();
    assert_eq!(err.kind, ClusterErrorKind::Permanent);
    assert!(err.message.contains("mongod"), "{}", err.message);
    assert!(!fx.instance_dir(request.instance).exists());
    let unknown = fx
        .cluster
        .set_run_state(request.instance, RunState::Running)
        .await
        .unwrap_err();
    assert_eq!(unknown.kind, ClusterErrorKind::NotFound);
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

fn kill9(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn postgres_uid() -> u32 {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    passwd
        .lines()
        .find_map(|l| {
            let fields: Vec<_> = l.split(':').collect();
            (fields.first() == Some(&"postgres")).then(|| fields[2].parse().unwrap())
        })
        .unwrap()
}
