//! Tenant isolation in the rendered pods (PRODUCT.md §7): the tenant's credentials are an
//! ordinary user of its own database; dbtree's administrator is a separate credential in its own
//! Secret; no `trust`. The Redis ACL is also loaded into a real `redis-server` by the rendered
//! start script, and exercised as the tenant.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use dbtree_adapters::kube::{
    DBInstance, DBInstanceSpec, EngineKind, PresetKind, ResourcesSpec, RunStateSpec, SecretRef,
};
use k8s_openapi::api::core::v1::Container;

use super::*;

const ID: &str = "0190c1c6-6c5f-4a8e-9d4c-2f0a1b2c3d4f";

fn instance(engine: EngineKind) -> DBInstance {
    let name = format!("dbi-{ID}");
    let mut dbi = DBInstance::new(
        &name,
        DBInstanceSpec {
            engine,
            preset: Some(PresetKind::Tiny),
            resources: ResourcesSpec {
                cpu_millis: 100,
                memory_mib: 512,
                disk_gib: 2,
            },
            owner: "alice".into(),
            instance_id: ID.into(),
            display_name: "orders".into(),
            node_port: 30123,
            run_state: RunStateSpec::Running,
            secret_ref: SecretRef {
                name: format!("{name}-credentials"),
            },
            credentials_version: 0,
            engine_config: BTreeMap::new(),
            backup_schedule: None,
        },
    );
    dbi.metadata.namespace = Some("team-a".into());
    dbi.metadata.uid = Some("5d0c1c3a-1111-2222-3333-444455556666".into());
    dbi
}

fn children(engine: EngineKind) -> Children {
    desired_children(&instance(engine), &ChildrenConfig::default())
        .unwrap()
        .with_admin_secret(&format!("dbi-{ID}-admin-q9z4w"))
}

fn file(c: &Children, name: &str) -> String {
    c.config_map.data.as_ref().unwrap()[name].clone()
}

/// A file of the ConfigMap rendered for a sample instance of `engine`.
pub(super) fn rendered_file(engine: EngineKind, name: &str) -> String {
    file(&children(engine), name)
}

fn containers(c: &Children) -> (Container, Option<Container>) {
    let pod = c.stateful_set.spec.clone().unwrap().template.spec.unwrap();
    (
        pod.containers[0].clone(),
        pod.init_containers.and_then(|i| i.into_iter().next()),
    )
}

fn env_names(c: &Container) -> Vec<String> {
    c.env.iter().flatten().map(|e| e.name.clone()).collect()
}

#[test]
fn the_admin_secret_is_the_operators_own_with_a_name_nobody_can_take_first() {
    let dbi = instance(EngineKind::Redis);
    let secret = admin_secret(&dbi, "Adm1nPassw0rdAdm1nPassw0rdAdm1nP").unwrap();
    assert_eq!(secret.metadata.name, None);
    assert_eq!(
        secret.metadata.generate_name.as_deref(),
        Some(format!("dbi-{ID}-admin-").as_str()),
        "the API server completes the name"
    );
    let owner = &secret.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(owner.uid, "5d0c1c3a-1111-2222-3333-444455556666");
    assert_eq!(owner.controller, Some(true));
    assert_eq!(secret.immutable, Some(true));
    let data = secret.string_data.unwrap();
    assert_eq!(data["username"], "dbtree-admin");
    assert_eq!(data["password"], "Adm1nPassw0rdAdm1nPassw0rdAdm1nP");
    // Until the real Secret is named, the pods refer to a name the API server refuses.
    let unnamed = desired_children(&dbi, &ChildrenConfig::default()).unwrap();
    let (main, _) = containers(&unnamed);
    let admin_ref = main
        .env
        .unwrap()
        .into_iter()
        .find(|e| e.name == ADMIN_PASSWORD_ENV)
        .unwrap();
    assert!(
        admin_ref
            .value_from
            .unwrap()
            .secret_key_ref
            .unwrap()
            .name
            .ends_with('-')
    );
}

