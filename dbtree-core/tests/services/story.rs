//! The whole story: sign in → welcome bonus → quiz → correct answer → click → harvest → create an
//! instance → billing pass → pause → resume → delete.

use chrono::TimeDelta;
use dbtree_core::boundary::{Clock, InstanceStore, NodePortStore};
use dbtree_core::instance::{
    Engine, InstanceName, InstanceSpec, InstanceStatus, PresetSize, RunState,
};
use dbtree_core::ledger::EntryKind;
use dbtree_core::mail::Notification;

use super::helpers::*;

#[tokio::test]
async fn the_whole_story() {
    let (sb, app) = fresh().await;

    // Sign in: the code arrives by mail; a new account gets 15 lemons.
    app.accounts
        .request_code("Ann@Example.org", None)
        .await
        .unwrap();
    let code = sb.mailer.last_code_for("ann@example.org").unwrap();
    let signed = app
        .accounts
        .verify(" ann@example.org", &code, None)
        .await
        .unwrap();
    assert!(signed.new_user);
    assert_eq!(signed.profile.balance.get(), 15);
    assert!(
        sb.mailer
            .sent()
            .iter()
            .any(|e| matches!(e.notification, Notification::Welcome { .. }))
    );
    let token = signed.token.expose();
    let ann = reload(&app, &token).await;

    // Quiz, correct answer, click: +3.
    let receipt = win(&sb, &app, &ann, pos(4)).await;
    assert_eq!((receipt.reward.get(), receipt.balance_after.get()), (3, 18));
    let tree = app.tree.tree().await.unwrap();
    assert!(
        !tree
            .iter()
            .find(|l| l.position == pos(4))
            .unwrap()
            .is_ripe()
    );

    // Create a tiny Redis (3 + 1 h needed): 18 − 3 = 15.
    let spec = InstanceSpec::Preset {
        engine: Engine::Redis,
        size: PresetSize::Tiny,
    };
    let ann = reload(&app, &token).await;
    let created = app
        .instances
        .create(&ann, InstanceName::parse("cache-1").unwrap(), spec)
        .await
        .unwrap();
    let id = created.instance.id;
    assert_eq!(created.instance.node_port.unwrap().get(), 30000);
    assert_eq!(created.credentials.password.expose().len(), 24);
    assert_eq!(reload(&app, &token).await.balance.get(), 15);

    // The cluster reports it ready: running.
    let ready = dbtree_core::boundary::ClusterEvent {
        instance: id,
        observation: dbtree_core::boundary::Observation::Ready,
    };
    app.instances.observe(&ready).await.unwrap();
    assert_eq!(
        app.instances.get(ann.id, id).await.unwrap().status,
        InstanceStatus::Running
    );

    // Billing: 1 an hour, 15 hours' worth; then it runs dry and pauses.
    for hour in 0..15 {
        let report = app.billing.run_pass().await.unwrap();
        assert_eq!(report.charged, 1, "hour {hour}");
        // A second pass within the same hour charges nothing.
        assert_eq!(app.billing.run_pass().await.unwrap().charged, 0);
        sb.clock.advance(TimeDelta::hours(1));
    }
    assert_eq!(reload(&app, &token).await.balance.get(), 0);
    let report = app.billing.run_pass().await.unwrap();
    assert_eq!(report.paused, 1);
    assert_eq!(
        app.instances.get(ann.id, id).await.unwrap().status,
        InstanceStatus::Paused
    );
    assert_eq!(sb.cluster.instance(id).unwrap().run_state, RunState::Paused);
    assert!(
        sb.mailer
            .sent()
            .iter()
            .any(|e| matches!(e.notification, Notification::InstancePaused { .. }))
    );

    // Harvest again (cooldown long over): the next pass resumes it and charges the hour.
    sb.clock.advance(TimeDelta::minutes(10));
    let ann = reload(&app, &token).await;
    let receipt = win(&sb, &app, &ann, pos(7)).await;
    assert_eq!(receipt.balance_after.get(), 3);
    let report = app.billing.run_pass().await.unwrap();
    assert_eq!((report.resumed, report.lemons_charged), (1, 1));
    assert_eq!(
        app.instances.get(ann.id, id).await.unwrap().status,
        InstanceStatus::Running
    );
    assert_eq!(
        sb.cluster.instance(id).unwrap().run_state,
        RunState::Running
    );
    assert!(
        sb.mailer
            .sent()
            .iter()
            .any(|e| matches!(e.notification, Notification::InstanceResumed { .. }))
    );

    // Delete: gone from the cluster, port free, kept in the ledger.
    let deleted = app.instances.delete(ann.id, id).await.unwrap();
    assert_eq!(deleted.status, InstanceStatus::Deleted);
    assert!(sb.cluster.instance(id).is_none());
    assert!(sb.store.node_ports().await.unwrap().is_empty());
    assert!(app.instances.list(ann.id).await.unwrap().is_empty());
    assert_eq!(
        sb.store.instance(id).await.unwrap().unwrap().status,
        InstanceStatus::Deleted
    );

    // Every balance change is in the ledger.
    let kinds: Vec<EntryKind> = sb.store.all_entries().iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == EntryKind::InstanceHourly)
            .count(),
        16
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == EntryKind::Harvest).count(),
        2
    );
    assert_eq!(kinds[0], EntryKind::WelcomeBonus);
    assert_ledger_consistent(&sb);
    let _ = sb.clock.now();
}
