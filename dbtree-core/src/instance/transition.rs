//! Planners for the instance store's atomic state changes: what an event or a paid resume does
//! besides changing the status. Stores read the instance inside their transaction, call these,
//! and apply the plan; none of them decides on its own.

use chrono::{DateTime, Utc};

use super::{
    CapacityExceeded, Instance, InstanceEvent, InstanceStatus, NodeBudget, TransitionRefused,
    Usage, check_capacity, next_status,
};
use crate::billing::BillingHour;
use crate::boundary::{BackendError, ChargeOutcome, PostRequest, ResumeOutcome};
use crate::ledger::{EntryKind, IdempotencyKey, LedgerRefusal};
use crate::lemons::Lemons;

/// What [`crate::boundary::InstanceStore::apply_event`] writes, in one atomic step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransitionPlan {
    /// The new status.
    pub to: InstanceStatus,
    /// The new `paused_at`: set when the instance enters `paused`, kept while it stays there,
    /// cleared otherwise.
    pub paused_at: Option<DateTime<Utc>>,
    /// The creation cost to refund (key `refund:{id}`; a replayed key changes nothing), when
    /// provisioning failed.
    pub refund: Option<PostRequest>,
    /// Whether the instance's NodePort is released (the cluster confirmed the teardown).
    pub release_port: bool,
}

/// Plans `event` on `current` at `now`.
///
/// # Errors
/// [`TransitionRefused`] when the state machine does not allow the event ([`next_status`]).
pub fn plan_transition(
    current: &Instance,
    event: InstanceEvent,
    now: DateTime<Utc>,
) -> Result<TransitionPlan, TransitionRefused> {
    let to = next_status(current.status, event)?;
    let paused_at = match (to, current.status) {
        (InstanceStatus::Paused, InstanceStatus::Paused) => current.paused_at,
        (InstanceStatus::Paused, _) => Some(now),
        _ => None,
    };
    let refund = (event == InstanceEvent::ProvisioningFailed).then(|| {
        cost_request(
            current,
            EntryKind::InstanceRefund,
            IdempotencyKey::refund(current.id),
            current.price.creation_cost,
            now,
        )
    });
    Ok(TransitionPlan {
        to,
        paused_at,
        refund,
        release_port: event == InstanceEvent::TeardownConfirmed,
    })
}

/// What [`crate::boundary::InstanceStore::resume_paid`] writes when the instance may resume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumePlan {
    /// The debit of the hour (key `bill:{id}:{hour}`; a replayed key means the hour was paid).
    pub charge: PostRequest,
    /// The new status (`running`); `paused_at` and the status reason are cleared.
    pub to: InstanceStatus,
    /// The hour recorded as billed (the stored value only ever grows).
    pub billed_hour: BillingHour,
}

/// Why a paid resume changes nothing, before any lemon moves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResumeRefusal {
    /// Not paused (any more).
    NotPaused(InstanceStatus),
    /// The node has no room for it now.
    NoCapacity(CapacityExceeded),
}

impl From<ResumeRefusal> for ResumeOutcome {
    fn from(refusal: ResumeRefusal) -> Self {
        match refusal {
            ResumeRefusal::NotPaused(status) => ResumeOutcome::NotPaused(status),
            ResumeRefusal::NoCapacity(e) => ResumeOutcome::NoCapacity(e),
        }
    }
}

/// Plans resuming `current` for `hour` at `now`, with `used` the resources held right now.
///
/// # Errors
/// [`ResumeRefusal`], checked in the order NotPaused, NoCapacity.
pub fn plan_resume(
    current: &Instance,
    used: Usage,
    hour: BillingHour,
    now: DateTime<Utc>,
    budget: &NodeBudget,
) -> Result<ResumePlan, ResumeRefusal> {
    if current.status != InstanceStatus::Paused {
        return Err(ResumeRefusal::NotPaused(current.status));
    }
    check_capacity(budget, used, &current.resources()).map_err(ResumeRefusal::NoCapacity)?;
    Ok(ResumePlan {
        charge: hourly_charge(current, hour, now),
        to: InstanceStatus::Running,
        billed_hour: hour,
    })
}

/// Why an hour is not charged: the instance is not running (nothing changes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotRunning(pub InstanceStatus);

