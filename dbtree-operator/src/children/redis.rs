//! Redis: `redis.conf` with `maxmemory` below the container limit, append-only persistence and
//! the debug and module commands switched off, and an ACL file written from both Secrets at
//! start: the tenant's user may run every data command and none that observes or changes the
//! server; dbtree's administrator (readiness, maintenance) is a separate user; `default` is off
//! unless it is the tenant's own name.

use std::collections::BTreeMap;

use dbtree_adapters::kube::{DBInstanceSpec, EngineKind};
use k8s_openapi::api::core::v1::Container;

use super::pod::{exec_probe, tcp_probe, tenant_and_admin_env};
use super::{CONFIG_DIR, EnginePlan, EngineSettings};

const PORT: i32 = 6379;

/// The tenant's ACL rules: every key and channel, every command but those of the `@admin` and
/// `@dangerous` categories, with the data commands of `@dangerous` given back (`FLUSHDB`,
/// `FLUSHALL`, `KEYS`, `SORT`, `SWAPDB`) and the server commands named again so that a new
/// Redis version that moves one out of those categories does not hand it over: `CONFIG`,
/// `MODULE`, `DEBUG`, `SHUTDOWN`, `ACL` (except `ACL WHOAMI`), `REPLICAOF`/`SLAVEOF`,
/// `MIGRATE`, `FAILOVER`, `MONITOR`, `SAVE`, `BGSAVE`, `BGREWRITEAOF`, replication, `INFO`,
/// `RESTORE` (a crafted payload can crash the server) and `CLIENT KILL/LIST/PAUSE` (other
/// connections).
pub const TENANT_ACL_RULES: &str = "~* &* +@all -@admin -@dangerous \
    +flushdb +flushall +keys +sort +sort_ro +swapdb \
    -config -module -debug -shutdown -acl +acl|whoami -replicaof -slaveof -migrate -failover \
    -monitor -save -bgsave -bgrewriteaof -sync -psync -replconf -info -restore -restore-asking \
    -client|kill -client|list -client|pause -client|unpause -lastsave -latency -slowlog";

/// The administrator's ACL user name.
pub const ADMIN_USER: &str = "dbtree-admin";

/// `maxmemory` in MiB: three quarters of the limit, leaving room for fragmentation, client
/// buffers and the append-only rewrite.
pub(crate) fn maxmemory_mib(memory_mib: i32) -> i32 {
    (memory_mib.max(16) * 3 / 4).max(8)
}

fn config_file(spec: &DBInstanceSpec, settings: &EngineSettings) -> String {
    let setting = |key: &str, default: &str| settings.get(key).unwrap_or(default).to_owned();
    format!(
        "# Rendered by dbtree-operator from the DBInstance spec; edits are overwritten.\n\
         bind 0.0.0.0\n\
         port {PORT}\n\
         protected-mode no\n\
         dir /data\n\
         aclfile /run/dbtree/users.acl\n\
         enable-debug-command no\n\
         enable-module-command no\n\
         enable-protected-configs no\n\
         maxmemory {maxmemory}mb\n\
         maxmemory-policy {policy}\n\
         appendonly {appendonly}\n\
         appendfsync {appendfsync}\n\
         save 3600 1 300 100 60 10000\n\
         loglevel notice\n",
        maxmemory = maxmemory_mib(spec.resources.memory_mib),
        policy = setting("maxmemory-policy", "noeviction"),
        appendonly = setting("appendonly", "yes"),
        appendfsync = setting("appendfsync", "everysec"),
    )
}

/// The container's entrypoint: the ACL file lives in memory (an emptyDir), readable by the
/// engine's user only, and is rewritten from the Secrets on every start. A user name or
/// password that could change the meaning of an ACL line is refused.
fn start_script() -> String {
    format!(
        r#"#!/bin/sh
# Rendered by dbtree-operator: writes the ACL from the credentials Secrets, then runs Redis.
set -eu
umask 077
tenant="$DBTREE_USERNAME"
if ! printf '%s' "$tenant" | grep -Eq '^[A-Za-z0-9_][A-Za-z0-9_.-]{{0,63}}$' \
   || [ "$tenant" = {ADMIN_USER} ]; then
  echo "start: the credentials Secret's username '$tenant' is not allowed" >&2
  exit 1
fi
for password in "$DBTREE_PASSWORD" "$DBTREE_ADMIN_PASSWORD"; do
  if [ -z "$password" ] || printf '%s' "$password" | grep -q '[[:space:]]'; then
    echo "start: a password is empty or contains white space" >&2
    exit 1
  fi
done
{{
  [ "$tenant" = default ] || echo 'user default off'
  printf 'user %s on >%s %s\n' "$tenant" "$DBTREE_PASSWORD" '{TENANT_ACL_RULES}'
  printf 'user {ADMIN_USER} on >%s ~* &* +@all\n' "$DBTREE_ADMIN_PASSWORD"
}} > /run/dbtree/users.acl
exec redis-server /etc/dbtree/redis.conf
"#
    )
}

pub(crate) fn plan(
    spec: &DBInstanceSpec,
    settings: &EngineSettings,
    image: &str,
    admin_secret: &str,
) -> EnginePlan {
    // The administrator answers the probe; its password reaches redis-cli through the
    // environment, not the command line.
    let ready = format!(
        "REDISCLI_AUTH=\"$DBTREE_ADMIN_PASSWORD\" redis-cli --no-auth-warning -h 127.0.0.1 \
         -p 6379 --user {ADMIN_USER} ping | grep -q PONG"
    );
    let main = Container {
        name: "redis".into(),
        image: Some(image.to_owned()),
        command: Some(vec!["sh".into(), format!("{CONFIG_DIR}/start.sh")]),
        env: Some(tenant_and_admin_env(&spec.secret_ref.name, admin_secret)),
        startup_probe: Some(exec_probe(&ready, 5, 60)),
        readiness_probe: Some(exec_probe(&ready, 10, 3)),
        liveness_probe: Some(tcp_probe(PORT, 10, 6)),
        ..Container::default()
    };
    EnginePlan {
        engine: EngineKind::Redis,
        files: BTreeMap::from([
            ("redis.conf".to_owned(), config_file(spec, settings)),
            ("start.sh".to_owned(), start_script()),
        ]),
        main,
        init: None,
        data_path: "/data",
        scratch: vec![("run", "/run/dbtree"), ("tmp", "/tmp")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maxmemory_leaves_headroom() {
        assert_eq!(maxmemory_mib(128), 96);
        assert_eq!(maxmemory_mib(1024), 768);
        assert!(maxmemory_mib(4096) < 4096);
    }
}
