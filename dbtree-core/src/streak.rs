//! Harvest streaks: consecutive UTC days with at least one harvest, and their bonuses.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::lemons::Lemons;

/// One streak milestone: reaching `days` consecutive days pays `bonus` once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreakMilestone {
    /// Streak length in days.
    pub days: u32,
    /// Lemons paid when the streak reaches that length.
    pub bonus: Lemons,
}

/// The streak milestones (default 3 → 5, 7 → 15, 30 → 50).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreakPolicy {
    /// Milestones, any order.
    pub milestones: Vec<StreakMilestone>,
}

impl Default for StreakPolicy {
    fn default() -> Self {
        let m = |days, bonus| StreakMilestone {
            days,
            bonus: Lemons::new(bonus),
        };
        Self {
            milestones: vec![m(3, 5), m(7, 15), m(30, 50)],
        }
    }
}

/// The UTC calendar day of an instant.
pub fn utc_day(at: DateTime<Utc>) -> NaiveDate {
    at.date_naive()
}

/// A user's harvest streak as stored with the user.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Streak {
    /// Length of the streak ending on `last_day`.
    pub days: u32,
    /// The last UTC day with a harvest.
    pub last_day: Option<NaiveDate>,
}

impl Streak {
    /// The streak after a harvest on `day`.
    ///
    /// A second harvest on the same day changes nothing; a harvest the day after `last_day`
    /// extends the streak; any gap starts a new streak of one day. A `day` before `last_day`
    /// (clocks of two replicas disagreeing) is treated as the same day.
    pub fn after_harvest_on(self, day: NaiveDate) -> Streak {
        match self.last_day {
            Some(last) if day <= last => self,
            Some(last) if last.succ_opt() == Some(day) => Streak {
                days: self.days.saturating_add(1),
                last_day: Some(day),
            },
            _ => Streak {
                days: 1,
                last_day: Some(day),
            },
        }
    }

    /// The streak as seen on `today`: its length if it is still alive (last harvest today or
    /// yesterday), else zero.
    pub fn current(self, today: NaiveDate) -> u32 {
        match self.last_day {
            Some(last) if last == today || last.succ_opt() == Some(today) => self.days,
            _ => 0,
        }
    }
}

/// The bonus earned by moving from `before` to `after`, if the move reached a milestone.
pub fn streak_bonus(before: Streak, after: Streak, policy: &StreakPolicy) -> Option<Lemons> {
    if after.days == before.days && after.last_day == before.last_day {
        return None;
    }
    policy
        .milestones
        .iter()
        .find(|m| m.days == after.days)
        .map(|m| m.bonus)
        .filter(|b| *b > Lemons::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(n: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 1).unwrap() + chrono::Days::new(u64::from(n))
    }

    #[test]
    fn consecutive_days_pay_each_milestone_once() {
        let policy = StreakPolicy::default();
        let mut s = Streak::default();
        let mut paid = Vec::new();
        for d in 0..31 {
            // two harvests a day: the second one never pays again
            for _ in 0..2 {
                let next = s.after_harvest_on(day(d));
                if let Some(b) = streak_bonus(s, next, &policy) {
                    paid.push((next.days, b.get()));
                }
                s = next;
            }
        }
        assert_eq!(paid, vec![(3, 5), (7, 15), (30, 50)]);
        assert_eq!(s.days, 31);
    }

    #[test]
    fn a_gap_restarts_the_streak_and_milestones_can_be_reached_again() {
        let policy = StreakPolicy::default();
        let s = Streak::default()
            .after_harvest_on(day(0))
            .after_harvest_on(day(1))
            .after_harvest_on(day(3));
        assert_eq!(s.days, 1);
        let s2 = s.after_harvest_on(day(4));
        let s3 = s2.after_harvest_on(day(5));
        assert_eq!(streak_bonus(s2, s3, &policy), Some(Lemons::new(5)));
    }

    #[test]
    fn current_streak_expires_after_a_missed_day() {
        let s = Streak::default()
            .after_harvest_on(day(0))
            .after_harvest_on(day(1));
        assert_eq!(s.current(day(1)), 2);
        assert_eq!(s.current(day(2)), 2);
        assert_eq!(s.current(day(3)), 0);
        assert_eq!(Streak::default().current(day(0)), 0);
    }

    #[test]
    fn an_earlier_day_from_a_skewed_clock_changes_nothing() {
        let s = Streak::default().after_harvest_on(day(5));
        assert_eq!(s.after_harvest_on(day(4)), s);
    }
}
