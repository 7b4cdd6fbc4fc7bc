//! The runway: how long a balance keeps a user's running instances going, when billing will
//! pause each of them and when deletion follows, and whether to warn the user.

use chrono::{DateTime, TimeDelta, Utc};

use super::{BillingHour, BillingPolicy};
use crate::ids::InstanceId;
use crate::lemons::Lemons;

/// One running instance, as the runway sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Burner {
    /// The instance.
    pub instance: InstanceId,
    /// What it costs an hour.
    pub hourly_cost: Lemons,
    /// The last hour it was charged for.
    pub last_billed_hour: Option<BillingHour>,
}

/// When billing will pause one instance at the current burn, and when it would then be deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlannedPause {
    /// The instance.
    pub instance: InstanceId,
    /// The billing pass that can no longer charge it (the first pass of that clock hour).
    pub pauses_at: DateTime<Utc>,
    /// The end of the grace period after the pause: deleted then unless topped up.
    pub deleted_at: DateTime<Utc>,
}

/// How long a balance lasts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Runway {
    /// Lemons the running instances cost per hour together.
    pub hourly_burn: Lemons,
    /// Whole hours the balance pays at that burn (`balance / burn`, rounded down); `None` when
    /// nothing burns.
    pub hours: Option<u32>,
    /// When each running instance will be paused, earliest first (none when nothing burns).
    pub pauses: Vec<PlannedPause>,
}

impl Runway {
    /// Whether the balance covers fewer hours than `policy.low_balance_hours`.
    pub fn is_low(&self, policy: &BillingPolicy) -> bool {
        self.hours.is_some_and(|h| h < policy.low_balance_hours)
    }

    /// The planned pause of one instance, if it runs.
    pub fn pause_of(&self, instance: InstanceId) -> Option<&PlannedPause> {
        self.pauses.iter().find(|p| p.instance == instance)
    }

    /// The first planned pause.
    pub fn first_pause(&self) -> Option<&PlannedPause> {
        self.pauses.first()
    }
}

/// Plans the runway of `balance` at `now` for the user's running instances, listed in the order
/// the billing pass meets them.
///
/// Billing charges each running instance once per clock hour, at the first pass of the hour:
/// an instance not yet charged for the current hour is charged at the next pass (or paused
/// then, at `now`, if the balance is short); after that, each hour charges every instance still
/// running, in order, and pauses the first one it cannot pay for at the start of that hour.
/// A paused instance is deleted `policy.pause_grace` later unless the balance is topped up.
pub fn plan_runway(
    balance: Lemons,
    running: &[Burner],
    now: DateTime<Utc>,
    policy: &BillingPolicy,
) -> Runway {
    let total: u64 = running.iter().map(|b| u64::from(b.hourly_cost.get())).sum();
    let hourly_burn = Lemons::new(u32::try_from(total).unwrap_or(u32::MAX));
    if total == 0 {
        return Runway {
            hourly_burn,
            hours: None,
            pauses: Vec::new(),
        };
    }
    let hours = Some(u32::try_from(u64::from(balance.get()) / total).unwrap_or(u32::MAX));
    let mut left = u64::from(balance.get());
    let mut pauses = Vec::new();
    let pause = |instance: InstanceId, at: DateTime<Utc>| PlannedPause {
        instance,
        pauses_at: at,
        deleted_at: at + policy.pause_grace,
    };
    let current = BillingHour::containing(now);
    let mut active = Vec::new();
    for burner in running.iter().filter(|b| b.hourly_cost > Lemons::ZERO) {
        let cost = u64::from(burner.hourly_cost.get());
        if burner.last_billed_hour.is_some_and(|h| h >= current) {
            active.push(burner);
        } else if left >= cost {
            left -= cost;
            active.push(burner);
        } else {
            pauses.push(pause(burner.instance, now));
        }
    }
    let mut hour = current.index();
    while !active.is_empty() {
        let burn: u64 = active.iter().map(|b| u64::from(b.hourly_cost.get())).sum();
        let paid_hours = left / burn;
        left -= paid_hours * burn;
        let paid = i64::try_from(paid_hours).unwrap_or(i64::MAX / 2);
        hour = hour.saturating_add(paid).saturating_add(1);
        let at = BillingHour::from_index(hour).start();
        let mut still = Vec::with_capacity(active.len());
        for burner in active {
            let cost = u64::from(burner.hourly_cost.get());
            if left >= cost {
                left -= cost;
                still.push(burner);
            } else {
                pauses.push(pause(burner.instance, at));
            }
        }
        active = still;
    }
    Runway {
        hourly_burn,
        hours,
        pauses,
    }
}

/// What to do about the low-balance warning after a billing pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LowBalanceStep {
    /// The balance just became low: send the one email of this episode.
    Warn,
    /// Still low and already warned in this episode: nothing to send.
    AlreadyWarned,
    /// The episode is over (topped up, or nothing burns any more): forget the warning so the
    /// next episode warns again.
    EndEpisode,
    /// Not low and not warned.
    Nothing,
}

/// Decides the low-balance warning: one email per episode, an episode lasting from the pass
/// that finds the runway below `policy.low_balance_hours` to the pass that finds it at or
/// above (or nothing running).
pub fn low_balance_step(runway: &Runway, warned: bool, policy: &BillingPolicy) -> LowBalanceStep {
    match (runway.is_low(policy), warned) {
        (true, false) => LowBalanceStep::Warn,
        (true, true) => LowBalanceStep::AlreadyWarned,
        (false, true) => LowBalanceStep::EndEpisode,
        (false, false) => LowBalanceStep::Nothing,
    }
}

