//! The harvest race over HTTP against PostgreSQL, against the bare claim statement driven
//! directly on the same database in the same run.
//!
//! At 1, 8, 64 and 256 contenders per lemon, each round every contender answers the quiz of the
//! same ripe lemon right, then all send their harvest at once through the production router
//! (`dbtree_server::route`) over a real port into `PgStore`. Every round must have exactly one
//! winner (200) and only `lemon_already_harvested` (409) for the rest; afterwards the ledger
//! must hold exactly one reward per round. The baseline races the same number of connections
//! on `PgStore`'s own claim statement (`UPDATE lemons SET ripe = false … WHERE position = $1
//! AND ripe AND cycle = $2`, autocommit), the database's own limit for deciding a winner.
//!
//! `cargo bench -p dbtree-benches --bench harvest_race` (PostgreSQL at
//! `DBTREE_BENCH_DATABASE_URL`, or a throwaway server the bench starts itself).

#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use support::{Backend, Figures, LEVELS, PG_POOL, http_race, players, race_rounds, spawn};
use uuid::Uuid;

const CLAIM: &str = "UPDATE lemons SET ripe = false, harvested_at = now(), \
    regrows_at = now() + interval '1 hour', harvested_by = $3 \
    WHERE position = $1 AND ripe AND cycle = $2";

/// `clients` connections race the claim statement for one lemon per round; exactly one must win.
async fn sql_race(pool: &PgPool, winner: Uuid, clients: usize, rounds: usize) -> Figures {
    let mut latencies = Vec::new();
    let mut elapsed = Duration::ZERO;
    for round in 0..rounds {
        let position = (round % 10) as i16;
        let (cycle,): (i64,) = sqlx::query_as(
            "UPDATE lemons SET ripe = true, cycle = cycle + 1, harvested_at = NULL, \
             regrows_at = NULL, harvested_by = NULL WHERE position = $1 RETURNING cycle",
        )
        .bind(position)
        .fetch_one(pool)
        .await
        .expect("ripen the lemon");
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(clients));
        let started = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let (pool, barrier) = (pool.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    // Timed from the start, like an HTTP request: waiting for one of the pool's
                    // connections is part of the cost under contention.
                    let sent = Instant::now();
                    let won = sqlx::query(CLAIM)
                        .bind(position)
                        .bind(cycle)
                        .bind(winner)
                        .execute(&pool)
                        .await
                        .expect("claim")
                        .rows_affected()
                        == 1;
                    (won, sent.elapsed())
                })
            })
            .collect();
        let outcomes = futures_util::future::join_all(tasks).await;
        elapsed += started.elapsed();
        let won = outcomes
            .into_iter()
            .map(|o| o.expect("a claim task"))
            .filter(|(won, latency)| {
                latencies.push(*latency);
                *won
            })
            .count();
        assert_eq!(won, 1, "exactly one claim wins (round {round})");
    }
    Figures::new(clients * rounds, elapsed, latencies)
}

#[tokio::main]
async fn main() {
    let started = Instant::now();
    let server = spawn(Backend::Postgres).await;
    let (_, _, options) = server.pg.clone().expect("a PostgreSQL server");
    // The baseline's pool has as many connections as the store's.
    let pool = PgPoolOptions::new()
        .max_connections(PG_POOL)
        .min_connections(PG_POOL)
        .connect_with(options)
        .await
        .expect("connect the baseline pool");
    println!(
        "harvest race, PostgreSQL: HTTP (production router + PgStore) vs the bare claim statement"
    );
    println!(
        "{:>7}  {:>6}  {:<44}  {:<44}  {:>10}  {:>9}",
        "clients", "rounds", "http (attempts/s, latency)", "bare SQL claim", "throughput", "p50"
    );
    let mut rewards_expected = 0u64;
    for clients in LEVELS {
        let rounds = race_rounds(clients);
        let tokens = players(&server, &format!("race{clients}-"), clients).await;
        // Warm-up round (not counted in the figures, but its winner is paid).
        let _ = http_race(&server, &tokens, 1).await;
        let (http, winners) = http_race(&server, &tokens, rounds).await;
        rewards_expected += 3 * (winners as u64 + 1);
        let winner: (Uuid,) = sqlx::query_as("SELECT id FROM users LIMIT 1")
            .fetch_one(&pool)
            .await
            .expect("a user");
        let _ = sql_race(&pool, winner.0, clients, 2).await; // warm-up
        let sql = sql_race(&pool, winner.0, clients, rounds * 4).await;
        println!(
            "{clients:>7}  {rounds:>6}  {:<44}  {:<44}  {:>9.3}x  {:>8.1}x",
            http.summary(),
            sql.summary(),
            http.per_second() / sql.per_second(),
            http.percentile_ms(50.0) / sql.percentile_ms(50.0).max(1e-6),
        );
        println!(
            "ratio line: clients={clients} http/sql throughput {:.3}, duplicate winners 0 of {rounds} lemons",
            http.per_second() / sql.per_second()
        );
    }
    let paid = support::harvested(&server).await;
    assert_eq!(paid, rewards_expected, "one reward per lemon in the ledger");
    println!(
        "ledger: {paid} lemons harvested = 3 × lemons won; 0 duplicate winners ({:.0} s)",
        started.elapsed().as_secs_f64()
    );
    server.finish().await;
}
