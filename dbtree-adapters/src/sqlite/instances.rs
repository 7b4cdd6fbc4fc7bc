//! Instances and NodePorts on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dbtree_core::billing::BillingHour;
use dbtree_core::boundary::{
    BackendError, ChargeOutcome, CreateInstanceError, CreatedInstance, InstanceStore, NewInstance,
    ReservePortError, ResumeOutcome, StartInstanceError, TransitionError,
};
use dbtree_core::ids::{InstanceId, UserId};
use dbtree_core::instance::{
    Instance, InstanceEvent, InstanceName, InstancePolicy, InstanceStatus, OwnerSnapshot, Usage,
    check_creation, check_start, next_status, plan_hour_charge, plan_resume, plan_transition,
};
use dbtree_core::ledger::{EntryKind, IdempotencyKey};
use dbtree_core::lemons::Lemons;
use sqlx::SqliteConnection;
use sqlx::types::Json;
use uuid::fmt::Hyphenated;

use super::accounts::live_user;
use super::costs::{charge, pay_hour, post_cost};
use super::ledger::entry_by_key;
use super::ports::{node_port, reserve_port};
use super::{SqliteStore, at, at_opt, commit, db, ms};
use crate::sql;

#[derive(sqlx::FromRow)]
struct InstanceRow {
    id: Hyphenated,
    owner_id: Hyphenated,
    name: String,
    engine: String,
    size: Option<String>,
    cpu_milli: i64,
    memory_mib: i64,
    disk_gib: i64,
    creation_cost: i64,
    hourly_cost: i64,
    status: String,
    status_reason: Option<String>,
    created_at: i64,
    updated_at: i64,
    paused_at: Option<i64>,
    last_billed_hour: Option<i64>,
    port: Option<i64>,
}

const INSTANCE_SELECT: &str = "SELECT i.id, i.owner_id, i.name, i.engine, i.size, i.cpu_milli, \
     i.memory_mib, i.disk_gib, i.creation_cost, i.hourly_cost, i.status, i.status_reason, \
     i.created_at, i.updated_at, i.paused_at, i.last_billed_hour, p.port \
     FROM instances i LEFT JOIN node_ports p ON p.instance_id = i.id";

impl InstanceRow {
    fn into_instance(self) -> Result<Instance, BackendError> {
        let (spec, price) = sql::spec_and_price(
            &self.engine,
            self.size.as_deref(),
            self.cpu_milli,
            self.memory_mib,
            self.disk_gib,
            self.creation_cost,
            self.hourly_cost,
        )?;
        Ok(Instance {
            id: InstanceId::from_uuid(self.id.into_uuid()),
            owner: UserId::from_uuid(self.owner_id.into_uuid()),
            name: InstanceName::parse(&self.name)
                .map_err(|e| BackendError::with_source("stored instance name", e))?,
            spec,
            price,
            status: sql::parse("status", &self.status)?,
            status_reason: self.status_reason,
            node_port: self.port.map(node_port).transpose()?,
            created_at: at(self.created_at)?,
            updated_at: at(self.updated_at)?,
            paused_at: at_opt(self.paused_at)?,
            last_billed_hour: self.last_billed_hour.map(BillingHour::from_index),
        })
    }
}

/// One instance with its NodePort.
async fn fetch_instance(
    conn: &mut SqliteConnection,
    id: InstanceId,
) -> Result<Option<Instance>, BackendError> {
    let sql = format!("{INSTANCE_SELECT} WHERE i.id = ?1");
    sqlx::query_as::<_, InstanceRow>(sqlx::AssertSqlSafe(sql))
        .bind(id.as_uuid().hyphenated())
        .fetch_optional(conn)
        .await
        .map_err(db("read an instance"))?
        .map(InstanceRow::into_instance)
        .transpose()
}

/// Resources held by every instance in a holding state.
async fn usage(conn: &mut SqliteConnection) -> Result<Usage, BackendError> {
    let (cpu, memory, count): (i64, i64, i64) = sqlx::query_as(
        "SELECT COALESCE(sum(cpu_milli), 0), COALESCE(sum(memory_mib), 0), count(*)
         FROM instances WHERE status IN (SELECT value FROM json_each(?1))",
    )
    .bind(Json(sql::status_names(InstanceStatus::holds_resources)))
    .fetch_one(conn)
    .await
    .map_err(db("sum capacity"))?;
    Ok(Usage {
        cpu_milli: sql::u64_of("cpu", cpu)?,
        memory_mib: sql::u64_of("memory", memory)?,
        instances: sql::u32_of("count", count)?,
    })
}

