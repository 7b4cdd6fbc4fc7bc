//! Instances and NodePorts in memory.

use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dbtree_core::billing::BillingHour;
use dbtree_core::boundary::{
    BackendError, ChargeOutcome, CreateInstanceError, CreatedInstance, InstanceStore, NewInstance,
    NodePortStore, PostError, PostRequest, ReservePortError, ResumeOutcome, StartInstanceError,
    TransitionError,
};
use dbtree_core::ids::{InstanceId, UserId};
use dbtree_core::instance::{
    Instance, InstanceEvent, InstancePolicy, InstanceStatus, NodePort, NodePortPolicy,
    OwnerSnapshot, Usage, check_creation, check_start, next_status, plan_hour_charge, plan_resume,
    plan_transition, short_balance,
};
use dbtree_core::ledger::{EntryKind, IdempotencyKey, LedgerEntry, LedgerPolicy, LedgerRefusal};

use super::{MemoryStore, State, post_error_to_backend};

impl State {
    fn usage(&self) -> Usage {
        self.instances
            .values()
            .filter(|i| i.status.holds_resources())
            .fold(Usage::default(), |u, i| u.plus(&i.resources()))
    }

    fn reserve_port(
        &mut self,
        instance: InstanceId,
        policy: &NodePortPolicy,
    ) -> Result<NodePort, ReservePortError> {
        if let Some(port) = self.port_of.get(&instance) {
            return Ok(NodePort(*port));
        }
        let taken: BTreeSet<u16> = self.ports.keys().copied().collect();
        let port = policy
            .lowest_free(&taken)
            .map_err(ReservePortError::Exhausted)?;
        self.ports.insert(port.get(), instance);
        self.port_of.insert(instance, port.get());
        Ok(port)
    }

    fn release_port(&mut self, instance: InstanceId) -> Option<NodePort> {
        let port = self.port_of.remove(&instance)?;
        self.ports.remove(&port);
        Some(NodePort(port))
    }

    /// Debits an instance cost; `Ok(Err(_))` is a domain refusal.
    fn charge(
        &mut self,
        instance: &Instance,
        kind: EntryKind,
        key: IdempotencyKey,
        amount: dbtree_core::lemons::Lemons,
        now: DateTime<Utc>,
    ) -> Result<Result<LedgerEntry, LedgerRefusal>, BackendError> {
        self.post_cost(&PostRequest {
            user: instance.owner,
            kind,
            amount,
            key,
            instance: Some(instance.id),
            at: now,
        })
    }

    /// Posts a planned instance cost (a replayed key returns the original entry); `Ok(Err(_))`
    /// is a domain refusal.
    fn post_cost(
        &mut self,
        request: &PostRequest,
    ) -> Result<Result<LedgerEntry, LedgerRefusal>, BackendError> {
        match self.post(request, &LedgerPolicy::default()) {
            Ok(outcome) => Ok(Ok(outcome.entry().clone())),
            Err(PostError::Refused(r)) => Ok(Err(r)),
            Err(other) => Err(post_error_to_backend(other)),
        }
    }
}

