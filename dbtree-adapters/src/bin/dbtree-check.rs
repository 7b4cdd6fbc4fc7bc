//! `dbtree-check`: verifies dbtree's storage invariants on a live database.
//!
//! ```text
//! dbtree-check postgres://user@host/db     # or sqlite:./dbtree-data/dbtree.sqlite
//! DBTREE_DATABASE_URL=… dbtree-check
//! ```
//!
//! Checks that every balance equals the sum of its ledger entries (and every entry's running
//! balance), no balance is negative, no idempotency key repeats, and every held NodePort belongs
//! to exactly one live instance. Exits 0 when all hold, 1 when any is violated, 2 on errors.

use std::process::ExitCode;

use dbtree_adapters::postgres::PgStore;
use dbtree_adapters::sqlite::SqliteStore;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("DBTREE_DATABASE_URL").ok());
    let Some(url) = url.filter(|u| !u.starts_with('-')) else {
        eprintln!("usage: dbtree-check <postgres://…|sqlite:…>   (or set DBTREE_DATABASE_URL)");
        return ExitCode::from(2);
    };
    let report = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match PgStore::connect(&url, 2).await {
            Ok(store) => store.check_invariants().await,
            Err(e) => Err(e),
        }
    } else if url.starts_with("sqlite:") {
        match SqliteStore::connect(&url).await {
            Ok(store) => store.check_invariants().await,
            Err(e) => Err(e),
        }
    } else {
        eprintln!("dbtree-check: the URL must start with postgres:// or sqlite:");
        return ExitCode::from(2);
    };
    match report {
        Ok(report) => {
            println!("{report}");
            if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("dbtree-check: {message}");
            ExitCode::from(2)
        }
    }
}
