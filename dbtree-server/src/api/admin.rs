//! The quiz bank, for administrators.

use std::sync::Arc;

use dbtree_core::ids::QuizId;
use dbtree_core::quiz::{Category, Difficulty, NewQuiz};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use super::accounts::Area;
use super::body::JsonBody;
use super::dto::{AdminQuizDto, NewQuizRequest};
use super::problem::{ErrorBody, Problem, Status};
use super::{BearerAuth, OrProblem, from_problem, respond};
use crate::state::ServerState;

/// The quiz bank.
pub struct AdminApi {
    state: Arc<ServerState>,
}

impl AdminApi {
    pub(super) fn new(state: Arc<ServerState>) -> Self {
        Self { state }
    }
}

impl std::fmt::Debug for AdminApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminApi")
    }
}

#[derive(ApiResponse)]
#[oai(bad_request_handler = "super::bad_request")]
pub(super) enum QuizListResponse {
    /// Every quiz, answers included.
    #[oai(status = 200)]
    Ok(Json<Vec<AdminQuizDto>>),
    /// The request is malformed.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing, malformed or expired bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// Not an administrator.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// A dependency (database or Redis) is unreachable (`service_unavailable`); retry after
    /// `Retry-After` seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u32),
    /// Internal error.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
}
from_problem!(QuizListResponse {
    BadRequest,
    Unauthorized,
    Forbidden,
    Unavailable,
    Internal
});

#[derive(ApiResponse)]
#[oai(bad_request_handler = "super::bad_request")]
pub(super) enum AddQuizResponse {
    /// Added to the bank.
    #[oai(status = 201)]
    Created(Json<AdminQuizDto>),
    /// The quiz breaks a rule; `details.field` names the field (`invalid_quiz`).
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing, malformed or expired bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// Not an administrator.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// A quiz with this question exists (`quiz_exists`).
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
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
from_problem!(AddQuizResponse {
    BadRequest,
    Unauthorized,
    Forbidden,
    Conflict,
    RequestTimeout,
    PayloadTooLarge,
    Unavailable,
    Internal
});

#[derive(ApiResponse)]
#[oai(bad_request_handler = "super::bad_request")]
pub(super) enum RetireQuizResponse {
    /// Retired: never put on the tree again.
    #[oai(status = 204)]
    Retired,
    /// The id is malformed.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing, malformed or expired bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// Not an administrator.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No active quiz with this id.
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
from_problem!(RetireQuizResponse { BadRequest, Unauthorized, Forbidden, NotFound, Unavailable, Internal } path "id");

#[OpenApi(prefix_path = "/v1/admin", tag = "Area::Admin")]
impl AdminApi {
    /// Every quiz of the bank.
    #[oai(path = "/quizzes", method = "get", operation_id = "listQuizzes")]
    async fn list(&self, auth: BearerAuth) -> QuizListResponse {
        respond(async {
            super::require_admin(&auth.0)?;
            let quizzes = self.state.app.quizzes.list().await.or_problem()?;
            Ok(QuizListResponse::Ok(Json(
                quizzes.iter().map(AdminQuizDto::from).collect(),
            )))
        })
        .await
    }

    /// Add a quiz.
    #[oai(path = "/quizzes", method = "post", operation_id = "addQuiz")]
    async fn add(&self, auth: BearerAuth, body: JsonBody<NewQuizRequest>) -> AddQuizResponse {
        respond(async {
            super::require_admin(&auth.0)?;
            let body = body.0;
            let quiz = NewQuiz {
                category: body.category.parse::<Category>().or_problem()?,
                difficulty: body.difficulty.parse::<Difficulty>().or_problem()?,
                question: body.question,
                options: body.options,
                correct_option: body.correct_option,
                time_limit_seconds: body.time_limit_seconds,
                explanation: body.explanation,
            };
            let added = self.state.app.quizzes.add(quiz).await.or_problem()?;
            Ok(AddQuizResponse::Created(Json((&added).into())))
        })
        .await
    }

    /// Retire a quiz.
    #[oai(path = "/quizzes/:id", method = "delete", operation_id = "retireQuiz")]
    async fn retire(&self, auth: BearerAuth, id: Path<i64>) -> RetireQuizResponse {
        respond(async {
            super::require_admin(&auth.0)?;
            if !self
                .state
                .app
                .quizzes
                .retire(QuizId(id.0))
                .await
                .or_problem()?
            {
                return Err(Problem::new(
                    Status::NotFound,
                    "quiz_not_found",
                    "no active quiz with this id",
                    serde_json::json!({}),
                ));
            }
            Ok(RetireQuizResponse::Retired)
        })
        .await
    }
}
