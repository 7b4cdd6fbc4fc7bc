//! What `/readyz` checks: the store answers and the tree is planted, and Redis answers when
//! quiz locks and rate limits live there. A load balancer stops sending requests while either
//! is down, and sends them again when it is back.

use dbtree_core::service::App;
use redis::aio::ConnectionManager;

/// The dependencies checked besides the store.
#[derive(Clone, Default)]
pub struct Readiness {
    redis: Option<ConnectionManager>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("redis", &self.redis.is_some())
            .finish()
    }
}

impl Readiness {
    /// Also checks Redis through this connection.
    pub fn with_redis(conn: ConnectionManager) -> Self {
        Self { redis: Some(conn) }
    }

    /// Whether the server can serve requests now.
    ///
    /// # Errors
    /// What is not ready, for the `/readyz` body (no secrets: dependency names only).
    pub async fn check(&self, app: &App) -> Result<(), &'static str> {
        match app.tree.tree().await {
            Ok(lemons) if lemons.len() == 10 => {}
            Ok(_) => return Err("the tree is not planted yet"),
            Err(e) => {
                tracing::warn!(error = %e, "readiness: the store does not answer");
                return Err("the store does not answer");
            }
        }
        if let Some(conn) = &self.redis
            && let Err(e) = dbtree_adapters::redis::ping(conn).await
        {
            tracing::warn!(error = %e, "readiness: Redis does not answer");
            return Err("Redis does not answer");
        }
        Ok(())
    }
}
