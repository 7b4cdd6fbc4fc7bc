//! Operations endpoints: liveness, readiness, metrics, and JSON errors for unknown routes.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{IntoResponse, Response, handler};
use serde_json::json;

use crate::state::ServerState;

/// Liveness: the process answers.
#[handler]
pub(crate) fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the store answers with a planted tree, and Redis answers when configured.
#[handler]
pub(crate) async fn readyz(state: Data<&Arc<ServerState>>) -> Response {
    match state.readiness.check(&state.app).await {
        Ok(()) => "ready".into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason)
            .with_header(
                poem::http::header::RETRY_AFTER,
                crate::api::problem::DEPENDENCY_RETRY_SECS,
            )
            .into_response(),
    }
}

/// Prometheus text exposition.
#[handler]
pub(crate) async fn metrics(state: Data<&Arc<ServerState>>) -> Response {
    let body = state.metrics.render(&state.app.stats).await;
    body.with_content_type("text/plain; version=0.0.4")
        .into_response()
}

/// The error body for requests no route matched (or matched with the wrong method).
pub(crate) fn unmatched(status: StatusCode) -> Response {
    let (code, message) = if status == StatusCode::METHOD_NOT_ALLOWED {
        (
            "method_not_allowed",
            "this path does not accept that method",
        )
    } else {
        ("not_found", "no such endpoint; see /docs")
    };
    (
        status,
        Json(json!({ "code": code, "message": message, "details": {} })),
    )
        .into_response()
}

/// Adds the `Allow` header to 405 answers (RFC 9110), listing the methods the OpenAPI document
/// declares for the requested path.
#[derive(Clone, Debug)]
pub(crate) struct AllowHeader {
    routes: Arc<Vec<(Vec<String>, String)>>,
}

impl AllowHeader {
    /// From the OpenAPI document (JSON) served under `prefix`.
    pub(crate) fn from_spec(spec: &str, prefix: &str) -> Self {
        let parsed: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
        let mut routes = Vec::new();
        if let Some(paths) = parsed.get("paths").and_then(|p| p.as_object()) {
            for (path, item) in paths {
                let segments = format!("{prefix}{path}")
                    .split('/')
                    .map(str::to_owned)
                    .collect();
                let mut methods: Vec<String> = item
                    .as_object()
                    .map(|o| o.keys().map(|m| m.to_ascii_uppercase()).collect())
                    .unwrap_or_default();
                methods.sort();
                routes.push((segments, methods.join(", ")));
            }
        }
        Self {
            routes: Arc::new(routes),
        }
    }

    fn allowed(&self, path: &str) -> Option<&str> {
        let asked: Vec<&str> = path.split('/').collect();
        self.routes
            .iter()
            .find(|(segments, _)| {
                segments.len() == asked.len()
                    && segments
                        .iter()
                        .zip(&asked)
                        .all(|(s, a)| s == a || (s.starts_with('{') && !a.is_empty()))
            })
            .map(|(_, methods)| methods.as_str())
    }
}

impl<E: poem::Endpoint> poem::Middleware<E> for AllowHeader {
    type Output = AllowHeaderEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        AllowHeaderEndpoint {
            inner: ep,
            allow: self.clone(),
        }
    }
}

/// The endpoint wrapped by [`AllowHeader`].
#[derive(Debug)]
pub(crate) struct AllowHeaderEndpoint<E> {
    inner: E,
    allow: AllowHeader,
}

impl<E: poem::Endpoint> poem::Endpoint for AllowHeaderEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: poem::Request) -> poem::Result<Response> {
        let path = req.uri().path().to_owned();
        let mut response = self.inner.call(req).await?.into_response();
        if response.status() == StatusCode::METHOD_NOT_ALLOWED
            && let Some(methods) = self.allow.allowed(&path)
            && let Ok(value) = poem::http::HeaderValue::from_str(methods)
        {
            response
                .headers_mut()
                .insert(poem::http::header::ALLOW, value);
        }
        Ok(response)
    }
}
