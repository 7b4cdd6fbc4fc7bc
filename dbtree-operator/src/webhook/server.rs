//! The webhook's HTTPS server: `POST /validate` and `GET /healthz` over rustls, answering from a
//! reflector cache of every `DBInstance` (no API call per request).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dbtree_adapters::kube::DBInstance;
use futures_util::{FutureExt, StreamExt};
use kube::core::admission::{AdmissionResponse, AdmissionReview, Operation};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use poem::error::ReadBodyError;
use poem::http::StatusCode;
use poem::listener::{
    Acceptor, AcceptorExt, BoxAcceptor, Listener, RustlsCertificate, RustlsConfig, TcpListener,
};
use poem::web::Data;
use poem::{Body, Endpoint, EndpointExt, Response, Route, Server, get, handler, post};

use super::body::unreadable;
use super::{Rejection, WebhookConfig, parse, respond, review};

/// Largest body accepted: two objects of etcd's 1.5 MiB limit, with room for the envelope.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// What the handlers share: the cache and the configuration.
#[derive(Clone, Debug)]
pub struct WebhookState {
    store: Store<DBInstance>,
    config: Arc<WebhookConfig>,
}

impl WebhookState {
    /// State reading `store` (filled by [`reflect`], or by hand in tests).
    pub fn new(store: Store<DBInstance>, config: WebhookConfig) -> Self {
        Self {
            store,
            config: Arc::new(config),
        }
    }

    /// Whether the cache has synced: its first full list has arrived.
    pub fn is_ready(&self) -> bool {
        matches!(self.store.wait_until_ready().now_or_never(), Some(Ok(())))
    }
}

/// The webhook's routes, as served in production.
pub fn route(state: WebhookState) -> impl Endpoint {
    Route::new()
        .at("/validate", post(validate))
        .at("/healthz", get(healthz))
        .data(state)
}

#[handler]
async fn validate(body: Body, state: Data<&WebhookState>) -> Response {
    let body = match body.into_bytes_limit(MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(e) => {
            let (status, reason) = match e {
                ReadBodyError::PayloadTooLarge => (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the body is larger than {MAX_BODY_BYTES} bytes"),
                ),
                other => (
                    StatusCode::BAD_REQUEST,
                    format!("the body could not be read: {other}"),
                ),
            };
            tracing::info!(
                http_status = status.as_u16(),
                "refused an unreadable review"
            );
            return reply(status, unreadable(&reason));
        }
    };
    let request = match parse(&body) {
        Ok(request) => request,
        Err(Rejection {
            http_status,
            response,
        }) => {
            tracing::info!(
                uid = %response.uid,
                http_status,
                "refused an unreadable review"
            );
            let status = StatusCode::from_u16(http_status).unwrap_or(StatusCode::BAD_REQUEST);
            return reply(status, *response);
        }
    };
    let response = if state.is_ready() {
        review(&request, &state.store, &state.config)
    } else {
        respond(&request, Err(super::Refusal::NotReady))
    };
    let operation = match request.operation {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    };
    tracing::info!(
        uid = %request.uid,
        operation,
        namespace = request.namespace.as_deref().unwrap_or_default(),
        name = %request.name,
        dry_run = request.dry_run,
        allowed = response.allowed,
        code = response.result.code,
        "reviewed"
    );
    reply(StatusCode::OK, response)
}

fn reply(status: StatusCode, response: AdmissionResponse) -> Response {
    let review: AdmissionReview<_> = response.into_review();
    match serde_json::to_vec(&review) {
        Ok(json) => Response::builder()
            .status(status)
            .content_type("application/json")
            .body(Body::from(json)),
        Err(e) => {
            tracing::error!(error = %e, "cannot serialise an AdmissionReview");
            Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .body("internal error")
        }
    }
}

#[handler]
fn healthz(state: Data<&WebhookState>) -> Response {
    if state.is_ready() {
        Response::builder().status(StatusCode::OK).body("ok")
    } else {
        Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .body("the DBInstance cache has not synced yet")
    }
}

/// TLS from a PEM certificate chain and its PEM private key.
pub fn tls(cert_pem: Vec<u8>, key_pem: Vec<u8>) -> RustlsConfig {
    RustlsConfig::new().fallback(RustlsCertificate::new().cert(cert_pem).key(key_pem))
}

/// A TLS listener bound to `addr` (port 0 picks a free port).
///
/// # Errors
/// The address cannot be bound, or the certificate or key cannot be used.
pub async fn bind(addr: SocketAddr, tls: RustlsConfig) -> io::Result<BoundWebhook> {
    let acceptor = TcpListener::bind(addr).rustls(tls).into_acceptor().await?;
    let local_addr = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .ok_or_else(|| io::Error::other("the listener has no socket address"))?;
    Ok(BoundWebhook {
        acceptor: acceptor.boxed(),
        local_addr,
    })
}

/// A bound TLS listener, ready to serve.
pub struct BoundWebhook {
    acceptor: BoxAcceptor,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for BoundWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundWebhook")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl BoundWebhook {
    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves `endpoint` until `shutdown` resolves, then drains for up to five seconds.
    ///
    /// # Errors
    /// The listener fails.
    pub async fn serve<E: Endpoint + 'static>(
        self,
        endpoint: E,
        shutdown: impl Future<Output = ()> + Send,
    ) -> io::Result<()> {
        Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(endpoint, shutdown, Some(Duration::from_secs(5)))
            .await
    }
}

/// A store of every `DBInstance` in the cluster and the future that keeps it current: a watcher
/// with the default backoff (a lost connection is retried, never fatal), managed fields dropped
/// to save memory. Run the future for as long as the store is read.
pub fn reflect(client: Client) -> (Store<DBInstance>, impl Future<Output = ()> + Send) {
    let (store, writer) = reflector::store();
    let api = Api::<DBInstance>::all(client);
    let task = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|o: &mut DBInstance| o.meta_mut().managed_fields = None)
        .reflect(writer)
        .for_each(|event| async move {
            if let Err(e) = event {
                tracing::warn!(error = %e, "watching DBInstances failed; retrying");
            }
        });
    (store, task)
}
