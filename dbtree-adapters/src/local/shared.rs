//! What the driver holds in memory: the instances it knows (one lock each, so operations on an
//! instance never interleave), who listens to its events, and its supervisor tasks.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use dbtree_core::boundary::{ClusterEvent, EventStream, Observation};
use dbtree_core::ids::InstanceId;
use futures_channel::mpsc::{UnboundedSender, unbounded};
use parking_lot::Mutex;
use tokio::sync::OwnedMutexGuard;
use tokio::task::AbortHandle;

use super::account::RunAs;
use super::disk::{InstanceRecord, Layout};
use super::host::Host;
use super::supervisor::Supervised;

/// Events kept for the first listener when nobody listens yet (re-adoption at start).
const BACKLOG_LIMIT: usize = 1024;

/// One instance's lock.
pub(crate) type Slot = Arc<tokio::sync::Mutex<SlotState>>;

/// One instance, as the driver knows it.
#[derive(Debug)]
pub(crate) struct SlotState {
    pub(crate) id: InstanceId,
    pub(crate) layout: Layout,
    /// `None` until provisioned (and again once deleted).
    pub(crate) record: Option<InstanceRecord>,
    /// The account the engine runs as (known once provisioned or loaded).
    pub(crate) run_as: Option<RunAs>,
    /// The engine process the driver watches.
    pub(crate) run: Option<Supervised>,
    /// Counts starts: a supervisor acts only while its generation is current.
    pub(crate) generation: u64,
    /// Consecutive crashes, for the restart backoff.
    pub(crate) crashes: u32,
    removed: bool,
}

impl SlotState {
    /// Whether the instance was forgotten while this guard's holder waited.
    pub(crate) fn is_removed(&self) -> bool {
        self.removed
    }

    /// The pid of the engine, if it runs.
    pub(crate) fn running_pid(&self) -> Option<i32> {
        self.run
            .as_ref()
            .map(|run| run.pid)
            .filter(|pid| super::process::is_running(*pid))
    }
}

#[derive(Debug, Default)]
struct Listeners {
    senders: Vec<UnboundedSender<ClusterEvent>>,
    /// Until the first listener arrives.
    backlog: Option<VecDeque<ClusterEvent>>,
}

/// The driver's state, shared with its supervisor tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) host: Host,
    slots: Mutex<HashMap<InstanceId, Slot>>,
    listeners: Mutex<Listeners>,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Shared {
    pub(crate) fn new(host: Host) -> Shared {
        Shared {
            host,
            slots: Mutex::new(HashMap::new()),
            listeners: Mutex::new(Listeners {
                senders: Vec::new(),
                backlog: Some(VecDeque::new()),
            }),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Sends an observation to every listener.
    pub(crate) fn emit(&self, instance: InstanceId, observation: Observation) {
        let event = ClusterEvent {
            instance,
            observation,
        };
        let mut listeners = self.listeners.lock();
        if let Some(backlog) = listeners.backlog.as_mut() {
            if backlog.len() >= BACKLOG_LIMIT {
                backlog.pop_front();
            }
            backlog.push_back(event);
            return;
        }
        listeners
            .senders
            .retain(|tx| tx.unbounded_send(event.clone()).is_ok());
    }

    /// A new stream of every later event (the first one also gets those observed before it).
    pub(crate) fn subscribe(&self) -> EventStream {
        let (tx, rx) = unbounded();
        let mut listeners = self.listeners.lock();
        for event in listeners.backlog.take().into_iter().flatten() {
            let _ = tx.unbounded_send(event);
        }
        listeners.senders.push(tx);
        Box::pin(rx)
    }

    /// Locks an instance; with `create`, an unknown instance gets an empty slot.
    pub(crate) async fn lock(
        &self,
        id: InstanceId,
        create: bool,
    ) -> Option<(Slot, OwnedMutexGuard<SlotState>)> {
        loop {
            let slot = {
                let mut slots = self.slots.lock();
                match slots.get(&id) {
                    Some(slot) => slot.clone(),
                    None if create => {
                        let slot = Arc::new(tokio::sync::Mutex::new(SlotState {
                            id,
                            layout: self.host.layout(id),
                            record: None,
                            run_as: None,
                            run: None,
                            generation: 0,
                            crashes: 0,
                            removed: false,
                        }));
                        slots.insert(id, slot.clone());
                        slot
                    }
                    None => return None,
                }
            };
            let guard = slot.clone().lock_owned().await;
            if !guard.removed {
                return Some((slot, guard));
            }
        }
    }

    /// Forgets an instance (under its lock): later operations start from an empty slot.
    pub(crate) fn forget(&self, slot: &Slot, state: &mut SlotState) {
        state.removed = true;
        let mut slots = self.slots.lock();
        if slots.get(&state.id).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            slots.remove(&state.id);
        }
    }

    /// How many instances the driver knows.
    pub(crate) fn len(&self) -> usize {
        self.slots.lock().len()
    }

    /// Every instance the driver knows.
    pub(crate) fn ids(&self) -> Vec<InstanceId> {
        self.slots.lock().keys().copied().collect()
    }

    /// Remembers a task, to abort it when the driver goes away.
    pub(crate) fn track(&self, task: AbortHandle) {
        let mut tasks = self.tasks.lock();
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    /// Aborts every task (the engine processes keep running).
    pub(crate) fn abort_all(&self) {
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
    }
}
