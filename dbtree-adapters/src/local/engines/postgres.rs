//! PostgreSQL: `initdb` with the password in a temporary file, settings on the server's command
//! line (so `ALTER SYSTEM` cannot move the port), and administration over the instance's
//! private unix socket, where the driver signs in without a password.

use std::ffi::OsString;
use std::process::Stdio;
use std::time::Duration;

use dbtree_core::boundary::{ClusterError, EngineUsage, UsageReport};
use dbtree_core::instance::Password;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

use super::{Ctx, Rotation, tcp_accepts};
use crate::local::disk::write_private;
use crate::local::host::io_error;
use crate::local::process;

/// The role users sign in as: the bootstrap superuser of the instance.
const ROLE: &str = "dbtree";
const PGDATA: &str = "pgdata";
const HBA: &str = "pg_hba.conf";

/// Runs `initdb` as the run-as user, the password passed in a file of mode 0600 that is removed
/// right after, and writes the client authentication rules.
pub(super) async fn prepare(ctx: Ctx<'_>, password: &Password) -> Result<(), ClusterError> {
    let Some((initdb, _)) = ctx.host.binaries.postgres.clone() else {
        return Err(ClusterError::permanent(
            "PostgreSQL (initdb and postgres) is not installed; install it or use the kube cluster",
        ));
    };
    let run_as = &ctx.host.run_as;
    let pwfile = ctx.layout.path("initdb.pw");
    write_private(&pwfile, password.expose().as_bytes(), Some(run_as))
        .map_err(|e| io_error("writing", &pwfile, &e))?;
    let mut pwfile_arg = OsString::from("--pwfile=");
    pwfile_arg.push(&pwfile);
    let args: Vec<OsString> = vec![
        "-D".into(),
        ctx.layout.engine_path(PGDATA).into_os_string(),
        "-U".into(),
        ROLE.into(),
        "--auth-local=trust".into(),
        "--auth-host=scram-sha-256".into(),
        pwfile_arg,
        "--encoding=UTF8".into(),
        "--no-locale".into(),
    ];
    let mut command = process::command(&initdb, &args, &ctx.layout.engine_dir(), run_as);
    command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let outcome = tokio::time::timeout(Duration::from_secs(120), command.output()).await;
    let _ = std::fs::remove_file(&pwfile);
    let output = match outcome {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Err(ClusterError::transient(format!("running initdb: {e}"))),
        Err(_) => {
            return Err(ClusterError::transient(
                "initdb did not finish within 120 s",
            ));
        }
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        return Err(ClusterError::permanent(format!(
            "initdb {}: {}",
            process::describe_exit(output.status),
            last.unwrap_or("no output").trim()
        )));
    }
    // Local connections are trusted: the socket directory is private to the run-as user (and
    // the driver). Over TCP, every client needs the password.
    let hba = "local all all trust\nhost all all all scram-sha-256\n";
    let path = ctx.layout.path(HBA);
    write_private(&path, hba.as_bytes(), Some(run_as)).map_err(|e| io_error("writing", &path, &e))
}

pub(super) fn args(ctx: Ctx<'_>) -> Vec<OsString> {
    let shared_buffers_mib = (ctx.record.resources.memory_mib / 4).max(16);
    let mut args: Vec<OsString> =
        vec!["-D".into(), ctx.layout.engine_path(PGDATA).into_os_string()];
    let mut socket_dir = OsString::from("unix_socket_directories=");
    socket_dir.push(ctx.layout.engine_dir());
    let mut hba = OsString::from("hba_file=");
    hba.push(ctx.layout.path(HBA));
    for setting in [
        format!("port={}", ctx.port()).into(),
        format!("listen_addresses={}", ctx.host.bind_host).into(),
        socket_dir,
        "unix_socket_permissions=0700".into(),
        hba,
        "max_connections=20".into(),
        format!("shared_buffers={shared_buffers_mib}MB").into(),
    ] {
        args.push("-c".into());
        args.push(setting);
    }
    args
}

