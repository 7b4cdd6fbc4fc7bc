//! Sign-in, sessions, the profile and account deletion.

use std::net::IpAddr;
use std::sync::Arc;

use dbtree_core::service::Profile;
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi, Tags};

use super::body::JsonBody;
use super::dto::{CodeRequest, CodeSentDto, ProfileDto, SessionDto, SessionRequest};
use super::problem::{ErrorBody, Problem};
use super::{BearerAuth, OrProblem, from_problem, respond};
use crate::state::ServerState;

/// Groups of operations in the documentation.
#[derive(Tags)]
pub(super) enum Area {
    /// Sign-in, sessions and the account.
    Accounts,
    /// The lemon tree, quizzes and harvests.
    Tree,
    /// Presets and prices.
    Catalog,
    /// Database instances.
    Instances,
    /// Figures.
    Stats,
    /// Support.
    Support,
    /// The quiz bank (administrators).
    Admin,
}

/// The client's address, for per-address rate limits.
pub(super) fn client_ip(req: &Request) -> Option<IpAddr> {
    req.remote_addr().as_socket_addr().map(|a| a.ip())
}

/// Sign-in, sessions and the account.
pub struct AccountApi {
    state: Arc<ServerState>,
}

impl AccountApi {
    pub(super) fn new(state: Arc<ServerState>) -> Self {
        Self { state }
    }
}

impl AccountApi {
    /// The profile with its runway figures.
    async fn with_runway(&self, profile: Profile) -> Result<ProfileDto, Problem> {
        let app = &self.state.app;
        let runway = app
            .billing
            .runway(profile.id, profile.balance)
            .await
            .or_problem()?;
        Ok(ProfileDto::from(profile).with_runway(&runway, &app.policy))
    }
}

impl std::fmt::Debug for AccountApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccountApi")
    }
}

#[derive(ApiResponse)]
#[oai(bad_request_handler = "super::bad_request")]
pub(super) enum RequestCodeResponse {
    /// The code was sent; it is valid for ten minutes.
    #[oai(status = 202)]
    Sent(Json<CodeSentDto>),
    /// The email is malformed (`invalid_email`).
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// The email belongs to a disposable-mail provider (`disposable_email`).
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// Too many codes for this address or client, or a code was sent less than a minute ago.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u32),
    /// The mail could not be sent (`mail_unavailable`); nothing was recorded; or a dependency
    /// (database or Redis) is unreachable (`service_unavailable`).
    /// Retry after `Retry-After` seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u32),
    /// The body did not arrive within the time allowed (`request_timeout`).
    #[oai(status = 408)]
    RequestTimeout(Json<ErrorBody>),
    /// The body is larger than the server accepts (`payload_too_large`).
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// Internal error.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
}
from_problem!(RequestCodeResponse {
    BadRequest,
    Unprocessable,
    TooManyRequests,
    Unavailable,
    RequestTimeout,
    PayloadTooLarge,
    Internal
});

#[derive(ApiResponse)]
#[oai(bad_request_handler = "super::bad_request")]
pub(super) enum CreateSessionResponse {
    /// Signed in: a new session for this device.
    #[oai(status = 201)]
    Created(Json<SessionDto>),
    /// The email or the code is malformed.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Wrong, expired or no code (`wrong_code`, `code_expired`, `no_pending_code`).
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// The code is locked after five wrong tries (`code_locked`).
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// The email belongs to a disposable-mail provider.
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// Too many attempts from this client.
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
from_problem!(CreateSessionResponse {
    BadRequest,
    Unauthorized,
    Forbidden,
    Unprocessable,
    TooManyRequests,
    RequestTimeout,
    PayloadTooLarge,
    Unavailable,
    Internal
});

#[derive(ApiResponse)]
#[oai(bad_request_handler = "super::bad_request")]
pub(super) enum DoneResponse {
    /// Done.
    #[oai(status = 204)]
    Done,
    /// The request is malformed.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing, malformed or expired bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// A dependency (database or Redis) is unreachable (`service_unavailable`); retry after
    /// `Retry-After` seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u32),
    /// Internal error.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
}
from_problem!(DoneResponse {
    BadRequest,
    Unauthorized,
    Unavailable,
    Internal
});

#[derive(ApiResponse)]
#[oai(bad_request_handler = "super::bad_request")]
pub(super) enum ProfileResponse {
    /// The caller's profile.
    #[oai(status = 200)]
    Ok(Json<ProfileDto>),
    /// The request is malformed.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing, malformed or expired bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// A dependency (database or Redis) is unreachable (`service_unavailable`); retry after
    /// `Retry-After` seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u32),
    /// Internal error.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
}
from_problem!(ProfileResponse {
    BadRequest,
    Unauthorized,
    Unavailable,
    Internal
});

#[derive(ApiResponse)]
#[oai(bad_request_handler = "super::bad_request")]
pub(super) enum DeleteAccountResponse {
    /// The account is deleted; its instances are being deleted; the ledger is kept for audit.
    #[oai(status = 204)]
    Deleted,
    /// The request is malformed.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing, malformed or expired bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// The account no longer exists.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// A dependency (database or Redis) is unreachable (`service_unavailable`); retry after
    /// `Retry-After` seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u32),
    /// Internal error.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
}
from_problem!(DeleteAccountResponse {
    BadRequest,
    Unauthorized,
    NotFound,
    Unavailable,
    Internal
});

#[OpenApi(prefix_path = "/v1", tag = "Area::Accounts")]
impl AccountApi {
    /// Send a sign-in code.
    ///
    /// Emails a six-digit code valid for ten minutes. Never touches existing sessions.
    #[oai(path = "/auth/code", method = "post", operation_id = "requestCode")]
    async fn request_code(
        &self,
        req: &Request,
        body: JsonBody<CodeRequest>,
    ) -> RequestCodeResponse {
        respond(async {
            let sent = self
                .state
                .app
                .accounts
                .request_code(&body.email, client_ip(req))
                .await
                .or_problem()?;
            Ok(RequestCodeResponse::Sent(Json(CodeSentDto {
                email: sent.email.to_string(),
                expires_at: sent.expires_at,
                resend_after_seconds: sent.resend_after_secs,
            })))
        })
        .await
    }

