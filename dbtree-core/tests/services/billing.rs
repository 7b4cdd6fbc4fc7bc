//! Hourly billing: once per hour, pause, resume, delete after the grace period.

use chrono::TimeDelta;
use dbtree_core::boundary::{ClusterEvent, NodePortStore, Observation};
use dbtree_core::instance::{
    Engine, InstanceName, InstanceSpec, InstanceStatus, PresetSize, RunState,
};
use dbtree_core::ledger::EntryKind;
use dbtree_core::mail::Notification;

use super::helpers::*;

async fn running_instance(
    sb: &dbtree_adapters::memory::Sandbox,
    app: &dbtree_core::service::App,
    email: &str,
    spec: InstanceSpec,
) -> (
    dbtree_core::boundary::User,
    String,
    dbtree_core::ids::InstanceId,
) {
    let (user, token) = sign_in(sb, app, email).await;
    let id = app
        .instances
        .create(&user, InstanceName::parse("billed").unwrap(), spec)
        .await
        .unwrap()
        .instance
        .id;
    app.instances
        .observe(&ClusterEvent {
            instance: id,
            observation: Observation::Ready,
        })
        .await
        .unwrap();
    (user, token, id)
}

#[tokio::test]
async fn each_hour_is_charged_once_however_many_passes_run() {
    let (sb, app) = fresh().await;
    let (_, token, _) = running_instance(
        &sb,
        &app,
        "ann@example.org",
        InstanceSpec::Preset {
            engine: Engine::Redis,
            size: PresetSize::Tiny,
        },
    )
    .await;
    let passes = futures_util_join(&app, 4).await;
    assert_eq!(passes.iter().map(|r| r.charged).sum::<u32>(), 1);
    assert_eq!(reload(&app, &token).await.balance.get(), 15 - 3 - 1);
    sb.clock.advance(TimeDelta::minutes(59));
    assert_eq!(
        app.billing.run_pass().await.unwrap().charged,
        0,
        "still the same clock hour? no: 09:59"
    );
    sb.clock.advance(TimeDelta::minutes(1));
    assert_eq!(app.billing.run_pass().await.unwrap().charged, 1);
    let hourly = sb
        .store
        .all_entries()
        .into_iter()
        .filter(|e| e.kind == EntryKind::InstanceHourly)
        .count();
    assert_eq!(hourly, 2);
}

async fn futures_util_join(
    app: &dbtree_core::service::App,
    n: usize,
) -> Vec<dbtree_core::service::BillingReport> {
    let mut handles = Vec::new();
    for _ in 0..n {
        let billing = app.billing.clone();
        handles.push(tokio::spawn(
            async move { billing.run_pass().await.unwrap() },
        ));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn short_balance_pauses_then_the_grace_period_deletes() {
    let (sb, app) = fresh().await;
    // medium postgres: 20 + 3; give exactly enough to create and run one hour
    let spec = InstanceSpec::Preset {
        engine: Engine::Postgresql,
        size: PresetSize::Medium,
    };
    let (user, token) = sign_in(&sb, &app, "bob@example.org").await;
    grant(&sb, &user, 8, "topup").await; // 23
    let user = reload(&app, &token).await;
    let id = app
        .instances
        .create(&user, InstanceName::parse("pg-1").unwrap(), spec)
        .await
        .unwrap()
        .instance
        .id;
    app.instances
        .observe(&ClusterEvent {
            instance: id,
            observation: Observation::Ready,
        })
        .await
        .unwrap();
    assert_eq!(app.billing.run_pass().await.unwrap().charged, 1); // 3 → 0
    sb.clock.advance(TimeDelta::hours(1));
    let report = app.billing.run_pass().await.unwrap();
    assert_eq!(report.paused, 1);
    let paused = app.instances.get(user.id, id).await.unwrap();
    assert_eq!(paused.status, InstanceStatus::Paused);
    assert!(paused.paused_at.is_some());
    assert_eq!(sb.cluster.instance(id).unwrap().run_state, RunState::Paused);
    sb.clock.advance(TimeDelta::minutes(59));
    let report = app.billing.run_pass().await.unwrap();
    assert_eq!(
        (report.deleted, report.skipped),
        (0, 1),
        "within the grace period"
    );
    sb.clock.advance(TimeDelta::minutes(1));
    let report = app.billing.run_pass().await.unwrap();
    assert_eq!(report.deleted, 1);
    assert!(sb.cluster.instance(id).is_none());
    assert!(
        sb.store.node_ports().await.unwrap().is_empty(),
        "the port is released"
    );
    assert!(app.instances.list(user.id).await.unwrap().is_empty());
    let mails: Vec<_> = sb
        .mailer
        .sent()
        .into_iter()
        .filter(|e| e.to.as_str() == "bob@example.org")
        .collect();
    assert!(
        mails
            .iter()
            .any(|e| matches!(e.notification, Notification::InstancePaused { .. }))
    );
    assert!(
        mails
            .iter()
            .any(|e| matches!(e.notification, Notification::InstanceDeleted { .. }))
    );
    assert_ledger_consistent(&sb);
}

#[tokio::test]
async fn a_paused_instance_does_not_resume_into_a_full_node() {
    let (sb, app) = fresh().await;
    let large = InstanceSpec::Preset {
        engine: Engine::Mongodb,
        size: PresetSize::Large,
    };
    let (ann, token) = sign_in(&sb, &app, "cy@example.org").await;
    grant(&sb, &ann, 40, "cy").await; // 55
    let ann = reload(&app, &token).await;
    let id = app
        .instances
        .create(&ann, InstanceName::parse("mongo").unwrap(), large)
        .await
        .unwrap()
        .instance
        .id;
    app.instances
        .observe(&ClusterEvent {
            instance: id,
            observation: Observation::Ready,
        })
        .await
        .unwrap();
    let balance = reload(&app, &token).await.balance.get();
    spend(&sb, &ann, balance, "cy-drain").await;
    assert_eq!(app.billing.run_pass().await.unwrap().paused, 1);
    // meanwhile others fill the node
    for i in 0..2 {
        let (u, t) = sign_in(&sb, &app, &format!("big{i}@example.org")).await;
        grant(&sb, &u, 100, &format!("big{i}")).await;
        let u = reload(&app, &t).await;
        app.instances
            .create(&u, InstanceName::parse("big").unwrap(), large)
            .await
            .unwrap();
    }
    grant(&sb, &ann, 50, "cy-topup").await;
    sb.clock.advance(TimeDelta::hours(2));
    let report = app.billing.run_pass().await.unwrap();
    assert_eq!((report.resumed, report.deleted), (0, 0));
    let still = app.instances.get(ann.id, id).await.unwrap();
    assert_eq!(
        still.status,
        InstanceStatus::Paused,
        "no room, but affordable: kept, not deleted"
    );
}
