//! The hourly billing pass: charge, pause, resume, delete — once per instance and hour, from any
//! number of replicas.

use std::collections::{BTreeMap, BTreeSet};

use super::instances::{delete_instance, push_run_state};
use super::{Deps, InternalError};
use crate::billing::{
    BillingDecision, BillingSnapshot, Burner, LowBalanceStep, Runway, decide, low_balance_step,
    plan_runway,
};
use crate::boundary::{ChargeOutcome, ResumeOutcome, TransitionError};
use crate::ids::{InstanceId, UserId};
use crate::instance::{Instance, InstanceEvent, InstanceStatus};
use crate::lemons::Lemons;
use crate::mail::{Envelope, InstanceDeadline, Notification};

/// Hourly billing.
#[derive(Clone, Debug)]
pub struct BillingService {
    deps: Deps,
}

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BillingReport {
    /// Hours charged.
    pub charged: u32,
    /// Lemons charged in total (resumptions included).
    pub lemons_charged: u64,
    /// Instances paused.
    pub paused: u32,
    /// Instances resumed.
    pub resumed: u32,
    /// Instances deleted.
    pub deleted: u32,
    /// Low-balance warnings sent (one per user and low-balance episode).
    pub low_balance_warnings: u32,
    /// Instances left alone (already charged, in grace, or handled by another replica).
    pub skipped: u32,
    /// Notifications that could not be sent.
    pub mail_failures: u32,
    /// Instances whose handling failed, with the reason (retried next pass).
    pub failures: Vec<(InstanceId, String)>,
}

enum Step {
    Charged(Lemons),
    Paused,
    Resumed(Lemons),
    Deleted,
    Skipped,
}

impl BillingService {
    pub(crate) fn new(deps: Deps) -> Self {
        Self { deps }
    }

    /// Runs one pass over every running and paused instance.
    ///
    /// # Errors
    /// [`InternalError`] if the instances cannot be listed; failures on single instances are
    /// reported in [`BillingReport::failures`] and the pass goes on.
    pub async fn run_pass(&self) -> Result<BillingReport, InternalError> {
        let mut report = BillingReport::default();
        let instances = self
            .deps
            .store
            .instances_in(&[InstanceStatus::Running, InstanceStatus::Paused])
            .await?;
        for instance in in_billing_order(instances) {
            match self.bill(&instance, &mut report).await {
                Ok(Step::Charged(l)) => {
                    report.charged += 1;
                    report.lemons_charged += u64::from(l.get());
                }
                Ok(Step::Paused) => report.paused += 1,
                Ok(Step::Resumed(l)) => {
                    report.resumed += 1;
                    report.lemons_charged += u64::from(l.get());
                }
                Ok(Step::Deleted) => report.deleted += 1,
                Ok(Step::Skipped) => report.skipped += 1,
                Err(e) => report.failures.push((instance.id, e.to_string())),
            }
        }
        self.warn_low_balances(&mut report).await?;
        Ok(report)
    }

    /// How long `balance` keeps the owner's running instances going, with the planned pause of
    /// each (in the order billing meets them).
    ///
    /// # Errors
    /// [`InternalError`].
    pub async fn runway(&self, owner: UserId, balance: Lemons) -> Result<Runway, InternalError> {
        let mut mine = self.deps.store.instances_of(owner).await?;
        mine.retain(|i| i.status == InstanceStatus::Running);
        let now = self.deps.clock.now();
        Ok(runway_of(balance, &in_billing_order(mine), now, &self.deps))
    }

    /// After a pass: warns each user whose balance just became low (once per episode) and
    /// ends the episode of those who are fine again or have nothing running.
    async fn warn_low_balances(&self, report: &mut BillingReport) -> Result<(), InternalError> {
        let deps = &self.deps;
        let now = deps.clock.now();
        let running = deps.store.instances_in(&[InstanceStatus::Running]).await?;
        let mut by_owner: BTreeMap<UserId, Vec<Instance>> = BTreeMap::new();
        for instance in in_billing_order(running) {
            by_owner.entry(instance.owner).or_default().push(instance);
        }
        let warned: BTreeSet<UserId> = deps.store.low_balance_warned().await?.into_iter().collect();
        for owner in warned.iter().filter(|u| !by_owner.contains_key(u)) {
            deps.store.clear_low_balance_warning(*owner).await?;
        }
        for (owner, instances) in by_owner {
            let Some(user) = deps.store.user(owner).await? else {
                continue;
            };
            let runway = runway_of(user.balance, &instances, now, deps);
            match low_balance_step(&runway, warned.contains(&owner), &deps.policy.billing) {
                LowBalanceStep::Warn => {
                    if !deps.store.mark_low_balance_warned(owner, now).await? {
                        continue;
                    }
                    let pauses = runway
                        .pauses
                        .iter()
                        .filter_map(|p| {
                            let instance = instances.iter().find(|i| i.id == p.instance)?;
                            Some(InstanceDeadline {
                                name: instance.name.clone(),
                                pauses_at: p.pauses_at,
                                deleted_at: p.deleted_at,
                            })
                        })
                        .collect();
                    let notification = Notification::LowBalance {
                        balance: user.balance,
                        hourly_burn: runway.hourly_burn,
                        hours: runway.hours.unwrap_or(0),
                        pauses,
                    };
                    let envelope = Envelope {
                        to: user.email,
                        notification,
                    };
                    match deps.mailer.send(&envelope).await {
                        Ok(()) => report.low_balance_warnings += 1,
                        Err(_) => {
                            // not sent: the next pass tries again
                            deps.store.clear_low_balance_warning(owner).await?;
                            report.mail_failures += 1;
                        }
                    }
                }
                LowBalanceStep::EndEpisode => {
                    deps.store.clear_low_balance_warning(owner).await?;
                }
                LowBalanceStep::AlreadyWarned | LowBalanceStep::Nothing => {}
            }
        }
        Ok(())
    }

