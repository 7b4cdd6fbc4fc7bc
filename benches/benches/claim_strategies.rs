//! Harvest claim strategies on PostgreSQL: a conditional `UPDATE … WHERE ripe AND cycle = $n`
//! against a row lock (`SELECT … FOR UPDATE`, then `UPDATE`). Both are exact (one winner per
//! ripening); this measures which is faster under contention, in the same run, and prints the
//! ratio. Each claim is the full transaction: lock the player, flip the lemon, credit the
//! balance, write the ledger entry.
//!
//! `cargo bench -p dbtree-benches --bench claim_strategies` (needs PostgreSQL at
//! `DBTREE_BENCH_DATABASE_URL`, or a throwaway server the bench starts itself).

#![allow(clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use dbtree_adapters::postgres::PgStore;
use dbtree_core::auth::Email;
use dbtree_core::boundary::{NewUser, QuizStore, TreeStore, UserStore};
use dbtree_core::ids::UserId;
use dbtree_core::policy::Policy;
use dbtree_core::quiz::shipped_bank;
use sqlx::postgres::PgConnectOptions;
use sqlx::{PgPool, Row};
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Strategy {
    ConditionalUpdate,
    RowLock,
}

const ROUNDS: u32 = 20;
const REPEATS: u32 = 3;

