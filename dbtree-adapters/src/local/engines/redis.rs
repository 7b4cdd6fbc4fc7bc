//! Redis: the configuration (`redis.conf`, the driver's, mode 0600) is handed to `redis-server -`
//! on its standard input, so the engine's account reads no file of the driver's. It holds the
//! ACL: `default` off, the administrator with every command, and the tenant `dbtree` with every
//! data command but none that observe or change the server; passwords only as SHA-256 hashes.
//! Readiness over the instance's private unix socket; rotation with `ACL SETUSER` as the
//! administrator.

use std::ffi::OsString;
use std::time::Duration;

use dbtree_core::boundary::{ClusterError, EngineUsage, UsageReport};
use dbtree_core::instance::{Engine, Password};
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ADMIN_USER, Ctx, Rotation, tcp_accepts};
use crate::local::disk::{create_private_dir, write_private};
use crate::local::host::io_error;

const CONF: &str = "redis.conf";
const SOCKET: &str = "redis.sock";

/// What the tenant may not run: every `@dangerous` command (server configuration, modules,
/// debugging, shutdown, ACL changes, replication, migration, failover, monitoring, saving,
/// client control and listing, INFO), except the data commands in that category, given back.
const TENANT_RULES: &str = "~* &* +@all -@dangerous +flushdb +flushall +keys +sort +sort_ro \
                            +swapdb +restore +acl|whoami";

/// Writes the configuration and creates the data directory.
pub(super) fn prepare(
    ctx: Ctx<'_>,
    tenant: &Password,
    admin: &Password,
) -> Result<(), ClusterError> {
    let data = ctx.layout.engine_path("data");
    create_private_dir(&data, ctx.run_as).map_err(|e| io_error("creating", &data, &e))?;
    write_conf(ctx, &hash(tenant), admin)
}

/// The SHA-256 of a password as Redis's ACL takes it.
fn hash(password: &Password) -> String {
    Sha256::digest(password.expose().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `redis.conf`: mode 0600, the driver's own, in the instance directory.
fn write_conf(ctx: Ctx<'_>, tenant_hash: &str, admin: &Password) -> Result<(), ClusterError> {
    let path = ctx.layout.path(CONF);
    write_private(&path, conf(ctx, tenant_hash, admin).as_bytes(), None)
        .map_err(|e| io_error("writing", &path, &e))
}

fn conf(ctx: Ctx<'_>, tenant_hash: &str, admin: &Password) -> String {
    let maxmemory_mib = u64::from(ctx.record.resources.memory_mib) * 9 / 10;
    let data = ctx.layout.engine_path("data");
    let socket = ctx.layout.engine_path(SOCKET);
    let tenant = Engine::Redis.username();
    [
        "# Written by dbtree; rewritten when the password changes.".to_owned(),
        format!("port {}", ctx.port()),
        format!("bind {}", ctx.host.bind_host),
        "protected-mode yes".to_owned(),
        "daemonize no".to_owned(),
        "logfile \"\"".to_owned(),
        format!("unixsocket {}", quote(&socket.to_string_lossy())),
        "unixsocketperm 700".to_owned(),
        format!("maxmemory {maxmemory_mib}mb"),
        "maxmemory-policy noeviction".to_owned(),
        format!("dir {}", quote(&data.to_string_lossy())),
        "appendonly yes".to_owned(),
        "appendfsync everysec".to_owned(),
        "enable-debug-command no".to_owned(),
        "enable-module-command no".to_owned(),
        "enable-protected-configs no".to_owned(),
        "user default off resetpass -@all".to_owned(),
        format!("user {ADMIN_USER} on #{} ~* &* +@all", hash(admin)),
        format!("user {tenant} on #{tenant_hash} {TENANT_RULES}"),
        String::new(),
    ]
    .join("\n")
}

/// A double-quoted configuration value.
fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `redis-server -`: the configuration comes on standard input.
pub(super) fn args() -> Vec<OsString> {
    vec!["-".into()]
}

/// The configuration to hand to the server.
pub(super) fn stdin(ctx: Ctx<'_>) -> Result<Vec<u8>, ClusterError> {
    let path = ctx.layout.path(CONF);
    std::fs::read(&path).map_err(|e| io_error("reading", &path, &e))
}

/// Ready when the instance's own socket answers `PING` (by asking for authentication, or with
/// `PONG`: either proves the server is serving) and its port accepts connections.
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

/// Rewrites the configuration with the new password's hash, then applies it to the running
/// server as the administrator (`ACL SETUSER … resetpass #…`) and disconnects the tenant's
/// sessions. If that fails, the server restarts with the new configuration.
pub(super) async fn rotate(
    ctx: Ctx<'_>,
    admin: &Password,
    new: &Password,
    running: bool,
) -> Result<Rotation, ClusterError> {
    let new_hash = hash(new);
    write_conf(ctx, &new_hash, admin)?;
    if !running {
        return Ok(Rotation::Applied);
    }
    match tokio::time::timeout(Duration::from_secs(5), apply(ctx, admin, &new_hash)).await {
        Ok(Ok(())) => Ok(Rotation::Applied),
        Ok(Err(_)) | Err(_) => Ok(Rotation::Restart),
    }
}

async fn apply(ctx: Ctx<'_>, admin: &Password, new_hash: &str) -> redis::RedisResult<()> {
    let info = ConnectionAddr::Unix(ctx.layout.engine_path(SOCKET))
        .into_connection_info()?
        .set_redis_settings(
            RedisConnectionInfo::default()
                .set_username(ADMIN_USER)
                .set_password(admin.expose()),
        );
    let client = redis::Client::open(info)?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    let tenant = Engine::Redis.username();
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg(tenant)
        .arg("resetpass")
        .arg(format!("#{new_hash}"))
        .query_async::<()>(&mut connection)
        .await?;
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("USER")
        .arg(tenant)
        .query_async::<i64>(&mut connection)
        .await?;
    Ok(())
}

/// What Redis reports about itself (`INFO` over the instance's private socket, signed in with
/// the administrator): `used_memory`, `connected_clients` (less this query's own
/// connection) and `aof_current_size` (its data on disk).
pub(crate) async fn usage(ctx: Ctx<'_>, admin: &Password) -> Result<UsageReport, ClusterError> {
    let ask = async {
        let info = ConnectionAddr::Unix(ctx.layout.engine_path(SOCKET))
            .into_connection_info()?
            .set_redis_settings(
                RedisConnectionInfo::default()
                    .set_username(ADMIN_USER)
                    .set_password(admin.expose()),
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

    #[test]
    fn passwords_are_hashed_as_redis_expects() {
        use secrecy::SecretString;
        let p = Password::from_secret(SecretString::from("lemon".to_owned()));
        // echo -n lemon | sha256sum
        assert_eq!(
            hash(&p),
            "f464d7d71c06e47a535ce441aa202aa717cddeab902a45b0c283aac7a9a090d7"
        );
    }
}
