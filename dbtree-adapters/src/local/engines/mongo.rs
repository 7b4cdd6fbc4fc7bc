//! MongoDB (standalone): `mongod --auth`, and the `dbtree` user created with `mongosh` through
//! the localhost exception once the server first answers. Passwords reach `mongosh` through its
//! environment (readable only by the driver's user), never its command line.
//!
//! What this does not do: rotate the password of an instance whose current password the driver
//! no longer holds (after the driver restarted); that is refused with a permanent error.

use std::ffi::OsString;
use std::process::Stdio;
use std::time::Duration;

use dbtree_core::boundary::ClusterError;
use dbtree_core::instance::Password;
use tokio::process::Command;

use super::{Ctx, Rotation};
use crate::local::disk::create_private_dir;
use crate::local::host::io_error;

const DBPATH: &str = "db";

pub(super) fn prepare(ctx: Ctx<'_>) -> Result<(), ClusterError> {
    let db = ctx.layout.engine_path(DBPATH);
    create_private_dir(&db, &ctx.host.run_as).map_err(|e| io_error("creating", &db, &e))
}

pub(super) fn args(ctx: Ctx<'_>) -> Vec<OsString> {
    // WiredTiger's cache: half the memory above 256 MiB, at least its minimum of 0.25 GiB.
    let cache_gib =
        (f64::from(ctx.record.resources.memory_mib.saturating_sub(256)) / 2048.0).max(0.25);
    vec![
        "--port".into(),
        ctx.port().to_string().into(),
        "--bind_ip".into(),
        ctx.host.bind_host.clone().into(),
        "--dbpath".into(),
        ctx.layout.engine_path(DBPATH).into_os_string(),
        "--unixSocketPrefix".into(),
        ctx.layout.engine_dir().into_os_string(),
        "--auth".into(),
        "--wiredTigerCacheSizeGB".into(),
        format!("{cache_gib:.2}").into(),
    ]
}

/// Creates the `dbtree` user (role `root`) through the localhost exception.
pub(super) async fn create_user(ctx: Ctx<'_>, password: &Password) -> Result<(), String> {
    let script = "db.getSiblingDB('admin').createUser({user: 'dbtree', \
                  pwd: process.env.DBTREE_NEW_PASSWORD, roles: ['root']})";
    mongosh(ctx, script, None, password).await
}

pub(super) async fn rotate(
    ctx: Ctx<'_>,
    current: Option<&Password>,
    new: &Password,
    running: bool,
) -> Result<Rotation, ClusterError> {
    if !running {
        return Err(ClusterError::transient(
            "a stopped MongoDB instance cannot change its password: start it first",
        ));
    }
    let Some(current) = current else {
        return Err(ClusterError::permanent(
            "this MongoDB instance's password can no longer be changed by the local cluster \
             (it restarted since the password was set)",
        ));
    };
    let script = "const admin = db.getSiblingDB('admin'); \
                  admin.auth('dbtree', process.env.DBTREE_PASSWORD); \
                  admin.changeUserPassword('dbtree', process.env.DBTREE_NEW_PASSWORD)";
    mongosh(ctx, script, Some(current), new)
        .await
        .map_err(ClusterError::transient)?;
    Ok(Rotation::Applied)
}

/// Runs a `mongosh` script against the instance as the driver's own user.
async fn mongosh(
    ctx: Ctx<'_>,
    script: &str,
    current: Option<&Password>,
    new: &Password,
) -> Result<(), String> {
    let Some(mongosh) = ctx.host.binaries.mongosh.clone() else {
        return Err("mongosh is not installed".to_owned());
    };
    let mut command = Command::new(mongosh);
    command
        .args([
            "--quiet",
            "--norc",
            "--host",
            ctx.host.connect_host(),
            "--port",
        ])
        .arg(ctx.port().to_string())
        .arg("--eval")
        .arg(script)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &ctx.layout.dir)
        .env("DBTREE_NEW_PASSWORD", new.expose())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(current) = current {
        command.env("DBTREE_PASSWORD", current.expose());
    }
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .map_err(|_| "mongosh did not finish within 30 s".to_owned())?
        .map_err(|e| format!("running mongosh: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
    Err(format!(
        "mongosh failed: {}",
        last.map_or("no output", str::trim)
    ))
}
