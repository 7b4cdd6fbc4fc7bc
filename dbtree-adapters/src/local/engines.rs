//! What differs between engines: binaries, preparation (tenant and administrator accounts made
//! before the engine first serves), command line, readiness checks and password rotation.
//!
//! Every engine gets two accounts: the tenant's (the credentials the user receives: a
//! non-privileged user owning its database) and an administrator whose password only the
//! driver knows (`admin.pw`, mode 0600, the driver's), used for rotation and nothing the tenant
//! can reach.

mod ferretdb;
mod mongo;
mod mongo_admin;
mod postgres;
mod redis;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use dbtree_core::boundary::{ClusterError, EngineSupport, UsageReport};
use dbtree_core::instance::{Engine, Password};
use nix::sys::signal::Signal;

use super::account::RunAs;
use super::disk::{Backend, InstanceRecord, Layout};
use super::host::{Binaries, Host, Program};

/// The administrator's user name in every engine.
pub(crate) const ADMIN_USER: &str = "dbtree_admin";

/// One instance as an engine sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ctx<'a> {
    pub(crate) host: &'a Host,
    pub(crate) layout: &'a Layout,
    pub(crate) record: &'a InstanceRecord,
    pub(crate) run_as: &'a RunAs,
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
    /// The new password is configured but the engine must restart to drop old sessions.
    Restart,
}

/// The server binary: what the driver looks for in a process's command line.
pub(crate) const fn server_binary(engine: Engine, backend: Backend) -> &'static str {
    match (engine, backend) {
        (Engine::Redis, _) => "redis-server",
        (Engine::Postgresql, _) => "postgres",
        (Engine::Mongodb, Backend::Native) => "mongod",
        (Engine::Mongodb, Backend::Ferretdb) => "ferretdb",
    }
}

/// The program that runs a new instance of `engine` here, and which backend it is; a permanent
/// error naming what is missing otherwise.
pub(crate) fn choose(
    engine: Engine,
    binaries: &Binaries,
) -> Result<(Backend, &Program), ClusterError> {
    let found = match engine {
        Engine::Redis => binaries.redis_server.as_ref().map(|p| (Backend::Native, p)),
        Engine::Postgresql => binaries
            .postgres
            .as_ref()
            .map(|(_, p)| (Backend::Native, p)),
        Engine::Mongodb => binaries
            .mongod
            .as_ref()
            .map(|p| (Backend::Native, p))
            .or_else(|| binaries.ferretdb.as_ref().map(|p| (Backend::Ferretdb, p))),
    };
    found.ok_or_else(|| ClusterError::permanent(missing(engine, binaries)))
}

fn missing(engine: Engine, binaries: &Binaries) -> String {
    if let (Engine::Mongodb, Some(refused)) = (engine, &binaries.ferretdb_refused) {
        return format!("mongod is not installed, and {refused}");
    }
    match engine {
        Engine::Redis => "redis-server is not installed (Debian: apt-get install redis-server)",
        Engine::Postgresql => {
            "PostgreSQL (initdb and postgres) is not installed (Debian: apt-get install \
             postgresql)"
        }
        Engine::Mongodb => {
            "neither mongod nor FerretDB is installed (build FerretDB with .ci/ferretdb, or set \
             DBTREE_FERRETDB to a ferretdb binary)"
        }
    }
    .to_owned()
}

/// Whether this machine can run `engine`, and with which server.
pub(crate) fn support(engine: Engine, binaries: &Binaries) -> EngineSupport {
    match choose(engine, binaries) {
        Ok((_, program)) => EngineSupport::Available {
            server: Some(program.server.clone()),
        },
        Err(e) => EngineSupport::Unavailable { reason: e.message },
    }
}

/// The server program of an existing instance.
fn program(ctx: Ctx<'_>) -> Result<PathBuf, ClusterError> {
    let b = &ctx.host.binaries;
    let found = match (ctx.record.engine, ctx.record.backend) {
        (Engine::Redis, _) => b.redis_server.as_ref(),
        (Engine::Postgresql, _) => b.postgres.as_ref().map(|(_, p)| p),
        (Engine::Mongodb, Backend::Native) => b.mongod.as_ref(),
        (Engine::Mongodb, Backend::Ferretdb) => b.ferretdb.as_ref(),
    };
    found.map(|p| p.path.clone()).ok_or_else(|| {
        ClusterError::permanent(format!(
            "{} is no longer installed",
            server_binary(ctx.record.engine, ctx.record.backend)
        ))
    })
}

