//! The local cluster: each instance runs as a real database process on this machine
//! (`redis-server`, PostgreSQL's `postgres`, `mongod` or else FerretDB), bound to its NodePort on
//! a configured host. The zero-setup cluster of the embedded default.
//!
//! # Isolation
//!
//! A tenant is assumed hostile. Every engine has two accounts: the tenant's (the credentials
//! the user receives: PostgreSQL role `dbtree` owning database `dbtree`, with no SUPERUSER,
//! CREATEDB, CREATEROLE, REPLICATION or BYPASSRLS and no predefined role; Redis ACL user
//! `dbtree` with the data commands and none of the `@dangerous` ones, `default` off; MongoDB
//! user `dbtree`, `dbOwner` of database `dbtree` with `mongod`) and an administrator whose
//! password only the driver knows, kept in the instance directory (`admin.pw`, mode 0600, the
//! driver's own). Never `trust`: PostgreSQL's administrator signs in with its password over the
//! instance's private socket, nobody else may use that socket.
//!
//! Running as root, the driver gives every instance its own unprivileged system account
//! (`dbtree-<16 hex digits>`, no home, no login shell), created with the instance and removed
//! with it; never the distribution's `postgres` or `redis` accounts. Not running as root, engines
//! run as the driver's user and isolation is by database role only (logged at start).
//!
//! # Files
//!
//! The data directory is set to [`data_dir_mode`]: 0700, or 0701 as root (instance accounts pass
//! through it, never list it). Instances live in `data_dir/instances/<instance-id>/`
//! (`instances/` is mode 0711 as root: reachable, not listable; else 0700). That directory belongs to the driver and holds `instance.json` (engine, port,
//! resources, desired run state, server; never a password), `admin.pw`, the engine's pid and
//! its log, and the engine's configuration (Redis's is handed to it on standard input). Its
//! `engine/` directory belongs to the instance's account (mode 0700) and holds the engine's
//! data and unix sockets.
//!
//! # Processes
//!
//! Engines run as their account, with an empty environment, in a process group of their own.
//! [`LocalCluster::shut_down`] stops them all cleanly (the server calls it on a graceful
//! shutdown, unless told to keep engines running); a driver started again on the same data
//! directory adopts the engines still running (checked by pid, command line and owner), starts
//! those that should run but do not, and kills any process working in an instance directory
//! that should not run (an engine left by a killed server, a half-done preparation) and any
//! instance account without an instance. A supervisor task per process reports
//! [`Observation::Ready`] once the engine serves, and [`Observation::Failed`] if it exits or is
//! not serving within 30 s; after a crash it restarts the engine with a growing backoff (up to
//! five times in a row).
//!
//! # Ports
//!
//! A new instance whose port another program holds is refused with
//! [`ClusterError::port_busy`], logged with the port; dbtree then holds that port aside and
//! tries the next one.
//!
//! # Passwords
//!
//! The tenant's password lives only in the engine's own authentication (PostgreSQL's catalog,
//! set in single-user mode from standard input and changed with `ALTER ROLE` with statement
//! logging off; a SHA-256 hash in Redis's ACL; MongoDB's user store). Nothing is logged.

mod account;
mod disk;
mod engines;
mod host;
mod lifecycle;
mod process;
mod shared;
mod supervisor;
mod sweep;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use dbtree_core::boundary::{
    Cluster, ClusterError, EngineSupport, EventStream, Observation, ProvisionRequest, Teardown,
    UsageReport,
};
use dbtree_core::ids::InstanceId;
use dbtree_core::instance::{Credentials, Engine, RunState};

use self::account::Accounts;
use self::host::{Binaries, Host, io_error};
use self::shared::Shared;

/// How the local cluster runs instances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalConfig {
    /// Where instances live (`data_dir/instances/<instance-id>/`); created if missing.
    pub data_dir: PathBuf,
    /// The address engines listen on (default `127.0.0.1`).
    pub bind_host: String,
    /// The `ferretdb` binary for MongoDB instances when `mongod` is not installed. By default:
    /// `ferretdb` on `PATH`, else the newest `~/.cache/dbtree/ferretdb-<version>/bin/ferretdb`
    /// (what `.ci/ferretdb` builds).
    pub ferretdb: Option<PathBuf>,
}

impl LocalConfig {
    /// Instances under `data_dir`, listening on `127.0.0.1`, FerretDB found by default.
    pub fn new(data_dir: impl Into<PathBuf>) -> LocalConfig {
        LocalConfig {
            data_dir: data_dir.into(),
            bind_host: "127.0.0.1".to_owned(),
            ferretdb: None,
        }
    }
}

