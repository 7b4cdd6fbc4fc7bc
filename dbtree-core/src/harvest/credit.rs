//! How much a won lemon credits: the reward and any streak bonus, both clipped to the cap.

use chrono::{DateTime, Utc};

use crate::ledger::{EntryKind, LedgerPolicy, LedgerRefusal, Posting, plan_posting};
use crate::lemons::Lemons;
use crate::streak::{Streak, StreakPolicy, streak_bonus, utc_day};

/// The balance changes of one winning harvest, computed inside the store's transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HarvestCredit {
    /// The reward posting.
    pub reward: Posting,
    /// The streak bonus posting, if a milestone was reached and room remained under the cap.
    pub streak_bonus: Option<Posting>,
    /// The user's streak after this harvest.
    pub streak_after: Streak,
}

impl HarvestCredit {
    /// Lemons credited as reward.
    pub fn reward_lemons(&self) -> Lemons {
        Lemons::try_from_i64(self.reward.delta).unwrap_or(Lemons::ZERO)
    }

    /// Lemons credited as streak bonus (zero if none).
    pub fn bonus_lemons(&self) -> Lemons {
        self.streak_bonus
            .and_then(|p| Lemons::try_from_i64(p.delta))
            .unwrap_or(Lemons::ZERO)
    }

    /// The balance after reward and bonus.
    pub fn balance_after(&self) -> Lemons {
        self.streak_bonus
            .map_or(self.reward.balance_after, |p| p.balance_after)
    }
}

/// Plans the credit of a harvest won at `now` by a user with `balance` and `streak`.
///
/// # Errors
/// [`LedgerRefusal::StorageFull`] if the balance is already at the cap: the lemon must then not
/// be claimed at all.
pub fn plan_harvest_credit(
    balance: Lemons,
    streak: Streak,
    now: DateTime<Utc>,
    ledger: &LedgerPolicy,
    streaks: &StreakPolicy,
) -> Result<HarvestCredit, LedgerRefusal> {
    let reward = plan_posting(EntryKind::Harvest, ledger.harvest_reward, balance, ledger)?;
    let streak_after = streak.after_harvest_on(utc_day(now));
    let streak_bonus = streak_bonus(streak, streak_after, streaks).and_then(|bonus| {
        plan_posting(EntryKind::StreakBonus, bonus, reward.balance_after, ledger).ok()
    });
    Ok(HarvestCredit {
        reward,
        streak_bonus,
        streak_after,
    })
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};

    use super::*;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 4, day, 10, 0, 0).unwrap()
    }

    fn streak(days: u32, last: u32) -> Streak {
        Streak {
            days,
            last_day: NaiveDate::from_ymd_opt(2026, 4, last),
        }
    }

    #[test]
    fn third_day_pays_reward_and_bonus() {
        let c = plan_harvest_credit(
            Lemons::new(10),
            streak(2, 2),
            at(3),
            &LedgerPolicy::default(),
            &StreakPolicy::default(),
        )
        .unwrap();
        assert_eq!(
            (
                c.reward_lemons().get(),
                c.bonus_lemons().get(),
                c.balance_after().get()
            ),
            (3, 5, 18)
        );
        assert_eq!(c.streak_after.days, 3);
    }

    #[test]
    fn the_cap_clips_reward_then_bonus() {
        let p = LedgerPolicy::default();
        let c = plan_harvest_credit(
            Lemons::new(496),
            streak(2, 2),
            at(3),
            &p,
            &StreakPolicy::default(),
        )
        .unwrap();
        assert_eq!(
            (
                c.reward_lemons().get(),
                c.bonus_lemons().get(),
                c.balance_after().get()
            ),
            (3, 1, 500)
        );
        let c = plan_harvest_credit(
            Lemons::new(498),
            streak(2, 2),
            at(3),
            &p,
            &StreakPolicy::default(),
        )
        .unwrap();
        assert_eq!(
            (
                c.reward_lemons().get(),
                c.streak_bonus,
                c.balance_after().get()
            ),
            (2, None, 500)
        );
        let full = plan_harvest_credit(
            Lemons::new(500),
            streak(2, 2),
            at(3),
            &p,
            &StreakPolicy::default(),
        );
        assert_eq!(
            full,
            Err(LedgerRefusal::StorageFull {
                cap: Lemons::new(500)
            })
        );
    }
}
