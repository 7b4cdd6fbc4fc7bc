//! Instance lifecycle: quotes, limits, capacity, failures with refunds, start/stop, delete.

use chrono::TimeDelta;
use dbtree_core::boundary::{
    ClusterError, ClusterEvent, InstanceStore, NewInstance, NodePortStore, Observation, Teardown,
};
use dbtree_core::ids::InstanceId;
use dbtree_core::instance::{
    CreateRefusal, Engine, InstanceName, InstanceSpec, InstanceStatus, MilliCpu, PresetSize,
    Resources, RunState, StartRefusal,
};
use dbtree_core::ledger::EntryKind;
use dbtree_core::service::{CreateError, InstanceActionError};

use super::helpers::*;

fn name(n: &str) -> InstanceName {
    InstanceName::parse(n).unwrap()
}

fn preset(engine: Engine, size: PresetSize) -> InstanceSpec {
    InstanceSpec::Preset { engine, size }
}

fn ready(id: InstanceId) -> ClusterEvent {
    ClusterEvent {
        instance: id,
        observation: Observation::Ready,
    }
}

#[tokio::test]
async fn the_quote_is_what_creation_debits() {
    let (sb, app) = fresh().await;
    let (ann, token) = sign_in(&sb, &app, "ann@example.org").await;
    grant(&sb, &ann, 100, "quote").await;
    let ann = reload(&app, &token).await;
    let spec = InstanceSpec::Custom {
        engine: Engine::Postgresql,
        resources: Resources {
            cpu: MilliCpu(750),
            memory_mib: 768,
            disk_gib: 15,
        },
    };
    let quote = app.instances.quote(&spec);
    let created = app
        .instances
        .create(&ann, name("pg-custom"), spec)
        .await
        .unwrap();
    assert_eq!(-created.debit.delta, i64::from(quote.creation_cost.get()));
    assert_eq!(created.debit.kind, EntryKind::InstanceCreate);
    assert_eq!(created.instance.price, quote);
}

#[tokio::test]
async fn second_instance_yes_third_no() {
    let (sb, app) = fresh().await;
    let (ann, token) = sign_in(&sb, &app, "ann@example.org").await;
    grant(&sb, &ann, 100, "three").await;
    let ann = reload(&app, &token).await;
    let tiny = preset(Engine::Redis, PresetSize::Tiny);
    app.instances.create(&ann, name("one"), tiny).await.unwrap();
    let dup = app
        .instances
        .create(&ann, name("one"), tiny)
        .await
        .unwrap_err();
    assert!(
        matches!(dup, CreateError::Refused(CreateRefusal::NameTaken)),
        "{dup:?}"
    );
    app.instances.create(&ann, name("two"), tiny).await.unwrap();
    let third = app
        .instances
        .create(&ann, name("three"), tiny)
        .await
        .unwrap_err();
    assert!(
        matches!(
            third,
            CreateError::Refused(CreateRefusal::InstanceLimit { used: 2, limit: 2 })
        ),
        "{third:?}"
    );
    // deleting one frees a slot and the name
    let one = app
        .instances
        .list(ann.id)
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.name.as_str() == "one")
        .unwrap();
    app.instances.delete(ann.id, one.id).await.unwrap();
    app.instances.create(&ann, name("one"), tiny).await.unwrap();
}

#[tokio::test]
async fn creation_needs_the_creation_cost_plus_one_hour() {
    let (sb, app) = fresh().await;
    let (ann, _) = sign_in(&sb, &app, "ann@example.org").await; // 15 lemons
    let large = preset(Engine::Postgresql, PresetSize::Large); // 30 + 5
    let err = app
        .instances
        .create(&ann, name("big"), large)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CreateError::Refused(CreateRefusal::InsufficientLemons { required, available })
        if required.get() == 35 && available.get() == 15),
        "{err:?}"
    );
    let medium = preset(Engine::Redis, PresetSize::Medium); // 12 + 2 = 14
    app.instances
        .create(&ann, name("mid"), medium)
        .await
        .unwrap();
    assert!(sb.store.node_ports().await.unwrap().len() == 1);
    assert_ledger_consistent(&sb);
}

