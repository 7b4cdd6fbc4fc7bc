//! A cluster simulated in memory, scriptable by tests: it records what it runs and reports
//! readiness, failures and teardowns as events.

use std::collections::HashMap;

use async_trait::async_trait;
use dbtree_core::boundary::{
    Cluster, ClusterError, ClusterEvent, EngineUsage, EventStream, Observation, ProvisionRequest,
    Teardown, UsageReport,
};
use dbtree_core::ids::InstanceId;
use dbtree_core::instance::{Engine, NodePort, RunState};
use futures_channel::mpsc::{UnboundedSender, unbounded};
use parking_lot::Mutex;

/// What the simulated cluster runs for one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimulatedInstance {
    /// Its engine.
    pub engine: Engine,
    /// Its port.
    pub node_port: NodePort,
    /// Its run state.
    pub run_state: RunState,
    /// Its current password (held by the "engine", as a real one would).
    pub password: String,
    /// What the simulated engine reports about its use, once a test sets it.
    pub usage: Option<EngineUsage>,
}

/// How the simulated cluster behaves.
#[derive(Clone, Debug)]
pub struct ClusterScript {
    /// Refuse `provision` calls with this error.
    pub refuse_provision: Option<ClusterError>,
    /// After accepting a provision, report `Ready` (or `Failed` with this reason).
    pub provision_result: Result<(), String>,
    /// Report readiness as soon as provisioned (otherwise a test emits it).
    pub auto_report: bool,
    /// Refuse `set_run_state` and `delete` calls with this error.
    pub refuse_changes: Option<ClusterError>,
    /// What `delete` answers.
    pub teardown: Teardown,
    /// Ports another program holds: `provision` on one of them, and `set_run_state(Running)`
    /// of an instance on one of them, are refused as port busy.
    pub busy_ports: std::collections::BTreeSet<u16>,
}

impl Default for ClusterScript {
    fn default() -> Self {
        Self {
            refuse_provision: None,
            provision_result: Ok(()),
            auto_report: true,
            refuse_changes: None,
            teardown: Teardown::Complete,
            busy_ports: std::collections::BTreeSet::new(),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    instances: HashMap<InstanceId, SimulatedInstance>,
    subscribers: Vec<UnboundedSender<ClusterEvent>>,
    script: ClusterScript,
}

/// The simulated cluster.
#[derive(Debug, Default)]
pub struct MemoryCluster {
    state: Mutex<State>,
}

impl MemoryCluster {
    /// An empty cluster that accepts everything and reports readiness at once.
    pub fn new() -> Self {
        Self::default()
    }

    /// Changes the script.
    pub fn script(&self, change: impl FnOnce(&mut ClusterScript)) {
        change(&mut self.state.lock().script);
    }

    /// What runs for an instance.
    pub fn instance(&self, id: InstanceId) -> Option<SimulatedInstance> {
        self.state.lock().instances.get(&id).cloned()
    }

    /// How many instances exist.
    pub fn len(&self) -> usize {
        self.state.lock().instances.len()
    }

    /// Whether nothing runs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sends an event to every watcher.
    pub fn emit(&self, event: ClusterEvent) {
        let mut s = self.state.lock();
        s.subscribers
            .retain(|tx| tx.unbounded_send(event.clone()).is_ok());
    }

    /// Sets what the simulated engine of an instance reports about its use; returns whether the
    /// instance exists.
    pub fn set_usage(&self, id: InstanceId, usage: EngineUsage) -> bool {
        match self.state.lock().instances.get_mut(&id) {
            Some(sim) => {
                sim.usage = Some(usage);
                true
            }
            None => false,
        }
    }

    /// Forgets an instance (as if its objects vanished) and reports it gone.
    pub fn vanish(&self, id: InstanceId) {
        self.state.lock().instances.remove(&id);
        self.emit(ClusterEvent {
            instance: id,
            observation: Observation::Gone,
        });
    }
}

#[async_trait]
impl Cluster for MemoryCluster {
    async fn provision(&self, request: &ProvisionRequest) -> Result<(), ClusterError> {
        let (result, auto) = {
            let mut s = self.state.lock();
            if let Some(e) = s.script.refuse_provision.clone() {
                return Err(e);
            }
            if s.script.busy_ports.contains(&request.node_port.get()) {
                return Err(ClusterError::port_busy(format!(
                    "port {} is already in use",
                    request.node_port
                )));
            }
            s.instances
                .entry(request.instance)
                .or_insert_with(|| SimulatedInstance {
                    engine: request.engine,
                    node_port: request.node_port,
                    run_state: request.run_state,
                    password: request.credentials.password.expose().to_owned(),
                    usage: None,
                });
            (s.script.provision_result.clone(), s.script.auto_report)
        };
        if auto {
            let observation = match result {
                Ok(()) => Observation::Ready,
                Err(reason) => Observation::Failed { reason },
            };
            self.emit(ClusterEvent {
                instance: request.instance,
                observation,
            });
        }
        Ok(())
    }

    async fn set_run_state(
        &self,
        instance: InstanceId,
        state: RunState,
    ) -> Result<(), ClusterError> {
        let mut s = self.state.lock();
        if let Some(e) = s.script.refuse_changes.clone() {
            return Err(e);
        }
        let busy = s.script.busy_ports.clone();
        let sim = s
            .instances
            .get_mut(&instance)
            .ok_or_else(|| ClusterError::not_found("no such instance in the cluster"))?;
        if state == RunState::Running && busy.contains(&sim.node_port.get()) {
            return Err(ClusterError::port_busy(format!(
                "port {} is already in use",
                sim.node_port
            )));
        }
        sim.run_state = state;
        Ok(())
    }

    async fn rotate_credentials(
        &self,
        instance: InstanceId,
        credentials: &dbtree_core::instance::Credentials,
    ) -> Result<(), ClusterError> {
        let mut s = self.state.lock();
        if let Some(e) = s.script.refuse_changes.clone() {
            return Err(e);
        }
        let sim = s
            .instances
            .get_mut(&instance)
            .ok_or_else(|| ClusterError::not_found("no such instance in the cluster"))?;
        sim.password = credentials.password.expose().to_owned();
        Ok(())
    }

    async fn delete(&self, instance: InstanceId) -> Result<Teardown, ClusterError> {
        let mut s = self.state.lock();
        if let Some(e) = s.script.refuse_changes.clone() {
            return Err(e);
        }
        match s.script.teardown {
            Teardown::Complete => {
                s.instances.remove(&instance);
                Ok(Teardown::Complete)
            }
            Teardown::Pending => Ok(Teardown::Pending),
        }
    }

    fn events(&self) -> EventStream {
        let (tx, rx) = unbounded();
        self.state.lock().subscribers.push(tx);
        Box::pin(rx)
    }

    async fn usage(&self, instance: InstanceId) -> Result<UsageReport, ClusterError> {
        let s = self.state.lock();
        let sim = s
            .instances
            .get(&instance)
            .ok_or_else(|| ClusterError::not_found("no such instance in the cluster"))?;
        Ok(match (sim.run_state, sim.usage) {
            (RunState::Running, Some(usage)) => UsageReport::Measured(usage),
            (RunState::Running, None) => UsageReport::NotAvailable {
                reason: "the simulated engine reports nothing yet".into(),
            },
            (RunState::Stopped | RunState::Paused, _) => UsageReport::NotAvailable {
                reason: "the engine is not running".into(),
            },
        })
    }

    async fn held_instances(&self) -> Result<Vec<InstanceId>, ClusterError> {
        Ok(self.state.lock().instances.keys().copied().collect())
    }
}
