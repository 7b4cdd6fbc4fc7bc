//! The local cluster: each instance runs as a real database process on this machine
//! (`redis-server`, PostgreSQL's `postgres`, `mongod`), bound to its NodePort on a configured
//! host. The zero-setup cluster of the embedded default.
//!
//! # Files
//!
//! Instances live in `data_dir/instances/<instance-id>/`. That directory belongs to the driver
//! and holds `instance.json` (engine, port, resources and desired run state; never the
//! password), the engine's pid and its log. Its `engine/` directory belongs to the run-as user
//! (mode 0700) and holds the engine's data and unix sockets.
//!
//! # Processes
//!
//! Engines run as the run-as user, with an empty environment, in a process group of their
//! own, and are never killed when the driver exits: a driver started again on the same data
//! directory adopts the engines still running (checked by pid, command line and owner) and
//! starts those that should run but do not. A supervisor task per process reports
//! [`Observation::Ready`] once the engine serves, and [`Observation::Failed`] if it exits or is
//! not serving within 30 s; after a crash it restarts the engine with a growing backoff (up to
//! five times in a row).
//!
//! # Passwords
//!
//! A password lives only in the engine's own authentication: Redis's `redis.conf` (mode 0600,
//! owned by the run-as user), PostgreSQL's catalog (set through `initdb --pwfile` with a
//! temporary 0600 file removed right after, changed with `ALTER ROLE` over the private unix
//! socket with statement logging off), MongoDB's user store. For Redis and MongoDB the driver
//! also keeps the current password in memory, to change it later; nothing is logged.

mod disk;
mod engines;
mod host;
mod lifecycle;
mod process;
mod shared;
mod supervisor;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use dbtree_core::boundary::{
    Cluster, ClusterError, EventStream, Observation, ProvisionRequest, Teardown, UsageReport,
};
use dbtree_core::ids::InstanceId;
use dbtree_core::instance::{Credentials, Engine, RunState};

use self::host::{Binaries, Host, RunAs, io_error};
use self::shared::Shared;

/// How the local cluster runs instances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalConfig {
    /// Where instances live (`data_dir/instances/<instance-id>/`); created if missing.
    pub data_dir: PathBuf,
    /// The address engines listen on (default `127.0.0.1`).
    pub bind_host: String,
    /// The system user engines run as. By default: `postgres` when the driver runs as root and
    /// that user exists (PostgreSQL refuses to run as root), otherwise the driver's own user.
    pub run_as: Option<String>,
}

impl LocalConfig {
    /// Instances under `data_dir`, listening on `127.0.0.1`, run as the default user.
    pub fn new(data_dir: impl Into<PathBuf>) -> LocalConfig {
        LocalConfig {
            data_dir: data_dir.into(),
            bind_host: "127.0.0.1".to_owned(),
            run_as: None,
        }
    }
}

/// Runs instances as database processes on this machine.
pub struct LocalCluster {
    shared: Arc<Shared>,
}

impl fmt::Debug for LocalCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = &self.shared.host;
        f.debug_struct("LocalCluster")
            .field("instances_dir", &host.instances_dir)
            .field("bind_host", &host.bind_host)
            .field("run_as", &host.run_as.name)
            .field("instances", &self.shared.len())
            .finish()
    }
}

