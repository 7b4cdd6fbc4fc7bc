//! Contract: instances, capacity, billing operations and NodePorts.

use std::collections::BTreeSet;

use chrono::TimeDelta;
use dbtree_core::billing::BillingHour;
use dbtree_core::boundary::PostRequest;
use dbtree_core::boundary::{
    ChargeOutcome, CreateInstanceError, ReservePortError, ResumeOutcome, StartInstanceError,
    TransitionError,
};
use dbtree_core::ids::InstanceId;
use dbtree_core::instance::{
    CreateRefusal, Engine, InstanceEvent, InstancePolicy, InstanceSpec, InstanceStatus, MilliCpu,
    NodeBudget, NodePort, NodePortError, NodePortPolicy, PresetSize, StartRefusal,
};
use dbtree_core::ledger::{EntryKind, IdempotencyKey};
use dbtree_core::lemons::Lemons;

use crate::contract::backends::StoreEnv;
use crate::contract::fixtures::*;

fn large_mongo() -> InstanceSpec {
    InstanceSpec::Preset {
        engine: Engine::Mongodb,
        size: PresetSize::Large,
    }
}

pub(crate) async fn creation_debits_and_reserves_the_lowest_port(env: &StoreEnv) {
    let s = &env.store;
    let u = user(s, 60).await;
    let new = new_instance(u.id, 1, "cache", tiny_redis());
    let created = s.create_instance(&new, &policy().instances).await.unwrap();
    assert_eq!(created.instance.status, InstanceStatus::Provisioning);
    assert_eq!(created.instance.node_port, Some(NodePort(30000)));
    assert_eq!(
        (created.debit.kind, created.debit.delta),
        (EntryKind::InstanceCreate, -3)
    );
    assert_eq!(created.instance.spec, tiny_redis());
    // a retry with the same id charges nothing more
    let again = env
        .second
        .create_instance(&new, &policy().instances)
        .await
        .unwrap();
    assert_eq!(
        (again.instance.id, again.debit.id),
        (created.instance.id, created.debit.id)
    );
    assert_eq!(balance(s, u.id).await, 12);
    assert_eq!(s.instance(new.id).await.unwrap().unwrap(), created.instance);
    assert_eq!(s.count_created().await.unwrap(), 1);
    let usage = s.usage().await.unwrap();
    assert_eq!(
        (usage.cpu_milli, usage.memory_mib, usage.instances),
        (100, 128, 1)
    );
    assert_balanced(s, u.id).await;
}

pub(crate) async fn creation_refuses_in_precedence_order(env: &StoreEnv) {
    let s = &env.store;
    let p = policy().instances;
    let u = user(s, 61).await;
    grant(s, u.id, 200, "t:create").await;
    created(s, u.id, 2, "one", tiny_redis()).await;
    let taken = s
        .create_instance(&new_instance(u.id, 3, "one", tiny_redis()), &p)
        .await
        .unwrap_err();
    assert!(
        matches!(
            taken,
            CreateInstanceError::Refused(CreateRefusal::NameTaken)
        ),
        "{taken:?}"
    );
    created(s, u.id, 4, "two", tiny_redis()).await;
    let third = s
        .create_instance(&new_instance(u.id, 5, "three", tiny_redis()), &p)
        .await
        .unwrap_err();
    assert!(
        matches!(
            third,
            CreateInstanceError::Refused(CreateRefusal::InstanceLimit { used: 2, limit: 2 })
        ),
        "{third:?}"
    );
    let poor = user(s, 62).await;
    let short = s
        .create_instance(&new_instance(poor.id, 6, "big", large_mongo()), &p)
        .await
        .unwrap_err();
    assert!(
        matches!(
            short,
            CreateInstanceError::Refused(CreateRefusal::InsufficientLemons { .. })
        ),
        "{short:?}"
    );
    let rich = user(s, 63).await;
    grant(s, rich.id, 200, "t:rich").await;
    let rich2 = user(s, 64).await;
    grant(s, rich2.id, 200, "t:rich2").await;
    created(s, rich.id, 7, "big", large_mongo()).await; // 0.75 + 0.2 used by the tiny ones
    let full = s
        .create_instance(&new_instance(rich2.id, 8, "big", large_mongo()), &p)
        .await
        .unwrap_err();
    assert!(
        matches!(
            full,
            CreateInstanceError::Refused(CreateRefusal::Capacity(_))
        ),
        "{full:?}"
    );
    assert_eq!(balance(s, rich2.id).await, 215, "nothing charged");
    assert_eq!(s.node_ports().await.unwrap().len(), 3);
}

