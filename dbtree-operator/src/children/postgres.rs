//! PostgreSQL: `postgresql.conf` sized from the memory limit, loaded with `-c config_file`,
//! and a start-up step that applies the Secret's password to an existing data directory.

use std::collections::BTreeMap;

use dbtree_adapters::kube::{DBInstanceSpec, EngineKind};
use k8s_openapi::api::core::v1::{Container, EnvVar};

use super::pod::{
    SYNC_CREDENTIALS_FILE, exec_probe, secret_env, sync_credentials_container, tcp_probe,
};
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

/// Runs before the engine on every start. A fresh volume is initialised by the image's
/// entrypoint from `POSTGRES_USER`/`POSTGRES_PASSWORD`; an existing one gets the Secret's
/// current password (a rotation), over the local socket, with the server listening on no TCP
/// address. The password travels as a psql variable, never through the shell or the log.
const SYNC_CREDENTIALS: &str = r#"#!/bin/sh
# Rendered by dbtree-operator: applies the credentials Secret's password on every start.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  exit 0
fi
pg_ctl -D "$PGDATA" -w -t 120 -o "-c config_file=/etc/dbtree/postgresql.conf -c listen_addresses=''" start
psql -X -q -v ON_ERROR_STOP=1 -h /var/run/postgresql -U "$POSTGRES_USER" -d postgres \
  -v role="$POSTGRES_USER" -v password="$POSTGRES_PASSWORD" <<'SQL'
ALTER ROLE :"role" WITH PASSWORD :'password';
SQL
pg_ctl -D "$PGDATA" -w -m fast stop
"#;

pub(crate) fn plan(spec: &DBInstanceSpec, settings: &EngineSettings, image: &str) -> EnginePlan {
    let secret = &spec.secret_ref.name;
    let env = vec![
        EnvVar {
            name: "PGDATA".into(),
            value: Some(PGDATA.into()),
            value_from: None,
        },
        secret_env("POSTGRES_USER", secret, "username"),
        secret_env("POSTGRES_PASSWORD", secret, "password"),
    ];
    let ready = "pg_isready -q -h 127.0.0.1 -p 5432 -U \"$POSTGRES_USER\" -d postgres";
    let main = Container {
        name: "postgresql".into(),
        image: Some(image.to_owned()),
        args: Some(vec![
            "postgres".into(),
            "-c".into(),
            format!("config_file={CONFIG_DIR}/postgresql.conf"),
        ]),
        env: Some(env.clone()),
        startup_probe: Some(exec_probe(ready, 5, 60)),
        readiness_probe: Some(exec_probe(ready, 10, 3)),
        liveness_probe: Some(tcp_probe(PORT, 10, 6)),
        ..Container::default()
    };
    let init = sync_credentials_container(image, env);
    EnginePlan {
        engine: EngineKind::Postgresql,
        files: BTreeMap::from([
            ("postgresql.conf".to_owned(), config_file(spec, settings)),
            (
                SYNC_CREDENTIALS_FILE.to_owned(),
                SYNC_CREDENTIALS.to_owned(),
            ),
        ]),
        main,
        init: Some(init),
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