#[async_trait]
impl InstanceStore for MemoryStore {
    async fn create_instance(
        &self,
        new: &NewInstance,
        policy: &InstancePolicy,
    ) -> Result<CreatedInstance, CreateInstanceError> {
        let mut s = self.state.lock();
        if let Some(instance) = s.instance_with_port(new.id) {
            let debit = s
                .entry(&IdempotencyKey::create(new.id))
                .cloned()
                .ok_or_else(|| BackendError::new("instance recorded without its creation debit"))?;
            return Ok(CreatedInstance { instance, debit });
        }
        let owner = s
            .live_user(new.owner)
            .ok_or(CreateInstanceError::UnknownUser)?;
        let mine: Vec<&Instance> = s
            .instances
            .values()
            .filter(|i| i.owner == new.owner && i.status.is_live())
            .collect();
        let snapshot = OwnerSnapshot {
            live_instances: u32::try_from(mine.len()).unwrap_or(u32::MAX),
            name_taken: mine.iter().any(|i| i.name == new.name),
            balance: owner.balance,
        };
        check_creation(
            &snapshot,
            s.usage(),
            &new.spec.resources(),
            &new.price,
            policy,
        )?;
        let port = s
            .reserve_port(new.id, &policy.node_ports)
            .map_err(|e| match e {
                ReservePortError::Exhausted(p) => CreateInstanceError::Ports(p),
                ReservePortError::Backend(b) => CreateInstanceError::Backend(b),
            })?;
        let instance = Instance {
            id: new.id,
            owner: new.owner,
            name: new.name.clone(),
            spec: new.spec,
            price: new.price,
            status: InstanceStatus::Provisioning,
            status_reason: None,
            node_port: Some(port),
            created_at: new.created_at,
            updated_at: new.created_at,
            paused_at: None,
            last_billed_hour: None,
        };
        let debit = match s.charge(
            &instance,
            EntryKind::InstanceCreate,
            IdempotencyKey::create(new.id),
            new.price.creation_cost,
            new.created_at,
        )? {
            Ok(entry) => entry,
            Err(refusal) => {
                s.release_port(new.id);
                return Err(BackendError::new(format!(
                    "creation debit refused after the balance check: {refusal}"
                ))
                .into());
            }
        };
        s.instances.insert(new.id, instance.clone());
        Ok(CreatedInstance { instance, debit })
    }

    async fn instance(&self, id: InstanceId) -> Result<Option<Instance>, BackendError> {
        Ok(self.state.lock().instance_with_port(id))
    }

    async fn instances_of(&self, owner: UserId) -> Result<Vec<Instance>, BackendError> {
        let s = self.state.lock();
        let mut mine: Vec<Instance> = s
            .instances
            .values()
            .filter(|i| i.owner == owner && i.status.is_visible())
            .filter_map(|i| s.instance_with_port(i.id))
            .collect();
        mine.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(mine)
    }

    async fn instances_in(
        &self,
        statuses: &[InstanceStatus],
    ) -> Result<Vec<Instance>, BackendError> {
        let s = self.state.lock();
        let mut found: Vec<Instance> = s
            .instances
            .values()
            .filter(|i| statuses.contains(&i.status))
            .filter_map(|i| s.instance_with_port(i.id))
            .collect();
        found.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(found)
    }

