//! What dbtree's tests and benches need on a bare machine: throwaway PostgreSQL and Redis
//! servers started from the installed programs, the Debian packages behind those programs, and
//! `cargo xtask` (the `xtask` binary), which installs what is missing and runs the suite.
//!
//! A test binary asks for a server with [`postgres_url`] or [`redis_url`]. The first call
//! starts one (a few seconds for PostgreSQL's `initdb`); the binary's other tests share it; it
//! is stopped and its directory removed when the binary ends, however it ends (see
//! `throwaway.rs`). `DBTREE_TEST_DATABASE_URL` / `DBTREE_TEST_REDIS_URL` select existing servers
//! instead. A server that cannot be had ends the whole test binary at once (exit status 101),
//! with the Debian package to install: the binary's other tests would only fail the same way,
//! one timeout after another.
//!
//! Tests that need a server of their own (to stop it, say) start one with
//! [`PostgresServer::start`] or [`RedisServer::start`].

mod postgres;
mod programs;
mod redis;
mod throwaway;

use std::sync::OnceLock;

pub use postgres::{Durability, PostgresServer};
pub use programs::{Missing, Program};
pub use redis::RedisServer;

/// The PostgreSQL server of this test binary: `DBTREE_TEST_DATABASE_URL` if set, otherwise a
/// throwaway server started on first use (durability traded for speed).
///
/// If no server can be had, the test binary ends at once (status 101) with a message naming
/// the Debian package to install, or what failed.
pub fn postgres_url() -> String {
    shared_postgres_url("DBTREE_TEST_DATABASE_URL", Durability::Fast)
}

/// The PostgreSQL server of a bench: `DBTREE_BENCH_DATABASE_URL` if set, otherwise a throwaway
/// server with PostgreSQL's default durability.
///
/// If no server can be had, the process ends as with [`postgres_url`].
pub fn bench_postgres_url() -> String {
    shared_postgres_url("DBTREE_BENCH_DATABASE_URL", Durability::Default)
}

/// The Redis server of this test binary: `DBTREE_TEST_REDIS_URL` if set, otherwise a throwaway
/// server started on first use.
///
/// If no server can be had, the test binary ends as with [`postgres_url`].
pub fn redis_url() -> String {
    if let Some(url) = from_env("DBTREE_TEST_REDIS_URL") {
        return url;
    }
    static SHARED: OnceLock<Result<RedisServer, String>> = OnceLock::new();
    match SHARED.get_or_init(RedisServer::start) {
        Ok(server) => server.url(),
        Err(e) => fail("Redis", e),
    }
}

fn shared_postgres_url(variable: &str, durability: Durability) -> String {
    if let Some(url) = from_env(variable) {
        return url;
    }
    static SHARED: OnceLock<Result<PostgresServer, String>> = OnceLock::new();
    match SHARED.get_or_init(|| PostgresServer::start(durability)) {
        Ok(server) => server.url(),
        Err(e) => fail("PostgreSQL", e),
    }
}

fn from_env(variable: &str) -> Option<String> {
    std::env::var(variable)
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// Ends the test binary, saying why on its real standard error (the test harness captures
/// what tests print with `eprintln!`, and would lose it).
fn fail(what: &str, why: &str) -> ! {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\nerror: no {what} server for the tests: {why}\n"
    );
    std::process::exit(101)
}
