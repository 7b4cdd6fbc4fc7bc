//! The HTTP API (poem-openapi): one module per area, each operation with its own documented
//! response enum; every error is a [`problem::Problem`] rendered as `{code, message, details}`.

mod body;
pub mod dto;
pub mod problem;

mod accounts;
mod admin;
mod catalog;
mod instances;
mod stats;
mod support;
mod tree;

use std::future::Future;
use std::sync::Arc;

use dbtree_core::service::Authenticated;
use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::{OpenApiService, SecurityScheme};

use crate::state::ServerState;
use problem::{IntoProblem, Problem, ProblemError, Status};

/// The signed-in caller, from the session's bearer token (`Authorization: Bearer <token>`).
///
/// The token is resolved while the request's parameters are extracted, in declaration order:
/// every operation declares it before its body, so a request with a missing, malformed or
/// unknown token is answered 401 before a byte of its body is read.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "authenticate")]
pub struct BearerAuth(pub Authenticated);

impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerAuth(..)")
    }
}

/// The security scheme's checker: resolves the token to its session and account.
async fn authenticate(req: &Request, bearer: Bearer) -> poem::Result<Authenticated> {
    let Some(state) = req.data::<Arc<ServerState>>() else {
        let missing = dbtree_core::service::InternalError::Inconsistent(
            "the router carries no server state".into(),
        );
        return Err(ProblemError(missing.problem()).into());
    };
    state
        .app
        .accounts
        .authenticate(&bearer.token)
        .await
        .map_err(|e| ProblemError(e.problem()).into())
}

/// The caller, who must be an administrator.
///
/// # Errors
/// 403 for anyone else.
pub(crate) fn require_admin(who: &Authenticated) -> Result<(), Problem> {
    if who.is_admin {
        return Ok(());
    }
    Err(Problem::new(
        Status::Forbidden,
        "forbidden",
        "only administrators may manage the quiz bank",
        serde_json::json!({}),
    ))
}

/// The public name of an operation's path parameter (each operation has at most one): the
/// framework reports path errors by position (`param0`), clients know the name.
pub trait PathParam {
    /// The parameter's name in the spec.
    const PATH_PARAM: Option<&'static str>;
}

/// The bad-request hook of every response enum: a request the framework could not parse or
/// authenticate becomes the operation's documented 400/401 response.
pub fn bad_request<R: From<Problem> + PathParam>(error: poem::Error) -> R {
    R::from(problem::from_framework(&error, R::PATH_PARAM))
}

/// Runs an operation body written with `?` on problems.
pub async fn respond<R: From<Problem>>(body: impl Future<Output = Result<R, Problem>>) -> R {
    body.await.unwrap_or_else(R::from)
}

/// Maps domain errors to problems with `?`.
pub trait OrProblem<T> {
    /// The value, or the error's problem.
    fn or_problem(self) -> Result<T, Problem>;
}

impl<T, E: IntoProblem> OrProblem<T> for Result<T, E> {
    fn or_problem(self) -> Result<T, Problem> {
        self.map_err(|e| e.problem())
    }
}

/// Implements `From<Problem>` for an operation's response enum, one arm per declared error
/// status; any other status is answered as a logged 500 (the table test proves it never is).
macro_rules! from_problem {
    ($ty:ident { $($variant:ident),+ $(,)? } path $param:literal) => {
        impl $crate::api::PathParam for $ty {
            const PATH_PARAM: Option<&'static str> = Some($param);
        }
        from_problem!(@convert $ty { $($variant),+ });
    };
    ($ty:ident { $($variant:ident),+ $(,)? }) => {
        impl $crate::api::PathParam for $ty {
            const PATH_PARAM: Option<&'static str> = None;
        }
        from_problem!(@convert $ty { $($variant),+ });
    };
    (@convert $ty:ident { $($variant:ident),+ $(,)? }) => {
        impl From<$crate::api::problem::Problem> for $ty {
            fn from(p: $crate::api::problem::Problem) -> Self {
                #[allow(unreachable_patterns)]
                match p.status {
                    $( from_problem!(@pattern $variant) => from_problem!(@variant $ty $variant p), )+
                    _ => $ty::Internal(poem_openapi::payload::Json($crate::api::problem::undeclared(stringify!($ty), p))),
                }
            }
        }
    };
    (@pattern TooManyRequests) => { $crate::api::problem::Status::TooManyRequests(_) };
    (@pattern Unavailable) => { $crate::api::problem::Status::Unavailable(_) };
    (@pattern $v:ident) => { $crate::api::problem::Status::$v };
    (@variant $ty:ident TooManyRequests $p:ident) => {{
        let secs = $p.retry_after();
        $ty::TooManyRequests(poem_openapi::payload::Json(*$p.body), secs)
    }};
    (@variant $ty:ident Unavailable $p:ident) => {{
        let secs = $p.retry_after();
        $ty::Unavailable(poem_openapi::payload::Json(*$p.body), secs)
    }};
    (@variant $ty:ident $v:ident $p:ident) => { $ty::$v(poem_openapi::payload::Json(*$p.body)) };
}
pub(crate) use from_problem;

