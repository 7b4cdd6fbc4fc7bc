//! Instances and NodePorts on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dbtree_core::billing::BillingHour;
use dbtree_core::boundary::{
    BackendError, ChargeOutcome, CreateInstanceError, CreatedInstance, InstanceStore, NewInstance,
    NodePortStore, PostError, PostOutcome, PostRequest, ReservePortError, ResumeOutcome,
    StartInstanceError, TransitionError,
};
use dbtree_core::ids::{InstanceId, UserId};
use dbtree_core::instance::{
    Instance, InstanceEvent, InstancePolicy, InstanceStatus, NodePort, NodePortError,
    NodePortPolicy, OwnerSnapshot, Usage, check_creation, check_start, next_status,
    plan_hour_charge, plan_resume, plan_transition, short_balance,
};
use dbtree_core::ledger::{EntryKind, IdempotencyKey, LedgerEntry, LedgerPolicy, LedgerRefusal};
use dbtree_core::lemons::Lemons;
use sqlx::PgConnection;
use uuid::Uuid;

use super::accounts::live_user;
use super::ledger::{entry_by_key, post_tx, unexpected};
use super::{PgStore, commit, db, lock_capacity};
use crate::sql;

#[derive(sqlx::FromRow)]
struct InstanceRow {
    id: Uuid,
    owner_id: Uuid,
    name: String,
    engine: String,
    size: Option<String>,
    cpu_milli: i32,
    memory_mib: i32,
    disk_gib: i32,
    creation_cost: i64,
    hourly_cost: i64,
    status: String,
    status_reason: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    paused_at: Option<DateTime<Utc>>,
    last_billed_hour: Option<i64>,
    port: Option<i32>,
}

const INSTANCE_SELECT: &str = "SELECT i.id, i.owner_id, i.name, i.engine, i.size, i.cpu_milli, i.memory_mib, \
     i.disk_gib, i.creation_cost, i.hourly_cost, i.status, i.status_reason, i.created_at, i.updated_at, \
     i.paused_at, i.last_billed_hour, p.port FROM instances i LEFT JOIN node_ports p ON p.instance_id = i.id";

impl InstanceRow {
    fn into_instance(self) -> Result<Instance, BackendError> {
        let (spec, price) = sql::spec_and_price(
            &self.engine,
            self.size.as_deref(),
            i64::from(self.cpu_milli),
            i64::from(self.memory_mib),
            i64::from(self.disk_gib),
            self.creation_cost,
            self.hourly_cost,
        )?;
        Ok(Instance {
            id: InstanceId::from_uuid(self.id),
            owner: UserId::from_uuid(self.owner_id),
            name: dbtree_core::instance::InstanceName::parse(&self.name)
                .map_err(|e| BackendError::with_source("stored instance name", e))?,
            spec,
            price,
            status: sql::parse("status", &self.status)?,
            status_reason: self.status_reason,
            node_port: self
                .port
                .map(|p| {
                    u16::try_from(p)
                        .map(NodePort)
                        .map_err(|_| BackendError::new("stored port out of range"))
                })
                .transpose()?,
            created_at: self.created_at,
            updated_at: self.updated_at,
            paused_at: self.paused_at,
            last_billed_hour: self.last_billed_hour.map(BillingHour::from_index),
        })
    }
}

async fn fetch_instance(
    conn: &mut PgConnection,
    id: InstanceId,
    lock: bool,
) -> Result<Option<Instance>, BackendError> {
    let sql = format!(
        "{INSTANCE_SELECT} WHERE i.id = $1{}",
        if lock { " FOR UPDATE OF i" } else { "" }
    );
    sqlx::query_as::<_, InstanceRow>(sqlx::AssertSqlSafe(sql))
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await
        .map_err(db("read an instance"))?
        .map(InstanceRow::into_instance)
        .transpose()
}

