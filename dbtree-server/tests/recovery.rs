//! Crash recovery of instance creation on the embedded default (a SQLite file and the local
//! engine driver): a provisioning killed between the debit and the cluster call, or after the
//! cluster call but before the response, is settled after a restart: the instance either
//! completes or is refunded — never both, never neither — and balances equal ledger sums.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod recovery {
    pub(crate) mod machine;
}

use chrono::{TimeDelta, Utc};
use dbtree_adapters::sqlite::SqliteStore;
use dbtree_core::boundary::{InstanceStore, LedgerStore, NodePortStore, ProvisionRequest, User};
use dbtree_core::ids::InstanceId;
use dbtree_core::instance::{Engine, InstanceName, InstanceSpec, InstanceStatus, PresetSize};
use dbtree_core::ledger::{EntryKind, LedgerEntry};
use dbtree_core::service::ResyncReport;
use dbtree_core::stats::PageRequest;
use redis::AsyncCommands;

use recovery::machine::{CrashPoint, DEADLINE, Disk, Machine, eventually, refused};

const TINY_REDIS: InstanceSpec = InstanceSpec::Preset {
    engine: Engine::Redis,
    size: PresetSize::Tiny,
};

/// Starts creating a tiny Redis instance and kills the creation once it reaches the machine's
/// crash point; returns what was sent to the cluster (the instance, its port, its password).
async fn create_and_kill(machine: &Machine, owner: &User, name: &str) -> ProvisionRequest {
    let crashing = machine.crashing.clone().unwrap();
    let (app, owner, name) = (
        machine.app.clone(),
        owner.clone(),
        InstanceName::parse(name).unwrap(),
    );
    let creation =
        tokio::spawn(async move { app.instances.create(&owner, name, TINY_REDIS).await });
    tokio::time::timeout(DEADLINE, crashing.reached.notified())
        .await
        .expect("the creation never reached the crash point");
    creation.abort();
    assert!(creation.await.unwrap_err().is_cancelled());
    crashing.request.lock().unwrap().clone().unwrap()
}

async fn entries(store: &SqliteStore, user: &User) -> Vec<LedgerEntry> {
    let page = PageRequest {
        limit: 100,
        offset: 0,
    };
    let mut items = store.history(user.id, None, page).await.unwrap().items;
    items.reverse();
    items
}

async fn balance(store: &SqliteStore, user: &User) -> i64 {
    i64::from(store.balance(user.id).await.unwrap().unwrap().get())
}

/// The instance completed or was refunded, exactly one of the two: one creation debit, at most
/// one refund, a refund exactly when it is in `error`, and balance = Σ entries everywhere.
async fn settled_exactly_once(store: &SqliteStore, user: &User, id: InstanceId) {
    let entries = entries(store, user).await;
    let of = |kind| {
        entries
            .iter()
            .filter(|e| e.kind == kind && e.instance == Some(id))
            .count()
    };
    let status = store.instance(id).await.unwrap().unwrap().status;
    let (debits, refunds) = (of(EntryKind::InstanceCreate), of(EntryKind::InstanceRefund));
    assert_eq!(debits, 1, "{entries:#?}");
    match status {
        InstanceStatus::Error => assert_eq!(refunds, 1, "refunded once: {entries:#?}"),
        InstanceStatus::Running | InstanceStatus::Deleted => {
            assert_eq!(refunds, 0, "completed and refunded: {entries:#?}")
        }
        other => panic!("neither completed nor refunded: {other}"),
    }
    let sum: i64 = entries.iter().map(|e| e.delta).sum();
    assert_eq!(balance(store, user).await, sum);
    let report = store.check_invariants().await.unwrap();
    assert!(report.is_clean(), "{report}");
}

