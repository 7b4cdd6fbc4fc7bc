//! A fake Kubernetes API server: the test takes the controller's requests one by one, asserts
//! each method, path, query and body, and answers with what a real API server would.

use std::collections::HashMap;
use std::time::Duration;

use dbtree_adapters::kube::DBInstance;
use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle, SendResponse};

/// The scenario's side of the fake API server.
pub(crate) struct ApiServer(Handle<Request<Body>, Response<Body>>);

/// A client talking to a new fake API server.
pub(crate) fn client() -> (Client, ApiServer) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), ApiServer(handle))
}

/// One request, taken apart, waiting for its answer.
pub(crate) struct Exchange {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: HashMap<String, String>,
    pub(crate) content_type: String,
    pub(crate) body: Value,
    responder: SendResponse<Response<Body>>,
}

impl ApiServer {
    /// The next request, which must be `method` on `path` (without the query).
    pub(crate) async fn expect(&mut self, method: Method, path: &str) -> Exchange {
        let next = tokio::time::timeout(Duration::from_secs(5), self.0.next_request()).await;
        let (request, responder) = match next {
            Ok(Some(pair)) => pair,
            Ok(None) => panic!("the client went away; expected {method} {path}"),
            Err(_) => panic!("no request within 5 s; expected {method} {path}"),
        };
        let (parts, body) = request.into_parts();
        let bytes = body.collect_bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        let query = parts
            .uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect();
        let exchange = Exchange {
            method: parts.method,
            path: parts.uri.path().to_owned(),
            query,
            content_type: parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default(),
            body,
            responder,
        };
        assert_eq!(
            (exchange.method.as_str(), exchange.path.as_str()),
            (method.as_str(), path),
            "unexpected request (body {})",
            exchange.body
        );
        exchange
    }

    /// Asserts that the client sent nothing more.
    pub(crate) async fn assert_idle(&mut self) {
        if let Ok(Some((request, _))) =
            tokio::time::timeout(Duration::from_millis(100), self.0.next_request()).await
        {
            panic!(
                "unexpected extra request {} {}",
                request.method(),
                request.uri()
            );
        }
    }
}

impl Exchange {
    /// Asserts a server-side apply by `dbtree-operator` that forces conflicts.
    pub(crate) fn assert_apply(&self) -> &Self {
        assert_eq!(
            self.content_type, "application/apply-patch+yaml",
            "{}",
            self.path
        );
        assert_eq!(
            self.query.get("fieldManager").map(String::as_str),
            Some("dbtree-operator")
        );
        assert_eq!(self.query.get("force").map(String::as_str), Some("true"));
        self
    }

    /// Answers `status` with `body`.
    pub(crate) fn reply(self, status: u16, body: Value) {
        let response = Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap();
        self.responder.send_response(response);
    }

    /// Answers 200 with the applied object itself plus `status` (what the server would hold).
    pub(crate) fn reply_applied(self, status: Value) {
        let mut object = self.body.clone();
        object["metadata"]["generation"] = json!(1);
        object["metadata"]["uid"] = json!("child-uid");
        if !status.is_null() {
            object["status"] = status;
        }
        self.reply(200, object);
    }

    /// Answers with a Kubernetes `Status` failure.
    pub(crate) fn reply_failure(self, code: u16, reason: &str) {
        let body = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": format!("fake: {reason}"), "reason": reason, "code": code,
        });
        self.reply(code, body);
    }

    /// Answers a DELETE that removed the object at once.
    pub(crate) fn reply_deleted(self) {
        let body = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 200,
        });
        self.reply(200, body);
    }

    /// Answers a request about a `DBInstance` with the instance itself.
    pub(crate) fn reply_instance(self, dbi: &DBInstance) {
        self.reply(200, serde_json::to_value(dbi).unwrap());
    }
}