    /// Sign in with a code.
    ///
    /// Opens a session for this device (others stay signed in). A first sign-in creates the
    /// account with the welcome bonus.
    #[oai(
        path = "/auth/session",
        method = "post",
        operation_id = "createSession"
    )]
    async fn create_session(
        &self,
        req: &Request,
        body: JsonBody<SessionRequest>,
    ) -> CreateSessionResponse {
        respond(async {
            let accounts = &self.state.app.accounts;
            let signed = accounts
                .verify(&body.email, &body.code, client_ip(req))
                .await
                .or_problem()?;
            if let Some(failure) = &signed.welcome_mail_failure {
                tracing::warn!(error = %failure, "welcome email not sent");
            }
            let profile = self.with_runway(signed.profile.clone()).await?;
            Ok(CreateSessionResponse::Created(Json(SessionDto {
                token: signed.token.expose(),
                expires_at: signed.session.expires_at,
                is_new_user: signed.new_user,
                profile,
            })))
        })
        .await
    }

    /// Sign out this device.
    #[oai(
        path = "/auth/session",
        method = "delete",
        operation_id = "deleteSession"
    )]
    async fn delete_session(&self, auth: BearerAuth) -> DoneResponse {
        respond(async {
            let who = &auth.0;
            self.state
                .app
                .accounts
                .logout(&who.session)
                .await
                .or_problem()?;
            Ok(DoneResponse::Done)
        })
        .await
    }

    /// Sign out everywhere.
    #[oai(
        path = "/auth/sessions",
        method = "delete",
        operation_id = "deleteAllSessions"
    )]
    async fn delete_all_sessions(&self, auth: BearerAuth) -> DoneResponse {
        respond(async {
            let who = &auth.0;
            self.state
                .app
                .accounts
                .logout_everywhere(who.user.id)
                .await
                .or_problem()?;
            Ok(DoneResponse::Done)
        })
        .await
    }

    /// The caller's profile: balance, totals, streak, cooldown, and the runway: the hourly
    /// burn of the running instances, the whole hours the balance pays at that burn, when the
    /// first pause is due, and whether the balance is low.
    #[oai(path = "/me", method = "get", operation_id = "getProfile")]
    async fn profile(&self, auth: BearerAuth) -> ProfileResponse {
        respond(async {
            let who = &auth.0;
            let profile = self.state.app.accounts.profile(&who.user);
            Ok(ProfileResponse::Ok(Json(self.with_runway(profile).await?)))
        })
        .await
    }

    /// Delete the account.
    ///
    /// Deletes its instances through the cluster and ends its sessions; the ledger is kept for
    /// audit with the email removed. Signing up again with the same address pays no second
    /// welcome bonus.
    #[oai(path = "/me", method = "delete", operation_id = "deleteAccount")]
    async fn delete_account(&self, auth: BearerAuth) -> DeleteAccountResponse {
        respond(async {
            let who = &auth.0;
            self.state
                .app
                .accounts
                .delete_account(who.user.id)
                .await
                .or_problem()?;
            Ok(DeleteAccountResponse::Deleted)
        })
        .await
    }
}