#[tokio::test]
async fn capacity_is_shared_by_everyone() {
    let (sb, app) = fresh().await;
    let mut users = Vec::new();
    for i in 0..3 {
        let (u, token) = sign_in(&sb, &app, &format!("u{i}@example.org")).await;
        grant(&sb, &u, 200, &format!("cap{i}")).await;
        users.push(reload(&app, &token).await);
    }
    let large = preset(Engine::Mongodb, PresetSize::Large); // 0.75 cpu
    app.instances
        .create(&users[0], name("aaa"), large)
        .await
        .unwrap();
    app.instances
        .create(&users[1], name("bbb"), large)
        .await
        .unwrap(); // 1.5 of 1.5 used
    let err = app
        .instances
        .create(
            &users[2],
            name("ccc"),
            preset(Engine::Redis, PresetSize::Tiny),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, CreateError::Refused(CreateRefusal::Capacity(_))),
        "{err:?}"
    );
    let report = app.stats.capacity().await.unwrap();
    assert!(report.fits.iter().all(|f| f.sizes.is_empty()));
    assert_eq!(report.usage.instances, 2);
}

#[tokio::test]
async fn a_refused_provisioning_is_refunded_once_and_frees_its_port() {
    let (sb, app) = fresh().await;
    let (ann, token) = sign_in(&sb, &app, "ann@example.org").await;
    sb.cluster.script(|s| {
        s.refuse_provision = Some(ClusterError::permanent("redis-server is not installed"))
    });
    let err = app
        .instances
        .create(&ann, name("cache"), preset(Engine::Redis, PresetSize::Tiny))
        .await
        .unwrap_err();
    let CreateError::ProvisioningFailed { instance, reason } = err else {
        panic!("{err:?}")
    };
    assert!(reason.contains("redis-server"));
    assert_eq!(reload(&app, &token).await.balance.get(), 15, "refunded");
    let failed = app.instances.get(ann.id, instance).await.unwrap();
    assert_eq!(failed.status, InstanceStatus::Error);
    assert_eq!(
        failed.status_reason.as_deref(),
        Some("redis-server is not installed")
    );
    assert!(
        sb.store.node_ports().await.unwrap().is_empty(),
        "port released"
    );
    // the same failure observed again does not refund twice
    let again = ClusterEvent {
        instance,
        observation: Observation::Failed {
            reason: "again".into(),
        },
    };
    app.instances.observe(&again).await.unwrap();
    let refunds = sb
        .store
        .all_entries()
        .into_iter()
        .filter(|e| e.kind == EntryKind::InstanceRefund)
        .count();
    assert_eq!(refunds, 1);
    // a failed instance no longer counts toward the limit
    sb.cluster.script(|s| s.refuse_provision = None);
    let ann = reload(&app, &token).await;
    app.instances
        .create(&ann, name("cache"), preset(Engine::Redis, PresetSize::Tiny))
        .await
        .unwrap();
    assert_ledger_consistent(&sb);
}

