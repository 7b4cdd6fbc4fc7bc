//! The planner of the atomic harvest claim: which attempt may race for its lemon, what a win
//! credits and writes. Stores read the attempt and the player inside their transaction, call
//! [`plan_claim`], then apply the plan; the one decision left to them is the conditional flip of
//! the lemon, which only the store can make atomic.

use chrono::{DateTime, Utc};

use super::{HarvestReceipt, HarvestState, plan_harvest_credit};
use crate::boundary::{BackendError, ClaimError, PostRequest, User};
use crate::ids::{AttemptId, UserId};
use crate::ledger::{EntryKind, IdempotencyKey, LedgerEntry, LedgerRefusal};
use crate::policy::Policy;
use crate::quiz::Attempt;
use crate::streak::Streak;
use crate::tree::{Lemon, LemonState, Position};

/// What [`crate::boundary::TreeStore::claim_lemon`] does.
#[derive(Clone, Debug, PartialEq)]
pub enum ClaimPlan {
    /// The attempt won before: return its stored receipt again, change nothing.
    Replay(HarvestReceipt),
    /// Race for the lemon: flip it if it is still ripe in the attempt's cycle, then apply the
    /// win (or, if it was gone, [`LemonClaim::gone`]).
    Race(Box<LemonClaim>),
}

/// A claim allowed to race for its lemon, and everything a win writes.
#[derive(Clone, Debug, PartialEq)]
pub struct LemonClaim {
    /// The attempt.
    pub attempt: AttemptId,
    /// Its player.
    pub user: UserId,
    /// The lemon's place.
    pub position: Position,
    /// The ripening the attempt played for: only a lemon ripe in this cycle can be won.
    pub cycle: u64,
    /// When the lemon is harvested (now): the start of the player's cooldown.
    pub harvested_at: DateTime<Utc>,
    /// When the won lemon is due to be ripe again.
    pub regrows_at: DateTime<Utc>,
    /// The reward (key `harvest:{attempt}`).
    pub reward: PostRequest,
    /// The streak bonus (key `streak:{attempt}`), if a milestone was reached with room left.
    pub streak_bonus: Option<PostRequest>,
    /// The player's streak after the win.
    pub streak_after: Streak,
}

impl LemonClaim {
    /// The state the lemon enters when this claim wins it.
    pub fn lemon_state(&self) -> LemonState {
        LemonState::Regrowing {
            harvested_at: self.harvested_at,
            regrows_at: self.regrows_at,
        }
    }

    /// Whether this claim wins `lemon` (the store's view of it, under its lock).
    pub fn wins(&self, lemon: Option<&Lemon>) -> bool {
        lemon.is_some_and(|l| l.position == self.position && l.is_ripe() && l.cycle == self.cycle)
    }

    /// What the store writes when the lemon was gone: the attempt settles as `Lost` and the
    /// claim is refused.
    pub fn gone(&self) -> (HarvestState, ClaimError) {
        (HarvestState::Lost, ClaimError::AlreadyHarvested)
    }

    /// The receipt of a win, from the posted reward and bonus entries.
    pub fn receipt(&self, reward: &LedgerEntry, bonus: Option<&LedgerEntry>) -> HarvestReceipt {
        HarvestReceipt {
            entry: reward.id,
            reward: lemons_of(reward),
            streak_bonus: bonus.map(lemons_of).unwrap_or_default(),
            balance_after: bonus.map_or(reward.balance_after, |b| b.balance_after),
            harvested_at: reward.at,
        }
    }
}

