//! The same harvest race over HTTP on the embedded default (SQLite) and on PostgreSQL, in the
//! same run: what the choice of store costs a harvest.
//!
//! Both servers run the production router (`dbtree_server::route`) with the same in-process quiz
//! lock and rate limiter, so only the store differs. At 1, 8, 64 and 256 contenders per lemon,
//! each round must have exactly one winner.
//!
//! `cargo bench -p dbtree-benches --bench harvest_backends` (PostgreSQL at
//! `DBTREE_BENCH_DATABASE_URL`, or a throwaway server the bench starts itself).

#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

mod support;

use std::time::Instant;

use support::{Backend, LEVELS, http_race, players, race_rounds, spawn};

#[tokio::main]
async fn main() {
    let started = Instant::now();
    let sqlite = spawn(Backend::Sqlite).await;
    let postgres = spawn(Backend::Postgres).await;
    println!("harvest race over HTTP: SQLite (embedded default) vs PostgreSQL");
    println!(
        "{:>7}  {:>6}  {:<44}  {:<44}  {:>10}  {:>9}",
        "clients", "rounds", "sqlite (attempts/s, latency)", "postgres", "throughput", "p50"
    );
    for clients in LEVELS {
        let rounds = race_rounds(clients);
        let mut figures = Vec::new();
        for server in [&sqlite, &postgres] {
            let tokens = players(server, &format!("store{clients}-"), clients).await;
            let _ = http_race(server, &tokens, 1).await; // warm-up
            let (f, winners) = http_race(server, &tokens, rounds).await;
            assert_eq!(winners, rounds, "one winner per lemon");
            figures.push(f);
        }
        let (lite, pg) = (&figures[0], &figures[1]);
        println!(
            "{clients:>7}  {rounds:>6}  {:<44}  {:<44}  {:>9.3}x  {:>8.2}x",
            lite.summary(),
            pg.summary(),
            lite.per_second() / pg.per_second(),
            lite.percentile_ms(50.0) / pg.percentile_ms(50.0).max(1e-6),
        );
        println!(
            "ratio line: clients={clients} sqlite/postgres throughput {:.3}",
            lite.per_second() / pg.per_second()
        );
    }
    for server in [&sqlite, &postgres] {
        let paid = support::harvested(server).await;
        let lemons: usize = LEVELS.iter().map(|&c| race_rounds(c) + 1).sum();
        assert_eq!(
            paid,
            3 * lemons as u64,
            "one reward per lemon in the ledger"
        );
    }
    println!(
        "ledgers: one reward per lemon on both stores; 0 duplicate winners ({:.0} s)",
        started.elapsed().as_secs_f64()
    );
    sqlite.finish().await;
    postgres.finish().await;
}