/// The owner's balance (zero if the account is gone).
async fn owner_balance(conn: &mut SqliteConnection, owner: UserId) -> Result<Lemons, BackendError> {
    Ok(live_user(conn, owner)
        .await?
        .map(|u| u.balance)
        .unwrap_or_default())
}

/// The owner's live instances, and whether one of them is called `name`.
async fn owner_snapshot(
    conn: &mut SqliteConnection,
    new: &NewInstance,
    balance: Lemons,
) -> Result<OwnerSnapshot, BackendError> {
    let (live, name_taken): (i64, bool) = sqlx::query_as(
        "SELECT count(*), COALESCE(max(name = ?2), 0) FROM instances
         WHERE owner_id = ?1 AND status IN (SELECT value FROM json_each(?3))",
    )
    .bind(new.owner.as_uuid().hyphenated())
    .bind(new.name.as_str())
    .bind(Json(sql::status_names(InstanceStatus::is_live)))
    .fetch_one(conn)
    .await
    .map_err(db("count live instances"))?;
    Ok(OwnerSnapshot {
        live_instances: sql::u32_of("live instances", live)?,
        name_taken,
        balance,
    })
}

/// Records a new instance as `provisioning`.
async fn insert_instance(
    conn: &mut SqliteConnection,
    new: &NewInstance,
) -> Result<(), BackendError> {
    let resources = new.spec.resources();
    sqlx::query(
        "INSERT INTO instances (id, owner_id, name, engine, size, cpu_milli, memory_mib, disk_gib,
             creation_cost, hourly_cost, status, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'provisioning', ?11, ?11)",
    )
    .bind(new.id.as_uuid().hyphenated())
    .bind(new.owner.as_uuid().hyphenated())
    .bind(new.name.as_str())
    .bind(new.spec.engine().as_str())
    .bind(new.spec.size().map(|s| s.as_str()))
    .bind(i64::from(resources.cpu.0))
    .bind(i64::from(resources.memory_mib))
    .bind(i64::from(resources.disk_gib))
    .bind(new.price.creation_cost.as_i64())
    .bind(new.price.hourly_cost.as_i64())
    .bind(ms(new.created_at))
    .execute(conn)
    .await
    .map_err(db("record an instance"))?;
    Ok(())
}

