//! PostgreSQL: `postgresql.conf` sized from the memory limit and loaded with `-c config_file`,
//! an `pg_hba.conf` that admits dbtree's administrator only from inside the pod, and a setup
//! step on every start that applies both Secrets: the administrator (the bootstrap superuser
//! `postgres`, from the operator's Secret) and the tenant, an ordinary role that owns its
//! database and nothing else.

use std::collections::BTreeMap;

use dbtree_adapters::kube::{DBInstanceSpec, EngineKind};
use k8s_openapi::api::core::v1::{Container, EnvVar};

use super::pod::{SETUP_FILE, exec_probe, setup_container, tcp_probe, tenant_and_admin_env};
use super::{CONFIG_DIR, EnginePlan, EngineSettings};

const PORT: i32 = 5432;
const DATA_PATH: &str = "/var/lib/postgresql/data";
const PGDATA: &str = "/var/lib/postgresql/data/pgdata";

/// Memory-derived settings, in MiB unless named otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PgMemory {
    pub(crate) max_connections: i64,
    pub(crate) shared_buffers_mib: i64,
    pub(crate) effective_cache_size_mib: i64,
    pub(crate) work_mem_kib: i64,
    pub(crate) maintenance_work_mem_mib: i64,
    pub(crate) max_wal_size_mib: i64,
}

/// A quarter of memory for shared buffers, connections scaled with memory (8 MiB each, 20 to
/// 100), per-operation memory from what is left, WAL at most an eighth of the disk.
pub(crate) fn memory_plan(
    memory_mib: i32,
    disk_gib: i32,
    max_connections: Option<i64>,
) -> PgMemory {
    let memory = i64::from(memory_mib.max(64));
    let max_connections = max_connections.unwrap_or((memory / 8).clamp(20, 100));
    let shared_buffers_mib = (memory / 4).max(16);
    let work_mem_kib = ((memory - shared_buffers_mib) * 1024 / 4 / max_connections).max(64);
    PgMemory {
        max_connections,
        shared_buffers_mib,
        effective_cache_size_mib: memory * 3 / 4,
        work_mem_kib,
        maintenance_work_mem_mib: (memory / 16).max(16),
        max_wal_size_mib: (i64::from(disk_gib.max(1)) * 1024 / 8).clamp(96, 4096),
    }
}

fn config_file(spec: &DBInstanceSpec, settings: &EngineSettings) -> String {
    let connections = settings.get("max_connections").and_then(|v| v.parse().ok());
    let m = memory_plan(
        spec.resources.memory_mib,
        spec.resources.disk_gib,
        connections,
    );
    let setting = |key: &str, default: &str| settings.get(key).unwrap_or(default).to_owned();
    format!(
        "# Rendered by dbtree-operator from the DBInstance spec; edits are overwritten.\n\
         listen_addresses = '*'\n\
         port = {PORT}\n\
         unix_socket_directories = '/var/run/postgresql'\n\
         hba_file = '{CONFIG_DIR}/pg_hba.conf'\n\
         max_connections = {max_connections}\n\
         shared_buffers = {shared_buffers}MB\n\
         effective_cache_size = {effective_cache}MB\n\
         work_mem = {work_mem}kB\n\
         maintenance_work_mem = {maintenance}MB\n\
         dynamic_shared_memory_type = posix\n\
         password_encryption = scram-sha-256\n\
         fsync = on\n\
         synchronous_commit = on\n\
         full_page_writes = on\n\
         wal_level = replica\n\
         min_wal_size = 32MB\n\
         max_wal_size = {max_wal}MB\n\
         statement_timeout = {statement_timeout}\n\
         idle_in_transaction_session_timeout = {idle_timeout}\n\
         log_destination = 'stderr'\n\
         logging_collector = off\n\
         log_statement = 'none'\n\
         log_min_duration_statement = {log_min}\n\
         timezone = 'UTC'\n",
        max_connections = m.max_connections,
        shared_buffers = m.shared_buffers_mib,
        effective_cache = m.effective_cache_size_mib,
        work_mem = m.work_mem_kib,
        maintenance = m.maintenance_work_mem_mib,
        max_wal = m.max_wal_size_mib,
        statement_timeout = setting("statement_timeout", "0"),
        idle_timeout = setting("idle_in_transaction_session_timeout", "0"),
        log_min = setting("log_min_duration_statement", "-1"),
    )
}

/// Who may sign in, and how: passwords (SCRAM) for everyone; the administrator only from the
/// pod itself (readiness and maintenance), never through the Service. No `trust` anywhere and
/// no replication connections.
pub(crate) const HBA: &str = "\
# Rendered by dbtree-operator; edits are overwritten.
# TYPE  DATABASE  USER      ADDRESS        METHOD
local   all       all                      scram-sha-256
host    all       postgres  127.0.0.1/32   scram-sha-256
host    all       postgres  ::1/128        scram-sha-256
host    all       postgres  all            reject
host    all       all       all            scram-sha-256
";

/// Used only by the setup step, while the server listens on no TCP address: the engine's own
/// OS account, checked by the kernel (`peer`), administers it over the pod-local socket.
pub(crate) const HBA_SETUP: &str = "\
# Rendered by dbtree-operator: the setup step only (no TCP listener while it runs).
local   all   postgres   peer
";

/// Runs before the engine on every start: initialises a fresh volume (administrator password
/// from the operator's Secret, SCRAM for every connection), then applies both Secrets.
/// Passwords travel through the environment into psql variables (`\getenv`), never through the
/// shell, the command line or the log.
const SETUP: &str = r#"#!/bin/sh
# Rendered by dbtree-operator: dbtree's administrator and the tenant's role and database,
# applied on every start.
set -eu
umask 077
case "$DBTREE_USERNAME" in
  postgres | pg_*)
    echo "setup: the credentials Secret's username '$DBTREE_USERNAME' is reserved" >&2
    exit 1 ;;
