//! The live `DBInstance`s the webhook decides against: the reflector cache itself, or a
//! point-in-time copy of it.

use std::cell::RefCell;
use std::sync::Arc;

use dbtree_adapters::kube::{DBInstance, Phase, ResourcesSpec, RunStateSpec};
use dbtree_core::instance::{InstanceStatus, MilliCpu, Resources};
use kube::runtime::reflector::Store;

/// Every `DBInstance` in the cluster as the cache saw it when the request arrived.
///
/// Holding `Arc`s, taking a snapshot copies pointers, not objects; a review scans it once.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    objects: Vec<Arc<DBInstance>>,
}

impl Snapshot {
    /// A snapshot of exactly these objects.
    pub fn new(objects: Vec<Arc<DBInstance>>) -> Self {
        Self { objects }
    }

    /// What the reflector's store holds right now.
    pub fn from_store(store: &Store<DBInstance>) -> Self {
        Self::new(store.state())
    }

    /// How many objects it holds.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

/// What a review reads: every `DBInstance` the webhook knows of, each visited once.
pub trait LiveInstances {
    /// Calls `visit` with every object.
    fn for_each_instance(&self, visit: &mut dyn FnMut(&DBInstance));
}

impl LiveInstances for Snapshot {
    fn for_each_instance(&self, visit: &mut dyn FnMut(&DBInstance)) {
        self.objects.iter().for_each(|o| visit(o));
    }
}

/// The reflector's store, read in place under its read lock: no copy, and no reference count
/// touched, so concurrent reviews on several cores do not contend on shared counters.
impl LiveInstances for Store<DBInstance> {
    fn for_each_instance(&self, visit: &mut dyn FnMut(&DBInstance)) {
        let visit = RefCell::new(visit);
        // a predicate that keeps nothing: `state_filter` is the store's only in-place walk
        let kept = self.state_filter(|o| {
            (*visit.borrow_mut())(o);
            false
        });
        debug_assert!(kept.is_empty());
    }
}

/// Whether `object` is the one at `namespace`/`name` (the object under review).
pub(crate) fn is_at(object: &DBInstance, namespace: Option<&str>, name: &str) -> bool {
    let meta = &object.metadata;
    meta.namespace.as_deref() == namespace && meta.name.as_deref() == Some(name)
}

impl From<Vec<Arc<DBInstance>>> for Snapshot {
    fn from(objects: Vec<Arc<DBInstance>>) -> Self {
        Self::new(objects)
    }
}

/// Where an object stands in dbtree's state machine, as far as quotas are concerned:
///
/// - being deleted (`deletionTimestamp` set): `deleting` (no longer live, but it keeps its
///   resources and its NodePort until it is gone);
/// - desired `Stopped` / `Paused`: `stopped` / `paused` (live, holds no capacity);
/// - desired `Running`: `running` once the operator reports `Ready`, `provisioning` otherwise,
///   including `Failed`, which the operator keeps retrying (live, holds capacity).
///
/// Whether a state counts is then decided by `dbtree-core` (`is_live`, `holds_resources`).
pub fn instance_status(object: &DBInstance) -> InstanceStatus {
    if object.metadata.deletion_timestamp.is_some() {
        return InstanceStatus::Deleting;
    }
    match object.spec.run_state {
        RunStateSpec::Stopped => InstanceStatus::Stopped,
        RunStateSpec::Paused => InstanceStatus::Paused,
        RunStateSpec::Running => {
            let phase = object.status.as_ref().and_then(|s| s.phase);
            match phase {
                Some(Phase::Ready) => InstanceStatus::Running,
                Some(Phase::Provisioning | Phase::Stopped | Phase::Failed) | None => {
                    InstanceStatus::Provisioning
                }
            }
        }
    }
}

/// What an existing object holds, read leniently: a negative number (an object written before
/// the webhook guarded the cluster) counts as zero rather than failing the review of another.
pub(crate) fn held_resources(spec: &ResourcesSpec) -> Resources {
    let non_negative = |v: i32| u32::try_from(v).unwrap_or(0);
    Resources {
        cpu: MilliCpu(non_negative(spec.cpu_millis)),
        memory_mib: non_negative(spec.memory_mib),
        disk_gib: non_negative(spec.disk_gib),
    }
}