    async fn bill(
        &self,
        instance: &Instance,
        report: &mut BillingReport,
    ) -> Result<Step, InternalError> {
        let deps = &self.deps;
        let now = deps.clock.now();
        let Some(balance) = deps.store.balance(instance.owner).await? else {
            return Ok(Step::Skipped);
        };
        let snapshot = BillingSnapshot {
            status: instance.status,
            hourly_cost: instance.price.hourly_cost,
            balance,
            paused_at: instance.paused_at,
            last_billed_hour: instance.last_billed_hour,
        };
        match decide(&snapshot, now, &deps.policy.billing) {
            BillingDecision::Charge { hour, amount } => {
                match deps.store.charge_hour(instance.id, hour, now).await? {
                    ChargeOutcome::Charged(_) => Ok(Step::Charged(amount)),
                    ChargeOutcome::Short { .. } => self.pause(instance, report).await,
                    ChargeOutcome::AlreadyCharged
                    | ChargeOutcome::NotRunning(_)
                    | ChargeOutcome::UnknownInstance => Ok(Step::Skipped),
                }
            }
            BillingDecision::Pause => self.pause(instance, report).await,
            BillingDecision::Resume { hour, amount } => {
                match deps
                    .store
                    .resume_paid(instance.id, hour, now, &deps.policy.instances)
                    .await?
                {
                    ResumeOutcome::Resumed(resumed, _) => {
                        push_run_state(deps, *resumed).await?;
                        let notification = Notification::InstanceResumed {
                            name: instance.name.clone(),
                            hourly_cost: amount,
                        };
                        self.notify(instance, notification, report).await?;
                        Ok(Step::Resumed(amount))
                    }
                    ResumeOutcome::Short { .. }
                    | ResumeOutcome::NoCapacity(_)
                    | ResumeOutcome::NotPaused(_)
                    | ResumeOutcome::UnknownInstance => Ok(Step::Skipped),
                }
            }
            BillingDecision::Delete => {
                let result = deps
                    .store
                    .apply_event(
                        instance.id,
                        InstanceEvent::GraceExpired,
                        Some("deleted for lack of lemons"),
                        now,
                    )
                    .await;
                match result {
                    Ok(deleting) => {
                        delete_instance(deps, &deleting, "deleted for lack of lemons").await?;
                        let notification = Notification::InstanceDeleted {
                            name: instance.name.clone(),
                        };
                        self.notify(instance, notification, report).await?;
                        Ok(Step::Deleted)
                    }
                    Err(TransitionError::Refused(_) | TransitionError::UnknownInstance) => {
                        Ok(Step::Skipped)
                    }
                    Err(TransitionError::Backend(b)) => Err(b.into()),
                }
            }
            BillingDecision::Skip(_) => Ok(Step::Skipped),
        }
    }

    async fn pause(
        &self,
        instance: &Instance,
        report: &mut BillingReport,
    ) -> Result<Step, InternalError> {
        let deps = &self.deps;
        let now = deps.clock.now();
        let result = deps
            .store
            .apply_event(
                instance.id,
                InstanceEvent::BillingPaused,
                Some("paused for lack of lemons"),
                now,
            )
            .await;
        let paused = match result {
            Ok(p) => p,
            Err(TransitionError::Refused(_) | TransitionError::UnknownInstance) => {
                return Ok(Step::Skipped);
            }
            Err(TransitionError::Backend(b)) => return Err(b.into()),
        };
        push_run_state(deps, paused).await?;
        let balance = deps
            .store
            .balance(instance.owner)
            .await?
            .unwrap_or(Lemons::ZERO);
        let notification = Notification::InstancePaused {
            name: instance.name.clone(),
            hourly_cost: instance.price.hourly_cost,
            balance,
            grace_minutes: deps.policy.billing.pause_grace.num_minutes(),
        };
        self.notify(instance, notification, report).await?;
        Ok(Step::Paused)
    }

    async fn notify(
        &self,
        instance: &Instance,
        notification: Notification,
        report: &mut BillingReport,
    ) -> Result<(), InternalError> {
        let Some(owner) = self.deps.store.user(instance.owner).await? else {
            return Ok(());
        };
        if self
            .deps
            .mailer
            .send(&Envelope {
                to: owner.email,
                notification,
            })
            .await
            .is_err()
        {
            report.mail_failures += 1;
        }
        Ok(())
    }
}

/// Oldest first, ties by id: the order a billing pass charges in (and the runway assumes).
fn in_billing_order(mut instances: Vec<Instance>) -> Vec<Instance> {
    instances.sort_by_key(|i| (i.created_at, i.id));
    instances
}

fn runway_of(
    balance: Lemons,
    running: &[Instance],
    now: chrono::DateTime<chrono::Utc>,
    deps: &Deps,
) -> Runway {
    let burners: Vec<Burner> = running
        .iter()
        .map(|i| Burner {
            instance: i.id,
            hourly_cost: i.price.hourly_cost,
            last_billed_hour: i.last_billed_hour,
        })
        .collect();
    plan_runway(balance, &burners, now, &deps.policy.billing)
}