#[tokio::test]
async fn a_port_busy_on_the_host_is_held_aside_and_the_next_port_used() {
    let (sb, app) = fresh().await;
    let (ann, token) = sign_in(&sb, &app, "ann@example.org").await;
    grant(&sb, &ann, 100, "ports").await;
    let ann = reload(&app, &token).await;
    sb.cluster.script(|s| s.busy_ports = [30000, 30001].into());
    let created = app
        .instances
        .create(&ann, name("cache"), preset(Engine::Redis, PresetSize::Tiny))
        .await
        .unwrap();
    assert_eq!(created.instance.node_port.map(|p| p.get()), Some(30002));
    let id = created.instance.id;
    let stored = app.instances.get(ann.id, id).await.unwrap();
    assert_eq!(stored.node_port.map(|p| p.get()), Some(30002));
    assert_eq!(stored.status, InstanceStatus::Provisioning);
    assert_eq!(sb.cluster.instance(id).unwrap().node_port.get(), 30002);
    let refunds = sb
        .store
        .all_entries()
        .into_iter()
        .filter(|e| e.kind == EntryKind::InstanceRefund)
        .count();
    assert_eq!(refunds, 0);
    // held aside: freed on the host, they are still skipped for a while …
    sb.cluster.script(|s| s.busy_ports.clear());
    let second = app
        .instances
        .create(&ann, name("queue"), preset(Engine::Redis, PresetSize::Tiny))
        .await
        .unwrap();
    assert_eq!(second.instance.node_port.map(|p| p.get()), Some(30003));
    app.instances
        .delete(ann.id, second.instance.id)
        .await
        .unwrap();
    // … and tried again once the hold is over
    sb.clock.advance(TimeDelta::minutes(11));
    let third = app
        .instances
        .create(&ann, name("queue"), preset(Engine::Redis, PresetSize::Tiny))
        .await
        .unwrap();
    assert_eq!(third.instance.node_port.map(|p| p.get()), Some(30000));
    assert_ledger_consistent(&sb);
}

#[tokio::test]
async fn the_cluster_s_orphans_are_removed_on_resync() {
    let (sb, app) = fresh().await;
    let (ann, _token) = sign_in(&sb, &app, "ann@example.org").await;
    let created = app
        .instances
        .create(&ann, name("cache"), preset(Engine::Redis, PresetSize::Tiny))
        .await
        .unwrap();
    app.instances
        .observe(&ready(created.instance.id))
        .await
        .unwrap();
    // an engine left by a crash: the cluster holds it, dbtree has no record of it
    let orphan = InstanceId::from_random_bytes([9; 16]);
    let request = dbtree_core::boundary::ProvisionRequest {
        instance: orphan,
        owner: ann.id,
        name: name("ghost"),
        engine: Engine::Redis,
        resources: preset(Engine::Redis, PresetSize::Tiny).resources(),
        node_port: dbtree_core::instance::NodePort(30500),
        run_state: RunState::Running,
        credentials: dbtree_core::instance::Credentials::new(
            Engine::Redis,
            dbtree_core::instance::Password::generate(|| 7).unwrap(),
        ),
    };
    dbtree_core::boundary::Cluster::provision(sb.cluster.as_ref(), &request)
        .await
        .unwrap();
    let report = app.instances.resync().await.unwrap();
    assert_eq!(report.orphans_removed, 1, "{report:?}");
    assert!(sb.cluster.instance(orphan).is_none(), "the orphan is left");
    assert!(
        sb.cluster.instance(created.instance.id).is_some(),
        "an owned instance was removed"
    );
    let again = app.instances.resync().await.unwrap();
    assert_eq!(again.orphans_removed, 0, "{again:?}");
}

#[tokio::test]
async fn a_failure_reported_later_is_refunded_and_the_port_waits_for_the_cluster() {
    let (sb, app) = fresh().await;
    let (ann, token) = sign_in(&sb, &app, "ann@example.org").await;
    sb.cluster.script(|s| {
        s.provision_result = Err("image pull failed".into());
        s.auto_report = false;
        s.teardown = Teardown::Pending;
    });
    let created = app
        .instances
        .create(
            &ann,
            name("pg-1"),
            preset(Engine::Postgresql, PresetSize::Tiny),
        )
        .await
        .unwrap();
    let id = created.instance.id;
    let failed = ClusterEvent {
        instance: id,
        observation: Observation::Failed {
            reason: "image pull failed".into(),
        },
    };
    app.instances.observe(&failed).await.unwrap();
    assert_eq!(
        app.instances.get(ann.id, id).await.unwrap().status,
        InstanceStatus::Error
    );
    assert_eq!(reload(&app, &token).await.balance.get(), 15);
    assert_eq!(
        sb.store.node_ports().await.unwrap().len(),
        1,
        "held until the cluster confirms"
    );
    app.instances
        .observe(&ClusterEvent {
            instance: id,
            observation: Observation::Gone,
        })
        .await
        .unwrap();
    assert!(sb.store.node_ports().await.unwrap().is_empty());
}

