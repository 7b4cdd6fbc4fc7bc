//! Builds the adapters the configuration asks for.

use std::sync::Arc;

use anyhow::Context;
use dbtree_adapters::console::ConsoleMailer;
use dbtree_adapters::kube::KubeCluster;
use dbtree_adapters::local::{LocalCluster, LocalConfig};
use dbtree_adapters::memory::{MemoryQuizLock, MemoryRateLimiter};
use dbtree_adapters::postgres::PgStore;
use dbtree_adapters::redis::{RedisQuizLock, RedisRateLimiter, connect};
use dbtree_adapters::ses::SesMailer;
use dbtree_adapters::sqlite::SqliteStore;
use dbtree_adapters::system::{OsEntropy, SystemClock};
use dbtree_core::auth::CodeKey;
use dbtree_core::boundary::{
    Clock, Cluster, EngineSupport, Entropy, Mailer, QuizLock, RateLimiter, Store,
};
use dbtree_core::instance::Engine;
use dbtree_core::service::Deps;
use redis::aio::ConnectionManager;

use crate::config::{ClusterKind, Config, MailerKind, Storage, redact};
use crate::data_dir;
use crate::readiness::Readiness;

/// Opens storage and applies its migrations.
pub async fn store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    match &config.storage {
        Storage::Sqlite(url) => {
            if let Some(path) = url.strip_prefix("sqlite:").filter(|p| !p.starts_with(':'))
                && let Some(dir) = std::path::Path::new(path.trim_start_matches("//")).parent()
                && !dir.as_os_str().is_empty()
            {
                data_dir::create(dir)?;
            }
            let store = SqliteStore::connect(url)
                .await
                .with_context(|| format!("cannot open {url}"))?;
            store.migrate().await.context("SQLite migrations failed")?;
            tracing::info!(storage = %url, "storage: SQLite");
            Ok(Arc::new(store))
        }
        Storage::Postgres(url) => {
            let store = PgStore::connect(url, config.database_max_connections)
                .await
                .with_context(|| format!("cannot connect to {}", redact(url)))?;
            store
                .migrate()
                .await
                .context("PostgreSQL migrations failed")?;
            tracing::info!(storage = %redact(url), "storage: PostgreSQL");
            Ok(Arc::new(store))
        }
    }
}

