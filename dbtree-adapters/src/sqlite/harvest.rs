//! The steps of the harvest claim on SQLite, run inside its write transaction.

use chrono::{DateTime, Utc};
use dbtree_core::boundary::{BackendError, ClaimError, PostRequest};
use dbtree_core::harvest::{HarvestCredit, HarvestReceipt, HarvestState};
use dbtree_core::ids::AttemptId;
use dbtree_core::ledger::{EntryKind, IdempotencyKey, LedgerRefusal};
use dbtree_core::lemons::Lemons;
use dbtree_core::policy::Policy;
use dbtree_core::quiz::Attempt;
use dbtree_core::tree::{LemonState, harvested_state};
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

/// Flips the attempt's lemon to regrowing if it is still ripe in the attempt's cycle; only one
/// claimant per ripening can match. Returns whether this one did.
pub(super) async fn flip_lemon(
    conn: &mut SqliteConnection,
    attempt: &Attempt,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Result<bool, BackendError> {
    let LemonState::Regrowing {
        harvested_at,
        regrows_at,
    } = harvested_state(now, &policy.tree)
    else {
        return Err(BackendError::new("a harvested lemon must be regrowing"));
    };
    let done = sqlx::query(
        "UPDATE lemons SET ripe = 0, harvested_at = ?3, regrows_at = ?4, harvested_by = ?5
         WHERE position = ?1 AND ripe = 1 AND cycle = ?2",
    )
    .bind(i64::from(attempt.position.get()))
    .bind(cycle(attempt.lemon_cycle))
    .bind(ms(harvested_at))
    .bind(ms(regrows_at))
    .bind(attempt.user.as_uuid().hyphenated())
    .execute(conn)
    .await
    .map_err(db("claim a lemon"))?;
    Ok(done.rows_affected() == 1)
}

/// Credits a won harvest (reward, streak bonus, streak and cooldown) and returns its receipt.
pub(super) async fn pay_harvest(
    conn: &mut SqliteConnection,
    attempt: &Attempt,
    credit: &HarvestCredit,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Result<HarvestReceipt, BackendError> {
    let (id, user) = (attempt.id, attempt.user);
    let reward = PostRequest {
        user,
        kind: EntryKind::Harvest,
        amount: policy.ledger.harvest_reward,
        key: IdempotencyKey::harvest(id),
        instance: None,
        at: now,
    };
    let entry = post_tx(conn, &reward, &policy.ledger)
        .await
        .map_err(unexpected)?
        .entry()
        .clone();
    let mut balance_after = entry.balance_after;
    if let Some(bonus) = credit.streak_bonus {
        let request = PostRequest {
            user,
            kind: EntryKind::StreakBonus,
            amount: Lemons::try_from_i64(bonus.delta).unwrap_or_default(),
            key: IdempotencyKey::streak(id),
            instance: None,
            at: now,
        };
        let posted = post_tx(conn, &request, &policy.ledger)
            .await
            .map_err(unexpected)?;
        balance_after = posted.entry().balance_after;
    }
    sqlx::query(
        "UPDATE users SET last_harvest_at = ?2, streak_days = ?3, streak_last_day = ?4
         WHERE id = ?1",
    )
    .bind(user.as_uuid().hyphenated())
    .bind(ms(now))
    .bind(i64::from(credit.streak_after.days))
    .bind(credit.streak_after.last_day)
    .execute(&mut *conn)
    .await
    .map_err(db("record a harvest on the user"))?;
    Ok(HarvestReceipt {
        entry: entry.id,
        reward: credit.reward_lemons(),
        streak_bonus: credit.bonus_lemons(),
        balance_after,
        harvested_at: entry.at,
    })
}

/// The claim error of a refused harvest credit.
pub(super) fn claim_refusal(refusal: LedgerRefusal) -> ClaimError {
    match refusal {
        LedgerRefusal::StorageFull { cap } => ClaimError::StorageFull { cap },
        other => ClaimError::Backend(BackendError::new(other.to_string())),
    }
}
