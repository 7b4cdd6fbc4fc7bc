//! The controller's own check of the per-owner limit and of NodePort uniqueness: the line of
//! defence behind the webhook.
//!
//! Each webhook replica answers from its own cache, so two creations that reach two replicas
//! within the same instant can both be admitted: neither cache has seen the other object yet.
//! The controller runs as a single leader, so it can decide without that race. Before it
//! applies any child it asks the [`Arbiter`], which under one lock grants the instance or says
//! why not:
//!
//! - an instance is *granted* once the arbiter has admitted it in this process, or when its
//!   status says `Provisioned=True` (granted by an earlier leader);
//! - counting granted instances only, a new one is admitted when its owner has fewer than the
//!   limit live (deleting ones do not count, as in `dbtree-core`) and no other granted
//!   instance, deleting or not, holds its NodePort.
//!
//! A granted instance stays granted, so a provisioned database is never taken away because of
//! a later object. The instance that lost shows phase `Failed` with the reason and is looked
//! at again periodically: once its owner deletes one of the others, it is provisioned.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Mutex, OnceLock, PoisonError};

use dbtree_adapters::kube::DBInstance;
use kube::ResourceExt;
use kube::runtime::reflector::Store;

use crate::status::PROVISIONED;
use crate::webhook::{LiveInstances, instance_status};

/// Why an instance may not be provisioned now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Contention {
    /// Its owner already has `limit` granted live instances.
    OwnerLimit {
        /// `spec.owner`.
        owner: String,
        /// The per-owner limit.
        limit: u32,
        /// `namespace/name` of the granted live instances, sorted.
        granted: Vec<String>,
    },
    /// Another granted instance holds the NodePort.
    NodePortTaken {
        /// `spec.nodePort`.
        port: i32,
        /// `namespace/name` of the holder.
        holder: String,
    },
}

impl fmt::Display for Contention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OwnerLimit {
                owner,
                limit,
                granted,
            } => write!(
                f,
                "owner {owner:?} already has {limit} live instances ({}); delete one of them \
                 and this instance is provisioned",
                granted.join(", ")
            ),
            Self::NodePortTaken { port, holder } => write!(
                f,
                "NodePort {port} is held by {holder}; this instance waits until it is released"
            ),
        }
    }
}

impl Contention {
    /// The condition reason for it.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::OwnerLimit { .. } => "OwnerLimitReached",
            Self::NodePortTaken { .. } => "NodePortTaken",
        }
    }
}

/// Whether `target` may be provisioned, given every instance the controller knows of, which of
/// them are granted, and the per-owner limit. `None` means yes. A pure function: the
/// [`Arbiter`] calls it under its lock.
pub fn contention(
    target: &DBInstance,
    instances: &dyn LiveInstances,
    granted: &dyn Fn(&DBInstance) -> bool,
    limit: u32,
) -> Option<Contention> {
    if granted(target) {
        return None;
    }
    let mut owner_granted = Vec::new();
    let mut port_holder = None;
    instances.for_each_instance(&mut |other| {
        if same_object(other, target) || !granted(other) {
            return;
        }
        if other.spec.owner == target.spec.owner && instance_status(other).is_live() {
            owner_granted.push(key_of(other));
        }
        if other.spec.node_port == target.spec.node_port && port_holder.is_none() {
            port_holder = Some(key_of(other));
        }
    });
    if u32::try_from(owner_granted.len()).unwrap_or(u32::MAX) >= limit {
        owner_granted.sort();
        return Some(Contention::OwnerLimit {
            owner: target.spec.owner.clone(),
            limit,
            granted: owner_granted,
        });
    }
    port_holder.map(|holder| Contention::NodePortTaken {
        port: target.spec.node_port,
        holder,
    })
}

/// Whether the instance's status records that its children were applied.
pub fn provisioned(dbi: &DBInstance) -> bool {
    dbi.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == PROVISIONED && c.status == "True")
    })
}

/// Grants instances one at a time (see the module documentation).
#[derive(Debug)]
pub struct Arbiter {
    limit: u32,
    instances: OnceLock<Store<DBInstance>>,
    books: Mutex<Books>,
}

/// Identities of the instances granted, and of those last refused.
#[derive(Debug, Default)]
struct Books {
    granted: HashSet<String>,
    held_back: HashSet<String>,
}

impl Arbiter {
    /// An arbiter enforcing `limit` live instances per owner, knowing no instances until
    /// [`Arbiter::watch`] gives it the controller's cache.
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            instances: OnceLock::new(),
            books: Mutex::new(Books::default()),
        }
    }

    /// Decides from `store` from now on. Only the first call has an effect.
    pub fn watch(&self, store: Store<DBInstance>) {
        let _ = self.instances.set(store);
    }

    /// Grants `dbi`, or says why not. Waits until the cache has listed every instance once, so
    /// that a fresh leader does not grant against an empty cache.
    ///
    /// # Errors
    /// The [`Contention`] that keeps it from being provisioned now.
    pub async fn admit(&self, dbi: &DBInstance) -> Result<(), Contention> {
        let store = self.instances.get();
        if let Some(store) = store {
            // Err only when the writer is gone, i.e. the controller is shutting down.
            let _ = store.wait_until_ready().await;
        }
        let mut books = self.books.lock().unwrap_or_else(PoisonError::into_inner);
        let is_granted = |o: &DBInstance| books.granted.contains(&identity(o)) || provisioned(o);
        let verdict = match store {
            Some(store) => contention(dbi, store, &is_granted, self.limit),
            None => contention(dbi, &NoInstances, &is_granted, self.limit),
        };
        let id = identity(dbi);
        match verdict {
            None => {
                books.held_back.remove(&id);
                books.granted.insert(id);
                Ok(())
            }
            Some(contention) => {
                books.held_back.insert(id);
                Err(contention)
            }
        }
    }

    /// Forgets `dbi` once its deletion is complete.
    pub fn release(&self, dbi: &DBInstance) {
        let id = identity(dbi);
        let mut books = self.books.lock().unwrap_or_else(PoisonError::into_inner);
        books.granted.remove(&id);
        books.held_back.remove(&id);
    }

    /// How many instances this process has granted and not released.
    pub fn granted_count(&self) -> usize {
        self.books
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .granted
            .len()
    }

    /// How many instances were refused at their last admission and are not deleted.
    pub fn held_back_count(&self) -> usize {
        self.books
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .held_back
            .len()
    }
}

struct NoInstances;

impl LiveInstances for NoInstances {
    fn for_each_instance(&self, _visit: &mut dyn FnMut(&DBInstance)) {}
}

/// The uid when there is one (always, from an API server), else `namespace/name`.
fn identity(dbi: &DBInstance) -> String {
    dbi.uid().unwrap_or_else(|| key_of(dbi))
}

fn same_object(a: &DBInstance, b: &DBInstance) -> bool {
    match (a.uid(), b.uid()) {
        (Some(x), Some(y)) => x == y,
        _ => key_of(a) == key_of(b),
    }
}

/// `namespace/name` of an instance, as logs and messages name it.
pub(crate) fn key_of(dbi: &DBInstance) -> String {
    format!("{}/{}", dbi.namespace().unwrap_or_default(), dbi.name_any())
}

#[cfg(test)]
mod tests;