#[tokio::test]
async fn stop_and_start_follow_the_cluster_and_recheck_balance_and_capacity() {
    let (sb, app) = fresh().await;
    let (ann, token) = sign_in(&sb, &app, "ann@example.org").await;
    let created = app
        .instances
        .create(
            &ann,
            name("db-1"),
            preset(Engine::Postgresql, PresetSize::Tiny),
        )
        .await
        .unwrap();
    let id = created.instance.id;
    app.instances.observe(&ready(id)).await.unwrap();
    assert_eq!(
        app.instances.get(ann.id, id).await.unwrap().status,
        InstanceStatus::Running
    );
    assert!(matches!(
        app.instances.start(ann.id, id).await,
        Err(InstanceActionError::Transition(_))
    ));
    let stopped = app.instances.stop(ann.id, id).await.unwrap();
    assert_eq!(stopped.status, InstanceStatus::Stopped);
    assert_eq!(
        sb.cluster.instance(id).unwrap().run_state,
        RunState::Stopped
    );
    assert_eq!(
        app.billing.run_pass().await.unwrap().charged,
        0,
        "stopped instances are not billed"
    );

    // Starting needs one affordable hour.
    let balance = reload(&app, &token).await.balance.get();
    spend(&sb, &ann, balance, "drain").await;
    let err = app.instances.start(ann.id, id).await.unwrap_err();
    assert!(
        matches!(
            err,
            InstanceActionError::Start(StartRefusal::InsufficientLemons { .. })
        ),
        "{err:?}"
    );

    // ... and room on the node: two large MongoDBs of other users fill the CPU meanwhile.
    grant(&sb, &ann, 10, "refill").await;
    for i in 0..2 {
        let (u, t) = sign_in(&sb, &app, &format!("big{i}@example.org")).await;
        grant(&sb, &u, 100, &format!("big{i}")).await;
        let u = reload(&app, &t).await;
        app.instances
            .create(&u, name("big"), preset(Engine::Mongodb, PresetSize::Large))
            .await
            .unwrap();
    }
    let err = app.instances.start(ann.id, id).await.unwrap_err();
    assert!(
        matches!(err, InstanceActionError::Start(StartRefusal::Capacity(_))),
        "{err:?}"
    );
    sb.clock.advance(TimeDelta::seconds(1));
    let others = sb
        .store
        .instances_in(&[InstanceStatus::Provisioning, InstanceStatus::Running])
        .await
        .unwrap();
    for other in others.iter().filter(|i| i.owner != ann.id) {
        app.instances.delete(other.owner, other.id).await.unwrap();
    }
    let started = app.instances.start(ann.id, id).await.unwrap();
    assert_eq!(started.status, InstanceStatus::Running);
    assert_eq!(
        sb.cluster.instance(id).unwrap().run_state,
        RunState::Running
    );
    assert_ledger_consistent(&sb);
}

