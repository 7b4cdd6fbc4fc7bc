//! Redis: a generated `redis.conf` (the only place its password lives on disk), readiness over
//! the instance's private unix socket, rotation with `CONFIG SET requirepass`.

use std::ffi::OsString;
use std::time::Duration;

use dbtree_core::boundary::{ClusterError, EngineUsage, UsageReport};
use dbtree_core::instance::Password;
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Ctx, Rotation, tcp_accepts};
use crate::local::disk::{create_private_dir, write_private};
use crate::local::host::io_error;

const CONF: &str = "redis.conf";
const SOCKET: &str = "redis.sock";

/// Writes the configuration and creates the data directory.
pub(super) fn prepare(ctx: Ctx<'_>, password: &Password) -> Result<(), ClusterError> {
    let data = ctx.layout.engine_path("data");
    create_private_dir(&data, &ctx.host.run_as).map_err(|e| io_error("creating", &data, &e))?;
    write_conf(ctx, password)
}

/// `redis.conf`: mode 0600, owned by the run-as user, in the driver's instance directory.
fn write_conf(ctx: Ctx<'_>, password: &Password) -> Result<(), ClusterError> {
    let path = ctx.layout.path(CONF);
    write_private(
        &path,
        conf(ctx, password).as_bytes(),
        Some(&ctx.host.run_as),
    )
    .map_err(|e| io_error("writing", &path, &e))
}

fn conf(ctx: Ctx<'_>, password: &Password) -> String {
    let maxmemory_mib = u64::from(ctx.record.resources.memory_mib) * 9 / 10;
    let data = ctx.layout.engine_path("data");
    let socket = ctx.layout.engine_path(SOCKET);
    [
        "# Written by dbtree; rewritten when the password changes.".to_owned(),
        format!("port {}", ctx.port()),
        format!("bind {}", ctx.host.bind_host),
        "protected-mode yes".to_owned(),
        "daemonize no".to_owned(),
        "logfile \"\"".to_owned(),
        format!("unixsocket {}", quote(&socket.to_string_lossy())),
        "unixsocketperm 700".to_owned(),
        format!("requirepass {}", quote(password.expose())),
        format!("maxmemory {maxmemory_mib}mb"),
        "maxmemory-policy noeviction".to_owned(),
        format!("dir {}", quote(&data.to_string_lossy())),
        "appendonly yes".to_owned(),
        "appendfsync everysec".to_owned(),
        String::new(),
    ]
    .join("\n")
}

/// A double-quoted configuration value.
fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

pub(super) fn args(ctx: Ctx<'_>) -> Vec<OsString> {
    vec![ctx.layout.path(CONF).into_os_string()]
}

/// Ready when the instance's own socket answers `PING` (with `PONG`, or by asking for
/// authentication: either proves the server is serving) and its port accepts connections.
pub(super) async fn probe(ctx: Ctx<'_>) -> Result<(), String> {
    let socket = ctx.layout.engine_path(SOCKET);
    let mut stream = tokio::net::UnixStream::connect(&socket)
        .await
        .map_err(|e| format!("the server socket does not answer yet: {e}"))?;
    stream
        .write_all(b"PING\r\n")
        .await
        .map_err(|e| format!("PING failed: {e}"))?;
    let mut reply = Vec::with_capacity(64);
    let mut byte = [0u8; 1];
    while reply.len() < 256 && !reply.ends_with(b"\n") {
        match stream.read(&mut byte).await {
            Ok(1) => reply.push(byte[0]),
            Ok(_) => break,
            Err(e) => return Err(format!("PING failed: {e}")),
        }
    }
    let reply = String::from_utf8_lossy(&reply);
    if !(reply.starts_with("+PONG") || reply.starts_with("-NOAUTH")) {
        return Err(format!("PING answered `{}`", reply.trim()));
    }
    tcp_accepts(ctx).await
}

/// Rewrites the configuration with the new password, then applies it to the running server
/// (`CONFIG SET requirepass` as the current password, and the clients signed in with the old
/// one are disconnected). Without the current password the server must restart.
pub(super) async fn rotate(
    ctx: Ctx<'_>,
    current: Option<&Password>,
    new: &Password,
    running: bool,
) -> Result<Rotation, ClusterError> {
    write_conf(ctx, new)?;
    if !running {
        return Ok(Rotation::Applied);
    }
    let Some(current) = current else {
        return Ok(Rotation::Restart);
    };
    match tokio::time::timeout(Duration::from_secs(5), apply(ctx, current, new)).await {
        Ok(Ok(())) => Ok(Rotation::Applied),
        Ok(Err(_)) | Err(_) => Ok(Rotation::Restart),
    }
}

async fn apply(ctx: Ctx<'_>, current: &Password, new: &Password) -> redis::RedisResult<()> {
    let info = ConnectionAddr::Unix(ctx.layout.engine_path(SOCKET))
        .into_connection_info()?
        .set_redis_settings(
            RedisConnectionInfo::default()
                .set_username("default")
                .set_password(current.expose()),
        );
    let client = redis::Client::open(info)?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(new.expose())
        .query_async::<()>(&mut connection)
        .await?;
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("USER")
        .arg("default")
        .arg("SKIPME")
        .arg("yes")
        .query_async::<i64>(&mut connection)
        .await?;
    Ok(())
}

/// What Redis reports about itself (`INFO` over the instance's private socket, signed in with
/// the password the driver holds): `used_memory`, `connected_clients` (less this query's own
/// connection) and `aof_current_size` (its data on disk).
pub(crate) async fn usage(
    ctx: Ctx<'_>,
    current: Option<&Password>,
) -> Result<UsageReport, ClusterError> {
    let Some(current) = current else {
        return Ok(UsageReport::NotAvailable {
            reason: "the server restarted since the password was set; rotate the password to \
                     measure Redis again"
                .into(),
        });
    };
    let ask = async {
        let info = ConnectionAddr::Unix(ctx.layout.engine_path(SOCKET))
            .into_connection_info()?
            .set_redis_settings(
                RedisConnectionInfo::default()
                    .set_username("default")
                    .set_password(current.expose()),
            );
        let client = redis::Client::open(info)?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        redis::cmd("INFO")
            .query_async::<String>(&mut connection)
            .await
    };
    let info = match tokio::time::timeout(Duration::from_secs(3), ask).await {
        Ok(Ok(info)) => info,
        Ok(Err(e)) => return Err(ClusterError::transient(format!("Redis INFO failed: {e}"))),
        Err(_) => return Err(ClusterError::transient("Redis INFO timed out")),
    };
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Ok(UsageReport::Measured(EngineUsage {
        memory_used_bytes: field("used_memory"),
        disk_used_bytes: field("aof_current_size"),
        connections: field("connected_clients")
            .map(|n| u32::try_from(n.saturating_sub(1)).unwrap_or(u32::MAX)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted() {
        assert_eq!(quote("/a b/\"c\"\\"), "\"/a b/\\\"c\\\"\\\\\"");
    }
}
