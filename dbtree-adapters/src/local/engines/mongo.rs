//! MongoDB with `mongod` (standalone, `--auth`). Preparation runs `mongod` once, reachable only
//! on unix sockets in the instance's private directory (`--bind_ip` takes a socket path, so no
//! TCP port is open while the first user does not exist): through the localhost exception (a
//! unix socket counts as localhost) the driver creates the administrator (`root`), then, signed
//! in as it, the tenant's user with `dbOwner` on its database only. Once a user exists the
//! exception closes. The driver always talks to `mongod` over the socket it keeps in
//! `--unixSocketPrefix` (`mongodb-<port>.sock`, mode `--filePermissions` 0700).
//!
//! Written from MongoDB's documentation (`net.bindIp` accepts "full Unix domain socket paths";
//! `net.unixDomainSocket`; the localhost exception) and NOT verified on the development
//! machines: Debian does not package `mongod`, so FerretDB is what runs there.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dbtree_core::boundary::ClusterError;
use dbtree_core::instance::Password;
use mongodb::bson::doc;
use nix::sys::signal::Signal;

use super::mongo_admin;
use super::{ADMIN_USER, Ctx, Rotation, Temporary};
use crate::local::disk::create_private_dir;
use crate::local::host::io_error;
use crate::local::process;

const DBPATH: &str = "db";
/// The socket the preparation run listens on instead of a TCP address.
const SETUP_SOCKET: &str = "setup.sock";

/// `mongod`'s socket for `port` in the instance's private directory.
pub(super) fn socket(ctx: Ctx<'_>) -> PathBuf {
    ctx.layout
        .engine_path(&format!("mongodb-{}.sock", ctx.port()))
}

fn common(ctx: Ctx<'_>) -> Vec<OsString> {
    // WiredTiger's cache: half the memory above 256 MiB, at least its minimum of 0.25 GiB.
    let cache_gib =
        (f64::from(ctx.record.resources.memory_mib.saturating_sub(256)) / 2048.0).max(0.25);
    vec![
        "--port".into(),
        ctx.port().to_string().into(),
        "--dbpath".into(),
        ctx.layout.engine_path(DBPATH).into_os_string(),
        "--unixSocketPrefix".into(),
        ctx.layout.engine_dir().into_os_string(),
        "--filePermissions".into(),
        "0700".into(),
        "--auth".into(),
        "--wiredTigerCacheSizeGB".into(),
        format!("{cache_gib:.2}").into(),
    ]
}

/// Creates the data directory, then both users through a temporary `mongod` on the socket only.
pub(super) async fn prepare(
    ctx: Ctx<'_>,
    program: &Path,
    tenant: &Password,
    admin: &Password,
) -> Result<(), ClusterError> {
    let db = ctx.layout.engine_path(DBPATH);
    create_private_dir(&db, ctx.run_as).map_err(|e| io_error("creating", &db, &e))?;
    let mut args = common(ctx);
    // Not the default socket's path: `mongod` adds that one itself.
    args.extend([
        "--bind_ip".into(),
        ctx.layout.engine_path(SETUP_SOCKET).into_os_string(),
    ]);
    let socket = socket(ctx);
    let mut command = process::logged(program, &args, ctx.layout, ctx.run_as)
        .map_err(|e| io_error("opening the log in", &ctx.layout.dir, &e))?;
    let child = command
        .spawn()
        .map_err(|e| ClusterError::transient(format!("starting mongod: {e}")))?;
    let server = Temporary(Some(child));
    let failed = |doing: &str| {
        let doing = doing.to_owned();
        move |why: String| ClusterError::transient(format!("{doing}: {why}"))
    };
    let anonymous = mongo_admin::client(&socket, None).map_err(failed("connecting"))?;
    let mut created = Err(String::new());
    for _ in 0..150 {
        created = mongo_admin::command(
            &anonymous,
            doc! { "createUser": ADMIN_USER, "pwd": admin.expose(), "roles": ["root"] },
        )
        .await;
        if created.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    created.map_err(failed("creating the administrator"))?;
    let client = mongo_admin::wait_for_admin(&socket, admin, Duration::from_secs(10))
        .await
        .map_err(failed("signing in as the administrator"))?;
    mongo_admin::command(&client, mongo_admin::create_tenant(tenant, true))
        .await
        .map_err(failed("creating the tenant's user"))?;
    drop(client);
    server.stop(Signal::SIGTERM).await?;
    let _ = std::fs::remove_file(ctx.layout.engine_path(SETUP_SOCKET));
    Ok(())
}

pub(super) fn args(ctx: Ctx<'_>) -> Vec<OsString> {
    let mut args = common(ctx);
    args.extend(["--bind_ip".into(), ctx.host.bind_host.clone().into()]);
    args
}

/// `updateUser` as the administrator, then a restart to end the old sessions.
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
    let client = mongo_admin::client(&socket(ctx), Some(admin)).map_err(ClusterError::transient)?;
    mongo_admin::command(&client, mongo_admin::change_tenant_password(new))
        .await
        .map_err(|why| ClusterError::transient(format!("changing the password: {why}")))?;
    Ok(Rotation::Restart)
}
