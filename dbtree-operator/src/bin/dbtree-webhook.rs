//! The composition root of the admission webhook: settings → TLS → reflector cache → server.

use anyhow::Context;
use clap::Parser;
use dbtree_operator::webhook::WebhookSettings;
use dbtree_operator::webhook::server::{self, WebhookState};
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    // poem links aws-lc-rs, kube links ring: pick one provider for the process.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let settings = WebhookSettings::parse();
    let config = settings
        .config()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    let filter = EnvFilter::try_from_env("DBTREE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,poem=warn,kube=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(settings, config))
}

async fn run(
    settings: WebhookSettings,
    config: dbtree_operator::webhook::WebhookConfig,
) -> anyhow::Result<()> {
    let cert = std::fs::read(&settings.tls_cert)
        .with_context(|| format!("--tls-cert: cannot read {}", settings.tls_cert.display()))?;
    let key = std::fs::read(&settings.tls_key)
        .with_context(|| format!("--tls-key: cannot read {}", settings.tls_key.display()))?;
    let client = kube::Client::try_default()
        .await
        .context("cannot configure a Kubernetes client (in-cluster or kubeconfig)")?;
    let (store, reflector) = server::reflect(client);
    tokio::spawn(reflector);
    let bound = server::bind(settings.listen, server::tls(cert, key))
        .await
        .with_context(|| format!("--listen: cannot serve TLS on {}", settings.listen))?;
    tracing::info!(
        listen = %bound.local_addr(),
        trusted = config.trusted_service_accounts.len(),
        "dbtree-webhook serving; ready once the DBInstance cache has synced"
    );
    let state = WebhookState::new(store, config);
    bound
        .serve(server::route(state), shutdown_signal())
        .await
        .context("the server stopped")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