#[test]
fn postgresql_the_tenant_owns_its_database_and_nothing_else() {
    let c = children(EngineKind::Postgresql);
    let sql = file(&c, "setup.sql");
    for clause in [
        "NOSUPERUSER",
        "NOCREATEDB",
        "NOCREATEROLE",
        "NOREPLICATION",
        "NOBYPASSRLS",
        "ALTER ROLE :\"tenant\" RESET ALL;",
        "SELECT format('REVOKE %I FROM %I', g.rolname, t.rolname)",
        "CREATE DATABASE %I OWNER %I",
        "ALTER DATABASE :\"tenant\" OWNER TO :\"tenant\";",
        "ALTER ROLE postgres WITH PASSWORD :'admin_password';",
        "\\getenv tenant_password DBTREE_PASSWORD",
    ] {
        assert!(sql.contains(clause), "{clause} in {sql}");
    }
    // Passwords never on a command line.
    let setup = file(&c, "setup.sh");
    assert!(!setup.contains("-v password") && !setup.contains("$DBTREE_PASSWORD\""));
    assert!(setup.contains("postgres | pg_*"), "reserved names refused");
    // No trust; the administrator only from inside the pod.
    for (name, hba) in [
        ("pg_hba.conf", file(&c, "pg_hba.conf")),
        ("pg_hba_setup.conf", file(&c, "pg_hba_setup.conf")),
    ] {
        assert!(!hba.contains("trust"), "{name}: {hba}");
    }
    let hba = file(&c, "pg_hba.conf");
    let rules: Vec<Vec<&str>> = hba
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rules,
        vec![
            vec!["local", "all", "all", "scram-sha-256"],
            vec!["host", "all", "postgres", "127.0.0.1/32", "scram-sha-256"],
            vec!["host", "all", "postgres", "::1/128", "scram-sha-256"],
            vec!["host", "all", "postgres", "all", "reject"],
            vec!["host", "all", "all", "all", "scram-sha-256"],
        ]
    );
    assert!(file(&c, "postgresql.conf").contains("hba_file = '/etc/dbtree/pg_hba.conf'"));
    // The running server sees no credential at all; the setup step sees both.
    let (main, init) = containers(&c);
    assert_eq!(env_names(&main), vec!["PGDATA"]);
    assert_eq!(
        env_names(&init.unwrap()),
        vec![
            "PGDATA",
            "DBTREE_USERNAME",
            "DBTREE_PASSWORD",
            ADMIN_PASSWORD_ENV
        ]
    );
}

#[test]
fn mongodb_the_tenant_is_db_owner_of_its_own_database_only() {
    let c = children(EngineKind::Mongodb);
    let js = file(&c, "setup.js");
    assert!(js.contains(
        "upsert(tenant, process.env.DBTREE_PASSWORD, [{ role: \"dbOwner\", db: tenant }]);"
    ));
    assert!(js.contains(
        "upsert(\"dbtree-admin\", process.env.DBTREE_ADMIN_PASSWORD, [{ role: \"root\", db: \"admin\" }]);"
    ));
    assert!(
        js.contains("updateUser(user, { pwd: pwd, roles: roles })"),
        "roles replaced"
    );
    assert!(file(&c, "mongod.conf").contains("authorization: enabled"));
    let (main, init) = containers(&c);
    assert!(env_names(&main).is_empty(), "mongod gets no credential");
    assert_eq!(init.unwrap().command.unwrap()[1], "/etc/dbtree/setup.sh");
    assert!(file(&c, "setup.sh").contains("--bind_ip 127.0.0.1 --port 27018"));
}

