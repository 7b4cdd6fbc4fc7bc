//! MongoDB (standalone): `mongod.conf` with the WiredTiger cache sized from the memory limit
//! and authorisation on, and a start-up step that applies the Secret's password to an existing
//! data directory.

use std::collections::BTreeMap;

use dbtree_adapters::kube::{DBInstanceSpec, EngineKind};
use k8s_openapi::api::core::v1::Container;

use super::pod::{SYNC_CREDENTIALS_FILE, secret_env, sync_credentials_container, tcp_probe};
use super::{CONFIG_DIR, EnginePlan, EngineSettings};

const PORT: i32 = 27017;

/// WiredTiger cache in hundredths of a GiB: half of what is left after 256 MiB for the rest of
/// `mongod`, never below MongoDB's minimum of 0.25 GiB.
pub(crate) fn cache_size_centi_gib(memory_mib: i32) -> i32 {
    let left = (memory_mib - 256).max(0);
    (left * 100 / 2 / 1024).max(25)
}

fn config_file(spec: &DBInstanceSpec, settings: &EngineSettings) -> String {
    let cache = cache_size_centi_gib(spec.resources.memory_mib);
    format!(
        "# Rendered by dbtree-operator from the DBInstance spec; edits are overwritten.\n\
         net:\n  port: {PORT}\n  bindIpAll: true\n\
         storage:\n  dbPath: /data/db\n  wiredTiger:\n    engineConfig:\n      cacheSizeGB: {whole}.{frac:02}\n\
         security:\n  authorization: enabled\n\
         operationProfiling:\n  slowOpThresholdMs: {slow}\n",
        whole = cache / 100,
        frac = cache % 100,
        slow = settings.get("slowOpThresholdMs").unwrap_or("100"),
    )
}

/// Runs before the engine on every start. A fresh volume is initialised by the image's
/// entrypoint from `MONGO_INITDB_ROOT_*`; on an existing one a `mongod` without authorisation,
/// bound to the pod's loopback on another port, creates or updates the root user from the
/// Secret (a rotation), then shuts down. Credentials are read from the environment by mongosh.
const SYNC_CREDENTIALS: &str = r#"#!/bin/sh
# Rendered by dbtree-operator: applies the credentials Secret's password on every start.
set -eu
if [ ! -f /data/db/WiredTiger ]; then
  exit 0
fi
mongod --dbpath /data/db --bind_ip 127.0.0.1 --port 27018 --wiredTigerCacheSizeGB 0.25 \
  --fork --logpath /tmp/sync-credentials.log
mongosh --quiet --norc --port 27018 --eval '
const admin = db.getSiblingDB("admin");
const user = process.env.MONGO_INITDB_ROOT_USERNAME;
const pwd = process.env.MONGO_INITDB_ROOT_PASSWORD;
if (admin.getUser(user)) {
  admin.updateUser(user, { pwd: pwd });
} else {
  admin.createUser({ user: user, pwd: pwd, roles: [{ role: "root", db: "admin" }] });
}'
mongod --dbpath /data/db --shutdown
"#;

pub(crate) fn plan(spec: &DBInstanceSpec, settings: &EngineSettings, image: &str) -> EnginePlan {
    let secret = &spec.secret_ref.name;
    let env = vec![
        secret_env("MONGO_INITDB_ROOT_USERNAME", secret, "username"),
        secret_env("MONGO_INITDB_ROOT_PASSWORD", secret, "password"),
    ];
    // mongosh is a Node.js program too heavy for a probe in a 512 MiB pod: probe the socket.
    let main = Container {
        name: "mongodb".into(),
        image: Some(image.to_owned()),
        args: Some(vec![
            "mongod".into(),
            "--config".into(),
            format!("{CONFIG_DIR}/mongod.conf"),
        ]),
        env: Some(env.clone()),
        startup_probe: Some(tcp_probe(PORT, 5, 60)),
        readiness_probe: Some(tcp_probe(PORT, 10, 3)),
        liveness_probe: Some(tcp_probe(PORT, 10, 6)),
        ..Container::default()
    };
    let init = sync_credentials_container(image, env);
    EnginePlan {
        engine: EngineKind::Mongodb,
        files: BTreeMap::from([
            ("mongod.conf".to_owned(), config_file(spec, settings)),
            (
                SYNC_CREDENTIALS_FILE.to_owned(),
                SYNC_CREDENTIALS.to_owned(),
            ),
        ]),
        main,
        init: Some(init),
        data_path: "/data/db",
        scratch: vec![("tmp", "/tmp")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_is_half_of_what_is_left_with_a_floor() {
        assert_eq!(cache_size_centi_gib(512), 25, "floor of 0.25 GiB");
        assert_eq!(cache_size_centi_gib(1536), 62);
        assert_eq!(cache_size_centi_gib(4096), 187);
    }
}
