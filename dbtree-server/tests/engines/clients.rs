//! Real database clients on the URIs the API hands out, and polling with a deadline.
#![allow(dead_code)] // shared by several test binaries, each using a part

use std::str::FromStr;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::{Connection, Row};

use super::server::DEADLINE;

/// Polls `attempt` until it yields a value, failing with `what` after [`DEADLINE`].
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{what}: not within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A Redis connection with the URI from the API (`redis://dbtree:…@host:port/0`).
pub(crate) async fn redis_at(uri: &str) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    redis::Client::open(uri)?
        .get_multiplexed_async_connection()
        .await
}

/// A PostgreSQL connection with the URI from the API (`postgresql://dbtree:…@host:port/postgres`).
pub(crate) async fn pg_at(uri: &str) -> Result<PgConnection, sqlx::Error> {
    let options = PgConnectOptions::from_str(uri)?.ssl_mode(PgSslMode::Disable);
    PgConnection::connect_with(&options).await
}

pub(crate) async fn redis_write(uri: &str, value: &str) {
    let mut con = redis_at(uri).await.unwrap();
    let () = con.set("fruit", value).await.unwrap();
}

pub(crate) async fn redis_read(uri: &str) -> Option<String> {
    let mut con = redis_at(uri).await.unwrap();
    con.get("fruit").await.unwrap()
}

pub(crate) async fn pg_write(uri: &str, value: &str) {
    let mut con = pg_at(uri).await.unwrap();
    sqlx::query("CREATE TABLE fruit (name text NOT NULL)")
        .execute(&mut con)
        .await
        .unwrap();
    sqlx::query("INSERT INTO fruit (name) VALUES ($1)")
        .bind(value)
        .execute(&mut con)
        .await
        .unwrap();
    con.close().await.unwrap();
}

pub(crate) async fn pg_read(uri: &str) -> Vec<String> {
    let mut con = pg_at(uri).await.unwrap();
    let rows = sqlx::query("SELECT name FROM fruit")
        .fetch_all(&mut con)
        .await
        .unwrap();
    con.close().await.unwrap();
    rows.iter().map(|r| r.get::<String, _>("name")).collect()
}

/// A MongoDB client signed in with the URI from the API
/// (`mongodb://dbtree:…@host:port/dbtree?authSource=admin`): the sign-in happens on a `ping`.
pub(crate) async fn mongo_at(uri: &str) -> Result<mongodb::Client, mongodb::error::Error> {
    let client =
        mongodb::Client::with_uri_str(format!("{uri}&serverSelectionTimeoutMS=5000")).await?;
    client
        .database("dbtree")
        .run_command(mongodb::bson::doc! { "ping": 1 })
        .await?;
    Ok(client)
}

pub(crate) async fn mongo_write(uri: &str, value: &str) {
    let client = mongo_at(uri).await.unwrap();
    client
        .database("dbtree")
        .collection::<mongodb::bson::Document>("fruit")
        .insert_one(mongodb::bson::doc! { "name": value })
        .await
        .unwrap();
}

pub(crate) async fn mongo_read(uri: &str) -> Vec<String> {
    use futures_util::TryStreamExt;
    let client = mongo_at(uri).await.unwrap();
    let docs: Vec<mongodb::bson::Document> = client
        .database("dbtree")
        .collection::<mongodb::bson::Document>("fruit")
        .find(mongodb::bson::doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    docs.iter()
        .map(|d| d.get_str("name").unwrap().to_owned())
        .collect()
}

/// Waits until the engine behind `uri` accepts `uri`'s password.
pub(crate) async fn serving(engine: &str, uri: &str) {
    eventually(&format!("{engine} accepts the password"), || async {
        match engine {
            "redis" => redis_at(uri).await.ok().map(|_| ()),
            "mongodb" => mongo_at(uri).await.ok().map(|_| ()),
            _ => match pg_at(uri).await {
                Ok(con) => {
                    let _ = con.close().await;
                    Some(())
                }
                Err(_) => None,
            },
        }
    })
    .await;
}

/// Asserts the engine behind `uri` refuses its password (authentication, not a dead port).
pub(crate) async fn password_refused(engine: &str, uri: &str) {
    match engine {
        "redis" => {
            let err = redis_at(uri).await.expect_err("the password works");
            assert_eq!(err.kind(), redis::ErrorKind::AuthenticationFailed, "{err}");
        }
        "mongodb" => {
            let err = mongo_at(uri).await.expect_err("the password works");
            let auth = match err.kind.as_ref() {
                mongodb::error::ErrorKind::Authentication { .. } => true,
                mongodb::error::ErrorKind::Command(c) => c.code == 18,
                _ => false,
            };
            assert!(auth, "not refused for its password: {err}");
        }
        _ => {
            let err = pg_at(uri).await.expect_err("the password works");
            let code = err
                .as_database_error()
                .and_then(|d| d.code())
                .map(|c| c.into_owned());
            assert_eq!(code.as_deref(), Some("28P01"), "{err}");
        }
    }
}