    async fn apply_event(
        &self,
        id: InstanceId,
        event: InstanceEvent,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Instance, TransitionError> {
        let mut s = self.state.lock();
        let current = s
            .instances
            .get(&id)
            .cloned()
            .ok_or(TransitionError::UnknownInstance)?;
        let plan = plan_transition(&current, event, now)?;
        if let Some(refund) = &plan.refund
            && let Err(refusal) = s.post_cost(refund)?
        {
            return Err(BackendError::new(format!("refund refused: {refusal}")).into());
        }
        if plan.release_port {
            s.release_port(id);
        }
        let instance = s
            .instances
            .get_mut(&id)
            .ok_or(TransitionError::UnknownInstance)?;
        instance.paused_at = plan.paused_at;
        instance.status = plan.to;
        instance.status_reason = reason.map(str::to_owned);
        instance.updated_at = now;
        s.instance_with_port(id)
            .ok_or(TransitionError::UnknownInstance)
    }

    async fn start_instance(
        &self,
        id: InstanceId,
        now: DateTime<Utc>,
        policy: &InstancePolicy,
    ) -> Result<Instance, StartInstanceError> {
        let mut s = self.state.lock();
        let current = s
            .instances
            .get(&id)
            .cloned()
            .ok_or(StartInstanceError::UnknownInstance)?;
        let to = next_status(current.status, InstanceEvent::StartRequested)?;
        let balance = s
            .live_user(current.owner)
            .map(|u| u.balance)
            .unwrap_or_default();
        check_start(
            balance,
            s.usage(),
            &current.resources(),
            &current.price,
            policy,
        )?;
        let instance = s
            .instances
            .get_mut(&id)
            .ok_or(StartInstanceError::UnknownInstance)?;
        instance.status = to;
        instance.status_reason = None;
        instance.paused_at = None;
        instance.updated_at = now;
        s.instance_with_port(id)
            .ok_or(StartInstanceError::UnknownInstance)
    }

    async fn charge_hour(
        &self,
        id: InstanceId,
        hour: BillingHour,
        now: DateTime<Utc>,
    ) -> Result<ChargeOutcome, BackendError> {
        let mut s = self.state.lock();
        let Some(current) = s.instances.get(&id).cloned() else {
            return Ok(ChargeOutcome::UnknownInstance);
        };
        let charge = match plan_hour_charge(&current, hour, now) {
            Ok(charge) => charge,
            Err(not_running) => return Ok(not_running.into()),
        };
        if s.entry(&charge.key).is_some() {
            return Ok(ChargeOutcome::AlreadyCharged);
        }
        match s.post_cost(&charge)? {
            Ok(entry) => {
                if let Some(i) = s.instances.get_mut(&id) {
                    i.last_billed_hour = i.last_billed_hour.max(Some(hour));
                }
                Ok(ChargeOutcome::Charged(entry))
            }
            Err(refusal) => {
                let (required, available) = short_balance(refusal)?;
                Ok(ChargeOutcome::Short {
                    required,
                    available,
                })
            }
        }
    }

    async fn resume_paid(
        &self,
        id: InstanceId,
        hour: BillingHour,
        now: DateTime<Utc>,
        policy: &InstancePolicy,
    ) -> Result<ResumeOutcome, BackendError> {
        let mut s = self.state.lock();
        let Some(current) = s.instances.get(&id).cloned() else {
            return Ok(ResumeOutcome::UnknownInstance);
        };
        let plan = match plan_resume(&current, s.usage(), hour, now, &policy.budget) {
            Ok(plan) => plan,
            Err(refusal) => return Ok(refusal.into()),
        };
        let entry = match s.post_cost(&plan.charge)? {
            Ok(entry) => entry,
            Err(refusal) => {
                let (required, available) = short_balance(refusal)?;
                return Ok(ResumeOutcome::Short {
                    required,
                    available,
                });
            }
        };
        let instance = s
            .instances
            .get_mut(&id)
            .ok_or_else(|| BackendError::new("unknown instance"))?;
        instance.status = plan.to;
        instance.status_reason = None;
        instance.paused_at = None;
        instance.last_billed_hour = instance.last_billed_hour.max(Some(plan.billed_hour));
        instance.updated_at = now;
        let resumed = s
            .instance_with_port(id)
            .ok_or_else(|| BackendError::new("unknown instance"))?;
        Ok(ResumeOutcome::Resumed(Box::new(resumed), entry))
    }

    async fn set_status_reason(
        &self,
        id: InstanceId,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        let mut s = self.state.lock();
        if let Some(i) = s.instances.get_mut(&id) {
            i.status_reason = reason.map(str::to_owned);
            i.updated_at = now;
        }
        Ok(())
    }

    async fn usage(&self) -> Result<Usage, BackendError> {
        Ok(self.state.lock().usage())
    }

    async fn count_created(&self) -> Result<u64, BackendError> {
        Ok(self.state.lock().instances.len() as u64)
    }
}

#[async_trait]
impl NodePortStore for MemoryStore {
    async fn reserve_node_port(
        &self,
        instance: InstanceId,
        policy: &NodePortPolicy,
    ) -> Result<NodePort, ReservePortError> {
        self.state.lock().reserve_port(instance, policy)
    }

    async fn release_node_port(
        &self,
        instance: InstanceId,
    ) -> Result<Option<NodePort>, BackendError> {
        Ok(self.state.lock().release_port(instance))
    }

    async fn node_ports(&self) -> Result<Vec<(NodePort, InstanceId)>, BackendError> {
        Ok(self
            .state
            .lock()
            .ports
            .iter()
            .map(|(p, i)| (NodePort(*p), *i))
            .collect())
    }
}