async fn claim(
    pool: &PgPool,
    strategy: Strategy,
    user: Uuid,
    position: i16,
    cycle: i64,
    key: String,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let (balance,): (i64,) = sqlx::query_as("SELECT balance FROM users WHERE id = $1 FOR UPDATE")
        .bind(user)
        .fetch_one(&mut *tx)
        .await?;
    let won = match strategy {
        Strategy::ConditionalUpdate => {
            sqlx::query("UPDATE lemons SET ripe = false, harvested_at = now(), regrows_at = now() + interval '1 hour', harvested_by = $3 WHERE position = $1 AND ripe AND cycle = $2")
                .bind(position)
                .bind(cycle)
                .bind(user)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1
        }
        Strategy::RowLock => {
            let row = sqlx::query("SELECT ripe, cycle FROM lemons WHERE position = $1 FOR UPDATE").bind(position).fetch_one(&mut *tx).await?;
            let ripe: bool = row.try_get("ripe")?;
            let current: i64 = row.try_get("cycle")?;
            if ripe && current == cycle {
                sqlx::query("UPDATE lemons SET ripe = false, harvested_at = now(), regrows_at = now() + interval '1 hour', harvested_by = $2 WHERE position = $1")
                    .bind(position)
                    .bind(user)
                    .execute(&mut *tx)
                    .await?;
                true
            } else {
                false
            }
        }
    };
    if won {
        sqlx::query("UPDATE users SET balance = $2, earned_total = earned_total + 3 WHERE id = $1")
            .bind(user)
            .bind(balance + 3)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO ledger_entries (id, user_id, kind, delta, balance_after, idempotency_key, created_at) VALUES ($1, $2, 'harvest', 3, $3, $4, now())")
            .bind(Uuid::new_v4())
            .bind(user)
            .bind(balance + 3)
            .bind(key)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(won)
}

/// Runs `ROUNDS` rounds: all ten lemons ripen, `clients` players race for them.
async fn run(
    pool: &PgPool,
    users: &[Uuid],
    strategy: Strategy,
    clients: usize,
) -> (Duration, u64, Vec<u32>) {
    let mut elapsed = Duration::ZERO;
    let mut attempts = 0;
    let mut winners_per_ripening = Vec::new();
    for _ in 0..ROUNDS {
        sqlx::query("UPDATE lemons SET ripe = true, cycle = cycle + 1, harvested_at = NULL, regrows_at = NULL")
            .execute(pool)
            .await
            .expect("ripen");
        let cycles: HashMap<i16, i64> =
            sqlx::query_as::<_, (i16, i64)>("SELECT position, cycle FROM lemons")
                .fetch_all(pool)
                .await
                .expect("cycles")
                .into_iter()
                .collect();
        let cycles = Arc::new(cycles);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (pool, cycles) = (pool.clone(), cycles.clone());
            let user = users[c % users.len()];
            let position = (c % 10) as i16;
            let key = format!("bench:{}", Uuid::new_v4());
            tasks.push(tokio::spawn(async move {
                claim(&pool, strategy, user, position, cycles[&position], key)
                    .await
                    .expect("claim")
            }));
        }
        let mut wins = [0u32; 10];
        for (c, t) in tasks.into_iter().enumerate() {
            if t.await.expect("task") {
                wins[c % 10] += 1;
            }
        }
        elapsed += start.elapsed();
        attempts += clients as u64;
        winners_per_ripening.extend(wins.into_iter().take(clients.min(10)));
    }
    (elapsed, attempts, winners_per_ripening)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let url = dbtree_testkit::bench_postgres_url();
    let admin = PgPool::connect(&url).await.expect("PostgreSQL must answer");
    let schema = format!("bench_claim_{}", std::process::id());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .expect("schema");
    let options = PgConnectOptions::from_str(&url)
        .expect("url")
        .options([("search_path", schema.as_str())]);
    let store = PgStore::connect_with(options, 80).await.expect("connect");
    store.migrate().await.expect("migrate");
    store
        .seed_quizzes(&shipped_bank().expect("bank"))
        .await
        .expect("seed");
    let t0 = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("time");
    store.plant(t0).await.expect("plant");
    let mut users = Vec::new();
    for n in 0..64u8 {
        let id = UserId::from_random_bytes([n; 16]);
        let email = Email::parse(&format!("bench{n}@example.org")).expect("email");
        store
            .register(&NewUser { id, email, now: t0 }, &Policy::default().ledger)
            .await
            .expect("user");
        users.push(*id.as_uuid());
    }

    // warm up: open every pooled connection, fill the caches
    for strategy in [Strategy::ConditionalUpdate, Strategy::RowLock] {
        run(store.pool(), &users, strategy, 64).await;
    }
    println!(
        "harvest claim strategies on PostgreSQL: {REPEATS} interleaved repeats of {ROUNDS} rounds of ten ripe lemons"
    );
    println!(
        "{:<20} {:>8} {:>12} {:>10} {:>9}",
        "strategy", "clients", "claims/s", "mean ms", "winners"
    );
    let mut rates: HashMap<(Strategy, usize), f64> = HashMap::new();
    for clients in [1usize, 8, 64, 256] {
        let mut totals: HashMap<Strategy, (Duration, u64, bool)> = HashMap::new();
        for _ in 0..REPEATS {
            for strategy in [Strategy::ConditionalUpdate, Strategy::RowLock] {
                let (elapsed, attempts, winners) =
                    run(store.pool(), &users, strategy, clients).await;
                let total = totals.entry(strategy).or_insert((Duration::ZERO, 0, true));
                total.0 += elapsed;
                total.1 += attempts;
                total.2 &= winners.iter().all(|w| *w == 1);
            }
        }
        for strategy in [Strategy::ConditionalUpdate, Strategy::RowLock] {
            let (elapsed, attempts, exact) = totals[&strategy];
            let rate = attempts as f64 / elapsed.as_secs_f64();
            rates.insert((strategy, clients), rate);
            println!(
                "{:<20} {:>8} {:>12.0} {:>10.2} {:>9}",
                format!("{strategy:?}"),
                clients,
                rate,
                elapsed.as_secs_f64() * 1000.0 / f64::from(ROUNDS * REPEATS),
                if exact { "1 each" } else { "WRONG" }
            );
            assert!(
                exact,
                "a strategy let zero or several claims win one ripening"
            );
        }
    }
    for clients in [1usize, 8, 64, 256] {
        let ratio =
            rates[&(Strategy::ConditionalUpdate, clients)] / rates[&(Strategy::RowLock, clients)];
        println!("ratio conditional-update / row-lock at {clients} clients: {ratio:.2}");
    }
    store.pool().close().await;
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&admin)
        .await;
}
