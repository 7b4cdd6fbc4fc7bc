//! Support inquiries.

use std::sync::Arc;

use dbtree_core::support::SupportInquiry;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use super::accounts::Area;
use super::body::JsonBody;
use super::dto::{SupportReceivedDto, SupportRequest};
use super::problem::ErrorBody;
use super::{BearerAuth, OrProblem, from_problem, respond};
use crate::state::ServerState;

/// Support.
pub struct SupportApi {
    state: Arc<ServerState>,
}

impl SupportApi {
    pub(super) fn new(state: Arc<ServerState>) -> Self {
        Self { state }
    }
}

impl std::fmt::Debug for SupportApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SupportApi")
    }
}

#[derive(ApiResponse)]
#[oai(bad_request_handler = "super::bad_request")]
pub(super) enum SupportResponse {
    /// Stored; the administrators are told and the caller gets a confirmation by email.
    #[oai(status = 202)]
    Received(Json<SupportReceivedDto>),
    /// The subject or message is empty or too long (`invalid_inquiry`).
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing, malformed or expired bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// More than five inquiries within an hour.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u32),
    /// The body did not arrive within the time allowed (`request_timeout`).
    #[oai(status = 408)]
    RequestTimeout(Json<ErrorBody>),
    /// The body is larger than the server accepts (`payload_too_large`).
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// A dependency (database or Redis) is unreachable (`service_unavailable`); retry after
    /// `Retry-After` seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u32),
    /// Internal error.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
}
from_problem!(SupportResponse {
    BadRequest,
    Unauthorized,
    TooManyRequests,
    RequestTimeout,
    PayloadTooLarge,
    Unavailable,
    Internal
});

#[OpenApi(prefix_path = "/v1", tag = "Area::Support")]
impl SupportApi {
    /// Ask for help.
    #[oai(path = "/support", method = "post", operation_id = "submitInquiry")]
    async fn submit(&self, auth: BearerAuth, body: JsonBody<SupportRequest>) -> SupportResponse {
        respond(async {
            let inquiry = SupportInquiry::new(body.category.into(), &body.subject, &body.message)
                .or_problem()?;
            let who = &auth.0;
            let (id, mail_failures) = self
                .state
                .app
                .support
                .submit(&who.user, inquiry)
                .await
                .or_problem()?;
            if mail_failures > 0 {
                tracing::warn!(inquiry = id.0, mail_failures, "support emails not all sent");
            }
            Ok(SupportResponse::Received(Json(SupportReceivedDto {
                id: id.0,
            })))
        })
        .await
    }
}