#[tokio::test]
async fn deletion_waits_for_the_cluster_before_the_port_is_reused() {
    let (sb, app) = fresh().await;
    let (ann, token) = sign_in(&sb, &app, "ann@example.org").await;
    grant(&sb, &ann, 50, "ports").await;
    let ann = reload(&app, &token).await;
    let tiny = preset(Engine::Redis, PresetSize::Tiny);
    let first = app
        .instances
        .create(&ann, name("first"), tiny)
        .await
        .unwrap()
        .instance;
    assert_eq!(first.node_port.unwrap().get(), 30000);
    sb.cluster.script(|s| s.teardown = Teardown::Pending);
    let deleting = app.instances.delete(ann.id, first.id).await.unwrap();
    assert_eq!(deleting.status, InstanceStatus::Deleting);
    assert!(matches!(
        app.instances.delete(ann.id, first.id).await,
        Err(InstanceActionError::Transition(_))
    ));
    // the old Service may still exist: the next instance gets another port
    let second = app
        .instances
        .create(&ann, name("second"), tiny)
        .await
        .unwrap()
        .instance;
    assert_eq!(second.node_port.unwrap().get(), 30001);
    // the cluster confirms; the port is free again
    sb.cluster.vanish(first.id);
    app.instances
        .observe(&ClusterEvent {
            instance: first.id,
            observation: Observation::Gone,
        })
        .await
        .unwrap();
    assert_eq!(
        sb.store.instance(first.id).await.unwrap().unwrap().status,
        InstanceStatus::Deleted
    );
    sb.cluster.script(|s| s.teardown = Teardown::Complete);
    let third = app
        .instances
        .create(&ann, name("third"), tiny)
        .await
        .unwrap()
        .instance;
    assert_eq!(third.node_port.unwrap().get(), 30000);
}

#[tokio::test]
async fn rotating_credentials_changes_the_engine_password() {
    let (sb, app) = fresh().await;
    let (ann, _) = sign_in(&sb, &app, "ann@example.org").await;
    let created = app
        .instances
        .create(&ann, name("kv-1"), preset(Engine::Redis, PresetSize::Tiny))
        .await
        .unwrap();
    let id = created.instance.id;
    let err = app
        .instances
        .rotate_credentials(ann.id, id)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            InstanceActionError::NotRunning {
                status: InstanceStatus::Provisioning
            }
        ),
        "{err:?}"
    );
    app.instances.observe(&ready(id)).await.unwrap();
    let (_, fresh_credentials) = app.instances.rotate_credentials(ann.id, id).await.unwrap();
    assert_ne!(
        fresh_credentials.password.expose(),
        created.credentials.password.expose()
    );
    assert_eq!(
        sb.cluster.instance(id).unwrap().password,
        fresh_credentials.password.expose()
    );
    assert_eq!(fresh_credentials.username, "dbtree");
}