fn kinds(entries: &[LedgerEntry]) -> Vec<(EntryKind, i64)> {
    entries.iter().map(|e| (e.kind, e.delta)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_debit_and_cluster_call_is_refunded_exactly_once_after_restart() {
    let disk = Disk::new();
    let t0 = Utc::now();
    let first = disk.boot(t0, Some(CrashPoint::BeforeClusterCall)).await;
    let user = first.sign_in().await;
    let request = create_and_kill(&first, &user, "cache").await;
    let id = request.instance;
    let port = request.node_port;
    // at the crash: debited, recorded as provisioning with its port, unknown to the engines
    assert_eq!(balance(&first.store, &user).await, 12);
    let crashed = first.store.instance(id).await.unwrap().unwrap();
    assert_eq!(
        (crashed.status, crashed.node_port),
        (InstanceStatus::Provisioning, Some(port))
    );
    first.crash().await;
    assert!(!disk.instance_dir(id).exists());

    // restarted four minutes later: a provisioning that may still be running is left alone
    let mut second = disk.boot(t0 + TimeDelta::minutes(4), None).await;
    let report = second.app.instances.resync().await.unwrap();
    assert_eq!(report.interrupted_refunded, 0, "{report:?}");
    assert_eq!(
        second.store.instance(id).await.unwrap().unwrap().status,
        InstanceStatus::Provisioning
    );

    // past the five-minute window, the cluster does not know it: refunded, port released
    second.clock.advance(TimeDelta::minutes(2));
    let report = second.app.instances.resync().await.unwrap();
    assert_eq!(
        (report.interrupted_refunded, report.failures),
        (1, 0),
        "{report:?}"
    );
    let failed = second.store.instance(id).await.unwrap().unwrap();
    assert_eq!(failed.status, InstanceStatus::Error);
    assert!(
        failed
            .status_reason
            .as_deref()
            .is_some_and(|r| r.contains("interrupted")),
        "{:?}",
        failed.status_reason
    );
    assert_eq!(failed.node_port, None);
    assert!(second.store.node_ports().await.unwrap().is_empty());
    let after = entries(&second.store, &user).await;
    assert_eq!(
        kinds(&after),
        [
            (EntryKind::WelcomeBonus, 15),
            (EntryKind::InstanceCreate, -3),
            (EntryKind::InstanceRefund, 3)
        ]
    );
    assert_eq!(after[2].key.as_str(), format!("refund:{id}"));
    assert_eq!(balance(&second.store, &user).await, 15);
    settled_exactly_once(&second.store, &user, id).await;

    // a second resync (another replica, the next pass) changes nothing
    let again = second.app.instances.resync().await.unwrap();
    assert_eq!(again, ResyncReport::default());
    assert_eq!(entries(&second.store, &user).await, after);
    assert_eq!(second.store.instance(id).await.unwrap().unwrap(), failed);
    settled_exactly_once(&second.store, &user, id).await;

    // the released port serves the next instance, a real one
    second.follow();
    let next = second
        .app
        .instances
        .create(&user, InstanceName::parse("cache").unwrap(), TINY_REDIS)
        .await
        .unwrap();
    assert_eq!(next.instance.node_port, Some(port));
    let next_id = next.instance.id;
    eventually("the new instance runs", || async {
        let i = second.store.instance(next_id).await.unwrap().unwrap();
        assert_ne!(i.status, InstanceStatus::Error, "{:?}", i.status_reason);
        (i.status == InstanceStatus::Running).then_some(())
    })
    .await;
    second.app.instances.delete(user.id, next_id).await.unwrap();
    assert!(refused(port.get()));
    assert!(!disk.instance_dir(next_id).exists());
    settled_exactly_once(&second.store, &user, id).await;
    second.crash().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_cluster_call_completes_after_restart_without_refund() {
    let disk = Disk::new();
    let t0 = Utc::now();
    let first = disk.boot(t0, Some(CrashPoint::AfterClusterCall)).await;
    let user = first.sign_in().await;
    let request = create_and_kill(&first, &user, "cache").await;
    let id = request.instance;
    let port = request.node_port;
    assert_eq!(balance(&first.store, &user).await, 12);
    assert_eq!(
        first.store.instance(id).await.unwrap().unwrap().status,
        InstanceStatus::Provisioning
    );
    first.crash().await;
    assert!(
        disk.instance_dir(id).join("instance.json").exists(),
        "the driver had not recorded the instance"
    );

    // restarted past the five-minute window: the cluster knows it, so it is not refunded …
    let mut second = disk.boot(t0 + TimeDelta::minutes(6), None).await;
    let report = second.app.instances.resync().await.unwrap();
    assert_eq!(
        (report.interrupted_refunded, report.failures),
        (0, 0),
        "{report:?}"
    );
    // … and following the cluster finishes it
    second.follow();
    eventually("the adopted instance runs", || async {
        let i = second.store.instance(id).await.unwrap().unwrap();
        assert_ne!(i.status, InstanceStatus::Error, "{:?}", i.status_reason);
        (i.status == InstanceStatus::Running).then_some(())
    })
    .await;
    let report = second.app.instances.resync().await.unwrap();
    assert_eq!(report.interrupted_refunded, 0, "{report:?}");
    assert_eq!(
        kinds(&entries(&second.store, &user).await),
        [
            (EntryKind::WelcomeBonus, 15),
            (EntryKind::InstanceCreate, -3)
        ]
    );
    assert_eq!(balance(&second.store, &user).await, 12);
    assert_eq!(
        second.store.node_ports().await.unwrap(),
        [(port, id)],
        "the running instance keeps its port"
    );
    settled_exactly_once(&second.store, &user, id).await;

    // it is the real engine, with the password the lost response carried
    let url = format!(
        "redis://dbtree:{}@127.0.0.1:{}/0",
        request.credentials.password.expose(),
        port.get()
    );
    let mut con = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let () = con.set("fruit", "lemon").await.unwrap();
    let fruit: String = con.get("fruit").await.unwrap();
    assert_eq!(fruit, "lemon");
    drop(con);

    let deleted = second.app.instances.delete(user.id, id).await.unwrap();
    assert_eq!(deleted.status, InstanceStatus::Deleted);
    assert!(refused(port.get()));
    assert!(!disk.instance_dir(id).exists());
    assert!(second.store.node_ports().await.unwrap().is_empty());
    settled_exactly_once(&second.store, &user, id).await;
    second.crash().await;
}