#[test]
fn redis_config_switches_off_debug_and_modules_and_the_acl_names_every_server_command() {
    let c = children(EngineKind::Redis);
    let conf = file(&c, "redis.conf");
    for line in ["enable-debug-command no", "enable-module-command no"] {
        assert!(conf.lines().any(|l| l == line), "{line}");
    }
    for rule in [
        "-@admin",
        "-@dangerous",
        "-config",
        "-module",
        "-debug",
        "-shutdown",
        "-acl +acl|whoami",
        "-replicaof",
        "-slaveof",
        "-migrate",
        "-failover",
        "-monitor",
        "-save",
        "-bgsave",
        "-bgrewriteaof",
        "-client|kill",
    ] {
        assert!(REDIS_TENANT_ACL_RULES.contains(rule), "{rule}");
    }
    let start = file(&c, "start.sh");
    assert!(start.contains(REDIS_TENANT_ACL_RULES));
    assert!(start.contains("user default off"));
    assert!(start.contains(&format!("user {REDIS_ADMIN_USER} on >%s ~* &* +@all")));
    let (main, _) = containers(&c);
    let probe = main.readiness_probe.unwrap().exec.unwrap().command.unwrap()[2].clone();
    assert!(
        probe.contains(&format!("--user {REDIS_ADMIN_USER}")),
        "{probe}"
    );
    assert!(
        probe.contains("REDISCLI_AUTH=\"$DBTREE_ADMIN_PASSWORD\""),
        "{probe}"
    );
}

// ---- a real redis-server, started by the rendered start script ---------------------------