impl From<NotRunning> for ChargeOutcome {
    fn from(NotRunning(status): NotRunning) -> Self {
        ChargeOutcome::NotRunning(status)
    }
}

/// Plans [`crate::boundary::InstanceStore::charge_hour`]: only a running instance is billed;
/// the store then posts the debit unless its key was posted before
/// ([`ChargeOutcome::AlreadyCharged`]).
///
/// # Errors
/// [`NotRunning`] with the current status.
pub fn plan_hour_charge(
    current: &Instance,
    hour: BillingHour,
    now: DateTime<Utc>,
) -> Result<PostRequest, NotRunning> {
    match current.status {
        InstanceStatus::Running => Ok(hourly_charge(current, hour, now)),
        other => Err(NotRunning(other)),
    }
}

/// The debit of one running hour of `instance` (key `bill:{id}:{hour}`).
pub fn hourly_charge(instance: &Instance, hour: BillingHour, now: DateTime<Utc>) -> PostRequest {
    cost_request(
        instance,
        EntryKind::InstanceHourly,
        IdempotencyKey::bill(instance.id, hour),
        instance.price.hourly_cost,
        now,
    )
}

/// The balance figures of a refused hourly debit, `(required, available)`.
///
/// # Errors
/// [`BackendError`] for every refusal but a short balance: an hourly debit is never zero, never
/// an earning and never overflows, so anything else means the store is inconsistent.
pub fn short_balance(refusal: LedgerRefusal) -> Result<(Lemons, Lemons), BackendError> {
    match refusal {
        LedgerRefusal::InsufficientLemons {
            required,
            available,
        } => Ok((required, available)),
        other @ (LedgerRefusal::StorageFull { .. }
        | LedgerRefusal::ZeroAmount
        | LedgerRefusal::Overflow) => {
            Err(BackendError::new(format!("hourly charge refused: {other}")))
        }
    }
}

