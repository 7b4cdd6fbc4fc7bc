//! The life of one instance, always under its lock: provisioning, starting, stopping, password
//! rotation, deletion and re-adoption.

use std::sync::Arc;
use std::time::Duration;

use dbtree_core::boundary::{ClusterError, Observation, ProvisionRequest};
use dbtree_core::instance::{Credentials, NodePort, Password, RunState};

use super::account::RunAs;
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
        // Whatever a half-done preparation left: processes, files, the account.
        kill_leftovers(shared, &state).await;
        state.run_as = None;
        let _ = remove_dir(state.layout.dir.clone()).await;
        let _ = shared.host.accounts.remove(state.id).await;
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
    let (backend, program) = engines::choose(request.engine, &host.binaries)?;
    let server = program.server.clone();
    check_port(host, request.node_port, true)?;
    let layout = state.layout.clone();
    // A directory without a record is what an interrupted provisioning left: start over.
    remove_dir(layout.dir.clone())
        .await
        .map_err(|e| io_error("clearing", &layout.dir, &e))?;
    let run_as = host.accounts.create(state.id).await?;
    state.run_as = Some(run_as.clone());
    layout
        .create(&run_as)
        .map_err(|e| io_error("creating", &layout.dir, &e))?;
    let admin = admin_password()?;
    layout
        .write_admin_password(&admin)
        .map_err(|e| io_error("writing the administrator password in", &layout.dir, &e))?;
    let record = InstanceRecord {
        engine: request.engine,
        node_port: request.node_port,
        resources: request.resources,
        run_state: request.run_state,
        backend,
        server,
    };
    let ctx = Ctx {
        host,
        layout: &layout,
        record: &record,
        run_as: &run_as,
    };
    engines::prepare(ctx, &request.credentials.password, &admin).await?;
    layout
        .write_record(&record)
        .map_err(|e| io_error("writing the record in", &layout.dir, &e))?;
    state.record = Some(record);
    if request.run_state == RunState::Running {
        start(shared, slot, state).await?;
    }
    Ok(())
}

/// A fresh administrator password from the operating system's random source.
fn admin_password() -> Result<Password, ClusterError> {
    let mut failed = false;
    let password = Password::generate(|| {
        let mut bytes = [0u8; 4];
        if getrandom::fill(&mut bytes).is_err() {
            failed = true;
        }
        u32::from_le_bytes(bytes)
    });
    match password {
        Some(p) if !failed => Ok(p),
        _ => Err(ClusterError::transient(
            "the operating system's random source failed",
        )),
    }
}

/// [`ClusterError::port_busy`] if something else listens on the instance's port, logged with
/// the port: a new instance is moved to the next free port by dbtree; an existing one keeps
/// its port (its users' connection details) and is not started.
fn check_port(host: &Host, port: NodePort, new: bool) -> Result<(), ClusterError> {
    match std::net::TcpListener::bind((host.bind_host.as_str(), port.get())) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let message = format!(
                "port {port} is already in use on {} by another program",
                host.bind_host
            );
            if new {
                tracing::warn!(
                    port = port.get(),
                    bind = %host.bind_host,
                    "port {port} skipped for a new instance: another program listens on it; \
                     it is held aside for a while and the next free port is tried"
                );
                Err(ClusterError::port_busy(message))
            } else {
                tracing::warn!(
                    port = port.get(),
                    bind = %host.bind_host,
                    "an instance cannot start: another program listens on its port {port}"
                );
                Err(ClusterError::port_busy(format!(
                    "{message}: free it, then start the instance again"
                )))
            }
        }
        Err(e) => Err(ClusterError::transient(format!(
            "cannot listen on {}:{port}: {e}",
            host.bind_host
        ))),
    }
}

/// The instance's account, looked up if not known yet.
pub(crate) fn run_as(shared: &Shared, state: &mut SlotState) -> Result<RunAs, ClusterError> {
    if let Some(run_as) = &state.run_as {
        return Ok(run_as.clone());
    }
    let run_as = shared.host.accounts.lookup(state.id)?.ok_or_else(|| {
        ClusterError::permanent("the instance's system account is missing; delete the instance")
    })?;
    state.run_as = Some(run_as.clone());
    Ok(run_as)
}

