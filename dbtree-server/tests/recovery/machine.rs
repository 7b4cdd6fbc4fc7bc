//! One dbtree "process" over files that outlive it: a SQLite store and a local cluster data
//! directory in a temporary directory, wired into an `App` the way `main.rs` wires the embedded
//! default (with a manual clock and a recording mailer), so a test can crash it (drop it with
//! an operation half-way) and boot a new one on the same files.

use std::collections::HashSet;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dbtree_adapters::local::{LocalCluster, LocalConfig};
use dbtree_adapters::memory::{ManualClock, MemoryQuizLock, MemoryRateLimiter, RecordingMailer};
use dbtree_adapters::sqlite::SqliteStore;
use dbtree_adapters::system::OsEntropy;
use dbtree_core::boundary::{
    Cluster, ClusterError, EventStream, ProvisionRequest, Teardown, UsageReport, User, UserStore,
};
use dbtree_core::ids::InstanceId;
use dbtree_core::instance::{Credentials, NodePortPolicy, RunState};
use dbtree_core::policy::Policy;
use dbtree_core::service::{App, Deps};
use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

pub(crate) const EMAIL: &str = "crash@example.org";
pub(crate) const DEADLINE: Duration = Duration::from_secs(60);

/// Where a provisioning dies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CrashPoint {
    /// After the debit and the instance row are committed, before the engine driver is called.
    BeforeClusterCall,
    /// After the engine driver accepted the instance, before the creation returns.
    AfterClusterCall,
}

/// The real local cluster with a crash injected into `provision`: the call never returns, at
/// the chosen point, so the test can kill the creation exactly there. Every other operation is
/// the local cluster's own.
pub(crate) struct CrashingCluster {
    inner: Arc<LocalCluster>,
    point: CrashPoint,
    /// Signalled once provisioning has reached the crash point.
    pub(crate) reached: Notify,
    /// The request that reached the crash point (the test's view of the lost response).
    pub(crate) request: Mutex<Option<ProvisionRequest>>,
}

#[async_trait]
impl Cluster for CrashingCluster {
    async fn provision(&self, request: &ProvisionRequest) -> Result<(), ClusterError> {
        if self.point == CrashPoint::AfterClusterCall {
            self.inner.provision(request).await?;
        }
        *self.request.lock().unwrap() = Some(request.clone());
        self.reached.notify_one();
        std::future::pending().await
    }

    async fn set_run_state(&self, id: InstanceId, state: RunState) -> Result<(), ClusterError> {
        self.inner.set_run_state(id, state).await
    }

    async fn rotate_credentials(
        &self,
        id: InstanceId,
        credentials: &Credentials,
    ) -> Result<(), ClusterError> {
        self.inner.rotate_credentials(id, credentials).await
    }

    async fn delete(&self, id: InstanceId) -> Result<Teardown, ClusterError> {
        self.inner.delete(id).await
    }

    fn events(&self) -> EventStream {
        self.inner.events()
    }

    async fn usage(&self, id: InstanceId) -> Result<UsageReport, ClusterError> {
        self.inner.usage(id).await
    }

    async fn held_instances(&self) -> Result<Vec<InstanceId>, ClusterError> {
        self.inner.held_instances().await
    }
}

/// The files a dbtree process leaves behind.
pub(crate) struct Disk {
    dir: tempfile::TempDir,
    ports: (u16, u16),
}