impl LocalCluster {
    /// Finds the engine binaries, prepares the data directory, and adopts the instances found
    /// there: engines that should run and still do are watched again, those that should run
    /// but do not are started; readiness is reported as events (the first stream from
    /// [`Cluster::events`] also receives the events observed before it was opened). When
    /// engines run as another user, the data directory is made traversable (not listable) by
    /// that user.
    ///
    /// # Errors
    /// [`ClusterError`] (permanent) if the run-as user does not exist or cannot reach the data
    /// directory, or the data directory cannot be created.
    pub async fn start(config: LocalConfig) -> Result<LocalCluster, ClusterError> {
        let run_as = RunAs::resolve(config.run_as.as_deref())?;
        let data_dir = config.data_dir;
        std::fs::create_dir_all(&data_dir).map_err(|e| io_error("creating", &data_dir, &e))?;
        let data_dir = data_dir
            .canonicalize()
            .map_err(|e| io_error("resolving", &data_dir, &e))?;
        run_as.ensure_reachable(&data_dir)?;
        let instances_dir = data_dir.join("instances");
        make_instances_dir(&instances_dir)?;
        let shared = Arc::new(Shared::new(Host {
            bind_host: config.bind_host,
            run_as,
            binaries: Binaries::discover(),
            instances_dir: instances_dir.clone(),
        }));
        let found =
            disk::scan(&instances_dir).map_err(|e| io_error("reading", &instances_dir, &e))?;
        for (id, layout) in found {
            let record = match layout.read_record() {
                Ok(Some(record)) => record,
                // Unfinished provisionings are redone or removed by provision and delete.
                Ok(None) => continue,
                Err(e) => {
                    shared.emit(
                        id,
                        Observation::Failed {
                            reason: format!("the local cluster cannot read its record: {e}"),
                        },
                    );
                    continue;
                }
            };
            if let Some((slot, mut state)) = shared.lock(id, true).await {
                state.record = Some(record);
                lifecycle::adopt(&shared, &slot, &mut state).await;
            }
        }
        Ok(LocalCluster { shared })
    }

    /// The process id of an instance's engine, if it runs (for diagnostics).
    pub async fn pid(&self, instance: InstanceId) -> Option<u32> {
        let (_, state) = self.shared.lock(instance, false).await?;
        state.running_pid().map(i32::unsigned_abs)
    }
}

/// `data_dir/instances`: the driver's, traversable (not listable) by the run-as user.
fn make_instances_dir(dir: &std::path::Path) -> Result<(), ClusterError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(|e| io_error("creating", dir, &e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
        .map_err(|e| io_error("setting the permissions of", dir, &e))
}

impl Drop for LocalCluster {
    /// Stops watching; the engines keep running for the next driver to adopt.
    fn drop(&mut self) {
        self.shared.abort_all();
    }
}

#[async_trait]
impl Cluster for LocalCluster {
    async fn provision(&self, request: &ProvisionRequest) -> Result<(), ClusterError> {
        lifecycle::provision(&self.shared, request).await
    }

    async fn set_run_state(
        &self,
        instance: InstanceId,
        state: RunState,
    ) -> Result<(), ClusterError> {
        let (slot, mut guard) = self
            .shared
            .lock(instance, false)
            .await
            .ok_or_else(|| ClusterError::not_found("no such instance in the local cluster"))?;
        lifecycle::set_run_state(&self.shared, &slot, &mut guard, state).await
    }

    async fn rotate_credentials(
        &self,
        instance: InstanceId,
        credentials: &Credentials,
    ) -> Result<(), ClusterError> {
        let (slot, mut guard) = self
            .shared
            .lock(instance, false)
            .await
            .ok_or_else(|| ClusterError::not_found("no such instance in the local cluster"))?;
        lifecycle::rotate(&self.shared, &slot, &mut guard, credentials).await
    }

    async fn delete(&self, instance: InstanceId) -> Result<Teardown, ClusterError> {
        if let Some((slot, mut guard)) = self.shared.lock(instance, true).await {
            lifecycle::delete(&self.shared, &slot, &mut guard).await?;
        }
        self.shared.emit(instance, Observation::Gone);
        Ok(Teardown::Complete)
    }

    fn events(&self) -> EventStream {
        self.shared.subscribe()
    }

    async fn usage(&self, instance: InstanceId) -> Result<UsageReport, ClusterError> {
        let (_, state) = self
            .shared
            .lock(instance, false)
            .await
            .ok_or_else(|| ClusterError::not_found("no such instance in the local cluster"))?;
        let not_available = |reason: &str| {
            Ok(UsageReport::NotAvailable {
                reason: reason.to_owned(),
            })
        };
        let Some(record) = state.record.as_ref() else {
            return not_available("the instance is still being set up");
        };
        if state.running_pid().is_none() {
            return not_available("the engine is not running");
        }
        let ctx = engines::Ctx {
            host: &self.shared.host,
            layout: &state.layout,
            record,
        };
        match record.engine {
            Engine::Redis => engines::redis::usage(ctx, state.password.as_ref()).await,
            Engine::Postgresql => engines::postgres::usage(ctx).await,
            Engine::Mongodb => not_available("the local driver does not measure MongoDB yet"),
        }
    }
}