/// Creates the engine's files in a fresh instance directory with both accounts: the tenant's
/// (`tenant`) and the administrator's (`admin`).
pub(crate) async fn prepare(
    ctx: Ctx<'_>,
    tenant: &Password,
    admin: &Password,
) -> Result<(), ClusterError> {
    match (ctx.record.engine, ctx.record.backend) {
        (Engine::Redis, _) => redis::prepare(ctx, tenant, admin),
        (Engine::Postgresql, _) => postgres::prepare(ctx, tenant, admin).await,
        (Engine::Mongodb, Backend::Native) => {
            mongo::prepare(ctx, &program(ctx)?, tenant, admin).await
        }
        (Engine::Mongodb, Backend::Ferretdb) => {
            ferretdb::prepare(ctx, &program(ctx)?, tenant, admin).await
        }
    }
}

/// What runs an engine's server.
pub(crate) struct ServerCommand {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<OsString>,
    /// Written to the server's standard input (Redis reads its configuration there).
    pub(crate) stdin: Option<Vec<u8>>,
}

/// The program, arguments and standard input that run the engine's server.
pub(crate) fn server_command(ctx: Ctx<'_>) -> Result<ServerCommand, ClusterError> {
    let program = program(ctx)?;
    let (args, stdin) = match (ctx.record.engine, ctx.record.backend) {
        (Engine::Redis, _) => (redis::args(), Some(redis::stdin(ctx)?)),
        (Engine::Postgresql, _) => (postgres::args(ctx), None),
        (Engine::Mongodb, Backend::Native) => (mongo::args(ctx), None),
        (Engine::Mongodb, Backend::Ferretdb) => (ferretdb::args(ctx), None),
    };
    Ok(ServerCommand {
        program,
        args,
        stdin,
    })
}

/// What the engine reports about its own use, asked as the instance's administrator.
pub(crate) async fn usage(ctx: Ctx<'_>, admin: &Password) -> Result<UsageReport, ClusterError> {
    match (ctx.record.engine, ctx.record.backend) {
        (Engine::Redis, _) => redis::usage(ctx, admin).await,
        (Engine::Postgresql, _) => postgres::usage(ctx, admin).await,
        (Engine::Mongodb, Backend::Native) => mongo_admin::usage(&mongo::socket(ctx), admin).await,
        (Engine::Mongodb, Backend::Ferretdb) => {
            mongo_admin::usage(&ferretdb::socket(ctx), admin).await
        }
    }
}

/// Clears what a killed engine may have left that would stop it from starting again.
pub(crate) fn before_start(ctx: Ctx<'_>) {
    if (ctx.record.engine, ctx.record.backend) == (Engine::Mongodb, Backend::Ferretdb) {
        ferretdb::clear_stale_socket(ctx);
    }
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
        match (ctx.record.engine, ctx.record.backend) {
            (Engine::Redis, _) => redis::probe(ctx).await,
            (Engine::Postgresql, _) => postgres::probe(ctx).await,
            (Engine::Mongodb, Backend::Native) => tcp_accepts(ctx).await,
            (Engine::Mongodb, Backend::Ferretdb) => ferretdb::probe(ctx).await,
        }
    };
    tokio::time::timeout(Duration::from_secs(5), check)
        .await
        .unwrap_or_else(|_| Err("the readiness check timed out".to_owned()))
}

/// Replaces the tenant's password, signed in as the administrator.
pub(crate) async fn rotate(
    ctx: Ctx<'_>,
    new: &Password,
    running: bool,
) -> Result<Rotation, ClusterError> {
    let admin = ctx
        .layout
        .read_admin_password()
        .map_err(|e| ClusterError::permanent(format!("reading the administrator password: {e}")))?;
    match (ctx.record.engine, ctx.record.backend) {
        (Engine::Redis, _) => redis::rotate(ctx, &admin, new, running).await,
        (Engine::Postgresql, _) => postgres::rotate(ctx, &admin, new, running).await,
        (Engine::Mongodb, Backend::Native) => mongo::rotate(ctx, &admin, new, running).await,
        (Engine::Mongodb, Backend::Ferretdb) => ferretdb::rotate(ctx, &admin, new, running).await,
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

/// A running helper process (a temporary server during preparation): SIGKILLed when dropped
/// unless stopped cleanly first.
#[derive(Debug)]
struct Temporary(Option<tokio::process::Child>);

impl Temporary {
    /// Stops it with `signal`, waiting up to 20 s.
    async fn stop(mut self, signal: Signal) -> Result<(), ClusterError> {
        let Some(mut child) = self.0.take() else {
            return Ok(());
        };
        if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
            super::process::terminate(pid, signal, Duration::from_secs(20))
                .await
                .map_err(ClusterError::transient)?;
        }
        let _ = child.wait().await;
        Ok(())
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut()
            && let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok())
        {
            super::process::kill_now(pid);
        }
    }
}
