//! The life of one instance, always under its lock: provisioning, starting, stopping, password
//! rotation, deletion and re-adoption.

use std::sync::Arc;
use std::time::Duration;

use dbtree_core::boundary::{ClusterError, Observation, ProvisionRequest};
use dbtree_core::instance::{Credentials, Engine, NodePort, RunState};

use super::disk::{InstanceRecord, remove_dir};
use super::engines::{self, Ctx, Rotation};
use super::host::{Host, io_error};
use super::process;
use super::shared::{Shared, Slot, SlotState};
use super::supervisor::{self, Proc};

/// How long an engine gets to shut down cleanly before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(20);

fn unknown() -> ClusterError {
    ClusterError::not_found("no such instance in the local cluster")
}

/// Provisions a new instance, or brings a known one to the requested run state.
pub(crate) async fn provision(
    shared: &Arc<Shared>,
    request: &ProvisionRequest,
) -> Result<(), ClusterError> {
    let Some((slot, mut state)) = shared.lock(request.instance, true).await else {
        return Err(unknown());
    };
    if state.record.is_some() {
        return set_run_state(shared, &slot, &mut state, request.run_state).await;
    }
    let fresh = fresh(shared, &slot, &mut state, request).await;
    if fresh.is_err() {
        state.record = None;
        state.password = None;
        state.pending_bootstrap = None;
        let _ = remove_dir(state.layout.dir.clone()).await;
        shared.forget(&slot, &mut state);
    }
    fresh
}

async fn fresh(
    shared: &Arc<Shared>,
    slot: &Slot,
    state: &mut SlotState,
    request: &ProvisionRequest,
) -> Result<(), ClusterError> {
    let host = &shared.host;
    engines::check_installed(request.engine, &host.binaries)?;
    check_port(host, request.node_port)?;
    let layout = state.layout.clone();
    // A directory without a record is what an interrupted provisioning left: start over.
    remove_dir(layout.dir.clone())
        .await
        .map_err(|e| io_error("clearing", &layout.dir, &e))?;
    layout
        .create(&host.run_as)
        .map_err(|e| io_error("creating", &layout.dir, &e))?;
    let record = InstanceRecord {
        engine: request.engine,
        node_port: request.node_port,
        resources: request.resources,
        run_state: request.run_state,
    };
    let password = &request.credentials.password;
    let ctx = Ctx {
        host,
        layout: &layout,
        record: &record,
    };
    engines::prepare(ctx, password).await?;
    layout
        .write_record(&record)
        .map_err(|e| io_error("writing the record in", &layout.dir, &e))?;
    if engines::needs_current_password(record.engine) {
        state.password = Some(password.clone());
    }
    if record.engine == Engine::Mongodb {
        state.pending_bootstrap = Some(password.clone());
    }
    state.record = Some(record);
    if request.run_state == RunState::Running {
        start(shared, slot, state)?;
    }
    Ok(())
}

/// `Err` if something else listens on the instance's port.
fn check_port(host: &Host, port: NodePort) -> Result<(), ClusterError> {
    match std::net::TcpListener::bind((host.bind_host.as_str(), port.get())) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(ClusterError::transient(
            format!("port {port} is already in use on {}", host.bind_host),
        )),
        Err(e) => Err(ClusterError::transient(format!(
            "cannot listen on {}:{port}: {e}",
            host.bind_host
        ))),
    }
}

/// Starts the engine unless it runs; a supervisor reports when it serves. Does not wait.
pub(crate) fn start(
    shared: &Arc<Shared>,
    slot: &Slot,
    state: &mut SlotState,
) -> Result<(), ClusterError> {
    if state.running_pid().is_some() {
        return Ok(());
    }
    if let Some(old) = state.run.take() {
        old.retire();
    }
    let record = state.record.clone().ok_or_else(unknown)?;
    let host = &shared.host;
    check_port(host, record.node_port)?;
    let ctx = Ctx {
        host,
        layout: &state.layout,
        record: &record,
    };
    let (program, args) = engines::server_command(ctx)?;
    let binary = engines::server_binary(record.engine);
    let child = process::spawn(&program, &args, &state.layout, &host.run_as)
        .map_err(|e| ClusterError::transient(format!("starting {binary}: {e}")))?;
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .ok_or_else(|| ClusterError::transient(format!("{binary} exited at once")))?;
    if let Err(e) = state.layout.write_pid(pid.unsigned_abs()) {
        process::kill_group(pid);
        return Err(io_error("recording the pid in", &state.layout.dir, &e));
    }
    state.generation += 1;
    let bootstrap = state.pending_bootstrap.take();
    state.run = supervisor::launch(shared, slot, state, Proc::Child(child), pid, bootstrap);
    Ok(())
}

