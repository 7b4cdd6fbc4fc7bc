//! Reading a request body as an `AdmissionReview` of a `DBInstance`, never panicking on what
//! arrives: anything unreadable becomes a refusal that says what is wrong.

use dbtree_adapters::kube::DBInstance;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::core::{DynamicObject, GroupVersionKind};

use super::Refusal;

/// A body that could not be reviewed, with the answer to send.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    /// The HTTP status to answer with: 200 when the review's `uid` could be read (the API server
    /// reads the denial from the body), 400 when the body is not an `AdmissionReview` at all.
    pub http_status: u16,
    /// The denying response, with the request's `uid` when it could be read.
    pub response: Box<AdmissionResponse>,
}

/// Parses a body as an `AdmissionReview` whose objects are `DBInstance`s.
///
/// # Errors
/// A [`Rejection`] (code 400) when the body is not JSON, not an `AdmissionReview`, carries no
/// request, or carries objects that are not valid `DBInstance`s.
pub fn parse(body: &[u8]) -> Result<AdmissionRequest<DBInstance>, Rejection> {
    let typed_error = match serde_json::from_slice::<AdmissionReview<DBInstance>>(body) {
        Ok(review) => {
            let request: AdmissionRequest<DBInstance> =
                review.try_into().map_err(|_| Rejection {
                    http_status: 400,
                    response: Box::new(unreadable("the AdmissionReview carries no request")),
                })?;
            if request.kind.group != "dbtree.cloud" || request.kind.kind != "DBInstance" {
                let reason = wrong_kind(&request.kind);
                let mut response = AdmissionResponse::from(&request);
                response.allowed = false;
                response.result = Refusal::Malformed { reason }.status();
                return Err(Rejection {
                    http_status: 200,
                    response: Box::new(response),
                });
            }
            return Ok(request);
        }
        Err(e) => e,
    };
    // Not a review of a valid DBInstance: read it loosely to answer the request by its uid.
    match serde_json::from_slice::<AdmissionReview<DynamicObject>>(body) {
        Ok(review) => match TryInto::<AdmissionRequest<DynamicObject>>::try_into(review) {
            Ok(request) => Err(Rejection {
                http_status: 200,
                response: Box::new(not_a_dbinstance(&request, &typed_error)),
            }),
            Err(_) => Err(Rejection {
                http_status: 400,
                response: Box::new(unreadable("the AdmissionReview carries no request")),
            }),
        },
        Err(e) => Err(Rejection {
            http_status: 400,
            response: Box::new(unreadable(&format!(
                "the body is not an AdmissionReview: {e}"
            ))),
        }),
    }
}

fn not_a_dbinstance(
    request: &AdmissionRequest<DynamicObject>,
    error: &serde_json::Error,
) -> AdmissionResponse {
    let kind = &request.kind;
    let reason = if kind.group == "dbtree.cloud" && kind.kind == "DBInstance" {
        format!("the object is not a valid DBInstance: {error}")
    } else {
        wrong_kind(kind)
    };
    let refusal = Refusal::Malformed { reason };
    let mut response = AdmissionResponse::from(request);
    response.allowed = false;
    response.result = refusal.status();
    response
}

fn wrong_kind(kind: &GroupVersionKind) -> String {
    format!(
        "this webhook reviews dbtree.cloud DBInstances, not {}/{} {}",
        kind.group, kind.version, kind.kind
    )
}

/// A denial for a body that could not be read at all (no `uid` to answer by).
pub(crate) fn unreadable(reason: &str) -> AdmissionResponse {
    let refusal = Refusal::Malformed {
        reason: reason.to_owned(),
    };
    let mut response = AdmissionResponse::invalid(reason);
    response.result = refusal.status();
    response
}