esac
if ! printf '%s' "$DBTREE_USERNAME" | grep -Eq '^[a-z_][a-z0-9_]{0,62}$'; then
  echo "setup: the credentials Secret's username must be 1-63 lower-case letters, digits or _" >&2
  exit 1
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  printf '%s\n' "$DBTREE_ADMIN_PASSWORD" > /var/run/postgresql/admin.pw
  initdb -D "$PGDATA" --username=postgres --pwfile=/var/run/postgresql/admin.pw \
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 --encoding=UTF8 --no-locale >/dev/null
  rm -f /var/run/postgresql/admin.pw
fi
pg_ctl -D "$PGDATA" -w -t 120 -l /tmp/setup.log -o "-c config_file=/etc/dbtree/postgresql.conf \
  -c hba_file=/etc/dbtree/pg_hba_setup.conf -c listen_addresses=''" start >/dev/null
psql -X -q -h /var/run/postgresql -U postgres -d postgres -f /etc/dbtree/setup.sql
pg_ctl -D "$PGDATA" -w -m fast stop >/dev/null
"#;

/// The tenant: a login role that is no superuser, cannot create roles or databases, replicate
/// or bypass row security, is a member of no role (so not of `pg_execute_server_program`,
/// `pg_read_server_files`, `pg_write_server_files`), carries no role settings, and owns the
/// database named after it. Untrusted languages, `ALTER SYSTEM`, server-side `COPY … PROGRAM`
/// and file access all need one of those. Run by the administrator on every start, so any drift
/// is put back.
pub(crate) const SETUP_SQL: &str = r#"-- Rendered by dbtree-operator; edits are overwritten.
\set ON_ERROR_STOP on
\getenv tenant DBTREE_USERNAME
\getenv tenant_password DBTREE_PASSWORD
\getenv admin_password DBTREE_ADMIN_PASSWORD
ALTER ROLE postgres WITH PASSWORD :'admin_password';
SELECT format('CREATE ROLE %I', :'tenant')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'tenant') \gexec
ALTER ROLE :"tenant" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  INHERIT CONNECTION LIMIT -1 PASSWORD :'tenant_password';
ALTER ROLE :"tenant" RESET ALL;
SELECT format('REVOKE %I FROM %I', g.rolname, t.rolname)
  FROM pg_auth_members m
  JOIN pg_roles g ON g.oid = m.roleid
  JOIN pg_roles t ON t.oid = m.member
 WHERE t.rolname = :'tenant' \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'tenant', :'tenant')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'tenant') \gexec
ALTER DATABASE :"tenant" OWNER TO :"tenant";
"#;

pub(crate) fn plan(
    spec: &DBInstanceSpec,
    settings: &EngineSettings,
    image: &str,
    admin_secret: &str,
) -> EnginePlan {
    let pgdata = EnvVar {
        name: "PGDATA".into(),
        value: Some(PGDATA.into()),
        value_from: None,
    };
    // pg_isready only asks whether the server accepts connections: no credential needed.
    let ready = "pg_isready -q -h 127.0.0.1 -p 5432 -U postgres -d postgres";
    let main = Container {
        name: "postgresql".into(),
        image: Some(image.to_owned()),
        // The server itself, not the image's entrypoint: the setup step owns initialisation.
        command: Some(vec![
            "postgres".into(),
            "-c".into(),
            format!("config_file={CONFIG_DIR}/postgresql.conf"),
        ]),
        env: Some(vec![pgdata.clone()]),
        startup_probe: Some(exec_probe(ready, 5, 60)),
        readiness_probe: Some(exec_probe(ready, 10, 3)),
        liveness_probe: Some(tcp_probe(PORT, 10, 6)),
        ..Container::default()
    };
    let mut env = vec![pgdata];
    env.extend(tenant_and_admin_env(&spec.secret_ref.name, admin_secret));
    EnginePlan {
        engine: EngineKind::Postgresql,
        files: BTreeMap::from([
            ("postgresql.conf".to_owned(), config_file(spec, settings)),
            ("pg_hba.conf".to_owned(), HBA.to_owned()),
            ("pg_hba_setup.conf".to_owned(), HBA_SETUP.to_owned()),
            (SETUP_FILE.to_owned(), SETUP.to_owned()),
            ("setup.sql".to_owned(), SETUP_SQL.to_owned()),
        ]),
        main,
        init: Some(setup_container(image, env)),
        data_path: DATA_PATH,
        scratch: vec![("run", "/var/run/postgresql"), ("tmp", "/tmp")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_follows_the_limit() {
        let tiny = memory_plan(256, 2, None);
        assert_eq!(tiny.max_connections, 32);
        assert_eq!(tiny.shared_buffers_mib, 64);
        assert_eq!(tiny.effective_cache_size_mib, 192);
        assert_eq!(tiny.work_mem_kib, (256 - 64) * 1024 / 4 / 32);
        assert_eq!(tiny.max_wal_size_mib, 256);
        let large = memory_plan(1536, 20, None);
        assert_eq!(large.max_connections, 100, "connections are capped");
        assert_eq!(large.shared_buffers_mib, 384);
        assert_eq!(large.max_wal_size_mib, 2560);
        let chosen = memory_plan(256, 1, Some(10));
        assert_eq!(chosen.max_connections, 10);
        assert_eq!(chosen.max_wal_size_mib, 128);
    }
}
