//! Request ids and one log line per request: method, path, status, latency, request id. Never
//! bodies, query strings, codes, tokens or passwords.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use poem::http::HeaderValue;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};
use poem_openapi::OperationId;
use tracing::Instrument;

use crate::metrics::Metrics;

/// Header carrying the request id both ways.
pub const REQUEST_ID: &str = "x-request-id";

/// Adds request ids, logs and metrics to an endpoint.
#[derive(Clone, Debug)]
pub struct Telemetry {
    metrics: Metrics,
    counter: Arc<AtomicU64>,
    prefix: u64,
}

impl Telemetry {
    /// Telemetry recording into `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        let prefix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()).rotate_left(40);
        Self {
            metrics,
            counter: Arc::new(AtomicU64::new(0)),
            prefix,
        }
    }
}

impl<E: Endpoint> Middleware<E> for Telemetry {
    type Output = TelemetryEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        TelemetryEndpoint {
            inner: ep,
            telemetry: self.clone(),
        }
    }
}

/// The endpoint wrapped by [`Telemetry`].
#[derive(Debug)]
pub struct TelemetryEndpoint<E> {
    inner: E,
    telemetry: Telemetry,
}

/// A client-supplied id is kept only if it is short and plain.
fn acceptable(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl<E: Endpoint> Endpoint for TelemetryEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let id = req
            .headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|v| acceptable(v))
            .map(str::to_owned)
            .unwrap_or_else(|| {
                let n = self.telemetry.counter.fetch_add(1, Ordering::Relaxed);
                format!("{:08x}{:08x}", self.telemetry.prefix as u32, n as u32)
            });
        let method = req.method().to_string();
        let path = req.uri().path().to_owned();
        let span = tracing::info_span!("request", id = %id, method = %method, path = %path);
        let started = Instant::now();
        let result = self.inner.call(req).instrument(span.clone()).await;
        let mut response = match result {
            Ok(output) => output.into_response(),
            Err(error) => error.into_response(),
        };
        let status = response.status().as_u16();
        let operation = response.data::<OperationId>().map_or("other", |o| o.0);
        let seconds = started.elapsed().as_secs_f64();
        self.telemetry
            .metrics
            .request(operation, &method, status, seconds);
        span.in_scope(|| {
            tracing::info!(
                status,
                operation,
                ms = (seconds * 1000.0).round() as u64,
                "request"
            )
        });
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        Ok(response)
    }
}
