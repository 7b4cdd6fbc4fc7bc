//! Redis: `redis.conf` with `maxmemory` below the container limit and append-only persistence,
//! and an ACL file written from the Secret at start (the `default` user is switched off).

use std::collections::BTreeMap;

use dbtree_adapters::kube::{DBInstanceSpec, EngineKind};
use k8s_openapi::api::core::v1::Container;

use super::pod::{exec_probe, secret_env, tcp_probe};
use super::{CONFIG_DIR, EnginePlan, EngineSettings};

const PORT: i32 = 6379;

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
/// engine's user only, and is rewritten from the Secret on every start.
const START: &str = r#"#!/bin/sh
# Rendered by dbtree-operator: writes the ACL from the credentials Secret, then runs Redis.
set -eu
umask 077
printf 'user default off\nuser %s on >%s ~* &* +@all\n' "$DBTREE_USERNAME" "$DBTREE_PASSWORD" \
  > /run/dbtree/users.acl
exec redis-server /etc/dbtree/redis.conf
"#;

pub(crate) fn plan(spec: &DBInstanceSpec, settings: &EngineSettings, image: &str) -> EnginePlan {
    let secret = &spec.secret_ref.name;
    // The password reaches redis-cli through its environment variable, not its arguments.
    let ready = "REDISCLI_AUTH=\"$DBTREE_PASSWORD\" redis-cli --no-auth-warning -h 127.0.0.1 \
                 -p 6379 --user \"$DBTREE_USERNAME\" ping | grep -q PONG";
    let main = Container {
        name: "redis".into(),
        image: Some(image.to_owned()),
        command: Some(vec!["sh".into(), format!("{CONFIG_DIR}/start.sh")]),
        env: Some(vec![
            secret_env("DBTREE_USERNAME", secret, "username"),
            secret_env("DBTREE_PASSWORD", secret, "password"),
        ]),
        startup_probe: Some(exec_probe(ready, 5, 60)),
        readiness_probe: Some(exec_probe(ready, 10, 3)),
        liveness_probe: Some(tcp_probe(PORT, 10, 6)),
        ..Container::default()
    };
    EnginePlan {
        engine: EngineKind::Redis,
        files: BTreeMap::from([
            ("redis.conf".to_owned(), config_file(spec, settings)),
            ("start.sh".to_owned(), START.to_owned()),
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
