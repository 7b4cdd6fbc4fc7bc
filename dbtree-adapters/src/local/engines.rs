//! What differs between engines: binaries, preparation, command line, readiness checks,
//! first-start bootstrap and password rotation.

mod mongo;
pub(crate) mod postgres;
pub(crate) mod redis;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use dbtree_core::boundary::ClusterError;
use dbtree_core::instance::{Engine, Password};
use nix::sys::signal::Signal;

use super::disk::{InstanceRecord, Layout};
use super::host::{Binaries, Host};

/// One instance as an engine sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ctx<'a> {
    pub(crate) host: &'a Host,
    pub(crate) layout: &'a Layout,
    pub(crate) record: &'a InstanceRecord,
}

impl Ctx<'_> {
    fn port(&self) -> u16 {
        self.record.node_port.get()
    }
}

/// How a password rotation is completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rotation {
    /// The engine already enforces the new password (or will when it next starts).
    Applied,
    /// The new password is configured but takes effect only when the engine restarts.
    Restart,
}

/// The server binary: what the driver looks for in a process's command line.
pub(crate) const fn server_binary(engine: Engine) -> &'static str {
    match engine {
        Engine::Redis => "redis-server",
        Engine::Postgresql => "postgres",
        Engine::Mongodb => "mongod",
    }
}

/// `Ok` if everything `engine` needs is installed; otherwise a permanent error naming what is
/// missing.
pub(crate) fn check_installed(engine: Engine, binaries: &Binaries) -> Result<(), ClusterError> {
    let missing = match engine {
        Engine::Redis => binaries.redis_server.is_none().then_some("redis-server"),
        Engine::Postgresql => binaries
            .postgres
            .is_none()
            .then_some("PostgreSQL (initdb and postgres)"),
        Engine::Mongodb => {
            if binaries.mongod.is_none() {
                Some("mongod")
            } else {
                binaries
                    .mongosh
                    .is_none()
                    .then_some("mongosh (needed to create the MongoDB user)")
            }
        }
    };
    match missing {
        Some(what) => Err(ClusterError::permanent(format!(
            "{what} is not installed; install it or use the kube cluster"
        ))),
        None => Ok(()),
    }
}

/// Creates the engine's files in a fresh instance directory, configuring `password`.
pub(crate) async fn prepare(ctx: Ctx<'_>, password: &Password) -> Result<(), ClusterError> {
    match ctx.record.engine {
        Engine::Redis => redis::prepare(ctx, password),
        Engine::Postgresql => postgres::prepare(ctx, password).await,
        Engine::Mongodb => mongo::prepare(ctx),
    }
}

/// The program and arguments that run the engine's server.
pub(crate) fn server_command(ctx: Ctx<'_>) -> Result<(PathBuf, Vec<OsString>), ClusterError> {
    let program = match ctx.record.engine {
        Engine::Redis => ctx.host.binaries.redis_server.clone(),
        Engine::Postgresql => ctx.host.binaries.postgres.clone().map(|(_, p)| p),
        Engine::Mongodb => ctx.host.binaries.mongod.clone(),
    };
    check_installed(ctx.record.engine, &ctx.host.binaries)?;
    let program = program.ok_or_else(|| ClusterError::permanent("the engine is not installed"))?;
    let args = match ctx.record.engine {
        Engine::Redis => redis::args(ctx),
        Engine::Postgresql => postgres::args(ctx),
        Engine::Mongodb => mongo::args(ctx),
    };
    Ok((program, args))
}

/// The signal for a quick, clean shutdown (PostgreSQL's "fast" mode is SIGINT).
pub(crate) const fn stop_signal(engine: Engine) -> Signal {
    match engine {
        Engine::Postgresql => Signal::SIGINT,
        Engine::Redis | Engine::Mongodb => Signal::SIGTERM,
    }
}

/// `Ok` once the engine serves this instance; otherwise why not yet.
pub(crate) async fn probe(ctx: Ctx<'_>) -> Result<(), String> {
    let check = async {
        match ctx.record.engine {
            Engine::Redis => redis::probe(ctx).await,
            Engine::Postgresql => postgres::probe(ctx).await,
            Engine::Mongodb => tcp_accepts(ctx).await,
        }
    };
    tokio::time::timeout(Duration::from_secs(5), check)
        .await
        .unwrap_or_else(|_| Err("the readiness check timed out".to_owned()))
}

/// Runs once the engine first serves after provisioning (MongoDB creates its user here).
pub(crate) async fn bootstrap(ctx: Ctx<'_>, password: &Password) -> Result<(), String> {
    match ctx.record.engine {
        Engine::Mongodb => mongo::create_user(ctx, password).await,
        Engine::Redis | Engine::Postgresql => Ok(()),
    }
}

/// Whether the driver must keep the current password in memory to change it later (Redis and
/// MongoDB authenticate as the user; PostgreSQL administers over its private socket).
pub(crate) const fn needs_current_password(engine: Engine) -> bool {
    matches!(engine, Engine::Redis | Engine::Mongodb)
}

/// Replaces the password. `current` is the password the driver holds, if any.
pub(crate) async fn rotate(
    ctx: Ctx<'_>,
    current: Option<&Password>,
    new: &Password,
    running: bool,
) -> Result<Rotation, ClusterError> {
    match ctx.record.engine {
        Engine::Redis => redis::rotate(ctx, current, new, running).await,
        Engine::Postgresql => postgres::rotate(ctx, new, running).await,
        Engine::Mongodb => mongo::rotate(ctx, current, new, running).await,
    }
}

/// `Ok` if the instance's port accepts TCP connections.
async fn tcp_accepts(ctx: Ctx<'_>) -> Result<(), String> {
    let addr = (ctx.host.connect_host(), ctx.port());
    match tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!(
            "port {} does not accept connections: {e}",
            ctx.port()
        )),
        Err(_) => Err(format!("connecting to port {} timed out", ctx.port())),
    }
}