pub(crate) async fn concurrent_creates_keep_the_limit_and_the_capacity(env: &StoreEnv) {
    let s = &env.store;
    let u = user(s, 65).await;
    grant(s, u.id, 100, "t:race").await;
    created(s, u.id, 10, "first", tiny_redis()).await;
    // two concurrent creates for a user who has one: exactly two in the end
    let (second, third, limits) = (
        new_instance(u.id, 11, "second", tiny_redis()),
        new_instance(u.id, 12, "third", tiny_redis()),
        policy().instances,
    );
    let (a, b) = tokio::join!(
        s.create_instance(&second, &limits),
        env.second.create_instance(&third, &limits)
    );
    assert_eq!(usize::from(a.is_ok()) + usize::from(b.is_ok()), 1);
    assert_eq!(s.instances_of(u.id).await.unwrap().len(), 2);
    // many users racing for the last capacity: it is never exceeded
    let mut tasks = Vec::new();
    for n in 0..6u64 {
        let racer = user(s, 70 + n).await;
        grant(s, racer.id, 100, &format!("t:racer{n}")).await;
        let store = if n % 2 == 0 {
            env.store.clone()
        } else {
            env.second.clone()
        };
        tasks.push(tokio::spawn(async move {
            store
                .create_instance(
                    &new_instance(racer.id, 20 + n, "mongo", large_mongo()),
                    &policy().instances,
                )
                .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(CreateInstanceError::Refused(CreateRefusal::Capacity(_))) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ok, 1, "0.2 cpu used, 1.3 free: one 0.75 fits");
    assert!(s.usage().await.unwrap().cpu_milli <= 1500);
}

pub(crate) async fn events_follow_the_state_machine_and_refund_once(env: &StoreEnv) {
    let s = &env.store;
    let u = user(s, 80).await;
    let i = created(
        s,
        u.id,
        30,
        "pg-one",
        InstanceSpec::Preset {
            engine: Engine::Postgresql,
            size: PresetSize::Tiny,
        },
    )
    .await;
    assert_eq!(balance(s, u.id).await, 10);
    let refused = s
        .apply_event(i.id, InstanceEvent::StopRequested, None, t0())
        .await
        .unwrap_err();
    assert!(
        matches!(refused, TransitionError::Refused(_)),
        "{refused:?}"
    );
    let failed = s
        .apply_event(
            i.id,
            InstanceEvent::ProvisioningFailed,
            Some("no image"),
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(
        (failed.status, failed.status_reason.as_deref()),
        (InstanceStatus::Error, Some("no image"))
    );
    assert_eq!(balance(s, u.id).await, 15, "refunded");
    assert!(
        env.second
            .apply_event(i.id, InstanceEvent::ProvisioningFailed, None, t0())
            .await
            .is_err()
    );
    assert_eq!(balance(s, u.id).await, 15, "refunded once");
    assert_eq!(
        failed.node_port,
        Some(NodePort(30000)),
        "held until the cluster confirms"
    );
    assert_eq!(
        s.release_node_port(i.id).await.unwrap(),
        Some(NodePort(30000))
    );
    assert!(
        s.instances_of(u.id)
            .await
            .unwrap()
            .iter()
            .any(|x| x.id == i.id),
        "errors stay visible"
    );
    // a failed instance frees its name
    created(s, u.id, 31, "pg-one", tiny_redis()).await;
    assert!(matches!(
        s.apply_event(
            InstanceId::from_random_bytes([3; 16]),
            InstanceEvent::Provisioned,
            None,
            t0()
        )
        .await,
        Err(TransitionError::UnknownInstance)
    ));
    assert_balanced(s, u.id).await;
}

pub(crate) async fn teardown_releases_the_port_and_hides_the_instance(env: &StoreEnv) {
    let s = &env.store;
    let u = user(s, 81).await;
    let i = created(s, u.id, 32, "gone", tiny_redis()).await;
    s.apply_event(i.id, InstanceEvent::Provisioned, None, t0())
        .await
        .unwrap();
    let deleting = s
        .apply_event(i.id, InstanceEvent::DeleteRequested, Some("bye"), t0())
        .await
        .unwrap();
    assert_eq!(deleting.status, InstanceStatus::Deleting);
    assert_eq!(
        s.usage().await.unwrap().instances,
        1,
        "deleting still holds resources"
    );
    let deleted = s
        .apply_event(i.id, InstanceEvent::TeardownConfirmed, None, t0())
        .await
        .unwrap();
    assert_eq!(
        (deleted.status, deleted.node_port),
        (InstanceStatus::Deleted, None)
    );
    assert!(s.node_ports().await.unwrap().is_empty());
    assert!(s.instances_of(u.id).await.unwrap().is_empty());
    assert_eq!(s.usage().await.unwrap().instances, 0);
    assert_eq!(
        s.instances_in(&[InstanceStatus::Deleted])
            .await
            .unwrap()
            .len(),
        1
    );
}

pub(crate) async fn starting_rechecks_balance_and_capacity(env: &StoreEnv) {
    let s = &env.store;
    let p = policy().instances;
    let u = user(s, 82).await;
    let i = created(s, u.id, 33, "stopper", tiny_redis()).await;
    s.apply_event(i.id, InstanceEvent::Provisioned, None, t0())
        .await
        .unwrap();
    let stopped = s
        .apply_event(i.id, InstanceEvent::StopRequested, Some("owner"), t0())
        .await
        .unwrap();
    assert_eq!(stopped.status, InstanceStatus::Stopped);
    assert!(matches!(
        s.start_instance(InstanceId::from_random_bytes([4; 16]), t0(), &p)
            .await,
        Err(StartInstanceError::UnknownInstance)
    ));
    // fill the node while it is stopped
    let rich = user(s, 83).await;
    grant(s, rich.id, 200, "t:filler").await;
    created(s, rich.id, 34, "filler-a", large_mongo()).await;
    created(s, rich.id, 35, "filler-b", large_mongo()).await;
    let full = s.start_instance(i.id, t0(), &p).await.unwrap_err();
    assert!(
        matches!(full, StartInstanceError::Refused(StartRefusal::Capacity(_))),
        "{full:?}"
    );
    // on a bigger node, the balance decides: one hour must be affordable
    let bigger = InstancePolicy {
        budget: NodeBudget {
            total_cpu: MilliCpu(4000),
            ..p.budget
        },
        ..p.clone()
    };
    let drain = PostRequest {
        user: u.id,
        kind: EntryKind::InstanceHourly,
        amount: Lemons::new(balance(s, u.id).await),
        key: IdempotencyKey::parse("t:drain").unwrap(),
        instance: None,
        at: t0(),
    };
    s.post(&drain, &policy().ledger).await.unwrap();
    let poor = env
        .second
        .start_instance(i.id, t0(), &bigger)
        .await
        .unwrap_err();
    assert!(
        matches!(
            poor,
            StartInstanceError::Refused(StartRefusal::InsufficientLemons { .. })
        ),
        "{poor:?}"
    );
    grant(s, u.id, 1, "t:one-hour").await;
    let running = s
        .start_instance(i.id, t0() + TimeDelta::seconds(1), &bigger)
        .await
        .unwrap();
    assert_eq!(
        (running.status, running.status_reason),
        (InstanceStatus::Running, None)
    );
    assert!(matches!(
        s.start_instance(i.id, t0(), &bigger).await,
        Err(StartInstanceError::Transition(_))
    ));
    assert!(stopped.paused_at.is_none());
}

pub(crate) async fn each_hour_is_charged_once_whatever_the_concurrency(env: &StoreEnv) {
    let s = &env.store;
    let u = user(s, 84).await;
    let i = created(
        s,
        u.id,
        36,
        "billed",
        InstanceSpec::Preset {
            engine: Engine::Postgresql,
            size: PresetSize::Small,
        },
    )
    .await;
    let hour = BillingHour::containing(t0());
    assert!(matches!(
        s.charge_hour(i.id, hour, t0()).await.unwrap(),
        ChargeOutcome::NotRunning(InstanceStatus::Provisioning)
    ));
    s.apply_event(i.id, InstanceEvent::Provisioned, None, t0())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for n in 0..8 {
        let store = if n % 2 == 0 {
            env.store.clone()
        } else {
            env.second.clone()
        };
        tasks.push(tokio::spawn(async move {
            store.charge_hour(i.id, hour, t0()).await.unwrap()
        }));
    }
    let mut charged = 0;
    for t in tasks {
        match t.await.unwrap() {
            ChargeOutcome::Charged(e) => {
                charged += 1;
                assert_eq!(
                    (e.kind, e.delta, e.instance),
                    (EntryKind::InstanceHourly, -2, Some(i.id))
                );
            }
            ChargeOutcome::AlreadyCharged => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(charged, 1);
    assert_eq!(balance(s, u.id).await, 3);
    assert_eq!(
        s.instance(i.id).await.unwrap().unwrap().last_billed_hour,
        Some(hour)
    );
    assert!(matches!(
        s.charge_hour(i.id, hour.next(), t0()).await.unwrap(),
        ChargeOutcome::Charged(_)
    ));
    let short = s.charge_hour(i.id, hour.next().next(), t0()).await.unwrap();
    assert!(matches!(short, ChargeOutcome::Short { .. }), "{short:?}");
    assert_eq!(balance(s, u.id).await, 1);
    assert_balanced(s, u.id).await;
}

pub(crate) async fn pausing_and_resuming_are_paid_and_bounded_by_capacity(env: &StoreEnv) {
    let s = &env.store;
    let p = policy().instances;
    let u = user(s, 85).await;
    let i = created(s, u.id, 37, "pausable", tiny_redis()).await;
    s.apply_event(i.id, InstanceEvent::Provisioned, None, t0())
        .await
        .unwrap();
    let paused = s
        .apply_event(i.id, InstanceEvent::BillingPaused, Some("short"), t0())
        .await
        .unwrap();
    assert_eq!(
        (paused.status, paused.paused_at),
        (InstanceStatus::Paused, Some(t0()))
    );
    let hour = BillingHour::containing(t0());
    let resumed = s
        .resume_paid(i.id, hour, t0() + TimeDelta::minutes(5), &p)
        .await
        .unwrap();
    let ResumeOutcome::Resumed(instance, entry) = resumed else {
        panic!("{resumed:?}")
    };
    assert_eq!(
        (instance.status, instance.paused_at, entry.delta),
        (InstanceStatus::Running, None, -1)
    );
    assert!(matches!(
        s.resume_paid(i.id, hour, t0(), &p).await.unwrap(),
        ResumeOutcome::NotPaused(InstanceStatus::Running)
    ));
    // paused again in the same hour, resumed without a second charge
    s.apply_event(i.id, InstanceEvent::BillingPaused, None, t0())
        .await
        .unwrap();
    assert!(matches!(
        s.resume_paid(i.id, hour, t0(), &p).await.unwrap(),
        ResumeOutcome::Resumed(..)
    ));
    assert_eq!(balance(s, u.id).await, 11);
    // no room: stays paused
    s.apply_event(i.id, InstanceEvent::BillingPaused, None, t0())
        .await
        .unwrap();
    let rich = user(s, 86).await;
    grant(s, rich.id, 200, "t:crowd").await;
    created(s, rich.id, 38, "crowd-a", large_mongo()).await;
    created(s, rich.id, 39, "crowd-b", large_mongo()).await;
    assert!(matches!(
        s.resume_paid(i.id, hour.next(), t0(), &p).await.unwrap(),
        ResumeOutcome::NoCapacity(_)
    ));
    assert_eq!(balance(s, u.id).await, 11, "nothing charged");
    assert_balanced(s, u.id).await;
}

/// The edges of [`dbtree_core::instance::plan_transition`] and
/// [`dbtree_core::instance::plan_resume`] as a store applies them: a refused event and a short
/// resume change nothing (the instance stays paused since its first pause), and leaving `paused`
/// clears `paused_at`.
pub(crate) async fn refused_events_and_short_resumes_keep_the_pause(env: &StoreEnv) {
    let s = &env.store;
    let p = policy().instances;
    let u = user(s, 87).await;
    let i = created(s, u.id, 40, "keeps-pause", tiny_redis()).await;
    s.apply_event(i.id, InstanceEvent::Provisioned, None, t0())
        .await
        .unwrap();
    s.apply_event(i.id, InstanceEvent::BillingPaused, Some("short"), t0())
        .await
        .unwrap();
    let later = t0() + TimeDelta::minutes(10);
    let refused = s
        .apply_event(i.id, InstanceEvent::Provisioned, None, later)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, TransitionError::Refused(_)),
        "{refused:?}"
    );
    let hour = BillingHour::containing(t0());
    let drain = PostRequest {
        user: u.id,
        kind: EntryKind::InstanceHourly,
        amount: Lemons::new(balance(s, u.id).await),
        key: IdempotencyKey::bill(i.id, hour.next()),
        instance: Some(i.id),
        at: t0(),
    };
    s.post(&drain, &policy().ledger).await.unwrap();
    let short = s.resume_paid(i.id, hour, later, &p).await.unwrap();
    assert!(
        matches!(short, ResumeOutcome::Short { required, available }
            if required == i.price.hourly_cost && available == Lemons::ZERO),
        "{short:?}"
    );
    let kept = s.instance(i.id).await.unwrap().unwrap();
    assert_eq!(
        (kept.status, kept.paused_at, kept.status_reason.as_deref()),
        (InstanceStatus::Paused, Some(t0()), Some("short"))
    );
    assert_eq!(kept.last_billed_hour, None);
    let stopped = s
        .apply_event(i.id, InstanceEvent::DeleteRequested, None, later)
        .await
        .unwrap();
    assert_eq!(
        (stopped.status, stopped.paused_at),
        (InstanceStatus::Deleting, None)
    );
    assert_balanced(s, u.id).await;
}

/// Billing an instance the store does not know is a typed outcome, not an infrastructure
/// failure, and moves nothing.
pub(crate) async fn billing_an_unknown_instance_is_an_outcome(env: &StoreEnv) {
    let s = &env.store;
    let u = user(s, 88).await;
    let before = balance(s, u.id).await;
    let unknown = InstanceId::from_random_bytes(id_bytes(8_800));
    let hour = BillingHour::containing(t0());
    assert_eq!(
        s.charge_hour(unknown, hour, t0()).await.unwrap(),
        ChargeOutcome::UnknownInstance
    );
    assert_eq!(
        env.second
            .resume_paid(unknown, hour, t0(), &policy().instances)
            .await
            .unwrap(),
        ResumeOutcome::UnknownInstance
    );
    assert_eq!(s.instance(unknown).await.unwrap(), None);
    assert_eq!(balance(s, u.id).await, before);
}

pub(crate) async fn node_ports_are_unique_idempotent_and_cleanly_exhausted(env: &StoreEnv) {
    let s = &env.store;
    let narrow = NodePortPolicy {
        first: 31000,
        last: 31009,
        reserved: [31003].into(),
    };
    let ids: Vec<InstanceId> = (0..12u64)
        .map(|n| InstanceId::from_random_bytes(id_bytes(9000 + n)))
        .collect();
    let mut tasks = Vec::new();
    for (n, id) in ids.iter().copied().enumerate() {
        let store = if n % 2 == 0 {
            env.store.clone()
        } else {
            env.second.clone()
        };
        let narrow = narrow.clone();
        tasks.push(tokio::spawn(async move {
            store.reserve_node_port(id, &narrow).await
        }));
    }
    let mut ports = BTreeSet::new();
    let mut exhausted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(p) => assert!(ports.insert(p.get()), "port {p} given twice"),
            Err(ReservePortError::Exhausted(NodePortError::Exhausted {
                first: 31000,
                last: 31009,
            })) => exhausted += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((ports.len(), exhausted), (9, 3));
    assert!(!ports.contains(&31003));
    let holder = s.node_ports().await.unwrap()[0].1;
    assert_eq!(
        s.reserve_node_port(holder, &narrow).await.unwrap(),
        NodePort(31000),
        "idempotent"
    );
    assert_eq!(
        s.release_node_port(holder).await.unwrap(),
        Some(NodePort(31000))
    );
    assert_eq!(s.release_node_port(holder).await.unwrap(), None);
    let newcomer = InstanceId::from_random_bytes(id_bytes(9999));
    assert_eq!(
        s.reserve_node_port(newcomer, &narrow).await.unwrap(),
        NodePort(31000),
        "the lowest free port again"
    );
}