/// Starts the engine unless it runs; a supervisor reports when it serves. Does not wait.
pub(crate) async fn start(
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
    let run_as = run_as(shared, state)?;
    let host = &shared.host;
    check_port(host, record.node_port, false)?;
    let ctx = Ctx {
        host,
        layout: &state.layout,
        record: &record,
        run_as: &run_as,
    };
    let engines::ServerCommand {
        program,
        args,
        stdin,
    } = engines::server_command(ctx)?;
    engines::before_start(ctx);
    let binary = engines::server_binary(record.engine, record.backend);
    let child = process::spawn(&program, &args, stdin, &state.layout, &run_as)
        .await
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
    state.run = supervisor::launch(shared, slot, state, Proc::Child(child), pid);
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

/// The pid from the instance's pid file, if that process still runs its engine as the
/// instance's account.
pub(crate) fn adoptable_pid(shared: &Shared, state: &mut SlotState) -> Option<i32> {
    let record = state.record.as_ref()?;
    let binary = engines::server_binary(record.engine, record.backend);
    let run_as = run_as(shared, state).ok()?;
    state.layout.read_pid().filter(|&pid| {
        process::is_running(pid) && process::runs_program(pid, binary) && run_as.owns_process(pid)
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
                return start(shared, slot, state).await;
            }
            if state.run.as_ref().is_some_and(|r| r.is_ready()) {
                shared.emit(state.id, Observation::Ready);
            }
            Ok(())
        }
        RunState::Stopped | RunState::Paused => stop(shared, state).await,
    }
}

/// Replaces the tenant's password as the administrator; the old one stops working.
pub(crate) async fn rotate(
    shared: &Arc<Shared>,
    slot: &Slot,
    state: &mut SlotState,
    credentials: &Credentials,
) -> Result<(), ClusterError> {
    let record = state.record.clone().ok_or_else(unknown)?;
    let run_as = run_as(shared, state)?;
    let running = state.running_pid().is_some();
    let ctx = Ctx {
        host: &shared.host,
        layout: &state.layout,
        record: &record,
        run_as: &run_as,
    };
    let rotation = engines::rotate(ctx, &credentials.password, running).await?;
    if rotation == Rotation::Restart {
        stop(shared, state).await?;
        start(shared, slot, state).await?;
    }
    Ok(())
}

/// Stops the engine, kills whatever is left of it, removes the instance's directory and its
/// account.
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
    kill_leftovers(shared, state).await;
    remove_dir(state.layout.dir.clone())
        .await
        .map_err(|e| io_error("removing", &state.layout.dir, &e))?;
    shared.host.accounts.remove(state.id).await?;
    state.record = None;
    state.run_as = None;
    shared.forget(slot, state);
    Ok(())
}

/// Kills every process still working in the instance's directory, or run by its account.
pub(crate) async fn kill_leftovers(shared: &Shared, state: &SlotState) {
    let name = state.id.to_string();
    for (pid, instance) in process::working_in(&shared.host.instances_dir) {
        if instance == name {
            process::kill_now(pid);
        }
    }
    if shared.host.accounts.per_instance()
        && let Ok(Some(run_as)) = shared.host.accounts.lookup(state.id)
    {
        process::kill_user(run_as.uid).await;
    }
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
                state.run = supervisor::launch(shared, slot, state, Proc::Adopted(pid), pid);
                Ok(())
            }
            None => {
                kill_leftovers(shared, state).await;
                start(shared, slot, state).await
            }
        }
    } else {
        stop(shared, state).await
    };
    if let Err(e) = outcome {
        shared.emit(state.id, Observation::Failed { reason: e.message });
    }
}

/// Stops the engine for a server shutdown: the desired run state is kept, so the next driver
/// starts it again.
pub(crate) async fn shut_down(shared: &Shared, state: &mut SlotState) -> Result<(), ClusterError> {
    stop(shared, state).await
}
