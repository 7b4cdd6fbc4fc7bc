//! The steps of the harvest claim on SQLite, run inside its write transaction.

use dbtree_core::boundary::BackendError;
use dbtree_core::harvest::{HarvestReceipt, HarvestState, LemonClaim};
use dbtree_core::ids::AttemptId;
use dbtree_core::policy::Policy;
use sqlx::SqliteConnection;
use sqlx::types::Json;

use super::ledger::{post_tx, unexpected};
use super::tree::cycle;
use super::{db, ms};

/// Records where an attempt's harvest stands.
pub(super) async fn set_harvest(
    conn: &mut SqliteConnection,
    id: AttemptId,
    state: &HarvestState,
) -> Result<(), BackendError> {
    sqlx::query("UPDATE quiz_attempts SET harvest = ?2 WHERE id = ?1")
        .bind(id.as_uuid().hyphenated())
        .bind(Json(state))
        .execute(conn)
        .await
        .map_err(db("record a harvest outcome"))?;
    Ok(())
}

/// Flips the claim's lemon to regrowing if it is still ripe in the attempt's cycle; only one
/// claimant per ripening can match. Returns whether this one did.
pub(super) async fn flip_lemon(
    conn: &mut SqliteConnection,
    claim: &LemonClaim,
) -> Result<bool, BackendError> {
    let done = sqlx::query(
        "UPDATE lemons SET ripe = 0, harvested_at = ?3, regrows_at = ?4, harvested_by = ?5
         WHERE position = ?1 AND ripe = 1 AND cycle = ?2",
    )
    .bind(i64::from(claim.position.get()))
    .bind(cycle(claim.cycle)?)
    .bind(ms(claim.harvested_at))
    .bind(ms(claim.regrows_at))
    .bind(claim.user.as_uuid().hyphenated())
    .execute(conn)
    .await
    .map_err(db("claim a lemon"))?;
    Ok(done.rows_affected() == 1)
}

/// Credits a won harvest (reward, streak bonus, streak and cooldown) and returns its receipt.
pub(super) async fn pay_harvest(
    conn: &mut SqliteConnection,
    claim: &LemonClaim,
    policy: &Policy,
) -> Result<HarvestReceipt, BackendError> {
    let reward = post_tx(conn, &claim.reward, &policy.ledger)
        .await
        .map_err(unexpected)?
        .entry()
        .clone();
    let bonus = match &claim.streak_bonus {
        Some(request) => Some(
            post_tx(conn, request, &policy.ledger)
                .await
                .map_err(unexpected)?
                .entry()
                .clone(),
        ),
        None => None,
    };
    sqlx::query(
        "UPDATE users SET last_harvest_at = ?2, streak_days = ?3, streak_last_day = ?4
         WHERE id = ?1",
    )
    .bind(claim.user.as_uuid().hyphenated())
    .bind(ms(claim.harvested_at))
    .bind(i64::from(claim.streak_after.days))
    .bind(claim.streak_after.last_day)
    .execute(&mut *conn)
    .await
    .map_err(db("record a harvest on the user"))?;
    Ok(claim.receipt(&reward, bonus.as_ref()))
}