/// Resources held by every instance in a holding state (capacity lock held).
async fn usage(conn: &mut PgConnection) -> Result<Usage, BackendError> {
    let (cpu, memory, count): (i64, i64, i64) = sqlx::query_as(
        "SELECT COALESCE(sum(cpu_milli), 0)::bigint, COALESCE(sum(memory_mib), 0)::bigint, count(*)
         FROM instances WHERE status = ANY($1)",
    )
    .bind(sql::status_names(InstanceStatus::holds_resources))
    .fetch_one(conn)
    .await
    .map_err(db("sum capacity"))?;
    Ok(Usage {
        cpu_milli: sql::u64_of("cpu", cpu)?,
        memory_mib: sql::u64_of("memory", memory)?,
        instances: sql::u32_of("count", count)?,
    })
}

/// Reserves the lowest free port for an instance (capacity lock held); idempotent.
async fn reserve_port(
    conn: &mut PgConnection,
    instance: InstanceId,
    policy: &NodePortPolicy,
) -> Result<NodePort, ReservePortError> {
    let held: Option<(i32,)> = sqlx::query_as("SELECT port FROM node_ports WHERE instance_id = $1")
        .bind(instance.as_uuid())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db("read a NodePort"))?;
    if let Some((port,)) = held {
        return u16::try_from(port)
            .map(NodePort)
            .map_err(|_| BackendError::new("stored port out of range").into());
    }
    let reserved: Vec<i32> = policy.reserved.iter().map(|p| i32::from(*p)).collect();
    let free: Option<(i32,)> = sqlx::query_as(
        "SELECT p::int FROM generate_series($1::int, $2::int) AS p
         WHERE p <> ALL($3::int[]) AND NOT EXISTS (SELECT 1 FROM node_ports n WHERE n.port = p)
         ORDER BY p LIMIT 1",
    )
    .bind(i32::from(policy.first))
    .bind(i32::from(policy.last))
    .bind(&reserved)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db("find a free NodePort"))?;
    let Some((port,)) = free else {
        return Err(ReservePortError::Exhausted(NodePortError::Exhausted {
            first: policy.first,
            last: policy.last,
        }));
    };
    sqlx::query("INSERT INTO node_ports (port, instance_id) VALUES ($1, $2)")
        .bind(port)
        .bind(instance.as_uuid())
        .execute(&mut *conn)
        .await
        .map_err(db("reserve a NodePort"))?;
    u16::try_from(port)
        .map(NodePort)
        .map_err(|_| BackendError::new("port out of range").into())
}

/// Debits (or refunds) an instance cost inside the transaction; `Ok(Err(_))` is a refusal.
async fn charge(
    conn: &mut PgConnection,
    instance: &Instance,
    kind: EntryKind,
    key: IdempotencyKey,
    amount: Lemons,
    at: DateTime<Utc>,
) -> Result<Result<LedgerEntry, LedgerRefusal>, BackendError> {
    let request = PostRequest {
        user: instance.owner,
        kind,
        amount,
        key,
        instance: Some(instance.id),
        at,
    };
    post_cost(conn, &request).await
}

/// Posts a planned instance cost inside the transaction (a replayed key returns the original
/// entry); `Ok(Err(_))` is a refusal.
async fn post_cost(
    conn: &mut PgConnection,
    request: &PostRequest,
) -> Result<Result<LedgerEntry, LedgerRefusal>, BackendError> {
    match post_tx(conn, request, &LedgerPolicy::default()).await {
        Ok(PostOutcome::Posted(e) | PostOutcome::Replayed(e)) => Ok(Ok(e)),
        Err(PostError::Refused(r)) => Ok(Err(r)),
        Err(other) => Err(unexpected(other)),
    }
}

/// Records `hour` as billed (the stored hour only ever grows).
async fn record_billed_hour(
    conn: &mut PgConnection,
    id: InstanceId,
    hour: BillingHour,
) -> Result<(), BackendError> {
    sqlx::query("UPDATE instances SET last_billed_hour = GREATEST(COALESCE(last_billed_hour, $2), $2) WHERE id = $1")
        .bind(id.as_uuid())
        .bind(hour.index())
        .execute(conn)
        .await
        .map_err(db("record a billed hour"))?;
    Ok(())
}

async fn owner_balance(conn: &mut PgConnection, owner: UserId) -> Result<Lemons, BackendError> {
    Ok(live_user(conn, owner, true)
        .await?
        .map(|u| u.balance)
        .unwrap_or_default())
}