/// Every API of the server.
pub type Apis = (
    accounts::AccountApi,
    tree::TreeApi,
    catalog::CatalogApi,
    instances::InstanceApi,
    stats::StatsApi,
    support::SupportApi,
    admin::AdminApi,
);

/// The OpenAPI service over every API.
pub fn service(state: Arc<ServerState>) -> OpenApiService<Apis, ()> {
    let apis = (
        accounts::AccountApi::new(state.clone()),
        tree::TreeApi::new(state.clone()),
        catalog::CatalogApi::new(state.clone()),
        instances::InstanceApi::new(state.clone()),
        stats::StatsApi::new(state.clone()),
        support::SupportApi::new(state.clone()),
        admin::AdminApi::new(state),
    );
    OpenApiService::new(apis, "dbtree", env!("CARGO_PKG_VERSION"))
        .server("/api")
        .summary("Lemon-gated databases")
        .description(
            "Sign in with an emailed code, win lemons on the shared tree, spend them on PostgreSQL, \
             Redis and MongoDB instances. Errors are `{code, message, details}` with a stable `code`.",
        )
}

#[cfg(test)]
mod declared_statuses {
    //! Every operation's response enum declares each status its errors can produce, so the
    //! logged-500 fallback of `from_problem!` is never taken and the spec tells the truth.

    use dbtree_core::auth::{CodeIssueRefusal, EmailError, InvalidCode};
    use dbtree_core::boundary::{ClusterError, MailError};
    use dbtree_core::harvest::{ClickRefusal, HarvestRefusal};
    use dbtree_core::ids::InvalidId;
    use dbtree_core::instance::{
        CapacityExceeded, CreateRefusal, InstanceEvent, InstanceStatus, InvalidName, MilliCpu,
        NodePortError, Scarce, SpecError, StartRefusal, TransitionRefused,
    };
    use dbtree_core::lemons::Lemons;
    use dbtree_core::quiz::QuizError;
    use dbtree_core::service::*;
    use dbtree_core::stats::RangeError;
    use dbtree_core::tree::InvalidPosition;
    use poem::IntoResponse;
    use poem_openapi::error::{AuthorizationError, ParseRequestPayloadError};

    use super::problem::{IntoProblem, Problem, Status, from_framework};
    use super::*;
    use crate::limits::LimitExceeded;

    fn internal() -> InternalError {
        InternalError::Inconsistent("test".into())
    }

    fn check<R: From<Problem> + IntoResponse>(operation: &str, problems: Vec<Problem>) {
        for p in problems {
            let (want, code) = (p.status.code(), p.body.code.clone());
            let got = R::from(p).into_response().status().as_u16();
            assert_eq!(
                got, want,
                "{operation} does not declare {want} (for `{code}`)"
            );
        }
    }

    fn parse_error() -> Problem {
        from_framework(
            &ParseRequestPayloadError {
                reason: "field `x`: bad".into(),
            }
            .into(),
            None,
        )
    }

    /// Operations that touch no dependency.
    fn pure() -> Vec<Problem> {
        vec![parse_error(), internal().problem()]
    }

    /// Operations that read or write the store (or Redis): also 503 when it is down.
    fn public() -> Vec<Problem> {
        let mut all = pure();
        all.push(super::problem::tests::down().problem());
        all
    }

    /// What reading a request body can run into.
    fn with_body(mut base: Vec<Problem>) -> Vec<Problem> {
        base.extend(
            [
                LimitExceeded::BodyTooLarge { limit_bytes: 10 },
                LimitExceeded::BodyTooSlow { timeout_secs: 1 },
            ]
            .map(|e| e.problem()),
        );
        base
    }

    fn authed() -> Vec<Problem> {
        let mut all = public();
        all.push(from_framework(&AuthorizationError.into(), None));
        all.extend(
            [
                AuthError::MalformedToken,
                AuthError::InvalidSession,
                AuthError::Internal(internal()),
            ]
            .map(|e| e.problem()),
        );
        all
    }

