//! The tree, its live changes, quizzes and harvests.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use dbtree_core::harvest::Click;
use dbtree_core::ids::AttemptId;
use dbtree_core::tree::Position;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::payload::{EventStream, Json};
use poem_openapi::{ApiResponse, OpenApi};

use super::accounts::{Area, client_ip};
use super::body::JsonBody;
use super::dto::{
    AnswerDto, AnswerRequest, HarvestDto, HarvestRequest, LemonDto, QuizDto, TreeDto,
};
use super::problem::{ErrorBody, Problem};
use super::{BearerAuth, OrProblem, from_problem, respond};
use crate::state::ServerState;

/// The tree, quizzes and harvests.
pub struct TreeApi {
    state: Arc<ServerState>,
}

impl TreeApi {
    pub(super) fn new(state: Arc<ServerState>) -> Self {
        Self { state }
    }
}

impl std::fmt::Debug for TreeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TreeApi")
    }
}

fn attempt_id(text: &str) -> Result<AttemptId, Problem> {
    AttemptId::from_str(text).map_err(|_| {
        Problem::invalid(
            "attemptId",
            "invalid_id",
            "attemptId: not a valid attempt id",
        )
    })
}

#[derive(ApiResponse)]
#[oai(bad_request_handler = "super::bad_request")]
pub(super) enum TreeResponse {
    /// The ten lemons.
    #[oai(status = 200)]
    Ok(Json<TreeDto>),
    /// The request is malformed.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// A dependency (database or Redis) is unreachable (`service_unavailable`); retry after
    /// `Retry-After` seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u32),
    /// Internal error.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
}
from_problem!(TreeResponse {
    BadRequest,
    Unavailable,
    Internal
});

#[derive(ApiResponse)]
#[oai(bad_request_handler = "super::bad_request")]
pub(super) enum TreeEventsResponse {
    /// Server-sent events: first every lemon, then each lemon whenever it changes (harvested or
    /// ripe again), within a second.
    #[oai(status = 200)]
    Events(EventStream<BoxStream<'static, LemonDto>>),
    /// The request is malformed.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Too many event streams from this client address (`too_many_streams`).
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u32),
    /// The server is at its limit of event streams (`too_many_streams`), or a dependency is
    /// unreachable (`service_unavailable`); retry after `Retry-After` seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u32),
    /// Internal error.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
}
from_problem!(TreeEventsResponse {
    BadRequest,
    TooManyRequests,
    Unavailable,
    Internal
});

#[derive(ApiResponse)]
#[oai(bad_request_handler = "super::bad_request")]
pub(super) enum StartQuizResponse {
    /// The quiz of the lemon; answer before the deadline.
    #[oai(status = 201)]
    Started(Json<QuizDto>),
    /// The position is not between 0 and 9.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing, malformed or expired bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// The lemon is regrowing (`lemon_not_ripe`), another quiz is in progress
    /// (`quiz_in_progress`), or the one-hour cooldown runs (`harvest_cooldown`).
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The balance is at the cap (`lemon_storage_full`).
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// A dependency (database or Redis) is unreachable (`service_unavailable`); retry after
    /// `Retry-After` seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u32),
    /// Internal error.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
}
from_problem!(StartQuizResponse { BadRequest, Unauthorized, Conflict, Unprocessable, Unavailable, Internal } path "position");

#[derive(ApiResponse)]
#[oai(bad_request_handler = "super::bad_request")]
pub(super) enum AnswerResponse {
    /// The verdict; a correct answer in time opens the five-second harvest window.
    #[oai(status = 200)]
    Ok(Json<AnswerDto>),
    /// The option or the attempt id is malformed.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing, malformed or expired bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// No such attempt of the caller.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// Already answered, or the time limit passed (the answer is not revealed).
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
from_problem!(AnswerResponse { BadRequest, Unauthorized, NotFound, Conflict, RequestTimeout, PayloadTooLarge, Unavailable, Internal } path "attemptId");

#[derive(ApiResponse)]
#[oai(bad_request_handler = "super::bad_request")]
pub(super) enum AbandonResponse {
    /// Given up: the quiz can no longer be answered and another one can start at once.
    #[oai(status = 204)]
    Abandoned,
    /// The attempt id is malformed.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing, malformed or expired bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// No such attempt of the caller.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The store is out of reach (`service_unavailable`); retry after the given seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u32),
    /// Internal error.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
}
from_problem!(AbandonResponse { BadRequest, Unauthorized, NotFound, Unavailable, Internal } path "attemptId");

#[derive(ApiResponse)]
#[oai(bad_request_handler = "super::bad_request")]
pub(super) enum HarvestResponse {
    /// The lemon is yours. A repeated request returns the same receipt and pays nothing.
    #[oai(status = 200)]
    Won(Json<HarvestDto>),
    /// The click is malformed (`invalid_click`) or the attempt id is.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing, malformed or expired bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// No such attempt of the caller.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// Someone was faster (`lemon_already_harvested`), the window closed
    /// (`harvest_window_closed`), no correct answer (`no_quiz_passed`), or the cooldown runs.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The click missed (`click_missed`), came after the window (`click_after_window`), or the
    /// balance is at the cap (`lemon_storage_full`).
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
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
from_problem!(HarvestResponse { BadRequest, Unauthorized, NotFound, Conflict, Unprocessable, RequestTimeout, PayloadTooLarge, Unavailable, Internal } path "attemptId");

#[OpenApi(prefix_path = "/v1", tag = "Area::Tree")]
impl TreeApi {
    /// The ten lemons.
    #[oai(path = "/tree", method = "get", operation_id = "getTree")]
    async fn tree(&self) -> TreeResponse {
        respond(async {
            let lemons = self.state.app.tree.tree().await.or_problem()?;
            Ok(TreeResponse::Ok(Json(TreeDto {
                lemons: lemons.iter().map(LemonDto::from).collect(),
                server_time: self.state.clock.now(),
            })))
        })
        .await
    }

