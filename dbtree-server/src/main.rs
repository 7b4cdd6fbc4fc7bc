//! The composition root: settings → adapters → services → router → server and jobs.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use dbtree_core::service::App;
use dbtree_server::config::{Config, LogFormat, Settings};
use dbtree_server::jobs::{self, Schedule};
use dbtree_server::live::TreeHub;
use dbtree_server::metrics::Metrics;
use dbtree_server::{ServerState, route, serve, wiring};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    // poem and the AWS SDK link aws-lc-rs, kube links ring: pick one provider for the process.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = Settings::parse()
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    init_logging(config.log_format);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(config))
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("DBTREE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,poem=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let (deps, readiness, local) = wiring::deps(&config).await?;
    let cluster = deps.cluster.clone();
    let clock = deps.clock.clone();
    let app = App::new(deps);
    app.prepare()
        .await
        .context("cannot seed the quiz bank and plant the tree")?;
    let metrics = Metrics::new().context("metrics")?;
    let hub = TreeHub::new();
    hub.refresh(&app).await;
    let state = Arc::new(
        ServerState::new(
            app.clone(),
            config.public_host.clone(),
            hub.clone(),
            metrics.clone(),
            clock,
        )
        .with_limits(config.http)
        .with_readiness(readiness),
    );

    let (stop, shutdown) = watch::channel(false);
    let schedule = Schedule {
        billing: config.billing_interval,
        ..Schedule::default()
    };
    let jobs = jobs::spawn(app, cluster, hub, metrics, schedule, shutdown);

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    tracing::info!(listen = %config.listen, docs = %format!("http://{}/docs", config.listen), "dbtree is serving");
    serve::serve(
        listener,
        route(state, &config.cors_origins),
        config.http,
        shutdown_signal(),
        std::time::Duration::from_secs(10),
    )
    .await
    .context("the HTTP server failed")?;

    let _ = stop.send(true);
    for job in jobs {
        let _ = job.await;
    }
    match local {
        Some(local) if !config.keep_engines_running => {
            let stopped = local.shut_down().await;
            tracing::info!(
                stopped,
                "local engines stopped (data kept; started again at the next start)"
            );
        }
        Some(_) => tracing::info!("local engines keep running (--keep-engines-running)"),
        None => {}
    }
    tracing::info!("dbtree stopped");
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}
