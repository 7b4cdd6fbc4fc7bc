//! PostgreSQL: `initdb` makes the bootstrap superuser `dbtree_admin`, whose password only the
//! driver knows; single-user mode then creates the tenant's role `dbtree` (no SUPERUSER,
//! CREATEDB, CREATEROLE, REPLICATION or BYPASSRLS, in no predefined role) and its database
//! `dbtree`, owned by it. Settings are on the server's command line (so `ALTER SYSTEM`, which
//! the tenant cannot run anyway, could not move the port). Client authentication: the
//! administrator only over the instance's private unix socket, with its password; the tenant
//! only over TCP, with its password; never `trust`.

use std::ffi::OsString;
use std::process::Stdio;
use std::time::Duration;

use dbtree_core::boundary::{ClusterError, EngineUsage, UsageReport};
use dbtree_core::instance::{Engine, Password};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};
use tokio::io::AsyncWriteExt;

use super::{ADMIN_USER, Ctx, Rotation, tcp_accepts};
use crate::local::disk::write_private;
use crate::local::host::io_error;
use crate::local::process;

const PGDATA: &str = "pgdata";
const HBA: &str = "pg_hba.conf";

/// Who may connect how: the administrator over the private socket, the tenant over TCP, both
/// with their passwords (SCRAM); nothing else.
const HBA_RULES: &str = "\
local all dbtree_admin scram-sha-256
local all all reject
host all dbtree_admin all reject
host all all all scram-sha-256
";

/// `initdb` as the engine's account (the administrator's password in a temporary 0600 file),
/// then the tenant's role and database in single-user mode (the password on standard input),
/// then the client authentication rules.
pub(super) async fn prepare(
    ctx: Ctx<'_>,
    tenant: &Password,
    admin: &Password,
) -> Result<(), ClusterError> {
    let Some((initdb, postgres)) = ctx.host.binaries.postgres.clone() else {
        return Err(ClusterError::permanent(
            "PostgreSQL (initdb and postgres) is not installed",
        ));
    };
    let pwfile = ctx.layout.engine_path("initdb.pw");
    write_private(&pwfile, admin.expose().as_bytes(), Some(ctx.run_as))
        .map_err(|e| io_error("writing", &pwfile, &e))?;
    let mut pwfile_arg = OsString::from("--pwfile=");
    pwfile_arg.push(&pwfile);
    let args: Vec<OsString> = vec![
        "-D".into(),
        ctx.layout.engine_path(PGDATA).into_os_string(),
        "-U".into(),
        ADMIN_USER.into(),
        "--auth-local=scram-sha-256".into(),
        "--auth-host=scram-sha-256".into(),
        pwfile_arg,
        "--encoding=UTF8".into(),
        "--no-locale".into(),
    ];
    let outcome = run(ctx, &initdb, &args, None, "initdb").await;
    let _ = std::fs::remove_file(&pwfile);
    outcome?;
    let literal = tenant.expose().replace('\'', "''");
    let tenant_role = Engine::Postgresql.username();
    let database = Engine::Postgresql.database();
    let statements = format!(
        "CREATE ROLE {tenant_role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION \
         NOBYPASSRLS PASSWORD '{literal}'\n\
         CREATE DATABASE {database} OWNER {tenant_role}\n\
         REVOKE ALL ON DATABASE postgres FROM PUBLIC\n\
         REVOKE ALL ON DATABASE template1 FROM PUBLIC\n"
    );
    let single: Vec<OsString> = vec![
        "--single".into(),
        "-D".into(),
        ctx.layout.engine_path(PGDATA).into_os_string(),
        "-c".into(),
        "log_min_error_statement=panic".into(),
        "-c".into(),
        "log_statement=none".into(),
        "postgres".into(),
    ];
    run(
        ctx,
        &postgres.path,
        &single,
        Some(statements.into_bytes()),
        "creating the tenant's role (postgres --single)",
    )
    .await?;
    let path = ctx.layout.path(HBA);
    write_private(&path, HBA_RULES.as_bytes(), Some(ctx.run_as))
        .map_err(|e| io_error("writing", &path, &e))
}

