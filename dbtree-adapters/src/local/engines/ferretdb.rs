//! MongoDB through FerretDB 1.x (the MongoDB wire protocol over SQLite), when `mongod` is not
//! installed: one process per instance, its SQLite files in the instance's private directory,
//! SCRAM authentication (`--test-enable-new-auth`).
//!
//! Preparation runs FerretDB once on a private unix socket only: `--setup-*` creates the
//! administrator (its password in the environment, never on the command line), which then
//! creates the tenant's user. FerretDB 1.x has no roles: every signed-in user may do anything
//! *within this FerretDB process*, which holds nothing but this instance's data and runs as the
//! instance's own account; the tenant could drop the administrator, which only stops the
//! driver from rotating that instance's password.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use dbtree_core::boundary::ClusterError;
use dbtree_core::instance::Password;
use nix::sys::signal::Signal;

use super::mongo_admin::{self, AUTH_DB};
use super::{ADMIN_USER, Ctx, Rotation, Temporary, tcp_accepts};
use crate::local::disk::create_private_dir;
use crate::local::host::io_error;
use crate::local::process;

const DATA: &str = "data";
const STATE: &str = "state";
const SOCKET: &str = "ferretdb.sock";
const SETUP_SOCKET: &str = "setup.sock";

/// The socket the running server listens on besides its TCP port, in the private directory.
pub(super) fn socket(ctx: Ctx<'_>) -> std::path::PathBuf {
    ctx.layout.engine_path(SOCKET)
}

/// The flags every run shares.
fn common(ctx: Ctx<'_>) -> Vec<OsString> {
    let mut sqlite = OsString::from("--sqlite-url=file:");
    sqlite.push(ctx.layout.engine_path(DATA));
    sqlite.push("/");
    let mut state = OsString::from("--state-dir=");
    state.push(ctx.layout.engine_path(STATE));
    vec![
        "--handler=sqlite".into(),
        sqlite,
        state,
        "--debug-addr=-".into(),
        "--telemetry=disable".into(),
        "--test-enable-new-auth".into(),
        "--log-level=warn".into(),
    ]
}

fn listen_unix(socket: &Path) -> OsString {
    let mut flag = OsString::from("--listen-unix=");
    flag.push(socket);
    flag
}

/// Creates the data directories, then the administrator and the tenant's user.
pub(super) async fn prepare(
    ctx: Ctx<'_>,
    program: &Path,
    tenant: &Password,
    admin: &Password,
) -> Result<(), ClusterError> {
    for dir in [DATA, STATE] {
        let path = ctx.layout.engine_path(dir);
        create_private_dir(&path, ctx.run_as).map_err(|e| io_error("creating", &path, &e))?;
    }
    let socket = ctx.layout.engine_path(SETUP_SOCKET);
    let mut args = common(ctx);
    args.extend([
        "--listen-addr=".into(),
        listen_unix(&socket),
        format!("--setup-database={AUTH_DB}").into(),
        format!("--setup-username={ADMIN_USER}").into(),
    ]);
    let mut command = process::logged(program, &args, ctx.layout, ctx.run_as)
        .map_err(|e| io_error("opening the log in", &ctx.layout.dir, &e))?;
    command.env("FERRETDB_SETUP_PASSWORD", admin.expose());
    let child = command
        .spawn()
        .map_err(|e| ClusterError::transient(format!("starting ferretdb: {e}")))?;
    let server = Temporary(Some(child));
    let client = mongo_admin::wait_for_admin(&socket, admin, Duration::from_secs(30))
        .await
        .map_err(|why| {
            ClusterError::transient(format!("setting up FerretDB: {why}; last log line: {}", {
                ctx.layout
                    .last_log_line()
                    .unwrap_or_else(|| "(none)".to_owned())
            }))
        })?;
    mongo_admin::command(&client, mongo_admin::create_tenant(tenant, false))
        .await
        .map_err(|why| ClusterError::transient(format!("creating the tenant's user: {why}")))?;
    drop(client);
    server.stop(Signal::SIGTERM).await?;
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

pub(super) fn args(ctx: Ctx<'_>) -> Vec<OsString> {
    let host = &ctx.host.bind_host;
    let addr = if host.contains(':') {
        format!("[{host}]:{}", ctx.port())
    } else {
        format!("{host}:{}", ctx.port())
    };
    let mut args = common(ctx);
    args.push(format!("--listen-addr={addr}").into());
    args.push(listen_unix(&ctx.layout.engine_path(SOCKET)));
    args
}

/// Removes the socket a killed FerretDB left (it would refuse to listen on it again).
pub(super) fn clear_stale_socket(ctx: Ctx<'_>) {
    let _ = std::fs::remove_file(ctx.layout.engine_path(SOCKET));
}

/// Ready when the private socket and the port accept connections.
pub(super) async fn probe(ctx: Ctx<'_>) -> Result<(), String> {
    tokio::net::UnixStream::connect(ctx.layout.engine_path(SOCKET))
        .await
        .map_err(|e| format!("the server socket does not answer yet: {e}"))?;
    tcp_accepts(ctx).await
}

/// `updateUser` as the administrator; the server then restarts, which ends the sessions signed
/// in with the old password.
pub(super) async fn rotate(
    ctx: Ctx<'_>,
    admin: &Password,
    new: &Password,
    running: bool,
) -> Result<Rotation, ClusterError> {
    if !running {
        return Err(ClusterError::transient(
            "a stopped MongoDB instance cannot change its password: start it first",
        ));
    }
    let socket = ctx.layout.engine_path(SOCKET);
    let client = mongo_admin::client(&socket, Some(admin)).map_err(ClusterError::transient)?;
    mongo_admin::command(&client, mongo_admin::change_tenant_password(new))
        .await
        .map_err(|why| ClusterError::transient(format!("changing the password: {why}")))?;
    Ok(Rotation::Restart)
}
