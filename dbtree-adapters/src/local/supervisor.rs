//! Supervisors: one tokio task per engine process. It reports `Ready` once the engine serves
//! (or `Failed` if it exits first or is not serving within 30 s), then watches the process and
//! reports an unexpected exit as `Failed`, restarting the engine with a growing backoff.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dbtree_core::boundary::Observation;
use dbtree_core::ids::InstanceId;
use dbtree_core::instance::{Engine, RunState};
use tokio::process::Child;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::account::RunAs;
use super::disk::{InstanceRecord, Layout};
use super::engines::{self, Ctx};
use super::lifecycle;
use super::process;
use super::shared::{Shared, Slot, SlotState};

/// How long an engine may take to serve before `Failed` is reported.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Consecutive crashes after which the supervisor stops restarting.
const MAX_RESTARTS: u32 = 5;
/// An engine that ran this long before crashing starts a fresh backoff.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// The process being watched: a child of this driver, or one adopted from an earlier run.
#[derive(Debug)]
pub(crate) enum Proc {
    /// Started by this driver.
    Child(Child),
    /// Found running at start (its parent is gone); watched by polling.
    Adopted(i32),
}

impl Proc {
    /// Waits for the process to end; how it ended, in words.
    async fn wait(&mut self) -> String {
        if let Proc::Child(child) = self {
            match child.wait().await {
                Ok(status) => return process::describe_exit(status),
                Err(_) => match child.id().and_then(|id| i32::try_from(id).ok()) {
                    Some(pid) => *self = Proc::Adopted(pid),
                    None => return "exited".to_owned(),
                },
            }
        }
        if let Proc::Adopted(pid) = self {
            while process::is_running(*pid) {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        "exited".to_owned()
    }
}

/// A watched engine process.
pub(crate) struct Supervised {
    pub(crate) pid: i32,
    /// Set before the driver stops the process on purpose: its exit is then not a failure.
    stopping: Arc<AtomicBool>,
    ready: Arc<AtomicBool>,
    task: AbortHandle,
}

impl fmt::Debug for Supervised {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervised")
            .field("pid", &self.pid)
            .field("ready", &self.ready.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl Supervised {
    /// Whether the engine has been seen serving (and has not exited since).
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Marks the coming exit as intended.
    pub(crate) fn stopping(&self, on: bool) {
        self.stopping.store(on, Ordering::SeqCst);
    }

    /// Silences and ends the supervisor (the process is left alone).
    pub(crate) fn retire(&self) {
        self.stopping(true);
        self.task.abort();
    }
}

/// Starts watching `proc` for the instance in `state` (whose generation is the current one).
pub(crate) fn launch(
    shared: &Arc<Shared>,
    slot: &Slot,
    state: &SlotState,
    proc: Proc,
    pid: i32,
) -> Option<Supervised> {
    let record = state.record.clone()?;
    let run_as = state.run_as.clone()?;
    let stopping = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicBool::new(false));
    let watch = Watch {
        shared: shared.clone(),
        slot: slot.clone(),
        id: state.id,
        layout: state.layout.clone(),
        record,
        run_as,
        generation: state.generation,
        stopping: stopping.clone(),
        ready: ready.clone(),
        pid,
    };
    let task = tokio::spawn(watch.run(proc)).abort_handle();
    shared.track(task.clone());
    Some(Supervised {
        pid,
        stopping,
        ready,
        task,
    })
}

struct Watch {
    shared: Arc<Shared>,
    slot: Slot,
    id: InstanceId,
    layout: Layout,
    record: InstanceRecord,
    run_as: RunAs,
    generation: u64,
    stopping: Arc<AtomicBool>,
    ready: Arc<AtomicBool>,
    pid: i32,
}

impl Watch {
    fn report(&self, observation: Observation) {
        if !self.stopping.load(Ordering::SeqCst) {
            self.shared.emit(self.id, observation);
        }
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            host: &self.shared.host,
            layout: &self.layout,
            record: &self.record,
            run_as: &self.run_as,
        }
    }

    fn last_log_line(&self) -> String {
        self.layout
            .last_log_line()
            .unwrap_or_else(|| "(none)".to_owned())
    }

    async fn run(self, mut proc: Proc) {
        let binary = engines::server_binary(self.record.engine, self.record.backend);
        let started = Instant::now();
        let mut late = false;
        let mut delay = Duration::from_millis(100);
        let (exit, served) = loop {
            tokio::select! {
                exit = proc.wait() => break (exit, false),
                () = tokio::time::sleep(delay) => {}
            }
            match engines::probe(self.ctx()).await {
                Ok(()) => {
                    self.serving();
                    break (proc.wait().await, true);
                }
                Err(why) => {
                    if !late && started.elapsed() >= READY_TIMEOUT {
                        late = true;
                        self.report(Observation::Failed {
                            reason: format!(
                                "{binary} does not accept connections after {} s ({why}); last \
                                 log line: {}",
                                READY_TIMEOUT.as_secs(),
                                self.last_log_line()
                            ),
                        });
                    }
                    delay = if late {
                        Duration::from_secs(2)
                    } else {
                        (delay * 2).min(Duration::from_millis(500))
                    };
                }
            }
        };
        self.ready.store(false, Ordering::SeqCst);
        if self.stopping.load(Ordering::SeqCst) {
            return;
        }
        if self.record.engine == Engine::Postgresql {
            // The server's children notice their parent is gone; don't wait for them.
            process::kill_group(self.pid);
        }
        let when = if served {
            "stopped unexpectedly"
        } else {
            "stopped before accepting connections"
        };
        self.report(Observation::Failed {
            reason: format!(
                "{binary} {when}: it {exit}; last log line: {}",
                self.last_log_line()
            ),
        });
        self.restart(started.elapsed()).await;
    }

    fn serving(&self) {
        self.ready.store(true, Ordering::SeqCst);
        self.report(Observation::Ready);
    }

    /// Starts the engine again after a crash, unless the instance moved on meanwhile.
    async fn restart(self, ran_for: Duration) {
        let backoff = {
            let mut state = self.slot.lock().await;
            if !self.current(&state) {
                return;
            }
            if ran_for >= STABLE_AFTER {
                state.crashes = 0;
            }
            state.crashes += 1;
            if state.crashes > MAX_RESTARTS {
                self.report(Observation::Failed {
                    reason: format!(
                        "{} crashed {MAX_RESTARTS} times in a row; not restarting it until it is \
                         started again",
                        engines::server_binary(self.record.engine, self.record.backend)
                    ),
                });
                return;
            }
            Duration::from_secs(1 << (state.crashes - 1).min(5))
        };
        tokio::time::sleep(backoff).await;
        let mut state = self.slot.clone().lock_owned().await;
        if !self.current(&state) {
            return;
        }
        // This task is the dead process's supervisor: leave it running until it returns.
        state.run = None;
        if let Err(e) = lifecycle::start(&self.shared, &self.slot, &mut state).await {
            self.report(Observation::Failed { reason: e.message });
        }
    }

    /// Whether this supervisor's process is still the instance's and should run.
    fn current(&self, state: &SlotState) -> bool {
        !state.is_removed()
            && state.generation == self.generation
            && state
                .record
                .as_ref()
                .is_some_and(|r| r.run_state == RunState::Running)
            && !self.stopping.load(Ordering::SeqCst)
    }
}