/// Runs a PostgreSQL tool as the engine's account, within two minutes. Its error output is
/// reported without any line that mentions a password.
async fn run(
    ctx: Ctx<'_>,
    program: &std::path::Path,
    args: &[OsString],
    stdin: Option<Vec<u8>>,
    what: &str,
) -> Result<(), ClusterError> {
    let mut command = process::command(program, args, &ctx.layout.engine_dir(), ctx.run_as);
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| ClusterError::transient(format!("{what}: {e}")))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(&input)
            .await
            .map_err(|e| ClusterError::transient(format!("{what}: writing its input: {e}")))?;
        drop(pipe);
    }
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .map_err(|_| ClusterError::transient(format!("{what} did not finish within 120 s")))?
        .map_err(|e| ClusterError::transient(format!("{what}: {e}")))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let failed = stderr
        .lines()
        .find(|l| l.contains("ERROR:") || l.contains("FATAL:"));
    if output.status.success() && failed.is_none() {
        return Ok(());
    }
    let last = failed
        .or_else(|| stderr.lines().rev().find(|l| !l.trim().is_empty()))
        .filter(|l| !l.to_ascii_lowercase().contains("password"))
        .unwrap_or("no output");
    Err(ClusterError::permanent(format!(
        "{what} {}: {}",
        process::describe_exit(output.status),
        last.trim()
    )))
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

/// A connection over the private socket as the administrator. Statements are not logged (one
/// of them carries the new password).
async fn admin(ctx: Ctx<'_>, password: &Password) -> Result<PgConnection, sqlx::Error> {
    let options = PgConnectOptions::new_without_pgpass()
        .socket(ctx.layout.engine_dir())
        .port(ctx.port())
        .username(ADMIN_USER)
        .password(password.expose())
        .database("postgres")
        .ssl_mode(PgSslMode::Disable)
        .application_name("dbtree-local")
        .disable_statement_logging();
    PgConnection::connect_with(&options).await
}

/// Ready when the server answers the administrator on its socket and its port accepts
/// connections.
pub(super) async fn probe(ctx: Ctx<'_>) -> Result<(), String> {
    let password = ctx
        .layout
        .read_admin_password()
        .map_err(|e| format!("reading the administrator password: {e}"))?;
    let mut connection = admin(ctx, &password)
        .await
        .map_err(|e| format!("the server does not answer yet: {e}"))?;
    let answered = sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(&mut connection)
        .await;
    let _ = connection.close().await;
    answered.map_err(|e| format!("the server does not answer queries yet: {e}"))?;
    tcp_accepts(ctx).await
}

/// What PostgreSQL reports about itself, over the private socket as the administrator: the size
/// of its databases (`pg_database_size`) and its client sessions (`pg_stat_activity`, less this
/// one). PostgreSQL has no figure for the memory its processes use, so none is given.
pub(crate) async fn usage(
    ctx: Ctx<'_>,
    admin_password: &Password,
) -> Result<UsageReport, ClusterError> {
    let ask = async {
        let mut connection = admin(ctx, admin_password).await?;
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

/// `ALTER ROLE dbtree PASSWORD …` as the administrator, with statement logging off for the
/// session, then disconnects the tenant's sessions.
pub(super) async fn rotate(
    ctx: Ctx<'_>,
    admin_password: &Password,
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
    let mut connection = admin(ctx, admin_password)
        .await
        .map_err(|e| failed("connecting to change the password", e))?;
    let quiet = "SET log_statement = 'none'; SET log_min_error_statement = 'panic'; \
                 SET log_min_duration_statement = -1";
    sqlx::raw_sql(quiet)
        .execute(&mut connection)
        .await
        .map_err(|e| failed("preparing the password change", e))?;
    let role = Engine::Postgresql.username();
    let literal = new.expose().replace('\'', "''");
    let alter = format!("ALTER ROLE {role} PASSWORD '{literal}'");
    sqlx::raw_sql(AssertSqlSafe(alter))
        .execute(&mut connection)
        .await
        .map_err(|e| failed("changing the password", e))?;
    let others = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                  WHERE usename = 'dbtree' AND backend_type = 'client backend'";
    sqlx::raw_sql(others)
        .execute(&mut connection)
        .await
        .map_err(|e| failed("disconnecting the old sessions", e))?;
    let _ = connection.close().await;
    Ok(Rotation::Applied)
}
