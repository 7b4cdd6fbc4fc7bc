//! The rendered PostgreSQL `setup.sql`, run by `psql` against a real (throwaway) server as the
//! pod's setup step runs it, then the tenant's role tried as a hostile tenant would: its own
//! database works, the server's programs, files, roles and settings do not. (The pod's
//! `pg_hba.conf` is asserted in `tenant_tests.rs`; this server has its own.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dbtree_adapters::kube::EngineKind;
use dbtree_testkit::{Durability, PostgresServer, Program};

use super::tenant_tests::rendered_file;

const TENANT: &str = "tenant_probe";

/// The `psql` beside the server programs (following a symlinked `postgres` to its directory).
fn psql(bin: &Path) -> PathBuf {
    let beside_real = std::fs::canonicalize(bin.join("postgres"))
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("psql")));
    [Some(bin.join("psql")), beside_real]
        .into_iter()
        .flatten()
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "no psql beside {} (Debian: postgresql-client)",
                bin.display()
            )
        })
}

fn run(psql: &Path, url: &str, sql: &str) -> Output {
    Command::new(psql)
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-At",
            "-d",
            url,
            "-c",
            sql,
        ])
        .output()
        .unwrap()
}

/// The setup step: `psql -f setup.sql` with both Secrets in the environment.
fn setup(psql: &Path, url: &str, script: &Path) {
    let out = Command::new(psql)
        .args(["-X", "-q", "-d", url, "-f"])
        .arg(script)
        .env("DBTREE_USERNAME", TENANT)
        .env("DBTREE_PASSWORD", "TenantPassw0rd")
        .env("DBTREE_ADMIN_PASSWORD", "Adm1nPassw0rd")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "setup.sql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_real_postgresql_gives_the_tenant_its_own_database_and_nothing_else() {
    let server = PostgresServer::start(Durability::Fast).unwrap_or_else(|e| panic!("{e}"));
    let bin = Program::PostgresServer
        .locate()
        .unwrap_or_else(|e| panic!("{e}"));
    let psql = psql(&bin);
    let admin = server.url();
    let dir = std::env::temp_dir().join(format!("dbtree-pg-setup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("setup.sql");
    std::fs::write(&script, rendered_file(EngineKind::Postgresql, "setup.sql")).unwrap();

    setup(&psql, &admin, &script);
    // Drift (say, someone made the tenant a superuser and gave it server programs) is put
    // back on the next start.
    let drift = "ALTER ROLE tenant_probe SUPERUSER; GRANT pg_execute_server_program, \
                 pg_read_server_files TO tenant_probe;";
    assert!(run(&psql, &admin, drift).status.success());
    setup(&psql, &admin, &script);

    let attributes = run(
        &psql,
        &admin,
        "SELECT rolsuper, rolreplication, rolbypassrls, rolcreaterole, rolcreatedb, rolcanlogin, \
         (SELECT count(*) FROM pg_auth_members WHERE member = r.oid) FROM pg_roles r \
         WHERE rolname = 'tenant_probe'",
    );
    assert_eq!(
        String::from_utf8_lossy(&attributes.stdout).trim(),
        "f|f|f|f|f|t|0",
        "no superuser, replication, bypassrls, createrole, createdb; login; member of nothing"
    );
    let owner = run(
        &psql,
        &admin,
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'tenant_probe'",
    );
    assert_eq!(String::from_utf8_lossy(&owner.stdout).trim(), TENANT);

    let tenant = format!("postgres://{TENANT}@127.0.0.1:{}/{TENANT}", server.port());
    let works = run(
        &psql,
        &tenant,
        "CREATE TABLE orders(id int); INSERT INTO orders VALUES (1); SELECT count(*) FROM orders",
    );
    assert!(
        works.status.success(),
        "the tenant uses its own database: {}",
        String::from_utf8_lossy(&works.stderr)
    );
    for hostile in [
        "COPY orders FROM PROGRAM 'id'",
        "COPY orders TO PROGRAM 'cat > /tmp/x'",
        "COPY orders TO '/tmp/dbtree-tenant-probe'",
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT lo_import('/etc/passwd')",
        "ALTER SYSTEM SET work_mem = '1GB'",
        "ALTER ROLE tenant_probe SUPERUSER",
        "CREATE ROLE mallory",
        "CREATE DATABASE other",
        "SET ROLE postgres",
        "CREATE FUNCTION f() RETURNS int LANGUAGE c AS '/lib/x86_64-linux-gnu/libc.so.6', 'getpid'",
        "GRANT pg_execute_server_program TO tenant_probe",
    ] {
        let out = run(&psql, &tenant, hostile);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success()
                && (stderr.contains("permission denied")
                    || stderr.contains("must be")
                    || stderr.contains("must have admin option")),
            "{hostile:?} must be refused to the tenant, got {:?} / {stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
