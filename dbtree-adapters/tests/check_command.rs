//! The `dbtree-check` command on a real database file: 0 when clean, 1 on a violation, 2 on a
//! bad argument.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use chrono::{TimeZone, Utc};
use dbtree_adapters::sqlite::SqliteStore;
use dbtree_core::auth::Email;
use dbtree_core::boundary::{NewUser, UserStore};
use dbtree_core::ids::UserId;
use dbtree_core::policy::Policy;

fn check(arg: &str) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dbtree-check"))
        .arg(arg)
        .output()
        .expect("run dbtree-check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test]
async fn the_command_reports_a_clean_and_a_corrupted_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("check.sqlite");
    let store = SqliteStore::open(&path).await.unwrap();
    store.migrate().await.unwrap();
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let id = UserId::from_random_bytes([5; 16]);
    store
        .register(
            &NewUser {
                id,
                email: Email::parse("cmd@example.org").unwrap(),
                now,
            },
            &Policy::default().ledger,
        )
        .await
        .unwrap();
    let url = format!("sqlite:{}", path.display());

    let (code, output) = check(&url);
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("checked 1 users, 1 ledger entries, 0 NodePorts: 0 violations"),
        "{output}"
    );

    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE users SET balance = 99 WHERE id = '{id}'"
    )))
    .execute(store.pool())
    .await
    .unwrap();
    let (code, output) = check(&url);
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("balance 99 but ledger sum 15"), "{output}");

    assert_eq!(check("mysql://nope").0, 2);
    assert_eq!(check("--help").0, 2);
}