/// A connection over the private socket, as the instance's superuser, without a password.
/// Statements are not logged (one of them carries the new password).
async fn admin(ctx: Ctx<'_>) -> Result<PgConnection, sqlx::Error> {
    let options = PgConnectOptions::new_without_pgpass()
        .socket(ctx.layout.engine_dir())
        .port(ctx.port())
        .username(ROLE)
        .database("postgres")
        .ssl_mode(PgSslMode::Disable)
        .application_name("dbtree-local")
        .disable_statement_logging();
    PgConnection::connect_with(&options).await
}

/// Ready when the server answers a query on its socket and its port accepts connections.
pub(super) async fn probe(ctx: Ctx<'_>) -> Result<(), String> {
    let mut connection = admin(ctx)
        .await
        .map_err(|e| format!("the server does not answer yet: {e}"))?;
    let answered = sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(&mut connection)
        .await;
    let _ = connection.close().await;
    answered.map_err(|e| format!("the server does not answer queries yet: {e}"))?;
    tcp_accepts(ctx).await
}

/// What PostgreSQL reports about itself, over the private socket: the size of its databases
/// (`pg_database_size`) and its client sessions (`pg_stat_activity`, less this one).
/// PostgreSQL has no figure for the memory its processes use, so none is given.
pub(crate) async fn usage(ctx: Ctx<'_>) -> Result<UsageReport, ClusterError> {
    let ask = async {
        let mut connection = admin(ctx).await?;
        let row: (i64, i64) = sqlx::query_as(
            "SELECT (SELECT coalesce(sum(pg_database_size(datname)), 0)::bigint FROM pg_database),
                    (SELECT count(*) FROM pg_stat_activity
                     WHERE backend_type = 'client backend' AND pid <> pg_backend_pid())",
        )
        .fetch_one(&mut connection)
        .await?;
        let _ = connection.close().await;
        Ok::<_, sqlx::Error>(row)
    };
    let (disk, connections) = match tokio::time::timeout(Duration::from_secs(3), ask).await {
        Ok(Ok(row)) => row,
        Ok(Err(_)) => {
            return Err(ClusterError::transient(
                "PostgreSQL did not answer the usage query",
            ));
        }
        Err(_) => {
            return Err(ClusterError::transient(
                "the PostgreSQL usage query timed out",
            ));
        }
    };
    Ok(UsageReport::Measured(EngineUsage {
        memory_used_bytes: None,
        disk_used_bytes: u64::try_from(disk).ok(),
        connections: u32::try_from(connections).ok(),
    }))
}

/// `ALTER ROLE dbtree PASSWORD …` over the private socket, with statement logging off for the
/// session, then disconnects the sessions signed in with the old password.
pub(super) async fn rotate(
    ctx: Ctx<'_>,
    new: &Password,
    running: bool,
) -> Result<Rotation, ClusterError> {
    if !running {
        return Err(ClusterError::transient(
            "a stopped PostgreSQL instance cannot change its password: start it first",
        ));
    }
    let failed = |doing: &str, e: sqlx::Error| {
        let code = e
            .as_database_error()
            .and_then(|d| d.code().map(|c| c.into_owned()));
        ClusterError::transient(match code {
            Some(code) => format!("{doing} failed (SQLSTATE {code})"),
            None => format!("{doing} failed: the server could not be reached"),
        })
    };
    let mut connection = admin(ctx)
        .await
        .map_err(|e| failed("connecting to change the password", e))?;
    let quiet = "SET log_statement = 'none'; SET log_min_error_statement = 'panic'; \
                 SET log_min_duration_statement = -1";
    sqlx::raw_sql(quiet)
        .execute(&mut connection)
        .await
        .map_err(|e| failed("preparing the password change", e))?;
    let literal = new.expose().replace('\'', "''");
    let alter = format!("ALTER ROLE {ROLE} PASSWORD '{literal}'");
    sqlx::raw_sql(AssertSqlSafe(alter))
        .execute(&mut connection)
        .await
        .map_err(|e| failed("changing the password", e))?;
    let others = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                  WHERE usename = 'dbtree' AND pid <> pg_backend_pid() \
                  AND backend_type = 'client backend'";
    sqlx::raw_sql(others)
        .execute(&mut connection)
        .await
        .map_err(|e| failed("disconnecting the old sessions", e))?;
    let _ = connection.close().await;
    Ok(Rotation::Applied)
}
