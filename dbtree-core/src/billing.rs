//! Hourly billing: the clock hour an instance is charged for, the decision for one instance
//! in one billing pass, and the runway (how long a balance lasts, and the low-balance warning).

mod runway;

pub use runway::{
    Burner, LowBalanceStep, PlannedPause, Runway, deletion_due, low_balance_step, plan_runway,
    whole_hours_until,
};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::instance::InstanceStatus;
use crate::lemons::Lemons;

/// A UTC clock hour, counted from the Unix epoch. Each running instance is charged at most once
/// per `BillingHour` (the idempotency key carries it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BillingHour(i64);

impl BillingHour {
    /// The hour that contains `at`.
    pub fn containing(at: DateTime<Utc>) -> BillingHour {
        BillingHour(at.timestamp().div_euclid(3600))
    }

    /// Rebuilds an hour from its stored index.
    pub const fn from_index(index: i64) -> BillingHour {
        BillingHour(index)
    }

    /// Hours since the epoch.
    pub const fn index(self) -> i64 {
        self.0
    }

    /// The following hour.
    pub const fn next(self) -> BillingHour {
        BillingHour(self.0 + 1)
    }

    /// When the hour starts.
    pub fn start(self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.0.saturating_mul(3600), 0).unwrap_or(DateTime::UNIX_EPOCH)
    }
}

/// The numbers of billing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillingPolicy {
    /// How long a paused instance waits for a top-up before it is deleted (default 1 h).
    pub pause_grace: TimeDelta,
    /// How often the billing pass runs (default 1 h).
    pub interval: TimeDelta,
    /// A balance that pays fewer hours than this at the current burn is low: the UI shows a
    /// banner and one email warns per low-balance episode (default 3).
    pub low_balance_hours: u32,
}

impl Default for BillingPolicy {
    fn default() -> Self {
        Self {
            pause_grace: TimeDelta::hours(1),
            interval: TimeDelta::hours(1),
            low_balance_hours: 3,
        }
    }
}

/// What billing knows about one instance during a pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BillingSnapshot {
    /// The instance's state.
    pub status: InstanceStatus,
    /// Its hourly cost.
    pub hourly_cost: Lemons,
    /// Its owner's balance.
    pub balance: Lemons,
    /// When billing paused it, if paused.
    pub paused_at: Option<DateTime<Utc>>,
    /// The last hour it was charged for.
    pub last_billed_hour: Option<BillingHour>,
}

/// What one billing pass does with one instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BillingDecision {
    /// Charge `amount` for `hour`.
    Charge {
        /// The hour.
        hour: BillingHour,
        /// The hourly cost.
        amount: Lemons,
    },
    /// Not enough lemons: scale to zero and tell the owner.
    Pause,
    /// Paused and topped up: charge `hour`, scale back up, tell the owner.
    Resume {
        /// The hour.
        hour: BillingHour,
        /// The hourly cost.
        amount: Lemons,
    },
    /// Paused for the whole grace period and still short: delete, tell the owner.
    Delete,
    /// Nothing to do.
    Skip(SkipReason),
}

/// Why billing leaves an instance alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// Not in a billed state (provisioning, stopped, error, deleting, deleted).
    NotBilled,
    /// Already charged for this hour.
    AlreadyCharged,
    /// Paused and still short, but within the grace period.
    InGrace,
}

/// Decides what a billing pass at `now` does with one instance.
///
/// Running: charge the current hour once; pause if the balance is short.
/// Paused: resume (charging the current hour) once the balance covers an hour; delete once the
/// grace period has passed with the balance still short; otherwise wait.
pub fn decide(
    snapshot: &BillingSnapshot,
    now: DateTime<Utc>,
    policy: &BillingPolicy,
) -> BillingDecision {
    let hour = BillingHour::containing(now);
    let amount = snapshot.hourly_cost;
    let affordable = snapshot.balance >= amount;
    match snapshot.status {
        InstanceStatus::Running => {
            if snapshot.last_billed_hour.is_some_and(|h| h >= hour) || amount == Lemons::ZERO {
                BillingDecision::Skip(SkipReason::AlreadyCharged)
            } else if affordable {
                BillingDecision::Charge { hour, amount }
            } else {
                BillingDecision::Pause
            }
        }
        InstanceStatus::Paused => {
            if affordable {
                BillingDecision::Resume { hour, amount }
            } else if snapshot
                .paused_at
                .is_none_or(|p| now - p >= policy.pause_grace)
            {
                BillingDecision::Delete
            } else {
                BillingDecision::Skip(SkipReason::InGrace)
            }
        }
        InstanceStatus::Provisioning
        | InstanceStatus::Stopped
        | InstanceStatus::Error
        | InstanceStatus::Deleting
        | InstanceStatus::Deleted => BillingDecision::Skip(SkipReason::NotBilled),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 7, 1, 12, 0, 5).unwrap()
    }

    fn snap(status: InstanceStatus, balance: u32) -> BillingSnapshot {
        BillingSnapshot {
            status,
            hourly_cost: Lemons::new(2),
            balance: Lemons::new(balance),
            paused_at: None,
            last_billed_hour: None,
        }
    }

    #[test]
    fn hours_are_utc_clock_hours() {
        let h = BillingHour::containing(now());
        assert_eq!(
            h.start(),
            Utc.with_ymd_and_hms(2026, 7, 1, 12, 0, 0).unwrap()
        );
        assert_eq!(
            BillingHour::containing(h.start() - TimeDelta::seconds(1)).next(),
            h
        );
        assert_eq!(
            BillingHour::containing(DateTime::UNIX_EPOCH - TimeDelta::seconds(1)).index(),
            -1
        );
    }

    #[test]
    fn one_decision_per_situation() {
        use BillingDecision::*;
        use InstanceStatus::*;
        let p = BillingPolicy::default();
        let hour = BillingHour::containing(now());
        let two = Lemons::new(2);
        assert_eq!(
            decide(&snap(Running, 2), now(), &p),
            Charge { hour, amount: two }
        );
        assert_eq!(decide(&snap(Running, 1), now(), &p), Pause);
        let billed = BillingSnapshot {
            last_billed_hour: Some(hour),
            ..snap(Running, 9)
        };
        assert_eq!(decide(&billed, now(), &p), Skip(SkipReason::AlreadyCharged));
        let billed_before = BillingSnapshot {
            last_billed_hour: Some(BillingHour(hour.0 - 1)),
            ..snap(Running, 9)
        };
        assert_eq!(
            decide(&billed_before, now(), &p),
            Charge { hour, amount: two }
        );
        let paused = |balance, mins| BillingSnapshot {
            paused_at: Some(now() - TimeDelta::minutes(mins)),
            ..snap(Paused, balance)
        };
        assert_eq!(
            decide(&paused(2, 10), now(), &p),
            Resume { hour, amount: two }
        );
        assert_eq!(decide(&paused(1, 59), now(), &p), Skip(SkipReason::InGrace));
        assert_eq!(decide(&paused(1, 60), now(), &p), Delete);
        for s in [Provisioning, Stopped, Error, Deleting, Deleted] {
            assert_eq!(
                decide(&snap(s, 100), now(), &p),
                Skip(SkipReason::NotBilled),
                "{s}"
            );
        }
    }
}