#[async_trait]
impl InstanceStore for PgStore {
    async fn create_instance(
        &self,
        new: &NewInstance,
        policy: &InstancePolicy,
    ) -> Result<CreatedInstance, CreateInstanceError> {
        let mut tx = self.begin().await?;
        let owner = live_user(&mut tx, new.owner, true)
            .await?
            .ok_or(CreateInstanceError::UnknownUser)?;
        if let Some(instance) = fetch_instance(&mut tx, new.id, false).await? {
            let debit = entry_by_key(&mut tx, &IdempotencyKey::create(new.id))
                .await?
                .ok_or_else(|| BackendError::new("instance recorded without its creation debit"))?;
            return Ok(CreatedInstance { instance, debit });
        }
        lock_capacity(&mut tx).await?;
        let (live, name_taken): (i64, bool) = sqlx::query_as(
            "SELECT count(*), COALESCE(bool_or(name = $2), false) FROM instances
             WHERE owner_id = $1 AND status = ANY($3)",
        )
        .bind(new.owner.as_uuid())
        .bind(new.name.as_str())
        .bind(sql::status_names(InstanceStatus::is_live))
        .fetch_one(&mut *tx)
        .await
        .map_err(db("count live instances"))?;
        let snapshot = OwnerSnapshot {
            live_instances: sql::u32_of("live instances", live)?,
            name_taken,
            balance: owner.balance,
        };
        let used = usage(&mut tx).await?;
        check_creation(&snapshot, used, &new.spec.resources(), &new.price, policy)?;
        reserve_port(&mut tx, new.id, &policy.node_ports)
            .await
            .map_err(|e| match e {
                ReservePortError::Exhausted(p) => CreateInstanceError::Ports(p),
                ReservePortError::Backend(b) => CreateInstanceError::Backend(b),
            })?;
        let resources = new.spec.resources();
        sqlx::query(
            "INSERT INTO instances (id, owner_id, name, engine, size, cpu_milli, memory_mib, disk_gib,
                 creation_cost, hourly_cost, status, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'provisioning', $11, $11)",
        )
        .bind(new.id.as_uuid())
        .bind(new.owner.as_uuid())
        .bind(new.name.as_str())
        .bind(new.spec.engine().as_str())
        .bind(new.spec.size().map(|s| s.as_str()))
        .bind(sql::bind_i32("cpu_milli", resources.cpu.0)?)
        .bind(sql::bind_i32("memory_mib", resources.memory_mib)?)
        .bind(sql::bind_i32("disk_gib", resources.disk_gib)?)
        .bind(i64::from(new.price.creation_cost.get()))
        .bind(i64::from(new.price.hourly_cost.get()))
        .bind(new.created_at)
        .execute(&mut *tx)
        .await
        .map_err(db("record an instance"))?;
        let instance = fetch_instance(&mut tx, new.id, false)
            .await?
            .ok_or_else(|| BackendError::new("instance vanished"))?;
        let debit = match charge(
            &mut tx,
            &instance,
            EntryKind::InstanceCreate,
            IdempotencyKey::create(new.id),
            new.price.creation_cost,
            new.created_at,
        )
        .await?
        {
            Ok(entry) => entry,
            Err(refusal) => {
                return Err(BackendError::new(format!(
                    "creation debit refused after the balance check: {refusal}"
                ))
                .into());
            }
        };
        commit(tx).await?;
        Ok(CreatedInstance { instance, debit })
    }

    async fn instance(&self, id: InstanceId) -> Result<Option<Instance>, BackendError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(db("acquire a connection"))?;
        fetch_instance(&mut conn, id, false).await
    }

    async fn instances_of(&self, owner: UserId) -> Result<Vec<Instance>, BackendError> {
        let sql = format!(
            "{INSTANCE_SELECT} WHERE i.owner_id = $1 AND i.status <> 'deleted' ORDER BY i.created_at DESC, i.id DESC"
        );
        sqlx::query_as::<_, InstanceRow>(sqlx::AssertSqlSafe(sql))
            .bind(owner.as_uuid())
            .fetch_all(&self.pool)
            .await
            .map_err(db("list instances"))?
            .into_iter()
            .map(InstanceRow::into_instance)
            .collect()
    }

    async fn instances_in(
        &self,
        statuses: &[InstanceStatus],
    ) -> Result<Vec<Instance>, BackendError> {
        let names: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
        let sql = format!("{INSTANCE_SELECT} WHERE i.status = ANY($1) ORDER BY i.created_at, i.id");
        sqlx::query_as::<_, InstanceRow>(sqlx::AssertSqlSafe(sql))
            .bind(&names)
            .fetch_all(&self.pool)
            .await
            .map_err(db("list instances by status"))?
            .into_iter()
            .map(InstanceRow::into_instance)
            .collect()
    }

    async fn apply_event(
        &self,
        id: InstanceId,
        event: InstanceEvent,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Instance, TransitionError> {
        let mut tx = self.begin().await?;
        let current = fetch_instance(&mut tx, id, true)
            .await?
            .ok_or(TransitionError::UnknownInstance)?;
        let plan = plan_transition(&current, event, now)?;
        if let Some(refund) = &plan.refund
            && let Err(refusal) = post_cost(&mut tx, refund).await?
        {
            return Err(BackendError::new(format!("refund refused: {refusal}")).into());
        }
        if plan.release_port {
            sqlx::query("DELETE FROM node_ports WHERE instance_id = $1")
                .bind(id.as_uuid())
                .execute(&mut *tx)
                .await
                .map_err(db("release a NodePort"))?;
        }
        sqlx::query("UPDATE instances SET status = $2, status_reason = $3, paused_at = $4, updated_at = $5 WHERE id = $1")
            .bind(id.as_uuid())
            .bind(plan.to.as_str())
            .bind(reason)
            .bind(plan.paused_at)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db("change an instance's state"))?;
        let updated = fetch_instance(&mut tx, id, false)
            .await?
            .ok_or(TransitionError::UnknownInstance)?;
        commit(tx).await?;
        Ok(updated)
    }

    async fn start_instance(
        &self,
        id: InstanceId,
        now: DateTime<Utc>,
        policy: &InstancePolicy,
    ) -> Result<Instance, StartInstanceError> {
        let mut tx = self.begin().await?;
        let current = fetch_instance(&mut tx, id, true)
            .await?
            .ok_or(StartInstanceError::UnknownInstance)?;
        let to = next_status(current.status, InstanceEvent::StartRequested)?;
        let balance = owner_balance(&mut tx, current.owner).await?;
        lock_capacity(&mut tx).await?;
        let used = usage(&mut tx).await?;
        check_start(balance, used, &current.resources(), &current.price, policy)?;
        sqlx::query("UPDATE instances SET status = $2, status_reason = NULL, paused_at = NULL, updated_at = $3 WHERE id = $1")
            .bind(id.as_uuid())
            .bind(to.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db("start an instance"))?;
        let updated = fetch_instance(&mut tx, id, false)
            .await?
            .ok_or(StartInstanceError::UnknownInstance)?;
        commit(tx).await?;
        Ok(updated)
    }

    async fn charge_hour(
        &self,
        id: InstanceId,
        hour: BillingHour,
        now: DateTime<Utc>,
    ) -> Result<ChargeOutcome, BackendError> {
        let mut tx = self.begin().await?;
        let Some(current) = fetch_instance(&mut tx, id, true).await? else {
            return Ok(ChargeOutcome::UnknownInstance);
        };
        let charge = match plan_hour_charge(&current, hour, now) {
            Ok(charge) => charge,
            Err(not_running) => return Ok(not_running.into()),
        };
        if entry_by_key(&mut tx, &charge.key).await?.is_some() {
            return Ok(ChargeOutcome::AlreadyCharged);
        }
        let outcome = match post_cost(&mut tx, &charge).await? {
            Ok(entry) => {
                record_billed_hour(&mut tx, id, hour).await?;
                ChargeOutcome::Charged(entry)
            }
            Err(refusal) => {
                let (required, available) = short_balance(refusal)?;
                ChargeOutcome::Short {
                    required,
                    available,
                }
            }
        };
        commit(tx).await?;
        Ok(outcome)
    }

    async fn resume_paid(
        &self,
        id: InstanceId,
        hour: BillingHour,
        now: DateTime<Utc>,
        policy: &InstancePolicy,
    ) -> Result<ResumeOutcome, BackendError> {
        let mut tx = self.begin().await?;
        let Some(current) = fetch_instance(&mut tx, id, true).await? else {
            return Ok(ResumeOutcome::UnknownInstance);
        };
        // the owner's row before the capacity lock, in the order every debit takes them
        owner_balance(&mut tx, current.owner).await?;
        lock_capacity(&mut tx).await?;
        let used = usage(&mut tx).await?;
        let plan = match plan_resume(&current, used, hour, now, &policy.budget) {
            Ok(plan) => plan,
            Err(refusal) => return Ok(refusal.into()),
        };
        let entry = match post_cost(&mut tx, &plan.charge).await? {
            Ok(entry) => entry,
            Err(refusal) => {
                let (required, available) = short_balance(refusal)?;
                return Ok(ResumeOutcome::Short {
                    required,
                    available,
                });
            }
        };
        sqlx::query(
            "UPDATE instances SET status = $4, status_reason = NULL, paused_at = NULL, updated_at = $3,
                 last_billed_hour = GREATEST(COALESCE(last_billed_hour, $2), $2)
             WHERE id = $1",
        )
        .bind(id.as_uuid())
        .bind(plan.billed_hour.index())
        .bind(now)
        .bind(plan.to.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db("resume an instance"))?;
        let resumed = fetch_instance(&mut tx, id, false)
            .await?
            .ok_or_else(|| BackendError::new("instance vanished"))?;
        commit(tx).await?;
        Ok(ResumeOutcome::Resumed(Box::new(resumed), entry))
    }

    async fn set_status_reason(
        &self,
        id: InstanceId,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        sqlx::query("UPDATE instances SET status_reason = $2, updated_at = $3 WHERE id = $1")
            .bind(id.as_uuid())
            .bind(reason)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db("set a status reason"))?;
        Ok(())
    }

    async fn usage(&self) -> Result<Usage, BackendError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(db("acquire a connection"))?;
        usage(&mut conn).await
    }

    async fn count_created(&self) -> Result<u64, BackendError> {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM instances")
            .fetch_one(&self.pool)
            .await
            .map_err(db("count instances"))?;
        sql::u64_of("instance count", n)
    }
}

