//! Prometheus metrics: requests, harvests, lemons, and global figures read at scrape time.

use dbtree_core::harvest::{HarvestReceipt, HarvestRefusal};
use dbtree_core::service::{HarvestError, StatsService};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The server's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    harvests: IntCounterVec,
    lemons: IntCounterVec,
    totals: IntGaugeVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

impl Metrics {
    /// A fresh registry with every metric.
    ///
    /// # Errors
    /// A prometheus error if a metric is misdefined (a programming error the tests catch).
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new_custom(Some("dbtree".into()), None)?;
        let requests = counter(
            &registry,
            "http_requests_total",
            "HTTP requests by operation and status.",
            &["operation", "method", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by operation.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["operation"],
        )?;
        registry.register(Box::new(latency.clone()))?;
        let harvests = counter(
            &registry,
            "harvests_total",
            "Harvest requests by outcome (won, lost, refused).",
            &["outcome"],
        )?;
        let lemons = counter(
            &registry,
            "lemons_total",
            "Lemons moved by this replica (paid_out, charged).",
            &["direction"],
        )?;
        let totals = IntGaugeVec::new(
            Opts::new(
                "ledger",
                "Global figures read from the store at scrape time.",
            ),
            &["figure"],
        )?;
        registry.register(Box::new(totals.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
            harvests,
            lemons,
            totals,
        })
    }

    /// Counts a finished request.
    pub fn request(&self, operation: &str, method: &str, status: u16, seconds: f64) {
        self.requests
            .with_label_values(&[operation, method, &status.to_string()])
            .inc();
        self.latency
            .with_label_values(&[operation])
            .observe(seconds);
    }

    /// Counts a harvest outcome.
    pub fn harvest(&self, result: &Result<HarvestReceipt, HarvestError>) {
        let outcome = match result {
            Ok(receipt) => {
                self.lemons.with_label_values(&["paid_out"]).inc_by(
                    u64::from(receipt.reward.get()) + u64::from(receipt.streak_bonus.get()),
                );
                "won"
            }
            Err(HarvestError::Refused(HarvestRefusal::AlreadyHarvested)) => "lost",
            Err(_) => "refused",
        };
        self.harvests.with_label_values(&[outcome]).inc();
    }

    /// Counts lemons charged (a negative ledger delta).
    pub fn charged(&self, delta: i64) {
        self.lemons
            .with_label_values(&["charged"])
            .inc_by(delta.unsigned_abs());
    }

    /// The text exposition, with global figures refreshed from the store.
    pub async fn render(&self, stats: &StatsService) -> String {
        match stats.global().await {
            Ok(g) => {
                let gauge = |figure: &str, v: u64| {
                    self.totals
                        .with_label_values(&[figure])
                        .set(i64::try_from(v).unwrap_or(i64::MAX))
                };
                gauge("lemons_harvested", g.lemons_harvested);
                gauge("live_users", g.live_users);
                gauge("instances_created", g.instances_created);
            }
            Err(e) => tracing::warn!(error = %e, "metrics: cannot read global figures"),
        }
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "metrics: cannot encode");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}
