//! What every request handler shares.

use std::sync::Arc;

use dbtree_core::boundary::Clock;
use dbtree_core::service::App;

use crate::limits::HttpLimits;
use crate::limits::streams::StreamSlots;
use crate::live::TreeHub;
use crate::metrics::Metrics;
use crate::readiness::Readiness;

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
    /// Body, timeout and event-stream limits.
    pub limits: HttpLimits,
    /// The event streams open now, counted against `limits`.
    pub streams: StreamSlots,
    /// What `/readyz` checks besides the store.
    pub readiness: Readiness,
}

impl std::fmt::Debug for ServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerState")
            .field("public_host", &self.public_host)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl ServerState {
    /// The state with the default [`HttpLimits`] and a readiness check of the store only.
    pub fn new(
        app: App,
        public_host: String,
        hub: TreeHub,
        metrics: Metrics,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let limits = HttpLimits::default();
        Self {
            app,
            public_host,
            hub,
            metrics,
            clock,
            streams: StreamSlots::new(&limits),
            limits,
            readiness: Readiness::default(),
        }
    }

    /// The same state under other limits.
    #[must_use]
    pub fn with_limits(self, limits: HttpLimits) -> Self {
        Self {
            streams: StreamSlots::new(&limits),
            limits,
            ..self
        }
    }

    /// The same state with more dependencies for `/readyz` to check.
    #[must_use]
    pub fn with_readiness(self, readiness: Readiness) -> Self {
        Self { readiness, ..self }
    }
}