#[async_trait]
impl NodePortStore for PgStore {
    async fn reserve_node_port(
        &self,
        instance: InstanceId,
        policy: &NodePortPolicy,
    ) -> Result<NodePort, ReservePortError> {
        let mut tx = self.begin().await?;
        lock_capacity(&mut tx).await?;
        let port = reserve_port(&mut tx, instance, policy).await?;
        commit(tx).await?;
        Ok(port)
    }

    async fn release_node_port(
        &self,
        instance: InstanceId,
    ) -> Result<Option<NodePort>, BackendError> {
        let row: Option<(i32,)> =
            sqlx::query_as("DELETE FROM node_ports WHERE instance_id = $1 RETURNING port")
                .bind(instance.as_uuid())
                .fetch_optional(&self.pool)
                .await
                .map_err(db("release a NodePort"))?;
        row.map(|(p,)| {
            u16::try_from(p)
                .map(NodePort)
                .map_err(|_| BackendError::new("stored port out of range"))
        })
        .transpose()
    }

    async fn node_ports(&self) -> Result<Vec<(NodePort, InstanceId)>, BackendError> {
        let rows: Vec<(i32, Uuid)> =
            sqlx::query_as("SELECT port, instance_id FROM node_ports ORDER BY port")
                .fetch_all(&self.pool)
                .await
                .map_err(db("list NodePorts"))?;
        rows.into_iter()
            .map(|(p, i)| {
                let port =
                    u16::try_from(p).map_err(|_| BackendError::new("stored port out of range"))?;
                Ok((NodePort(port), InstanceId::from_uuid(i)))
            })
            .collect()
    }
}
