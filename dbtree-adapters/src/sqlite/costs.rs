//! Instance costs on the ledger: creation debits, refunds and hourly charges.

use chrono::{DateTime, Utc};
use dbtree_core::billing::BillingHour;
use dbtree_core::boundary::{BackendError, PostError, PostOutcome, PostRequest};
use dbtree_core::instance::Instance;
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
    match post_tx(conn, &request, &LedgerPolicy::default()).await {
        Ok(PostOutcome::Posted(e) | PostOutcome::Replayed(e)) => Ok(Ok(e)),
        Err(PostError::Refused(r)) => Ok(Err(r)),
        Err(other) => Err(unexpected(other)),
    }
}

/// Debits the hourly cost of `hour` (or replays its earlier debit) and records the hour as
/// billed; `Ok(Err((required, available)))` when the balance is short, nothing changed.
pub(super) async fn pay_hour(
    conn: &mut SqliteConnection,
    instance: &Instance,
    hour: BillingHour,
    now: DateTime<Utc>,
) -> Result<Result<LedgerEntry, (Lemons, Lemons)>, BackendError> {
    let key = IdempotencyKey::bill(instance.id, hour);
    let cost = instance.price.hourly_cost;
    let entry = match charge(conn, instance, EntryKind::InstanceHourly, key, cost, now).await? {
        Ok(entry) => entry,
        Err(LedgerRefusal::InsufficientLemons {
            required,
            available,
        }) => {
            return Ok(Err((required, available)));
        }
        Err(other) => return Err(BackendError::new(format!("hourly charge refused: {other}"))),
    };
    sqlx::query(
        "UPDATE instances SET last_billed_hour = max(COALESCE(last_billed_hour, ?2), ?2)
         WHERE id = ?1",
    )
    .bind(instance.id.as_uuid().hyphenated())
    .bind(hour.index())
    .execute(conn)
    .await
    .map_err(db("record a billed hour"))?;
    Ok(Ok(entry))
}
