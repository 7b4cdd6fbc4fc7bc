//! The dbtree server: the HTTP API over `dbtree-core`'s use cases, live tree events, metrics
//! and background jobs. `main.rs` is the composition root; [`route`] builds the exact production
//! router, which tests and the OpenAPI generator use too.

#![forbid(unsafe_code)]

pub mod api;
pub mod config;
pub mod data_dir;
pub mod jobs;
pub mod limits;
pub mod live;
pub mod metrics;
mod ops;
pub mod readiness;
pub mod serve;
pub mod state;
pub mod telemetry;
pub mod web;
pub mod wiring;

use std::sync::Arc;

use poem::http::{Method, StatusCode, header};
use poem::middleware::Cors;
use poem::{Endpoint, EndpointExt, Route, get};

pub use state::ServerState;

/// The production router: the web app at `/` (assets under `/assets`), the API under `/api/v1`,
/// Swagger UI at `/docs`, the spec at `/openapi.json`, `/healthz`, `/readyz`, `/metrics`, with
/// request ids, logs, metrics, the request-body limit, and CORS for `cors_origins` only (none:
/// no CORS headers at all, so browsers keep other origins out).
pub fn route(state: Arc<ServerState>, cors_origins: &[String]) -> impl Endpoint + 'static {
    let api = api::service(state.clone());
    let allow = ops::AllowHeader::from_spec(&api.spec(), "/api");
    let docs = api.swagger_ui();
    let spec = api.spec_endpoint();
    let cors = cors_origins
        .iter()
        .fold(Cors::new(), |cors, origin| {
            cors.allow_origin(origin.as_str())
        })
        .allow_credentials(false)
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([header::RETRY_AFTER])
        .max_age(600);
    let body_limit =
        limits::body::BodyLimit::new(state.limits.max_body_bytes, state.limits.body_read_timeout);
    let telemetry = telemetry::Telemetry::new(state.metrics.clone());
    Route::new()
        .nest("/api", api)
        .nest("/docs", docs)
        .at("/openapi.json", spec)
        .at("/healthz", get(ops::healthz))
        .at("/readyz", get(ops::readyz))
        .at("/metrics", get(ops::metrics))
        .at("/", get(web::index))
        .at("/assets/:version/*path", get(web::asset))
        .catch_all_error(|error: poem::Error| async move {
            match error.status() {
                StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => {
                    ops::unmatched(error.status())
                }
                _ => error.into_response(),
            }
        })
        .with(allow)
        .with(body_limit)
        .with_if(!cors_origins.is_empty(), cors)
        .with(telemetry)
        .data(state)
}

/// The OpenAPI document of the API, as committed in `openapi/dbtree.json`.
pub fn openapi_json(state: Arc<ServerState>) -> String {
    api::service(state).spec()
}
