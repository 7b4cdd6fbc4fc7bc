//! At start, before adopting anything: what no instance owns is removed. A process working in
//! an instance directory whose instance should not run (stopped, never finished provisioning,
//! or whose directory is gone) is killed; an account this data directory made (its comment says
//! so) whose instance directory is gone is removed with its processes. Other data directories'
//! accounts and processes are never touched.

use std::collections::HashSet;

use dbtree_core::ids::InstanceId;
use dbtree_core::instance::RunState;

use super::account::Accounts;
use super::disk::Layout;
use super::process;
use super::shared::Shared;

/// Clears processes and accounts that belong to no instance meant to run.
pub(crate) async fn strays(shared: &Shared, found: &[(InstanceId, Layout)]) {
    let should_run: HashSet<String> = found
        .iter()
        .filter(|(_, layout)| {
            layout
                .read_record()
                .ok()
                .flatten()
                .is_some_and(|r| r.run_state == RunState::Running)
        })
        .map(|(id, _)| id.to_string())
        .collect();
    for (pid, instance) in process::working_in(&shared.host.instances_dir) {
        if !should_run.contains(&instance) {
            tracing::warn!(
                pid,
                instance = %instance,
                "killing a process left in an instance directory that should not run"
            );
            process::kill_now(pid);
        }
    }
    let accounts = &shared.host.accounts;
    let owned: HashSet<String> = found
        .iter()
        .map(|(id, _)| Accounts::name_for(*id))
        .collect();
    for (name, uid) in accounts.existing() {
        if owned.contains(&name) {
            continue;
        }
        tracing::warn!(account = %name, "removing an instance account without an instance");
        if let Err(e) = accounts.remove_user(&name, uid).await {
            tracing::warn!(account = %name, error = %e, "could not remove the account");
        }
    }
}
