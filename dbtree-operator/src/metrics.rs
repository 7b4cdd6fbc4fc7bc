//! Prometheus metrics of the controller: reconciles, failures by kind, reconcile duration,
//! instances held back by the arbiter, and whether this replica leads.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// The controller's metrics, registered in their own registry.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    /// Reconciles started.
    pub reconciles: IntCounter,
    /// Reconciles that failed, by [`crate::error::Error::metric_label`].
    pub failures: IntCounterVec,
    /// Reconcile duration in seconds.
    pub duration: Histogram,
    /// 1 while this replica holds the leader lease.
    pub leader: IntGauge,
    /// Instances not provisioned because others hold their owner's quota or their NodePort.
    pub held_back: IntGauge,
}

impl Metrics {
    /// Creates and registers the metrics.
    ///
    /// # Errors
    /// A registration error (only possible for a duplicate or malformed name).
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let reconciles = IntCounter::new(
            "dbtree_operator_reconciles_total",
            "DBInstance reconciles started",
        )?;
        let failures = IntCounterVec::new(
            Opts::new(
                "dbtree_operator_reconcile_failures_total",
                "DBInstance reconciles that failed",
            ),
            &["error"],
        )?;
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                "dbtree_operator_reconcile_duration_seconds",
                "Time one DBInstance reconcile took",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
        )?;
        let leader = IntGauge::new(
            "dbtree_operator_leader",
            "1 while this replica holds the leader lease",
        )?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        let held_back = IntGauge::new(
            "dbtree_operator_instances_held_back",
            "DBInstances not provisioned because others hold their owner's quota or NodePort",
        )?;
        registry.register(Box::new(leader.clone()))?;
        registry.register(Box::new(held_back.clone()))?;
        Ok(Self {
            registry,
            reconciles,
            failures,
            duration,
            leader,
            held_back,
        })
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding gathered families into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8_lossy(&buffer).into_owned()
    }
}