#[async_trait]
impl InstanceStore for SqliteStore {
    async fn create_instance(
        &self,
        new: &NewInstance,
        policy: &InstancePolicy,
    ) -> Result<CreatedInstance, CreateInstanceError> {
        let mut tx = self.begin().await?;
        let owner = live_user(&mut tx, new.owner)
            .await?
            .ok_or(CreateInstanceError::UnknownUser)?;
        if let Some(instance) = fetch_instance(&mut tx, new.id).await? {
            let debit = entry_by_key(&mut tx, &IdempotencyKey::create(new.id))
                .await?
                .ok_or_else(|| BackendError::new("instance recorded without its creation debit"))?;
            return Ok(CreatedInstance { instance, debit });
        }
        let snapshot = owner_snapshot(&mut tx, new, owner.balance).await?;
        let used = usage(&mut tx).await?;
        check_creation(&snapshot, used, &new.spec.resources(), &new.price, policy)?;
        reserve_port(&mut tx, new.id, &policy.node_ports)
            .await
            .map_err(|e| match e {
                ReservePortError::Exhausted(p) => CreateInstanceError::Ports(p),
                ReservePortError::Backend(b) => CreateInstanceError::Backend(b),
            })?;
        insert_instance(&mut tx, new).await?;
        let instance = fetch_instance(&mut tx, new.id)
            .await?
            .ok_or_else(|| BackendError::new("instance vanished"))?;
        let key = IdempotencyKey::create(new.id);
        let cost = new.price.creation_cost;
        let debit = match charge(
            &mut tx,
            &instance,
            EntryKind::InstanceCreate,
            key,
            cost,
            new.created_at,
        )
        .await?
        {
            Ok(entry) => entry,
            Err(refusal) => {
                let message = format!("creation debit refused after the balance check: {refusal}");
                return Err(BackendError::new(message).into());
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
        fetch_instance(&mut conn, id).await
    }

    async fn instances_of(&self, owner: UserId) -> Result<Vec<Instance>, BackendError> {
        let sql = format!(
            "{INSTANCE_SELECT} WHERE i.owner_id = ?1 AND i.status <> 'deleted'
             ORDER BY i.created_at DESC, i.id DESC"
        );
        sqlx::query_as::<_, InstanceRow>(sqlx::AssertSqlSafe(sql))
            .bind(owner.as_uuid().hyphenated())
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
        let sql = format!(
            "{INSTANCE_SELECT} WHERE i.status IN (SELECT value FROM json_each(?1))
             ORDER BY i.created_at, i.id"
        );
        sqlx::query_as::<_, InstanceRow>(sqlx::AssertSqlSafe(sql))
            .bind(Json(&names))
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
        let current = fetch_instance(&mut tx, id)
            .await?
            .ok_or(TransitionError::UnknownInstance)?;
        let plan = plan_transition(&current, event, now)?;
        if let Some(refund) = &plan.refund
            && let Err(refusal) = post_cost(&mut tx, refund).await?
        {
            return Err(BackendError::new(format!("refund refused: {refusal}")).into());
        }
        if plan.release_port {
            sqlx::query("DELETE FROM node_ports WHERE instance_id = ?1")
                .bind(id.as_uuid().hyphenated())
                .execute(&mut *tx)
                .await
                .map_err(db("release a NodePort"))?;
        }
        sqlx::query(
            "UPDATE instances SET status = ?2, status_reason = ?3, paused_at = ?4, updated_at = ?5
             WHERE id = ?1",
        )
        .bind(id.as_uuid().hyphenated())
        .bind(plan.to.as_str())
        .bind(reason)
        .bind(plan.paused_at.map(ms))
        .bind(ms(now))
        .execute(&mut *tx)
        .await
        .map_err(db("change an instance's state"))?;
        let updated = fetch_instance(&mut tx, id)
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
        let current = fetch_instance(&mut tx, id)
            .await?
            .ok_or(StartInstanceError::UnknownInstance)?;
        let to = next_status(current.status, InstanceEvent::StartRequested)?;
        let balance = owner_balance(&mut tx, current.owner).await?;
        let used = usage(&mut tx).await?;
        check_start(balance, used, &current.resources(), &current.price, policy)?;
        sqlx::query(
            "UPDATE instances SET status = ?2, status_reason = NULL, paused_at = NULL,
                 updated_at = ?3
             WHERE id = ?1",
        )
        .bind(id.as_uuid().hyphenated())
        .bind(to.as_str())
        .bind(ms(now))
        .execute(&mut *tx)
        .await
        .map_err(db("start an instance"))?;
        let updated = fetch_instance(&mut tx, id)
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
        let Some(current) = fetch_instance(&mut tx, id).await? else {
            return Ok(ChargeOutcome::UnknownInstance);
        };
        let charge = match plan_hour_charge(&current, hour, now) {
            Ok(charge) => charge,
            Err(not_running) => return Ok(not_running.into()),
        };
        if entry_by_key(&mut tx, &charge.key).await?.is_some() {
            return Ok(ChargeOutcome::AlreadyCharged);
        }
        let outcome = match pay_hour(&mut tx, id, &charge, hour).await? {
            Ok(entry) => ChargeOutcome::Charged(entry),
            Err((required, available)) => ChargeOutcome::Short {
                required,
                available,
            },
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
        let Some(current) = fetch_instance(&mut tx, id).await? else {
            return Ok(ResumeOutcome::UnknownInstance);
        };
        let used = usage(&mut tx).await?;
        let plan = match plan_resume(&current, used, hour, now, &policy.budget) {
            Ok(plan) => plan,
            Err(refusal) => return Ok(refusal.into()),
        };
        let entry = match pay_hour(&mut tx, id, &plan.charge, plan.billed_hour).await? {
            Ok(entry) => entry,
            Err((required, available)) => {
                return Ok(ResumeOutcome::Short {
                    required,
                    available,
                });
            }
        };
        sqlx::query(
            "UPDATE instances SET status = ?2, status_reason = NULL, paused_at = NULL,
                 updated_at = ?3
             WHERE id = ?1",
        )
        .bind(id.as_uuid().hyphenated())
        .bind(plan.to.as_str())
        .bind(ms(now))
        .execute(&mut *tx)
        .await
        .map_err(db("resume an instance"))?;
        let resumed = fetch_instance(&mut tx, id)
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
        sqlx::query("UPDATE instances SET status_reason = ?2, updated_at = ?3 WHERE id = ?1")
            .bind(id.as_uuid().hyphenated())
            .bind(reason)
            .bind(ms(now))
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