    fn admin() -> Vec<Problem> {
        let mut all = authed();
        all.push(Problem::new(
            Status::Forbidden,
            "forbidden",
            "no",
            serde_json::json!({}),
        ));
        all
    }

    fn with(mut base: Vec<Problem>, more: &[&dyn IntoProblem]) -> Vec<Problem> {
        base.extend(more.iter().map(|e| e.problem()));
        base
    }

    fn capacity() -> CapacityExceeded {
        CapacityExceeded {
            resource: Scarce::Cpu,
            requested: 750,
            free: 100,
        }
    }

    #[test]
    fn every_operation_declares_what_it_can_answer() {
        let refusal = CodeIssueRefusal::TooManyCodes {
            retry_after_secs: 5,
        };
        let transition = TransitionRefused {
            from: InstanceStatus::Running,
            event: InstanceEvent::StartRequested,
        };
        let spec = Problem::invalid("preset", "invalid_spec", "preset: both");
        check::<accounts::RequestCodeResponse>(
            "requestCode",
            with(
                with_body(public()),
                &[
                    &RequestCodeError::InvalidEmail(EmailError::Malformed),
                    &RequestCodeError::InvalidEmail(EmailError::DisposableDomain {
                        domain: "d".into(),
                    }),
                    &RequestCodeError::RateLimited {
                        retry_after_secs: 1,
                    },
                    &RequestCodeError::Refused(refusal),
                    &RequestCodeError::MailUnavailable(MailError::Rejected),
                ],
            ),
        );
        check::<accounts::CreateSessionResponse>(
            "createSession",
            with(
                with_body(public()),
                &[
                    &VerifyError::InvalidEmail(EmailError::DisposableDomain { domain: "d".into() }),
                    &VerifyError::InvalidCode(InvalidCode),
                    &VerifyError::RateLimited {
                        retry_after_secs: 1,
                    },
                    &VerifyError::WrongCode { attempts_left: 1 },
                    &VerifyError::CodeLocked,
                    &VerifyError::CodeExpired,
                    &VerifyError::NoCode,
                ],
            ),
        );
        check::<accounts::DoneResponse>("deleteSession", authed());
        check::<accounts::ProfileResponse>("getProfile", authed());
        check::<accounts::DeleteAccountResponse>(
            "deleteAccount",
            with(authed(), &[&DeleteAccountError::UnknownAccount]),
        );
        check::<tree::TreeResponse>("getTree", public());
        check::<tree::TreeEventsResponse>(
            "treeEvents",
            with(
                public(),
                &[
                    &LimitExceeded::StreamsFromClient { limit: 20 },
                    &LimitExceeded::Streams { limit: 1000 },
                ],
            ),
        );
        check::<tree::StartQuizResponse>(
            "startQuiz",
            with(
                authed(),
                &[
                    &InvalidPosition(11),
                    &StartQuizError::Cooldown {
                        until: chrono::Utc::now(),
                    },
                    &StartQuizError::StorageFull {
                        cap: Lemons::new(500),
                    },
                    &StartQuizError::NotRipe { regrows_at: None },
                    &StartQuizError::QuizInProgress { until: None },
                ],
            ),
        );
        check::<tree::AnswerResponse>(
            "answerQuiz",
            with(
                with_body(authed()),
                &[
                    &InvalidId("x".into()),
                    &AnswerError::UnknownAttempt,
                    &AnswerError::InvalidOption { max: 3 },
                    &AnswerError::AlreadyAnswered,
                    &AnswerError::Abandoned,
                    &AnswerError::TimeExpired { late_ms: 1 },
                ],
            ),
        );
        check::<tree::AbandonResponse>(
            "abandonQuiz",
            with(
                authed(),
                &[&InvalidId("x".into()), &AbandonError::UnknownAttempt],
            ),
        );
        check::<tree::HarvestResponse>(
            "harvest",
            with(
                with_body(authed()),
                &[
                    &InvalidId("x".into()),
                    &HarvestError::UnknownAttempt,
                    &HarvestError::Cooldown {
                        until: chrono::Utc::now(),
                    },
                    &HarvestError::StorageFull {
                        cap: Lemons::new(500),
                    },
                    &HarvestRefusal::NotEligible,
                    &HarvestRefusal::AlreadyHarvested,
                    &HarvestRefusal::WindowClosed { elapsed_ms: 6000 },
                    &ClickRefusal::OutsidePlayArea,
                    &ClickRefusal::NegativeOffset,
                    &ClickRefusal::AfterWindow {
                        offset_ms: 6000,
                        window_ms: 5000,
                    },
                    &ClickRefusal::Missed {
                        distance: 1.0,
                        allowed: 0.1,
                    },
                ],
            ),
        );
        check::<catalog::PresetsResponse>("listPresets", pure());
        let mut quote = with(
            with_body(pure()),
            &[&SpecError::CpuStep { step: MilliCpu(50) }],
        );
        quote.push(spec.clone());
        check::<catalog::QuoteResponse>("quote", quote);
        let mut create = with(
            with_body(authed()),
            &[
                &InvalidName::Characters,
                &SpecError::Disk { min: 1, max: 50 },
                &CreateError::Refused(CreateRefusal::InstanceLimit { used: 2, limit: 2 }),
                &CreateError::Refused(CreateRefusal::NameTaken),
                &CreateError::Refused(CreateRefusal::InsufficientLemons {
                    required: Lemons::new(6),
                    available: Lemons::new(1),
                }),
                &CreateError::Refused(CreateRefusal::Capacity(capacity())),
                &CreateError::NoNodePort(NodePortError::Exhausted { first: 1, last: 2 }),
                &CreateError::ProvisioningFailed {
                    instance: dbtree_core::ids::InstanceId::from_random_bytes([2; 16]),
                    reason: "r".into(),
                },
            ],
        );
        create.push(spec);
        check::<instances::CreateInstanceResponse>("createInstance", create);
        check::<instances::ListInstancesResponse>("listInstances", authed());
        check::<instances::InstanceResponse>(
            "getInstance",
            with(
                authed(),
                &[&InvalidId("x".into()), &InstanceActionError::NotFound],
            ),
        );
        check::<instances::InstanceActionResponse>(
            "start/stop/delete",
            with(
                authed(),
                &[
                    &InvalidId("x".into()),
                    &InstanceActionError::NotFound,
                    &InstanceActionError::Transition(transition),
                    &InstanceActionError::Start(StartRefusal::InsufficientLemons {
                        required: Lemons::new(1),
                        available: Lemons::ZERO,
                    }),
                    &InstanceActionError::Start(StartRefusal::Capacity(capacity())),
                    &InstanceActionError::PortBusy {
                        message: "port 30001 is already in use".into(),
                    },
                ],
            ),
        );
        check::<instances::UsageResponse>(
            "getInstanceUsage",
            with(
                authed(),
                &[
                    &InvalidId("x".into()),
                    &InstanceActionError::NotFound,
                    &InstanceActionError::Cluster(ClusterError::transient("t")),
                ],
            ),
        );
        check::<instances::RotateResponse>(
            "rotateCredentials",
            with(
                authed(),
                &[
                    &InvalidId("x".into()),
                    &InstanceActionError::NotFound,
                    &InstanceActionError::NotRunning {
                        status: InstanceStatus::Stopped,
                    },
                    &InstanceActionError::Cluster(ClusterError::transient("t")),
                ],
            ),
        );
        check::<stats::StatsResponse>("getStats", public());
        check::<stats::LeaderboardResponse>("getLeaderboard", public());
        check::<stats::CapacityResponse>("getCapacity", public());
        check::<stats::TransactionsResponse>(
            "listTransactions",
            with(
                authed(),
                &[
                    &RangeError {
                        field: "limit",
                        min: 1,
                        max: 100,
                    },
                    &InvalidId("x".into()),
                ],
            ),
        );
        check::<stats::HarvestHistoryResponse>(
            "listDailyHarvests",
            with(
                authed(),
                &[&RangeError {
                    field: "days",
                    min: 1,
                    max: 90,
                }],
            ),
        );
        check::<support::SupportResponse>(
            "submitInquiry",
            with(
                with_body(authed()),
                &[
                    &dbtree_core::support::SupportError {
                        field: "subject",
                        min: 3,
                        max: 120,
                    },
                    &SupportError::RateLimited {
                        retry_after_secs: 10,
                    },
                ],
            ),
        );
        check::<admin::QuizListResponse>("listQuizzes", admin());
        check::<admin::AddQuizResponse>(
            "addQuiz",
            with(
                with_body(admin()),
                &[
                    &QuizAdminError::Invalid(QuizError::OptionCount { min: 2, max: 6 }),
                    &QuizAdminError::Duplicate,
                ],
            ),
        );
        let mut retire = admin();
        retire.push(Problem::new(
            Status::NotFound,
            "quiz_not_found",
            "no",
            serde_json::json!({}),
        ));
        check::<admin::RetireQuizResponse>("retireQuiz", retire);
    }
}