#[tokio::test]
async fn strangers_see_nothing() {
    let (sb, app) = fresh().await;
    let (ann, _) = sign_in(&sb, &app, "ann@example.org").await;
    let (bob, _) = sign_in(&sb, &app, "bob@example.org").await;
    let id = app
        .instances
        .create(&ann, name("mine"), preset(Engine::Redis, PresetSize::Tiny))
        .await
        .unwrap()
        .instance
        .id;
    assert!(matches!(
        app.instances.get(bob.id, id).await,
        Err(InstanceActionError::NotFound)
    ));
    assert!(matches!(
        app.instances.stop(bob.id, id).await,
        Err(InstanceActionError::NotFound)
    ));
    assert!(matches!(
        app.instances.delete(bob.id, id).await,
        Err(InstanceActionError::NotFound)
    ));
    assert!(app.instances.list(bob.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn resync_refunds_interrupted_provisioning_and_retries_pending_changes() {
    let (sb, app) = fresh().await;
    let (ann, token) = sign_in(&sb, &app, "ann@example.org").await;
    // A crash between the debit and the cluster call: the instance is recorded and paid for, but
    // the cluster never heard of it.
    let id = InstanceId::from_random_bytes([9; 16]);
    let spec = preset(Engine::Redis, PresetSize::Tiny);
    let new = NewInstance {
        id,
        owner: ann.id,
        name: name("orphan"),
        spec,
        price: spec.price(),
        created_at: dbtree_core::boundary::Clock::now(sb.clock.as_ref()),
    };
    sb.store
        .create_instance(&new, &sb.policy.instances)
        .await
        .unwrap();
    assert_eq!(reload(&app, &token).await.balance.get(), 12);
    assert_eq!(
        app.instances.resync().await.unwrap().interrupted_refunded,
        0,
        "too young to judge"
    );
    sb.clock.advance(TimeDelta::minutes(5));
    let report = app.instances.resync().await.unwrap();
    assert_eq!(report.interrupted_refunded, 1);
    assert_eq!(reload(&app, &token).await.balance.get(), 15);
    assert_eq!(
        sb.store.instance(id).await.unwrap().unwrap().status,
        InstanceStatus::Error
    );
    assert!(sb.store.node_ports().await.unwrap().is_empty());

    // A stop the cluster could not apply is recorded, then retried by resync.
    let ann = reload(&app, &token).await;
    let db = app
        .instances
        .create(&ann, name("db-1"), spec)
        .await
        .unwrap()
        .instance
        .id;
    app.instances.observe(&ready(db)).await.unwrap();
    sb.cluster
        .script(|s| s.refuse_changes = Some(ClusterError::transient("api server timeout")));
    let stopped = app.instances.stop(ann.id, db).await.unwrap();
    assert_eq!(stopped.status, InstanceStatus::Stopped);
    assert!(
        stopped
            .status_reason
            .unwrap()
            .contains("api server timeout")
    );
    assert_eq!(
        sb.cluster.instance(db).unwrap().run_state,
        RunState::Running
    );
    assert!(app.instances.resync().await.unwrap().failures >= 1);
    sb.cluster.script(|s| s.refuse_changes = None);
    app.instances.resync().await.unwrap();
    assert_eq!(
        sb.cluster.instance(db).unwrap().run_state,
        RunState::Stopped
    );
    assert_eq!(
        app.instances.get(ann.id, db).await.unwrap().status_reason,
        None
    );
    assert_ledger_consistent(&sb);
}

#[tokio::test]
async fn a_start_refused_for_a_busy_port_leaves_the_instance_stopped_and_says_why() {
    let (sb, app) = fresh().await;
    let (ann, token) = sign_in(&sb, &app, "ann@example.org").await;
    grant(&sb, &ann, 100, "ports").await;
    let ann = reload(&app, &token).await;
    let created = app
        .instances
        .create(&ann, name("cache"), preset(Engine::Redis, PresetSize::Tiny))
        .await
        .unwrap();
    let id = created.instance.id;
    app.instances.observe(&ready(id)).await.unwrap();
    app.instances.stop(ann.id, id).await.unwrap();
    // another program took the instance's port meanwhile
    let port = created.instance.node_port.unwrap().get();
    let busy = format!("port {port} is already in use");
    sb.cluster.script(|s| s.busy_ports = [port].into());
    let err = app.instances.start(ann.id, id).await.unwrap_err();
    match &err {
        InstanceActionError::PortBusy { message } => assert!(message.contains(&busy), "{message}"),
        other => panic!("expected the cluster's refusal, got {other:?}"),
    }
    let stored = app.instances.get(ann.id, id).await.unwrap();
    assert_eq!(stored.status, InstanceStatus::Stopped);
    let reason = stored.status_reason.unwrap_or_default();
    assert!(
        reason.contains("not started") && reason.contains(&busy),
        "{reason}"
    );
    assert_eq!(
        stored.node_port, created.instance.node_port,
        "it keeps its port"
    );
    assert_eq!(
        sb.cluster.instance(id).unwrap().run_state,
        RunState::Stopped,
        "the cluster was told to keep it stopped"
    );
    // once the port is free, it starts
    sb.cluster.script(|s| s.busy_ports.clear());
    let started = app.instances.start(ann.id, id).await.unwrap();
    assert_eq!(started.status, InstanceStatus::Running);
    assert_eq!(
        sb.cluster.instance(id).unwrap().run_state,
        RunState::Running
    );
    // any other cluster failure leaves a start pending (retried on resync), as before
    app.instances.stop(ann.id, id).await.unwrap();
    sb.cluster
        .script(|s| s.refuse_changes = Some(ClusterError::transient("api down")));
    let pending = app.instances.start(ann.id, id).await.unwrap();
    assert_eq!(pending.status, InstanceStatus::Running);
    assert!(
        pending
            .status_reason
            .unwrap_or_default()
            .contains("api down")
    );
    assert_ledger_consistent(&sb);
}