/// The mode of a data directory the local driver runs instances under, the one rule for it
/// (the server applies it too): 0700 (its owner only) when engines run as the server's own
/// user, i.e. not running as root; 0701 when running as root, because each instance's own
/// system account must pass through it to reach its directory (traverse, never list).
#[must_use]
pub fn data_dir_mode() -> u32 {
    host::data_dir_mode(Accounts::per_instance_here())
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
            .field("per_instance_accounts", &host.accounts.per_instance())
            .field("instances", &self.shared.len())
            .finish()
    }
}

impl LocalCluster {
    /// Finds the engine binaries, prepares the data directory, clears what no instance owns
    /// (processes working in an instance directory that should not run, instance accounts
    /// without an instance), and adopts the instances found there: engines that should run and
    /// still do are watched again, those that should run but do not are started; readiness is
    /// reported as events (the first stream from [`Cluster::events`] also receives the events
    /// observed before it was opened).
    ///
    /// # Errors
    /// [`ClusterError`] (permanent) if the data directory cannot be created or, with
    /// per-instance accounts, cannot be reached by them.
    pub async fn start(config: LocalConfig) -> Result<LocalCluster, ClusterError> {
        let data_dir = config.data_dir;
        std::fs::create_dir_all(&data_dir).map_err(|e| io_error("creating", &data_dir, &e))?;
        let data_dir = data_dir
            .canonicalize()
            .map_err(|e| io_error("resolving", &data_dir, &e))?;
        let instances_dir = data_dir.join("instances");
        let accounts = Accounts::detect(&instances_dir);
        host::set_modes(&data_dir, &instances_dir, accounts.per_instance())?;
        if accounts.per_instance() {
            tracing::info!("local engines: each instance runs as a system account of its own");
        } else {
            tracing::warn!(
                "local engines run as this server's own user (not root): isolation between \
                 instances is by database role only"
            );
        }
        let mut binaries = Binaries::discover(config.ferretdb.as_deref());
        if accounts.per_instance() {
            host::share_ferretdb(&mut binaries, &data_dir)?;
        }
        let shared = Arc::new(Shared::new(Host {
            bind_host: config.bind_host,
            accounts,
            binaries,
            instances_dir: instances_dir.clone(),
        }));
        let found =
            disk::scan(&instances_dir).map_err(|e| io_error("reading", &instances_dir, &e))?;
        sweep::strays(&shared, &found).await;
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

    /// Stops every engine cleanly, all at once (each killed after a grace period), keeping
    /// their data and their desired run state: the next driver on this data directory starts
    /// those that should run. Returns how many engines were stopped.
    pub async fn shut_down(&self) -> usize {
        let mut stopping = tokio::task::JoinSet::new();
        for id in self.shared.ids() {
            let shared = self.shared.clone();
            stopping.spawn(async move {
                let (_, mut state) = shared.lock(id, false).await?;
                let ran = state.running_pid().is_some();
                match lifecycle::shut_down(&shared, &mut state).await {
                    Ok(()) => Some(ran),
                    Err(e) => {
                        tracing::warn!(instance = %id, error = %e, "an engine did not stop");
                        None
                    }
                }
            });
        }
        let mut stopped = 0;
        while let Some(outcome) = stopping.join_next().await {
            if matches!(outcome, Ok(Some(true))) {
                stopped += 1;
            }
        }
        self.shared.abort_all();
        stopped
    }
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
        let (_, mut state) = self
            .shared
            .lock(instance, false)
            .await
            .ok_or_else(|| ClusterError::not_found("no such instance in the local cluster"))?;
        let not_available = |reason: &str| {
            Ok(UsageReport::NotAvailable {
                reason: reason.to_owned(),
            })
        };
        let Some(record) = state.record.clone() else {
            return not_available("the instance is still being set up");
        };
        if state.running_pid().is_none() {
            return not_available("the engine is not running");
        }
        let admin = state.layout.read_admin_password().map_err(|e| {
            ClusterError::transient(format!("reading the administrator password: {e}"))
        })?;
        let run_as = lifecycle::run_as(&self.shared, &mut state)?;
        let ctx = engines::Ctx {
            host: &self.shared.host,
            layout: &state.layout,
            record: &record,
            run_as: &run_as,
        };
        engines::usage(ctx, &admin).await
    }

    fn engine_support(&self, engine: Engine) -> EngineSupport {
        engines::support(engine, &self.shared.host.binaries)
    }

    async fn instance_server(&self, instance: InstanceId) -> Option<String> {
        let (_, state) = self.shared.lock(instance, false).await?;
        state
            .record
            .as_ref()
            .map(|r| r.server.clone())
            .filter(|s| !s.is_empty())
    }

    async fn held_instances(&self) -> Result<Vec<InstanceId>, ClusterError> {
        let dir = &self.shared.host.instances_dir;
        let mut held: Vec<InstanceId> = disk::scan(dir)
            .map_err(|e| io_error("reading", dir, &e))?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        for id in self.shared.ids() {
            if !held.contains(&id) {
                held.push(id);
            }
        }
        Ok(held)
    }
}
