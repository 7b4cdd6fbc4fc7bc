//! The composition root of the controller: settings → client → ops server → leader election →
//! controller. Exits non-zero when it loses the lease, so that Kubernetes restarts it as a
//! fresh candidate.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use dbtree_operator::children::{
    ChildrenConfig, DEFAULT_MONGODB_IMAGE, DEFAULT_POSTGRES_IMAGE, DEFAULT_REDIS_IMAGE,
};
use dbtree_operator::controller::{self, Context};
use dbtree_operator::leader::{LeaderElector, LeaseConfig};
use dbtree_operator::metrics::Metrics;
use dbtree_operator::ops;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::Reporter;
use poem::Server;
use poem::listener::TcpListener;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

/// The dbtree operator: reconciles DBInstance objects into running databases.
#[derive(Debug, Parser)]
#[command(name = "dbtree-operator", version)]
struct Settings {
    /// Address of `/healthz` and `/metrics`.
    #[arg(
        long,
        env = "DBTREE_OPERATOR_METRICS_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    metrics_listen: SocketAddr,
    /// Most reconciles running at once.
    #[arg(long, env = "DBTREE_OPERATOR_CONCURRENCY", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "DBTREE_OPERATOR_LEASE_NAME",
        default_value = "dbtree-operator"
    )]
    lease_name: String,
    /// Namespace of the leader-election Lease (the operator's own).
    #[arg(
        long,
        env = "DBTREE_OPERATOR_LEASE_NAMESPACE",
        default_value = "dbtree"
    )]
    lease_namespace: String,
    /// This replica's identity in the Lease and in Events; the pod name (HOSTNAME) by default.
    #[arg(long, env = "DBTREE_OPERATOR_IDENTITY")]
    identity: Option<String>,
    /// PostgreSQL image.
    #[arg(long, env = "DBTREE_OPERATOR_POSTGRES_IMAGE", default_value = DEFAULT_POSTGRES_IMAGE)]
    postgres_image: String,
    /// Redis image.
    #[arg(long, env = "DBTREE_OPERATOR_REDIS_IMAGE", default_value = DEFAULT_REDIS_IMAGE)]
    redis_image: String,
    /// MongoDB image.
    #[arg(long, env = "DBTREE_OPERATOR_MONGODB_IMAGE", default_value = DEFAULT_MONGODB_IMAGE)]
    mongodb_image: String,
    /// Storage class of data volumes; the cluster's default when unset.
    #[arg(long, env = "DBTREE_OPERATOR_STORAGE_CLASS")]
    storage_class: Option<String>,
    /// Seconds a running instance may stay not ready before its phase is Failed.
    #[arg(long, env = "DBTREE_OPERATOR_START_TIMEOUT_SECS", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(30..=86_400))]
    start_timeout_secs: u64,
    /// Live instances one owner may have provisioned: the webhook's
    /// `DBTREE_WEBHOOK_MAX_LIVE_PER_USER`, enforced again here because webhook replicas can
    /// each admit one of two simultaneous creations.
    #[arg(long, env = "DBTREE_OPERATOR_MAX_LIVE_PER_OWNER", default_value_t = 2)]
    max_live_per_owner: u32,
    /// Log format.
    #[arg(
        long,
        env = "DBTREE_OPERATOR_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> anyhow::Result<()> {
    // kube links ring, poem links aws-lc-rs: pick one provider for the process.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let settings = Settings::parse();
    init_logging(settings.log_format);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(settings))
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("DBTREE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,kube=warn,poem=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let metrics = Metrics::new().context("metrics")?;
    let listener = TcpListener::bind(settings.metrics_listen);
    let ops_route = ops::route(metrics.clone());
    tokio::spawn(async move {
        if let Err(error) = Server::new(listener).run(ops_route).await {
            tracing::error!(%error, "the /healthz and /metrics server stopped");
        }
    });
    let client = kube::Client::try_default().await.context(
        "cannot configure a Kubernetes client (in-cluster service account or KUBECONFIG)",
    )?;
    let identity = settings
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("dbtree-operator-{}", std::process::id()));
    let elector = LeaderElector::new(
        client.clone(),
        LeaseConfig::new(&settings.lease_name, &settings.lease_namespace, &identity),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = stop_tx.send(true);
    });

    if !campaign(&elector, stop_rx.clone()).await {
        return Ok(());
    }
    metrics.leader.set(1);
    tracing::info!(%identity, "leading: reconciling DBInstances");
    let (lost_tx, lost_rx) = watch::channel(false);
    let renewing = tokio::spawn(keep_renewing(elector.clone(), lost_tx));

    let context = Arc::new(Context::new(
        client.clone(),
        Reporter {
            controller: "dbtree-operator".into(),
            instance: Some(identity),
        },
        metrics.clone(),
        controller::Settings {
            children: ChildrenConfig {
                postgres_image: settings.postgres_image,
                redis_image: settings.redis_image,
                mongodb_image: settings.mongodb_image,
                storage_class: settings.storage_class,
            },
            start_timeout: Duration::from_secs(settings.start_timeout_secs),
            max_live_per_owner: settings.max_live_per_owner,
            ..controller::Settings::default()
        },
    ));
    let stop = {
        let (mut stop_rx, mut lost_rx) = (stop_rx, lost_rx.clone());
        async move {
            tokio::select! {
                _ = stop_rx.wait_for(|stop| *stop) => {}
                _ = lost_rx.wait_for(|lost| *lost) => {}
            }
        }
    };
    controller::run(client, context, settings.concurrency, stop).await;
    metrics.leader.set(0);
    renewing.abort();
    if *lost_rx.borrow() {
        anyhow::bail!("lost the leader lease; exiting so that this replica campaigns afresh");
    }
    if let Err(error) = elector.release().await {
        tracing::warn!(%error, "cannot release the leader lease; it will expire");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Tries for the lease until it is ours (`true`) or a stop signal arrives (`false`).
async fn campaign(elector: &LeaderElector, mut stop: watch::Receiver<bool>) -> bool {
    let mut last_holder_logged = Instant::now() - Duration::from_secs(3600);
    loop {
        match elector.try_acquire_or_renew(Timestamp::now()).await {
            Ok(true) => return true,
            Ok(false) => {
                if last_holder_logged.elapsed() > Duration::from_secs(60) {
                    tracing::info!("another replica leads; waiting for the lease");
                    last_holder_logged = Instant::now();
                }
            }
            Err(error) => tracing::warn!(%error, "cannot read or write the leader lease"),
        }
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return false,
            () = tokio::time::sleep(elector.config().retry_period) => {}
        }
    }
}

/// Renews the lease every retry period; reports loss when another replica holds it or when no
/// renewal succeeded within the renew deadline.
async fn keep_renewing(elector: LeaderElector, lost: watch::Sender<bool>) {
    let config = elector.config().clone();
    let mut last_renewal = Instant::now();
    loop {
        tokio::time::sleep(config.retry_period).await;
        match elector.try_acquire_or_renew(Timestamp::now()).await {
            Ok(true) => last_renewal = Instant::now(),
            Ok(false) => {
                tracing::error!("another replica holds the leader lease");
                let _ = lost.send(true);
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot renew the leader lease");
                if last_renewal.elapsed() > config.renew_deadline {
                    let _ = lost.send(true);
                    return;
                }
            }
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