/// Stops the engine gracefully (killing it after a grace period), keeping its data.
pub(crate) async fn stop(shared: &Shared, state: &mut SlotState) -> Result<(), ClusterError> {
    let Some(record) = state.record.as_ref() else {
        return Ok(());
    };
    let signal = engines::stop_signal(record.engine);
    if let Some(run) = state.run.take() {
        run.stopping(true);
        if let Err(why) = process::terminate(run.pid, signal, STOP_GRACE).await {
            run.stopping(false);
            state.run = Some(run);
            return Err(ClusterError::transient(why));
        }
        run.retire();
    } else if let Some(pid) = adoptable_pid(shared, state) {
        process::terminate(pid, signal, STOP_GRACE)
            .await
            .map_err(ClusterError::transient)?;
    }
    state.layout.remove_pid();
    Ok(())
}

/// The pid from the instance's pid file, if that process still runs its engine as the run-as
/// user.
fn adoptable_pid(shared: &Shared, state: &SlotState) -> Option<i32> {
    let binary = engines::server_binary(state.record.as_ref()?.engine);
    state.layout.read_pid().filter(|&pid| {
        process::is_running(pid)
            && process::runs_program(pid, binary)
            && shared.host.run_as.owns_process(pid)
    })
}

/// Holds `run_state`: starts a stopped engine (a running, serving one is reported `Ready`
/// again), or stops a running one.
pub(crate) async fn set_run_state(
    shared: &Arc<Shared>,
    slot: &Slot,
    state: &mut SlotState,
    run_state: RunState,
) -> Result<(), ClusterError> {
    let record = state.record.as_mut().ok_or_else(unknown)?;
    if record.run_state != run_state {
        record.run_state = run_state;
        state
            .layout
            .write_record(record)
            .map_err(|e| io_error("writing the record in", &state.layout.dir, &e))?;
    }
    match run_state {
        RunState::Running => {
            if state.running_pid().is_none() {
                state.crashes = 0;
                return start(shared, slot, state);
            }
            if state.run.as_ref().is_some_and(|r| r.is_ready()) {
                shared.emit(state.id, Observation::Ready);
            }
            Ok(())
        }
        RunState::Stopped | RunState::Paused => stop(shared, state).await,
    }
}

/// Replaces the password; the old one stops working.
pub(crate) async fn rotate(
    shared: &Arc<Shared>,
    slot: &Slot,
    state: &mut SlotState,
    credentials: &Credentials,
) -> Result<(), ClusterError> {
    let record = state.record.clone().ok_or_else(unknown)?;
    let running = state.running_pid().is_some();
    let ctx = Ctx {
        host: &shared.host,
        layout: &state.layout,
        record: &record,
    };
    let new = &credentials.password;
    let rotation = engines::rotate(ctx, state.password.as_ref(), new, running).await?;
    if engines::needs_current_password(record.engine) {
        state.password = Some(new.clone());
    }
    if rotation == Rotation::Restart {
        stop(shared, state).await?;
        start(shared, slot, state)?;
    }
    Ok(())
}

/// Stops the engine and removes the instance's directory.
pub(crate) async fn delete(
    shared: &Shared,
    slot: &Slot,
    state: &mut SlotState,
) -> Result<(), ClusterError> {
    if state.record.is_none() {
        // Not loaded at start (unreadable then): what it says still tells what to stop.
        state.record = state.layout.read_record().ok().flatten();
    }
    stop(shared, state).await?;
    remove_dir(state.layout.dir.clone())
        .await
        .map_err(|e| io_error("removing", &state.layout.dir, &e))?;
    state.record = None;
    state.password = None;
    state.pending_bootstrap = None;
    shared.forget(slot, state);
    Ok(())
}

/// At start: watches an engine still running from an earlier driver, starts one that should
/// run but does not, and stops one that should not run.
pub(crate) async fn adopt(shared: &Arc<Shared>, slot: &Slot, state: &mut SlotState) {
    let Some(record) = state.record.clone() else {
        return;
    };
    let outcome = if record.run_state == RunState::Running {
        match adoptable_pid(shared, state) {
            Some(pid) => {
                state.generation += 1;
                state.run = supervisor::launch(shared, slot, state, Proc::Adopted(pid), pid, None);
                Ok(())
            }
            None => start(shared, slot, state),
        }
    } else {
        stop(shared, state).await
    };
    if let Err(e) = outcome {
        shared.emit(state.id, Observation::Failed { reason: e.message });
    }
}