/// Plans the claim of `attempt` by `user` at `now`, with `player` the user as stored (`None`
/// when the account is gone).
///
/// # Errors
/// [`ClaimError`] in the trait's order: NotEligible (not the user's attempt, no window, settled,
/// account gone), AlreadyHarvested (the attempt lost before), Cooldown, StorageFull. A refusal
/// of the reward other than a full storage is a [`ClaimError::Backend`]: the harvest policy is
/// broken (a zero reward) or the balance overflowed.
pub fn plan_claim(
    attempt: Option<&Attempt>,
    user: UserId,
    player: Option<&User>,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Result<ClaimPlan, ClaimError> {
    let attempt = attempt
        .filter(|a| a.user == user)
        .ok_or(ClaimError::NotEligible)?;
    match &attempt.harvest {
        HarvestState::Won(receipt) => return Ok(ClaimPlan::Replay(*receipt)),
        HarvestState::Open => {}
        HarvestState::Lost => return Err(ClaimError::AlreadyHarvested),
        HarvestState::AwaitingAnswer
        | HarvestState::NotEligible
        | HarvestState::Missed { .. }
        | HarvestState::Abandoned
        | HarvestState::TooLate { .. } => return Err(ClaimError::NotEligible),
    }
    let player = player
        .filter(|p| p.id == user)
        .ok_or(ClaimError::NotEligible)?;
    if let Some(until) = policy.harvest.in_cooldown(player.last_harvest_at, now) {
        return Err(ClaimError::Cooldown { until });
    }
    let credit = plan_harvest_credit(
        player.balance,
        player.streak,
        now,
        &policy.ledger,
        &policy.streaks,
    )
    .map_err(|refusal| match refusal {
        LedgerRefusal::StorageFull { cap } => ClaimError::StorageFull { cap },
        other @ (LedgerRefusal::InsufficientLemons { .. }
        | LedgerRefusal::ZeroAmount
        | LedgerRefusal::Overflow) => ClaimError::Backend(BackendError::new(format!(
            "harvest credit refused: {other}"
        ))),
    })?;
    let request = |kind, amount, key| PostRequest {
        user,
        kind,
        amount,
        key,
        instance: None,
        at: now,
    };
    let reward = request(
        EntryKind::Harvest,
        policy.ledger.harvest_reward,
        IdempotencyKey::harvest(attempt.id),
    );
    let streak_bonus = credit.streak_bonus.map(|_| {
        request(
            EntryKind::StreakBonus,
            credit.bonus_lemons(),
            IdempotencyKey::streak(attempt.id),
        )
    });
    Ok(ClaimPlan::Race(Box::new(LemonClaim {
        attempt: attempt.id,
        user,
        position: attempt.position,
        cycle: attempt.lemon_cycle,
        harvested_at: now,
        regrows_at: now + policy.tree.regrowth,
        reward,
        streak_bonus,
        streak_after: credit.streak_after,
    })))
}

/// The lemons an entry credited (zero for a debit, which a harvest never posts).
fn lemons_of(entry: &LedgerEntry) -> crate::lemons::Lemons {
    crate::lemons::Lemons::try_from_i64(entry.delta).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeDelta, TimeZone};

    use super::*;
    use crate::auth::Email;
    use crate::ids::{EntryId, QuizId};
    use crate::lemons::Lemons;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap()
    }

    fn player(balance: u32) -> User {
        User {
            id: UserId::from_random_bytes([1; 16]),
            email: Email::parse("ada@example.com").unwrap(),
            balance: Lemons::new(balance),
            earned_total: 0,
            spent_total: 0,
            last_harvest_at: None,
            streak: Streak::default(),
            created_at: now() - TimeDelta::days(3),
        }
    }

    fn attempt(harvest: HarvestState) -> Attempt {
        Attempt {
            id: AttemptId::from_random_bytes([2; 16]),
            user: player(0).id,
            position: Position::new(4).unwrap(),
            lemon_cycle: 7,
            quiz: QuizId(3),
            started_at: now() - TimeDelta::seconds(20),
            time_limit: TimeDelta::seconds(30),
            answer: None,
            harvest,
        }
    }

    fn receipt() -> HarvestReceipt {
        HarvestReceipt {
            entry: EntryId::from_random_bytes([3; 16]),
            reward: Lemons::new(3),
            streak_bonus: Lemons::ZERO,
            balance_after: Lemons::new(13),
            harvested_at: now() - TimeDelta::minutes(5),
        }
    }

    fn plan(attempt: Option<&Attempt>, player: Option<&User>) -> Result<ClaimPlan, ClaimError> {
        let user = self::player(0).id;
        plan_claim(attempt, user, player, now(), &Policy::default())
    }

    #[test]
    fn every_harvest_state_has_its_answer() {
        let p = player(10);
        let cases: [(HarvestState, &str); 8] = [
            (HarvestState::AwaitingAnswer, "not eligible"),
            (HarvestState::NotEligible, "not eligible"),
            (HarvestState::Open, "race"),
            (HarvestState::Won(receipt()), "replay"),
            (HarvestState::Lost, "already harvested"),
            (HarvestState::Missed { distance: 0.3 }, "not eligible"),
            (HarvestState::Abandoned, "not eligible"),
            (HarvestState::TooLate { elapsed_ms: 5001 }, "not eligible"),
        ];
        for (state, expected) in cases {
            let got = match plan(Some(&attempt(state.clone())), Some(&p)) {
                Ok(ClaimPlan::Race(_)) => "race",
                Ok(ClaimPlan::Replay(r)) => {
                    assert_eq!(r, receipt());
                    "replay"
                }
                Err(ClaimError::NotEligible) => "not eligible",
                Err(ClaimError::AlreadyHarvested) => "already harvested",
                Err(other) => panic!("{state:?}: unexpected {other:?}"),
            };
            assert_eq!(got, expected, "{state:?}");
        }
    }

    #[test]
    fn someone_elses_or_a_missing_attempt_or_player_is_not_eligible() {
        let open = attempt(HarvestState::Open);
        let p = player(10);
        assert!(matches!(plan(None, Some(&p)), Err(ClaimError::NotEligible)));
        assert!(matches!(
            plan(Some(&open), None),
            Err(ClaimError::NotEligible)
        ));
        let mut other = open.clone();
        other.user = UserId::from_random_bytes([9; 16]);
        assert!(matches!(
            plan(Some(&other), Some(&p)),
            Err(ClaimError::NotEligible)
        ));
        let mut stranger = p.clone();
        stranger.id = UserId::from_random_bytes([9; 16]);
        assert!(matches!(
            plan(Some(&open), Some(&stranger)),
            Err(ClaimError::NotEligible)
        ));
    }

    #[test]
    fn cooldown_comes_before_a_full_storage() {
        let open = attempt(HarvestState::Open);
        let policy = Policy::default();
        let mut p = player(policy.ledger.balance_cap.get());
        p.last_harvest_at = Some(now() - TimeDelta::minutes(10));
        let until = now() - TimeDelta::minutes(10) + policy.harvest.cooldown;
        assert!(matches!(
            plan(Some(&open), Some(&p)),
            Err(ClaimError::Cooldown { until: u }) if u == until
        ));
        p.last_harvest_at = Some(now() - policy.harvest.cooldown);
        assert!(matches!(
            plan(Some(&open), Some(&p)),
            Err(ClaimError::StorageFull { cap }) if cap == policy.ledger.balance_cap
        ));
    }

    #[test]
    fn a_race_plans_the_lemon_the_reward_and_the_streak() {
        let open = attempt(HarvestState::Open);
        let mut p = player(10);
        p.streak = Streak {
            days: 6,
            last_day: NaiveDate::from_ymd_opt(2026, 4, 30),
        };
        let policy = Policy::default();
        let Ok(ClaimPlan::Race(claim)) = plan(Some(&open), Some(&p)) else {
            panic!("an open attempt races");
        };
        assert_eq!((claim.position, claim.cycle), (open.position, 7));
        assert_eq!(claim.harvested_at, now());
        assert_eq!(claim.regrows_at, now() + policy.tree.regrowth);
        assert_eq!(claim.reward.key, IdempotencyKey::harvest(open.id));
        assert_eq!(claim.reward.amount, policy.ledger.harvest_reward);
        assert_eq!(claim.streak_after.days, 7);
        let bonus = claim
            .streak_bonus
            .clone()
            .expect("a 7-day streak earns a bonus");
        assert_eq!(bonus.key, IdempotencyKey::streak(open.id));
        assert_eq!(bonus.kind, EntryKind::StreakBonus);

        let ripe = Lemon {
            position: open.position,
            quiz: QuizId(3),
            cycle: 7,
            state: LemonState::Ripe,
            harvested_by: None,
        };
        assert!(claim.wins(Some(&ripe)));
        let later = Lemon {
            cycle: 8,
            ..ripe.clone()
        };
        assert!(
            !claim.wins(Some(&later)),
            "a later ripening is not this attempt's"
        );
        let gone = Lemon {
            state: claim.lemon_state(),
            ..ripe.clone()
        };
        assert!(!claim.wins(Some(&gone)));
        assert!(!claim.wins(None));
        assert!(matches!(
            claim.gone(),
            (HarvestState::Lost, ClaimError::AlreadyHarvested)
        ));
    }
}
