//! What the local cluster's tests share: a driver over a temporary data directory that kills
//! every engine and removes every instance account it made when dropped (a test that failed
//! half-way), free ports, requests, waiting for events, and real clients.
#![allow(dead_code, unreachable_pub)]

use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use dbtree_adapters::local::{LocalCluster, LocalConfig};
use dbtree_core::boundary::{
    Cluster, EngineSupport, EventStream, Observation, ProvisionRequest, Teardown,
};
use dbtree_core::ids::{InstanceId, UserId};
use dbtree_core::instance::{
    Credentials, Engine, InstanceName, MilliCpu, NodePort, Password, Resources, RunState,
};
use futures_util::StreamExt;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use tempfile::TempDir;

const READY_WITHIN: Duration = Duration::from_secs(60);

static SEED: AtomicU64 = AtomicU64::new(0);

pub fn next_u32() -> u32 {
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

pub fn password() -> Password {
    Password::generate(next_u32).unwrap()
}

pub fn random_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    for chunk in bytes.chunks_mut(4) {
        chunk.copy_from_slice(&next_u32().to_le_bytes());
    }
    bytes
}

static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// A NodePort nothing listens on (ports 30000–31999, spread by process id between runs).
pub fn free_port() -> u16 {
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

pub fn refused(port: u16) -> bool {
    matches!(
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

/// Kills every engine under a data directory, and removes the instance accounts, when dropped
/// (a test that failed half-way).
pub struct Reaper(pub PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        reap(&self.0);
    }
}

/// Kills every engine recorded under `data_dir` and removes its instance's account.
pub fn reap(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(data_dir.join("instances")) else {
        return;
    };
    for entry in entries.flatten() {
        if let Ok(pid) = std::fs::read_to_string(entry.path().join("engine.pid")) {
            let pid = pid.trim();
            let group = format!("-{pid}");
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &group, pid])
                .stderr(std::process::Stdio::null())
                .status();
        }
        if let Some(id) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
            remove_account(id);
        }
    }
}

/// The system account of an instance (when the driver runs as root).
pub fn account_of(id: InstanceId) -> String {
    let hex: String = id
        .to_string()
        .chars()
        .filter(|c| *c != '-')
        .take(16)
        .collect();
    format!("dbtree-{hex}")
}

/// The uid of a user, if it exists.
pub fn uid_of(name: &str) -> Option<u32> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    passwd.lines().find_map(|l| {
        let fields: Vec<_> = l.split(':').collect();
        (fields.first() == Some(&name)).then(|| fields[2].parse().unwrap())
    })
}

fn remove_account(id: InstanceId) {
    let name = account_of(id);
    if is_root() && uid_of(&name).is_some() {
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-u", &name])
            .status();
        std::thread::sleep(Duration::from_millis(200));
        let _ = std::process::Command::new("userdel")
            .arg(&name)
            .stderr(std::process::Stdio::null())
            .status();
    }
}

pub struct Fixture {
    pub cluster: LocalCluster,
    pub events: EventStream,
    pub _reaper: Reaper,
    pub dir: TempDir,
}

impl Fixture {
    /// A driver on a fresh data directory; fails at once, naming the Debian package, if
    /// `redis-server` or PostgreSQL's server programs (the engines) are not installed.
    pub async fn new() -> Fixture {
        for program in dbtree_testkit::Program::ALL {
            assert!(
                program.locate().is_ok(),
                "the local engines need {} here: install the Debian package `{}`, or run the \
                 tests with `cargo xtask test`, which installs what is missing",
                program.describe(),
                program.debian_package()
            );
        }
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

    pub fn instance_dir(&self, id: InstanceId) -> PathBuf {
        self.dir.path().join("instances").join(id.to_string())
    }

    /// Fails at once, naming the script that builds it, if FerretDB (or `mongod`) is missing.
    pub fn require_mongodb(&self) {
        if let EngineSupport::Unavailable { reason } = self.cluster.engine_support(Engine::Mongodb)
        {
            panic!(
                "MongoDB instances need mongod or FerretDB: run .ci/ferretdb first (it builds \
                 FerretDB into ~/.cache/dbtree), or set DBTREE_FERRETDB ({reason})"
            );
        }
    }

    pub async fn provision(&mut self, engine: Engine, password: &Password) -> (InstanceId, u16) {
        let (request, port) = request(engine, password);
        self.cluster.provision(&request).await.unwrap();
        (request.instance, port)
    }
}

pub fn request(engine: Engine, password: &Password) -> (ProvisionRequest, u16) {
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
pub async fn next_of(
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
pub async fn ready(events: &mut EventStream, id: InstanceId) {
    match next_of(events, id, |o| !matches!(o, Observation::Gone)).await {
        Observation::Ready => {}
        other => panic!("expected Ready, got {other:?}"),
    }
}

/// Waits for `Ready` of every instance in `ids`, in any order.
pub async fn all_ready(events: &mut EventStream, ids: &[InstanceId]) {
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

pub async fn redis_with(
    port: u16,
    password: &Password,
) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let url = format!("redis://dbtree:{}@127.0.0.1:{port}/0", password.expose());
    redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await
}

pub async fn pg_with(port: u16, password: &Password) -> Result<PgConnection, sqlx::Error> {
    let options = PgConnectOptions::new_without_pgpass()
        .host("127.0.0.1")
        .port(port)
        .username("dbtree")
        .password(password.expose())
        .database("dbtree")
        .ssl_mode(PgSslMode::Disable);
    PgConnection::connect_with(&options).await
}

pub fn assert_refused_password(e: &sqlx::Error) {
    let code = e
        .as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("28P01"), "{e}");
}

pub async fn delete_and_check(fx: &mut Fixture, id: InstanceId, port: u16) {
    assert_eq!(fx.cluster.delete(id).await.unwrap(), Teardown::Complete);
    assert_eq!(
        next_of(&mut fx.events, id, |_| true).await,
        Observation::Gone
    );
    assert!(refused(port), "port {port} still accepts connections");
    assert!(!fx.instance_dir(id).exists(), "the directory is left");
    assert_eq!(fx.cluster.delete(id).await.unwrap(), Teardown::Complete);
}

pub fn assert_no_secret_on_disk(dir: &Path, password: &Password, allowed: &[&str]) {
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

pub fn kill9(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

pub fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