impl Drop for Disk {
    /// Kills engines a failed test left running (engines outlive their driver by design) and,
    /// as root, removes the instances' accounts.
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(self.data_dir().join("instances")) else {
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
            let name = entry.file_name().to_string_lossy().replace('-', "");
            if name.len() == 32 {
                let account = format!("dbtree-{}", &name[..16]);
                for (tool, args) in [("pkill", vec!["-KILL", "-u"]), ("userdel", vec![])] {
                    let _ = std::process::Command::new(tool)
                        .args(args)
                        .arg(&account)
                        .stderr(std::process::Stdio::null())
                        .status();
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

pub(crate) fn refused(port: u16) -> bool {
    matches!(
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

/// Ten consecutive free NodePorts, distinct per test of this process and apart from other
/// processes' (spread by process id).
fn free_block() -> (u16, u16) {
    static TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let blocks = 190u16;
    let start = (std::process::id() % u32::from(blocks)) as u16;
    let mut taken = TAKEN.lock().unwrap();
    let taken = taken.get_or_insert_with(HashSet::new);
    for n in 0..blocks {
        let first = 30100 + ((start + 97 + n * 7) % blocks) * 10;
        let last = first + 9;
        if !taken.contains(&first)
            && (first..=last).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok() && refused(p))
        {
            taken.insert(first);
            return (first, last);
        }
    }
    panic!("no block of ten free ports in 30100-31999");
}

impl Disk {
    pub(crate) fn new() -> Disk {
        Disk {
            dir: tempfile::tempdir().unwrap(),
            ports: free_block(),
        }
    }

    pub(crate) fn database(&self) -> PathBuf {
        self.dir.path().join("dbtree.sqlite")
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("dbtree-data")
    }

    pub(crate) fn instance_dir(&self, id: InstanceId) -> PathBuf {
        self.data_dir().join("instances").join(id.to_string())
    }

    fn policy(&self) -> Policy {
        let mut policy = Policy::default();
        policy.instances.node_ports = NodePortPolicy {
            first: self.ports.0,
            last: self.ports.1,
            reserved: Default::default(),
        };
        policy
    }

    /// Boots a process at `now`: opens (and migrates) the store, starts the local cluster on
    /// the data directory (adopting what it finds), wraps it if `crash` says so.
    pub(crate) async fn boot(&self, now: DateTime<Utc>, crash: Option<CrashPoint>) -> Machine {
        let store = SqliteStore::open(self.database()).await.unwrap();
        store.migrate().await.unwrap();
        let local = Arc::new(
            LocalCluster::start(LocalConfig::new(self.data_dir()))
                .await
                .unwrap(),
        );
        let crashing = crash.map(|point| {
            Arc::new(CrashingCluster {
                inner: local.clone(),
                point,
                reached: Notify::new(),
                request: Mutex::new(None),
            })
        });
        let cluster: Arc<dyn Cluster> = match &crashing {
            Some(c) => c.clone(),
            None => local.clone(),
        };
        let clock = Arc::new(ManualClock::new(now));
        let mailer = Arc::new(RecordingMailer::new());
        let app = App::new(Deps {
            store: Arc::new(store.clone()),
            quiz_lock: Arc::new(MemoryQuizLock::new(clock.clone())),
            rate_limiter: Arc::new(MemoryRateLimiter::new(clock.clone())),
            mailer: mailer.clone(),
            cluster: cluster.clone(),
            clock: clock.clone(),
            entropy: Arc::new(OsEntropy),
            policy: Arc::new(self.policy()),
        });
        app.prepare().await.unwrap();
        Machine {
            app,
            store,
            cluster,
            crashing,
            clock,
            mailer,
            follower: None,
        }
    }
}

/// A running dbtree process.
pub(crate) struct Machine {
    pub(crate) app: App,
    pub(crate) store: SqliteStore,
    pub(crate) cluster: Arc<dyn Cluster>,
    pub(crate) crashing: Option<Arc<CrashingCluster>>,
    pub(crate) clock: Arc<ManualClock>,
    mailer: Arc<RecordingMailer>,
    follower: Option<JoinHandle<()>>,
}

impl Machine {
    /// Signs in (registering on first use) and returns the user.
    pub(crate) async fn sign_in(&self) -> User {
        self.app.accounts.request_code(EMAIL, None).await.unwrap();
        let code = self.mailer.last_code_for(EMAIL).unwrap();
        let signed = self.app.accounts.verify(EMAIL, &code, None).await.unwrap();
        self.store.user(signed.session.user).await.unwrap().unwrap()
    }

    /// Follows the cluster's observations as the server's follower job does.
    pub(crate) fn follow(&mut self) {
        let (app, mut events) = (self.app.clone(), self.cluster.events());
        self.follower = Some(tokio::spawn(async move {
            while let Some(event) = events.next().await {
                app.instances.observe(&event).await.unwrap();
            }
        }));
    }

    /// The process dies: its tasks stop, its connections close; the files stay.
    pub(crate) async fn crash(mut self) {
        if let Some(follower) = self.follower.take() {
            follower.abort();
        }
        self.store.pool().close().await;
    }
}

/// Polls `attempt` until it yields a value, failing with `what` after [`DEADLINE`].
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{what}: not within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
