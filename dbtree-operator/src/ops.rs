//! The operator's operations endpoints: `GET /healthz` (the process serves) and
//! `GET /metrics` (Prometheus text format).

use poem::endpoint::BoxEndpoint;
use poem::http::StatusCode;
use poem::web::Data;
use poem::{EndpointExt, IntoResponse, Response, Route, get, handler};

use crate::metrics::Metrics;

/// The router serving `/healthz` and `/metrics`.
pub fn route(metrics: Metrics) -> BoxEndpoint<'static> {
    Route::new()
        .at("/healthz", get(healthz))
        .at("/metrics", get(render_metrics))
        .data(metrics)
        .boxed()
}

#[handler]
fn healthz() -> &'static str {
    "ok"
}

#[handler]
fn render_metrics(metrics: Data<&Metrics>) -> impl IntoResponse {
    Response::builder()
        .status(StatusCode::OK)
        .content_type("text/plain; version=0.0.4")
        .body(metrics.render())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use poem::{Endpoint, Request};

    use super::*;

    #[tokio::test]
    async fn healthz_answers_and_metrics_render_the_counters() {
        let metrics = Metrics::new().unwrap();
        metrics.reconciles.inc();
        metrics.failures.with_label_values(&["api_server"]).inc();
        let route = route(metrics);
        let health = route
            .get_response(Request::builder().uri("/healthz".parse().unwrap()).finish())
            .await;
        assert_eq!(health.status(), StatusCode::OK);
        assert_eq!(health.into_body().into_string().await.unwrap(), "ok");
        let response = route
            .get_response(Request::builder().uri("/metrics".parse().unwrap()).finish())
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let text = response.into_body().into_string().await.unwrap();
        assert!(
            text.contains("dbtree_operator_reconciles_total 1"),
            "{text}"
        );
        assert!(
            text.contains("dbtree_operator_reconcile_failures_total{error=\"api_server\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("dbtree_operator_reconcile_duration_seconds_bucket"),
            "{text}"
        );
        let missing = route
            .get_response(Request::builder().uri("/nope".parse().unwrap()).finish())
            .await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }
}
