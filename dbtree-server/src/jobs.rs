//! Background jobs, each doing its work through core services and logging a summary line. All
//! are safe with several replicas: regrowth serialises in the store, billing charges each
//! (instance, hour) once, cleanup and resync are idempotent.

use std::sync::Arc;
use std::time::Duration;

use dbtree_core::boundary::Cluster;
use dbtree_core::service::App;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::live::TreeHub;
use crate::metrics::Metrics;

/// How often each job runs.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// Regrowth.
    pub regrowth: Duration,
    /// Billing passes.
    pub billing: Duration,
    /// Expired codes and sessions.
    pub cleanup: Duration,
    /// Pushing desired states to the cluster again.
    pub resync: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            regrowth: Duration::from_secs(60),
            billing: Duration::from_secs(300),
            cleanup: Duration::from_secs(3600),
            resync: Duration::from_secs(300),
        }
    }
}

/// Runs `step` every `every` until shutdown (the first run is immediate).
fn every<F, Fut>(
    name: &'static str,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
    mut step: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        tracing::debug!(job = name, "started");
        loop {
            step().await;
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => break,
            }
        }
        tracing::debug!(job = name, "stopped");
    })
}

/// Starts every job; they stop when `shutdown` becomes true.
pub fn spawn(
    app: App,
    cluster: Arc<dyn Cluster>,
    hub: TreeHub,
    metrics: Metrics,
    schedule: Schedule,
    shutdown: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let mut jobs = Vec::new();
    let (a, h) = (app.clone(), hub.clone());
    jobs.push(every(
        "regrowth",
        schedule.regrowth,
        shutdown.clone(),
        move || {
            let (app, hub) = (a.clone(), h.clone());
            async move {
                match app.tree.regrow().await {
                    Ok(lemons) if !lemons.is_empty() => {
                        tracing::info!(
                            job = "regrowth",
                            ripe_again = lemons.len(),
                            "regrowth pass"
                        );
                        hub.nudge();
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(job = "regrowth", error = %e, "regrowth failed"),
                }
            }
        },
    ));
    let a = app.clone();
    jobs.push(every("billing", schedule.billing, shutdown.clone(), move || {
        let (app, metrics) = (a.clone(), metrics.clone());
        async move {
            match app.billing.run_pass().await {
                Ok(r) => {
                    metrics.charged(-i64::try_from(r.lemons_charged).unwrap_or(i64::MAX));
                    tracing::info!(
                        job = "billing",
                        charged = r.charged,
                        lemons = r.lemons_charged,
                        paused = r.paused,
                        resumed = r.resumed,
                        deleted = r.deleted,
                        skipped = r.skipped,
                        mail_failures = r.mail_failures,
                        failures = r.failures.len(),
                        "billing pass"
                    );
                    for (instance, reason) in &r.failures {
                        tracing::warn!(job = "billing", %instance, reason, "instance not billed; retried next pass");
                    }
                }
                Err(e) => tracing::error!(job = "billing", error = %e, "billing pass failed"),
            }
        }
    }));
    let a = app.clone();
    jobs.push(every(
        "cleanup",
        schedule.cleanup,
        shutdown.clone(),
        move || {
            let app = a.clone();
            async move {
                match app.accounts.purge_expired().await {
                    Ok(r) => tracing::info!(
                        job = "cleanup",
                        codes = r.codes,
                        sessions = r.sessions,
                        "expired codes and sessions removed"
                    ),
                    Err(e) => tracing::error!(job = "cleanup", error = %e, "cleanup failed"),
                }
            }
        },
    ));
    let a = app.clone();
    jobs.push(every(
        "resync",
        schedule.resync,
        shutdown.clone(),
        move || {
            let app = a.clone();
            async move {
                match app.instances.resync().await {
                    Ok(r) => tracing::info!(
                        job = "resync",
                        applied = r.run_states_applied,
                        teardowns = r.teardowns_completed,
                        refunded = r.interrupted_refunded,
                        failures = r.failures,
                        "cluster resync"
                    ),
                    Err(e) => tracing::error!(job = "resync", error = %e, "resync failed"),
                }
            }
        },
    ));
    jobs.push(follow_cluster(app.clone(), cluster, shutdown.clone()));
    jobs.push(tokio::spawn(hub.run(app, shutdown)));
    jobs
}

/// Applies every cluster observation to the instances, as it happens.
fn follow_cluster(
    app: App,
    cluster: Arc<dyn Cluster>,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut events = cluster.events();
        loop {
            let event = tokio::select! {
                event = events.next() => event,
                _ = shutdown.changed() => break,
            };
            let Some(event) = event else { break };
            match app.instances.observe(&event).await {
                Ok(Some(instance)) => tracing::info!(
                    job = "cluster",
                    instance = %instance.id,
                    status = %instance.status,
                    "instance follows the cluster"
                ),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(job = "cluster", instance = %event.instance, error = %e, "cannot apply a cluster event")
                }
            }
        }
    })
}
