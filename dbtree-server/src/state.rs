//! What every request handler shares.

use std::sync::Arc;

use dbtree_core::boundary::Clock;
use dbtree_core::service::{App, Authenticated};

use crate::api::BearerAuth;
use crate::api::problem::{IntoProblem, Problem, Status};
use crate::live::TreeHub;
use crate::metrics::Metrics;

/// The use cases and the server's own parts.
pub struct ServerState {
    /// Every use case.
    pub app: App,
    /// Host name shown in connection URIs.
    pub public_host: String,
    /// Live tree changes.
    pub hub: TreeHub,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// The clock the use cases read.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for ServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerState")
            .field("public_host", &self.public_host)
            .finish_non_exhaustive()
    }
}

impl ServerState {
    /// The signed-in caller.
    ///
    /// # Errors
    /// A 401 problem for a malformed, unknown or expired token.
    pub async fn caller(&self, auth: &BearerAuth) -> Result<Authenticated, Problem> {
        self.app
            .accounts
            .authenticate(&auth.0.token)
            .await
            .map_err(|e| e.problem())
    }

    /// The signed-in caller, who must be an administrator.
    ///
    /// # Errors
    /// 401 as [`Self::caller`]; 403 for a non-administrator.
    pub async fn admin(&self, auth: &BearerAuth) -> Result<Authenticated, Problem> {
        let who = self.caller(auth).await?;
        if !who.is_admin {
            return Err(Problem::new(
                Status::Forbidden,
                "forbidden",
                "only administrators may manage the quiz bank",
                serde_json::json!({}),
            ));
        }
        Ok(who)
    }
}