/// A `redis-server` run by the rendered `start.sh` with the rendered `redis.conf`, their fixed
/// pod paths moved into a temporary directory.
struct Redis {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Redis {
    fn start(tenant: &str) -> Result<Redis, String> {
        let c = children(EngineKind::Redis);
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("dbtree-redis-acl-{}-{run}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.display().to_string();
        let conf = file(&c, "redis.conf")
            .replace("bind 0.0.0.0", "bind 127.0.0.1")
            .replace("port 6379", &format!("port {port}"))
            .replace("dir /data", &format!("dir {d}"))
            .replace("/run/dbtree", &d)
            .replace("appendonly yes", "appendonly no");
        std::fs::write(dir.join("redis.conf"), conf).unwrap();
        let start = file(&c, "start.sh")
            .replace("/run/dbtree", &d)
            .replace("/etc/dbtree", &d);
        std::fs::write(dir.join("start.sh"), start).unwrap();
        let server = dbtree_testkit::Program::RedisServer
            .locate()
            .unwrap_or_else(|e| panic!("{e}"));
        let path = format!(
            "{}:{}",
            server.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let child = Command::new("sh")
            .arg(dir.join("start.sh"))
            .env("PATH", path)
            .env("DBTREE_USERNAME", tenant)
            .env("DBTREE_PASSWORD", "TenantPassw0rd")
            .env("DBTREE_ADMIN_PASSWORD", "Adm1nPassw0rd")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut redis = Redis { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = redis.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = redis.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                return Err(format!("start.sh exited {status}: {err}"));
            }
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(redis)
    }

    fn session(&self, user: Option<(&str, &str)>) -> Resp {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut resp = Resp {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        };
        if let Some((name, password)) = user {
            assert_eq!(resp.call(&["AUTH", name, password]), "+OK");
        }
        resp
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Just enough RESP: a command out, one reply back as text (`+OK`, `-NOPERM …`, `$value`,
/// `:1`, `*n`).
struct Resp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Resp {
    fn call(&mut self, args: &[&str]) -> String {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.writer.write_all(out.as_bytes()).unwrap();
        self.reply()
    }

    fn reply(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let line = line.trim_end().to_owned();
        if let Some(len) = line.strip_prefix('$') {
            let len: i64 = len.parse().unwrap();
            if len < 0 {
                return "$nil".into();
            }
            let mut value = String::new();
            self.reader.read_line(&mut value).unwrap();
            return format!("${}", value.trim_end());
        }
        if let Some(n) = line.strip_prefix('*') {
            for _ in 0..n.parse::<i64>().unwrap_or(0) {
                self.reply();
            }
        }
        line
    }
}

/// Refused by the ACL (`-NOPERM`), or for debug and modules by the server switch that holds
/// for everyone (`-ERR … not allowed`); never an arity or syntax error that would hide whether
/// the command itself is allowed.
fn assert_refused(resp: &mut Resp, args: &[&str]) {
    let reply = resp.call(args);
    assert!(
        reply.starts_with("-NOPERM")
            || (reply.starts_with("-ERR") && reply.contains("not allowed")),
        "{args:?} must be refused to the tenant, got {reply}"
    );
}

fn assert_tenant_is_confined(redis: &Redis, tenant: &str) {
    let mut t = redis.session(Some((tenant, "TenantPassw0rd")));
    assert_eq!(t.call(&["SET", "k", "v"]), "+OK");
    assert_eq!(t.call(&["GET", "k"]), "$v");
    assert_eq!(t.call(&["ACL", "WHOAMI"]), format!("${tenant}"));
    assert_eq!(t.call(&["FLUSHDB"]), "+OK");
    assert_eq!(t.call(&["KEYS", "*"]), "*0");
    for command in [
        &["CONFIG", "SET", "maxmemory", "0"][..],
        &["CONFIG", "SET", "port", "31839"],
        &["CONFIG", "GET", "requirepass"],
        &["MODULE", "LOAD", "/tmp/x.so"],
        &["DEBUG", "SLEEP", "0"],
        &["ACL", "SETUSER", "mallory", "on", ">x", "+@all"],
        &["ACL", "LIST"],
        &["REPLICAOF", "127.0.0.1", "1"],
        &["SLAVEOF", "127.0.0.1", "1"],
        &["MIGRATE", "127.0.0.1", "1", "k", "0", "1"],
        &["FAILOVER"],
        &["MONITOR"],
        &["SAVE"],
        &["BGSAVE"],
        &["BGREWRITEAOF"],
        &["CLIENT", "KILL", "TYPE", "normal"],
        &["CLIENT", "LIST"],
        &["INFO"],
        &["SHUTDOWN", "NOSAVE"],
    ] {
        assert_refused(&mut t, command);
    }
    assert_eq!(
        t.call(&["PING"]),
        "+PONG",
        "still up after SHUTDOWN was refused"
    );
}

#[test]
fn a_real_redis_confines_the_tenant_and_keeps_the_administrator_separate() {
    let redis = Redis::start("dbtree").unwrap();
    assert_tenant_is_confined(&redis, "dbtree");
    // `default` is off: no anonymous access, no password guessing through it.
    let mut anonymous = redis.session(None);
    assert!(anonymous.call(&["PING"]).starts_with("-NOAUTH"));
    assert!(
        anonymous
            .call(&["AUTH", "default", "TenantPassw0rd"])
            .starts_with("-WRONGPASS")
    );
    // The administrator may configure, but debug and modules are off for everyone.
    let mut admin = redis.session(Some((REDIS_ADMIN_USER, "Adm1nPassw0rd")));
    assert_eq!(admin.call(&["CONFIG", "GET", "maxmemory"]), "*2");
    for command in [
        &["DEBUG", "SLEEP", "0"][..],
        &["MODULE", "LOAD", "/tmp/x.so"],
    ] {
        let reply = admin.call(command);
        assert!(reply.contains("not allowed"), "{command:?}: {reply}");
    }
    // The tenant cannot sign in as the administrator with its own password.
    let mut t = redis.session(None);
    assert!(
        t.call(&["AUTH", REDIS_ADMIN_USER, "TenantPassw0rd"])
            .starts_with("-WRONGPASS")
    );
}

#[test]
fn a_real_redis_confines_a_tenant_named_default_too() {
    // dbtree-core named Redis tenants `default` before; such a Secret must not open anything.
    let redis = Redis::start("default").unwrap();
    assert_tenant_is_confined(&redis, "default");
}

#[test]
fn a_tenant_name_that_would_rewrite_the_acl_is_refused() {
    for bad in ["dbtree-admin", "x on >known +@all", ""] {
        let err = Redis::start(bad)
            .err()
            .unwrap_or_else(|| panic!("{bad:?} was accepted"));
        assert!(err.contains("is not allowed"), "{err}");
    }
}