/// The quiz lock and rate limiter: Redis when configured (its connection also returned, for
/// readiness), else in-process.
pub async fn coordination(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<(
    Arc<dyn QuizLock>,
    Arc<dyn RateLimiter>,
    Option<ConnectionManager>,
)> {
    match &config.redis_url {
        Some(url) => {
            let conn = connect(url)
                .await
                .with_context(|| format!("cannot connect to {}", redact(url)))?;
            tracing::info!(redis = %redact(url), "coordination: Redis");
            Ok((
                Arc::new(RedisQuizLock::new(conn.clone(), "dbtree:")),
                Arc::new(RedisRateLimiter::new(conn.clone(), "dbtree:")),
                Some(conn),
            ))
        }
        None => {
            tracing::info!("coordination: in-process (single replica)");
            Ok((
                Arc::new(MemoryQuizLock::new(clock.clone())),
                Arc::new(MemoryRateLimiter::new(clock)),
                None,
            ))
        }
    }
}

/// Prepares the data directory (0700, see [`data_dir::prepare`]) when anything lives there:
/// the key file, the SQLite file or local engines. The one place the server creates it.
pub fn prepare_data_dir(config: &Config) -> anyhow::Result<()> {
    let used = config.secret_key.is_none()
        || matches!(config.storage, Storage::Sqlite(_))
        || config.cluster == ClusterKind::Local;
    if used {
        data_dir::prepare(&config.data_dir)?;
    }
    Ok(())
}

/// The key sign-in codes are stored under: `DBTREE_SECRET_KEY`, or the data directory's key
/// file.
pub fn code_key(config: &Config, entropy: &dyn Entropy) -> anyhow::Result<CodeKey> {
    if config.secret_key.is_none() && matches!(config.storage, Storage::Postgres(_)) {
        tracing::warn!(
            "sign-in codes are keyed by this replica's own key file: replicas sharing one \
             database must share DBTREE_SECRET_KEY, or a code sent by one is refused by another"
        );
    }
    Ok(data_dir::code_key(
        &config.data_dir,
        config.secret_key.clone(),
        entropy,
    )?)
}

/// The mailer.
pub async fn mailer(config: &Config) -> anyhow::Result<Arc<dyn Mailer>> {
    match (config.mailer, &config.ses) {
        (MailerKind::Ses, Some(ses)) => {
            tracing::info!(from = %ses.from, "mail: Amazon SES");
            Ok(Arc::new(
                SesMailer::from_env(ses.region.clone(), ses.from.clone(), ses.endpoint.clone())
                    .await,
            ))
        }
        (MailerKind::Ses, None) => anyhow::bail!("--mailer ses needs --ses-from"),
        (MailerKind::Console, _) => {
            tracing::warn!(
                "mail: console — sign-in codes are written to this log (development only)"
            );
            Ok(Arc::new(ConsoleMailer))
        }
    }
}

/// The cluster driver, and the local one again when it is local (the server stops its engines
/// on a graceful shutdown).
pub async fn cluster(
    config: &Config,
) -> anyhow::Result<(Arc<dyn Cluster>, Option<Arc<LocalCluster>>)> {
    match config.cluster {
        ClusterKind::Local => {
            let local = Arc::new(
                LocalCluster::start(LocalConfig {
                    bind_host: config.local_bind.clone(),
                    ferretdb: config.ferretdb.clone(),
                    ..LocalConfig::new(config.data_dir.clone())
                })
                .await
                .map_err(|e| anyhow::anyhow!("cannot start the local cluster driver: {e}"))?,
            );
            tracing::info!(
                data_dir = %config.data_dir.display(),
                bind = %config.local_bind,
                keep_engines_running = config.keep_engines_running,
                "cluster: local engine processes"
            );
            for engine in Engine::ALL {
                match local.engine_support(engine) {
                    EngineSupport::Available { server } => {
                        tracing::info!(%engine, server = server.as_deref().unwrap_or(""), "local engine available");
                    }
                    EngineSupport::Unavailable { reason } => {
                        tracing::warn!(%engine, reason, "local engine not available: not offered");
                    }
                }
            }
            Ok((local.clone(), Some(local)))
        }
        ClusterKind::Kube => {
            let kube = KubeCluster::from_env()
                .await
                .map_err(|e| anyhow::anyhow!("cannot start the Kubernetes cluster driver: {e}"))?;
            tracing::info!("cluster: Kubernetes (DBInstance objects, dbtree operator)");
            Ok((Arc::new(kube), None))
        }
    }
}

/// Every adapter, wired; what `/readyz` checks besides the store; with the local cluster, also
/// its handle (to stop its engines).
pub async fn deps(config: &Config) -> anyhow::Result<(Deps, Readiness, Option<Arc<LocalCluster>>)> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let entropy = Arc::new(OsEntropy);
    prepare_data_dir(config)?;
    let mut policy = config.policy.clone();
    policy.auth.code_key = code_key(config, entropy.as_ref())?;
    let (quiz_lock, rate_limiter, redis) = coordination(config, clock.clone()).await?;
    let store = store(config).await?;
    let mailer = mailer(config).await?;
    let (cluster, local) = cluster(config).await?;
    let deps = Deps {
        store,
        quiz_lock,
        rate_limiter,
        mailer,
        cluster,
        clock,
        entropy,
        policy: Arc::new(policy),
    };
    let readiness = redis.map(Readiness::with_redis).unwrap_or_default();
    Ok((deps, readiness, local))
}