/// When a paused instance is deleted unless topped up.
pub fn deletion_due(paused_at: DateTime<Utc>, policy: &BillingPolicy) -> DateTime<Utc> {
    paused_at + policy.pause_grace
}

/// How long until `at`, for messages ("in about 2 h").
pub fn whole_hours_until(at: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    (at - now).max(TimeDelta::zero()).num_hours()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 7, 1, 12, 20, 0).unwrap()
    }

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 7, 1, hour, 0, 0).unwrap()
    }

    fn id(n: u8) -> InstanceId {
        InstanceId::from_random_bytes([n; 16])
    }

    fn burner(n: u8, cost: u32, billed_now: bool) -> Burner {
        let current = BillingHour::containing(now());
        Burner {
            instance: id(n),
            hourly_cost: Lemons::new(cost),
            last_billed_hour: Some(if billed_now {
                current
            } else {
                BillingHour::from_index(current.index() - 1)
            }),
        }
    }

    fn plan(balance: u32, running: &[Burner]) -> Runway {
        plan_runway(
            Lemons::new(balance),
            running,
            now(),
            &BillingPolicy::default(),
        )
    }

    fn pauses(r: &Runway) -> Vec<(InstanceId, DateTime<Utc>, DateTime<Utc>)> {
        r.pauses
            .iter()
            .map(|p| (p.instance, p.pauses_at, p.deleted_at))
            .collect()
    }

    #[test]
    fn runway_in_a_table() {
        let p = BillingPolicy::default();
        // nothing running: no burn, no hours, never low
        let idle = plan(3, &[]);
        assert_eq!((idle.hourly_burn, idle.hours), (Lemons::ZERO, None));
        assert!(!idle.is_low(&p) && idle.pauses.is_empty());

        // a tiny database (1/h) charged this hour, 15 lemons: 15 hours (13:00 to 03:00 next
        // day are paid), paused at 04:00, deleted an hour later
        let tiny = plan(15, &[burner(1, 1, true)]);
        assert_eq!((tiny.hourly_burn.get(), tiny.hours), (1, Some(15)));
        assert!(!tiny.is_low(&p));
        let next_day = |h| Utc.with_ymd_and_hms(2026, 7, 2, h, 0, 0).unwrap();
        assert_eq!(pauses(&tiny), vec![(id(1), next_day(4), next_day(5))]);

        // not yet charged this hour: the next pass takes one hour now
        let pending = plan(5, &[burner(1, 2, false)]);
        assert_eq!(pending.hours, Some(2));
        assert!(pending.is_low(&p));
        // 5 - 2 (this hour) = 3: 13:00 paid (1 left), paused at 14:00
        assert_eq!(pauses(&pending), vec![(id(1), at(14), at(15))]);

        // short already for this hour: paused at the next pass, i.e. now
        let short = plan(1, &[burner(1, 2, false)]);
        assert_eq!(short.hours, Some(0));
        assert_eq!(
            pauses(&short),
            vec![(id(1), now(), now() + TimeDelta::hours(1))]
        );

        // exactly three hours is not low; two is
        assert!(!plan(6, &[burner(1, 2, true)]).is_low(&p));
        assert!(plan(5, &[burner(1, 2, true)]).is_low(&p));

        // two instances: the cheaper one outlives the dearer one, in billing order
        let two = plan(9, &[burner(1, 2, true), burner(2, 3, true)]);
        assert_eq!((two.hourly_burn.get(), two.hours), (5, Some(1)));
        // 13:00 pays both (4 left); 14:00 pays #1 (2 left), pauses #2; 15:00 pays #1 (0);
        // 16:00 pauses #1
        assert_eq!(
            pauses(&two),
            vec![(id(2), at(14), at(15)), (id(1), at(16), at(17))]
        );
        assert_eq!(two.first_pause().map(|f| f.instance), Some(id(2)));
        assert_eq!(two.pause_of(id(1)).map(|f| f.pauses_at), Some(at(16)));
    }

    #[test]
    fn the_warning_is_sent_once_per_episode() {
        let p = BillingPolicy::default();
        let low = plan(2, &[burner(1, 1, true)]);
        let fine = plan(30, &[burner(1, 1, true)]);
        let idle = plan(0, &[]);
        let table = [
            (&low, false, LowBalanceStep::Warn),
            (&low, true, LowBalanceStep::AlreadyWarned),
            (&fine, true, LowBalanceStep::EndEpisode),
            (&idle, true, LowBalanceStep::EndEpisode),
            (&fine, false, LowBalanceStep::Nothing),
            (&idle, false, LowBalanceStep::Nothing),
        ];
        for (runway, warned, want) in table {
            assert_eq!(
                low_balance_step(runway, warned, &p),
                want,
                "{runway:?} {warned}"
            );
        }
    }

    #[test]
    fn deletion_follows_the_grace() {
        let p = BillingPolicy::default();
        assert_eq!(deletion_due(at(9), &p), at(10));
        assert_eq!(whole_hours_until(at(15), now()), 2);
        assert_eq!(whole_hours_until(at(9), now()), 0);
    }
}