/// A posting of an instance cost against its owner.
fn cost_request(
    instance: &Instance,
    kind: EntryKind,
    key: IdempotencyKey,
    amount: Lemons,
    at: DateTime<Utc>,
) -> PostRequest {
    PostRequest {
        user: instance.owner,
        kind,
        amount,
        key,
        instance: Some(instance.id),
        at,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone};

    use super::*;
    use crate::ids::{InstanceId, UserId};
    use crate::instance::{Engine, InstanceName, InstanceSpec, PresetSize, Scarce};
    use InstanceEvent as E;
    use InstanceStatus as S;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap()
    }

    fn instance(status: InstanceStatus, paused_at: Option<DateTime<Utc>>) -> Instance {
        let spec = InstanceSpec::Preset {
            engine: Engine::Postgresql,
            size: PresetSize::Tiny,
        };
        Instance {
            id: InstanceId::from_random_bytes([7; 16]),
            owner: UserId::from_random_bytes([8; 16]),
            name: InstanceName::parse("shop").unwrap(),
            spec,
            price: spec.price(),
            status,
            status_reason: None,
            node_port: None,
            created_at: now() - TimeDelta::hours(3),
            updated_at: now() - TimeDelta::hours(1),
            paused_at,
            last_billed_hour: None,
        }
    }

    #[test]
    fn paused_at_is_set_on_entry_kept_while_paused_and_cleared_on_exit() {
        let earlier = now() - TimeDelta::minutes(30);
        let cases = [
            (S::Running, None, E::BillingPaused, Some(now())),
            (S::Paused, Some(earlier), E::BillingResumed, None),
            (S::Paused, Some(earlier), E::StartRequested, None),
            (S::Paused, Some(earlier), E::GraceExpired, None),
            (S::Paused, Some(earlier), E::DeleteRequested, None),
            (S::Running, None, E::StopRequested, None),
        ];
        for (from, paused_at, event, expected) in cases {
            let plan = plan_transition(&instance(from, paused_at), event, now()).unwrap();
            assert_eq!(plan.paused_at, expected, "{from} {event:?}");
        }
    }

    #[test]
    fn only_a_failed_provisioning_refunds_and_only_teardown_releases_the_port() {
        let failed = instance(S::Provisioning, None);
        let plan = plan_transition(&failed, E::ProvisioningFailed, now()).unwrap();
        let refund = plan.refund.unwrap();
        assert_eq!(plan.to, S::Error);
        assert_eq!(refund.kind, EntryKind::InstanceRefund);
        assert_eq!(refund.key, IdempotencyKey::refund(failed.id));
        assert_eq!(refund.amount, failed.price.creation_cost);
        assert_eq!(
            (refund.user, refund.instance),
            (failed.owner, Some(failed.id))
        );
        assert!(!plan.release_port);

        let gone = plan_transition(&instance(S::Deleting, None), E::TeardownConfirmed, now());
        let gone = gone.unwrap();
        assert_eq!((gone.to, gone.release_port), (S::Deleted, true));
        assert_eq!(gone.refund, None);

        for (from, event) in [
            (S::Provisioning, E::Provisioned),
            (S::Provisioning, E::DeleteRequested),
            (S::Running, E::DeleteRequested),
            (S::Paused, E::GraceExpired),
        ] {
            let plan = plan_transition(&instance(from, None), event, now()).unwrap();
            assert_eq!((plan.refund, plan.release_port), (None, false), "{event:?}");
        }
    }

    #[test]
    fn a_refused_event_plans_nothing() {
        let deleting = instance(S::Deleting, None);
        assert_eq!(
            plan_transition(&deleting, E::StartRequested, now()),
            Err(TransitionRefused {
                from: S::Deleting,
                event: E::StartRequested
            })
        );
    }

    #[test]
    fn resume_needs_a_paused_instance_then_room_then_charges_the_hour() {
        let budget = NodeBudget::default();
        let hour = BillingHour::containing(now());
        let running = instance(S::Running, None);
        assert_eq!(
            plan_resume(&running, Usage::default(), hour, now(), &budget),
            Err(ResumeRefusal::NotPaused(S::Running))
        );
        let paused = instance(S::Paused, Some(now()));
        let full = Usage {
            cpu_milli: u64::from(budget.usable_cpu().0),
            memory_mib: 0,
            instances: 3,
        };
        match plan_resume(&paused, full, hour, now(), &budget) {
            Err(ResumeRefusal::NoCapacity(e)) => assert_eq!(e.resource, Scarce::Cpu),
            other => panic!("expected no capacity, got {other:?}"),
        }
        let plan = plan_resume(&paused, Usage::default(), hour, now(), &budget).unwrap();
        assert_eq!(plan.to, S::Running);
        assert_eq!(plan.billed_hour, hour);
        assert_eq!(plan.charge, hourly_charge(&paused, hour, now()));
        assert_eq!(plan.charge.key, IdempotencyKey::bill(paused.id, hour));
        assert_eq!(plan.charge.amount, paused.price.hourly_cost);
        assert_eq!(plan.charge.kind, EntryKind::InstanceHourly);
    }

    #[test]
    fn only_a_running_instance_is_charged_for_an_hour() {
        let hour = BillingHour::containing(now());
        let running = instance(S::Running, None);
        assert_eq!(
            plan_hour_charge(&running, hour, now()),
            Ok(hourly_charge(&running, hour, now()))
        );
        for status in [
            S::Provisioning,
            S::Stopped,
            S::Paused,
            S::Error,
            S::Deleting,
            S::Deleted,
        ] {
            let other = instance(status, None);
            assert_eq!(
                plan_hour_charge(&other, hour, now()),
                Err(NotRunning(status))
            );
            assert_eq!(
                ChargeOutcome::from(NotRunning(status)),
                ChargeOutcome::NotRunning(status)
            );
        }
    }

    #[test]
    fn only_a_short_balance_is_an_outcome_of_an_hourly_debit() {
        let (required, available) = (Lemons::new(10), Lemons::new(3));
        assert_eq!(
            short_balance(LedgerRefusal::InsufficientLemons {
                required,
                available
            })
            .unwrap(),
            (required, available)
        );
        assert!(short_balance(LedgerRefusal::ZeroAmount).is_err());
        assert!(short_balance(LedgerRefusal::Overflow).is_err());
        assert!(short_balance(LedgerRefusal::StorageFull { cap: required }).is_err());
    }
}
