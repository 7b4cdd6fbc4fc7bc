//! MongoDB (standalone): `mongod.conf` with the WiredTiger cache sized from the memory limit
//! and authorisation on, and a setup step on every start that applies both Secrets:
//! dbtree's administrator (`root`) and the tenant, a user with `dbOwner` on its own database
//! and no other role.

use std::collections::BTreeMap;

use dbtree_adapters::kube::{DBInstanceSpec, EngineKind};
use k8s_openapi::api::core::v1::Container;

use super::pod::{SETUP_FILE, setup_container, tcp_probe, tenant_and_admin_env};
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

/// Runs before the engine on every start: a `mongod` without authorisation, bound to the pod's
/// loopback on another port (nothing outside this init container can reach it, and the engine
/// is not running yet), creates or updates both users from the Secrets, then shuts down.
/// Credentials are read from the environment by mongosh, never from the command line.
const SETUP: &str = r#"#!/bin/sh
# Rendered by dbtree-operator: dbtree's administrator and the tenant's user, applied on every
# start.
set -eu
if ! printf '%s' "$DBTREE_USERNAME" | grep -Eq '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$' \
   || [ "$DBTREE_USERNAME" = dbtree-admin ] || [ "$DBTREE_USERNAME" = admin ]; then
  echo "setup: the credentials Secret's username '$DBTREE_USERNAME' is not allowed" >&2
  exit 1
fi
mongod --dbpath /data/db --bind_ip 127.0.0.1 --port 27018 --wiredTigerCacheSizeGB 0.25 \
  --fork --logpath /tmp/setup.log
mongosh --quiet --norc --port 27018 --file /etc/dbtree/setup.js
mongod --dbpath /data/db --shutdown
"#;

/// The users: dbtree's administrator with `root`, the tenant (in `admin`, as the connection
/// URI's `authSource` says) with `dbOwner` on the database named after it and nothing else.
/// Roles are replaced, not added to, so any drift is put back.
pub(crate) const SETUP_JS: &str = r#"// Rendered by dbtree-operator; edits are overwritten.
const tenant = process.env.DBTREE_USERNAME;
const upsert = (user, pwd, roles) => {
  const admin = db.getSiblingDB("admin");
  if (admin.getUser(user)) {
    admin.updateUser(user, { pwd: pwd, roles: roles });
  } else {
    admin.createUser({ user: user, pwd: pwd, roles: roles });
  }
};
upsert("dbtree-admin", process.env.DBTREE_ADMIN_PASSWORD, [{ role: "root", db: "admin" }]);
upsert(tenant, process.env.DBTREE_PASSWORD, [{ role: "dbOwner", db: tenant }]);
"#;

pub(crate) fn plan(
    spec: &DBInstanceSpec,
    settings: &EngineSettings,
    image: &str,
    admin_secret: &str,
) -> EnginePlan {
    // mongosh is a Node.js program too heavy for a probe in a 512 MiB pod: probe the socket.
    let main = Container {
        name: "mongodb".into(),
        image: Some(image.to_owned()),
        // The server itself, not the image's entrypoint: the setup step owns the users.
        command: Some(vec![
            "mongod".into(),
            "--config".into(),
            format!("{CONFIG_DIR}/mongod.conf"),
        ]),
        startup_probe: Some(tcp_probe(PORT, 5, 60)),
        readiness_probe: Some(tcp_probe(PORT, 10, 3)),
        liveness_probe: Some(tcp_probe(PORT, 10, 6)),
        ..Container::default()
    };
    let env = tenant_and_admin_env(&spec.secret_ref.name, admin_secret);
    EnginePlan {
        engine: EngineKind::Mongodb,
        files: BTreeMap::from([
            ("mongod.conf".to_owned(), config_file(spec, settings)),
            (SETUP_FILE.to_owned(), SETUP.to_owned()),
            ("setup.js".to_owned(), SETUP_JS.to_owned()),
        ]),
        main,
        init: Some(setup_container(image, env)),
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
