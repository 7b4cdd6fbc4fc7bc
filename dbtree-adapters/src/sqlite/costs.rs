//! Instance costs on the ledger: creation debits, refunds and hourly charges.

use chrono::{DateTime, Utc};
use dbtree_core::billing::BillingHour;
use dbtree_core::boundary::{BackendError, PostError, PostOutcome, PostRequest};
use dbtree_core::ids::InstanceId;
use dbtree_core::instance::{Instance, short_balance};
use dbtree_core::ledger::{EntryKind, IdempotencyKey, LedgerEntry, LedgerPolicy, LedgerRefusal};
use dbtree_core::lemons::Lemons;
use sqlx::SqliteConnection;

use super::db;
use super::ledger::{post_tx, unexpected};

/// Debits (or refunds) an instance cost inside the transaction; `Ok(Err(_))` is a refusal.
pub(super) async fn charge(
    conn: &mut SqliteConnection,
    instance: &Instance,
    kind: EntryKind,
    key: IdempotencyKey,
    amount: Lemons,
    at: DateTime<Utc>,
) -> Result<Result<LedgerEntry, LedgerRefusal>, BackendError> {
    let request = PostRequest {
        user: instance.owner,
        kind,
        amount,
        key,
        instance: Some(instance.id),
        at,
    };
    post_cost(conn, &request).await
}

/// Posts a planned instance cost inside the transaction (a replayed key returns the original
/// entry); `Ok(Err(_))` is a refusal.
pub(super) async fn post_cost(
    conn: &mut SqliteConnection,
    request: &PostRequest,
) -> Result<Result<LedgerEntry, LedgerRefusal>, BackendError> {
    match post_tx(conn, request, &LedgerPolicy::default()).await {
        Ok(PostOutcome::Posted(e) | PostOutcome::Replayed(e)) => Ok(Ok(e)),
        Err(PostError::Refused(r)) => Ok(Err(r)),
        Err(other) => Err(unexpected(other)),
    }
}

/// Posts a planned hourly debit of `hour` (or replays its earlier debit) and records the hour
/// as billed; `Ok(Err((required, available)))` when the balance is short, nothing changed.
pub(super) async fn pay_hour(
    conn: &mut SqliteConnection,
    instance: InstanceId,
    charge: &PostRequest,
    hour: BillingHour,
) -> Result<Result<LedgerEntry, (Lemons, Lemons)>, BackendError> {
    let entry = match post_cost(conn, charge).await? {
        Ok(entry) => entry,
        Err(refusal) => return Ok(Err(short_balance(refusal)?)),
    };
    sqlx::query(
        "UPDATE instances SET last_billed_hour = max(COALESCE(last_billed_hour, ?2), ?2)
         WHERE id = ?1",
    )
    .bind(instance.as_uuid().hyphenated())
    .bind(hour.index())
    .execute(conn)
    .await
    .map_err(db("record a billed hour"))?;
    Ok(Ok(entry))
}