    /// Live changes of the tree (server-sent events).
    ///
    /// The server keeps a limited number of streams open, in all and per client address.
    #[oai(path = "/tree/events", method = "get", operation_id = "treeEvents")]
    async fn events(&self, req: &Request) -> TreeEventsResponse {
        respond(async {
            let slot = self.state.streams.acquire(client_ip(req)).or_problem()?;
            // the slot is held as long as the stream is: dropping the stream frees it
            let lemons = self
                .state
                .hub
                .subscribe()
                .map(move |lemon| {
                    let _held = &slot;
                    lemon
                })
                .boxed();
            Ok(TreeEventsResponse::Events(
                EventStream::new(lemons).keep_alive(Duration::from_secs(15)),
            ))
        })
        .await
    }

    /// Start the quiz of a ripe lemon.
    ///
    /// One quiz at a time per user; many users may play for the same lemon.
    #[oai(
        path = "/tree/:position/quiz",
        method = "post",
        operation_id = "startQuiz"
    )]
    async fn start_quiz(&self, auth: BearerAuth, position: Path<i64>) -> StartQuizResponse {
        respond(async {
            let position = Position::new(position.0).or_problem()?;
            let who = &auth.0;
            let quiz = self
                .state
                .app
                .tree
                .start_quiz(&who.user, position)
                .await
                .or_problem()?;
            Ok(StartQuizResponse::Started(Json(quiz.into())))
        })
        .await
    }

    /// Answer a quiz.
    #[oai(
        path = "/quiz-attempts/:attemptId/answer",
        method = "post",
        operation_id = "answerQuiz"
    )]
    async fn answer(
        &self,
        auth: BearerAuth,
        #[oai(name = "attemptId")] attempt_id: Path<String>,
        body: JsonBody<AnswerRequest>,
    ) -> AnswerResponse {
        respond(async {
            let attempt = self::attempt_id(&attempt_id)?;
            let who = &auth.0;
            let outcome = self
                .state
                .app
                .tree
                .answer(who.user.id, attempt, body.option)
                .await
                .or_problem()?;
            Ok(AnswerResponse::Ok(Json(outcome.into())))
        })
        .await
    }

    /// Abandon a quiz.
    ///
    /// An unanswered quiz can no longer be answered, and the caller's one-quiz lock is released
    /// at once, so another lemon can be played right away. Repeating it, or abandoning an
    /// answered quiz, changes nothing and answers 204 again.
    #[oai(
        path = "/quiz-attempts/:attemptId",
        method = "delete",
        operation_id = "abandonQuiz"
    )]
    async fn abandon(
        &self,
        auth: BearerAuth,
        #[oai(name = "attemptId")] attempt_id: Path<String>,
    ) -> AbandonResponse {
        respond(async {
            let attempt = self::attempt_id(&attempt_id)?;
            let who = &auth.0;
            self.state
                .app
                .tree
                .abandon(who.user.id, attempt)
                .await
                .or_problem()?;
            Ok(AbandonResponse::Abandoned)
        })
        .await
    }

    /// Harvest: send the click on the moving circle.
    ///
    /// Accepted within five seconds of the answer, for a click at most 5000 ms into the
    /// challenge and within `hitTolerance` (1.1) radii of the circle's centre at some whole
    /// millisecond between `clickOffsetMs − lagAllowanceMs` (120) and `clickOffsetMs`. The first
    /// valid click on a ripe lemon wins it.
    #[oai(
        path = "/quiz-attempts/:attemptId/harvest",
        method = "post",
        operation_id = "harvest"
    )]
    async fn harvest(
        &self,
        auth: BearerAuth,
        #[oai(name = "attemptId")] attempt_id: Path<String>,
        body: JsonBody<HarvestRequest>,
    ) -> HarvestResponse {
        respond(async {
            let attempt = self::attempt_id(&attempt_id)?;
            let who = &auth.0;
            let click = Click {
                click_offset_ms: body.click_offset_ms,
                x: body.x,
                y: body.y,
            };
            let result = self
                .state
                .app
                .tree
                .harvest(who.user.id, attempt, &click)
                .await;
            self.state.metrics.harvest(&result);
            let receipt = result.or_problem()?;
            self.state.hub.nudge();
            Ok(HarvestResponse::Won(Json(receipt.into())))
        })
        .await
    }
}
