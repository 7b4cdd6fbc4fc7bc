#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use kube::runtime::reflector;
use kube::runtime::watcher::Event;
use serde_json::json;

use super::*;
use crate::webhook::Snapshot;

/// An instance `name` of `owner` on `port`; `provisioned` sets `Provisioned=True` in its status.
fn dbi(name: &str, owner: &str, port: i32, provisioned: bool) -> DBInstance {
    let condition = if provisioned { "True" } else { "False" };
    serde_json::from_value(json!({
        "apiVersion": "dbtree.cloud/v1",
        "kind": "DBInstance",
        "metadata": { "name": name, "namespace": format!("ns-{owner}"), "uid": format!("uid-{name}") },
        "spec": {
            "engine": "redis",
            "preset": "tiny",
            "resources": { "cpuMillis": 100, "memoryMib": 512, "diskGib": 2 },
            "owner": owner,
            "instanceId": name,
            "displayName": name,
            "nodePort": port,
            "runState": "Running",
            "secretRef": { "name": format!("{name}-credentials") },
        },
        "status": {
            "phase": "Provisioning",
            "conditions": [{
                "type": "Provisioned", "status": condition, "reason": "r", "message": "m",
                "lastTransitionTime": "2026-11-25T00:00:00Z",
            }],
        },
    }))
    .unwrap()
}

fn deleting(mut d: DBInstance) -> DBInstance {
    d.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).unwrap(),
    ));
    d
}

fn stopped(mut d: DBInstance) -> DBInstance {
    d.spec.run_state = dbtree_adapters::kube::RunStateSpec::Stopped;
    d
}

fn decide(target: &DBInstance, others: Vec<DBInstance>) -> Option<Contention> {
    let mut all: Vec<Arc<DBInstance>> = others.into_iter().map(Arc::new).collect();
    all.push(Arc::new(target.clone()));
    contention(target, &Snapshot::new(all), &provisioned, 2)
}

#[test]
fn under_the_limit_and_on_a_free_port_is_admitted() {
    let target = dbi("c", "alice", 30003, false);
    assert_eq!(decide(&target, vec![dbi("a", "alice", 30001, true)]), None);
    assert_eq!(decide(&target, vec![]), None);
}

#[test]
fn a_third_live_instance_of_an_owner_waits() {
    let target = dbi("c", "alice", 30003, false);
    let verdict = decide(
        &target,
        vec![
            dbi("b", "alice", 30002, true),
            stopped(dbi("a", "alice", 30001, true)),
        ],
    );
    let Some(contention) = verdict else {
        panic!("a third instance was admitted")
    };
    assert_eq!(
        contention,
        Contention::OwnerLimit {
            owner: "alice".into(),
            limit: 2,
            granted: vec!["ns-alice/a".into(), "ns-alice/b".into()],
        }
    );
    assert_eq!(contention.reason(), "OwnerLimitReached");
    let message = contention.to_string();
    assert!(message.contains("ns-alice/a, ns-alice/b"), "{message}");
    assert!(message.contains("delete one"), "{message}");
}

#[test]
fn only_granted_live_instances_of_the_same_owner_count() {
    let target = dbi("c", "alice", 30003, false);
    // not granted yet (the other side of the same race), another owner's, and one deleting
    let others = vec![
        dbi("b", "alice", 30002, false),
        dbi("x", "bob", 30010, true),
        dbi("y", "bob", 30011, true),
        deleting(dbi("a", "alice", 30001, true)),
        dbi("z", "alice", 30012, true),
    ];
    assert_eq!(decide(&target, others), None);
}

#[test]
fn a_port_held_by_a_granted_instance_waits_even_while_it_is_deleted() {
    let target = dbi("c", "alice", 30001, false);
    let held = decide(&target, vec![deleting(dbi("a", "bob", 30001, true))]);
    assert_eq!(
        held,
        Some(Contention::NodePortTaken {
            port: 30001,
            holder: "ns-bob/a".into(),
        })
    );
    assert_eq!(held.unwrap().reason(), "NodePortTaken");
    // an ungranted claimant of the same port does not block it
    assert_eq!(decide(&target, vec![dbi("a", "bob", 30001, false)]), None);
}

