//! A realistic cluster for the webhook benches: 2,000 live `DBInstance`s of 1,000 owners.

#![allow(dead_code)]

use std::sync::Arc;

use dbtree_adapters::kube::{DBInstance, RunStateSpec};
use dbtree_core::instance::{InstancePolicy, MilliCpu, NodeBudget, NodePortPolicy};
use dbtree_operator::webhook::{Snapshot, WebhookConfig};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::Event;
use serde_json::json;

use crate::support::{Obj, PLATFORM, fixture, set};

/// Instances in the cluster.
pub(crate) const LIVE_INSTANCES: usize = 2_000;

/// 1,000 owners with two instances each: 60 % running, 30 % stopped, 10 % paused, on NodePorts
/// 30000 upwards, on a node large enough to take more.
pub(crate) struct Cluster {
    objects: Vec<DBInstance>,
}

impl Cluster {
    pub(crate) fn new() -> Cluster {
        let mut ports = (30000..).filter(|p| *p != 30080);
        let objects = (0..LIVE_INSTANCES)
            .map(|i| {
                let owner = format!("user-{:04}", i / 2);
                let run_state = match i % 10 {
                    0..=5 => RunStateSpec::Running,
                    6..=8 => RunStateSpec::Stopped,
                    _ => RunStateSpec::Paused,
                };
                let port = ports.next().unwrap_or(32767);
                Obj::new(&owner, &format!("db-{}", i % 2), port)
                    .size(100 + 50 * (i % 3) as i32, 256 + 256 * (i % 4) as i32)
                    .run_state(run_state)
                    .build()
            })
            .collect();
        Cluster { objects }
    }

    /// Room for 2,000 more: 400 cores and 2 TiB, NodePorts up to 32767.
    pub(crate) fn config(&self) -> WebhookConfig {
        WebhookConfig::new(
            [PLATFORM],
            InstancePolicy {
                max_live_per_user: 2,
                budget: NodeBudget {
                    total_cpu: MilliCpu(400_000),
                    total_memory_mib: 2 * 1024 * 1024,
                    reserved_cpu: MilliCpu(500),
                    reserved_memory_mib: 1536,
                },
                node_ports: NodePortPolicy {
                    first: 30000,
                    last: 32767,
                    reserved: [30080].into(),
                },
            },
        )
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot::new(self.objects.iter().cloned().map(Arc::new).collect())
    }

    /// A reflector store holding the cluster, synced.
    pub(crate) fn store(&self) -> Store<DBInstance> {
        let (store, mut writer) = reflector::store();
        writer.apply_watcher_event(&Event::Init);
        for o in &self.objects {
            writer.apply_watcher_event(&Event::InitApply(o.clone()));
        }
        writer.apply_watcher_event(&Event::InitDone);
        // the writer may go: the store keeps what it holds
        store
    }

    /// A synced reflector store holding nothing.
    pub(crate) fn empty_store() -> Store<DBInstance> {
        let (store, mut writer) = reflector::store();
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitDone);
        store
    }

    /// An owner who already has two instances.
    pub(crate) fn busy_owner(&self) -> String {
        "user-0007".to_owned()
    }

    /// `kubectl apply` of a custom PostgreSQL instance by `user`, on a free port.
    pub(crate) fn create_body(&self, user: &str) -> Vec<u8> {
        let mut review = fixture("create_kubectl");
        set(&mut review, "/request/userInfo/username", json!(user));
        set(&mut review, "/request/object/spec/owner", json!(user));
        set(&mut review, "/request/object/spec/nodePort", json!(32700));
        serde_json::to_vec(&review).unwrap_or_default()
    }

    /// The platform starting a stopped instance of the cluster.
    pub(crate) fn start_body(&self) -> Vec<u8> {
        // instance 6 is stopped: owner user-0003, db-0, port 30006
        let mut review = fixture("update_start");
        for side in ["object", "oldObject"] {
            let stopped = self.objects[6].clone();
            let mut value = serde_json::to_value(&stopped).unwrap_or_default();
            if side == "object" {
                value["spec"]["runState"] = json!("Running");
            }
            set(&mut review, &format!("/request/{side}"), value);
        }
        set(
            &mut review,
            "/request/name",
            json!(self.objects[6].metadata.name),
        );
        set(
            &mut review,
            "/request/namespace",
            json!(self.objects[6].metadata.namespace),
        );
        serde_json::to_vec(&review).unwrap_or_default()
    }

    pub(crate) fn delete_body(&self) -> Vec<u8> {
        serde_json::to_vec(&fixture("delete")).unwrap_or_default()
    }
}