#[test]
fn a_granted_instance_stays_granted_whatever_else_exists() {
    let target = dbi("c", "alice", 30001, true);
    let others = vec![
        dbi("a", "alice", 30001, true),
        dbi("b", "alice", 30002, true),
    ];
    assert_eq!(decide(&target, others), None);
}

fn store_of(objects: Vec<DBInstance>) -> (Store<DBInstance>, reflector::store::Writer<DBInstance>) {
    let (reader, mut writer) = reflector::store::<DBInstance>();
    writer.apply_watcher_event(&Event::Init);
    for object in objects {
        writer.apply_watcher_event(&Event::InitApply(object));
    }
    writer.apply_watcher_event(&Event::InitDone);
    (reader, writer)
}

/// The race the webhook cannot close: five creations of one owner (each admitted by a webhook
/// replica whose cache had not seen the others) and two of another owner's on one port, all
/// reconciled at once. The arbiter grants exactly the limit, and one holder per port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_admissions_grant_exactly_the_limit() {
    let racers: Vec<DBInstance> = (0..5)
        .map(|i| dbi(&format!("r{i}"), "alice", 30100 + i, false))
        .chain((0..2).map(|i| dbi(&format!("p{i}"), "bob", 30200, false)))
        .collect();
    let (store, _writer) = store_of(racers.clone());
    let arbiter = Arc::new(Arbiter::new(2));
    arbiter.watch(store);
    let tasks: Vec<_> = racers
        .into_iter()
        .map(|d| {
            let arbiter = Arc::clone(&arbiter);
            tokio::spawn(async move { (d.spec.owner.clone(), arbiter.admit(&d).await) })
        })
        .collect();
    let mut admitted = std::collections::BTreeMap::<String, usize>::new();
    let mut refused = Vec::new();
    for task in tasks {
        let (owner, verdict) = task.await.unwrap();
        match verdict {
            Ok(()) => *admitted.entry(owner).or_default() += 1,
            Err(contention) => refused.push(contention.reason()),
        }
    }
    assert_eq!(admitted.get("alice"), Some(&2));
    assert_eq!(admitted.get("bob"), Some(&1), "two holders of port 30200");
    refused.sort_unstable();
    assert_eq!(
        refused,
        vec![
            "NodePortTaken",
            "OwnerLimitReached",
            "OwnerLimitReached",
            "OwnerLimitReached"
        ]
    );
    assert_eq!(arbiter.granted_count(), 3);
    assert_eq!(arbiter.held_back_count(), 4);
}

#[tokio::test]
async fn a_grant_is_kept_on_readmission_and_freed_by_release() {
    let a = dbi("a", "alice", 30001, false);
    let b = dbi("b", "alice", 30002, false);
    let c = dbi("c", "alice", 30003, false);
    let (store, mut writer) = store_of(vec![a.clone(), b.clone(), c.clone()]);
    let arbiter = Arbiter::new(2);
    arbiter.watch(store);
    assert_eq!(arbiter.admit(&a).await, Ok(()));
    assert_eq!(arbiter.admit(&b).await, Ok(()));
    assert_eq!(arbiter.admit(&a).await, Ok(()), "re-admission of a grant");
    assert!(arbiter.admit(&c).await.is_err());
    assert_eq!(arbiter.held_back_count(), 1);
    // `a` is deleted: while it is in the cache as deleting it no longer counts against the
    // owner, and once its cleanup ends its grant is forgotten
    writer.apply_watcher_event(&Event::Apply(deleting(a.clone())));
    assert_eq!(arbiter.admit(&c).await, Ok(()));
    assert_eq!(arbiter.held_back_count(), 0);
    arbiter.release(&a);
    writer.apply_watcher_event(&Event::Delete(a));
    assert_eq!(arbiter.granted_count(), 2);
}
