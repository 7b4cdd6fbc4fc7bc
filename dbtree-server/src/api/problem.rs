//! API errors: `{code, message, details}` bodies with the right status, mapped exhaustively
//! from every core error (no `_` arm: a new domain error cannot silently become a 500).

use poem_openapi::Object;
use serde_json::{Value, json};

use dbtree_core::auth::{CodeIssueRefusal, EmailError, InvalidCode};
use dbtree_core::harvest::{ClickRefusal, HarvestRefusal};
use dbtree_core::ids::InvalidId;
use dbtree_core::instance::{
    CapacityExceeded, CreateRefusal, InvalidName, NodePortError, Scarce, SpecError, StartRefusal,
    TransitionRefused,
};
use dbtree_core::quiz::QuizError;
use dbtree_core::service::{
    AbandonError, AnswerError, AuthError, CreateError, DeleteAccountError, HarvestError,
    InstanceActionError, InternalError, QuizAdminError, RequestCodeError, StartQuizError,
    SupportError, VerifyError,
};
use dbtree_core::stats::RangeError;
use dbtree_core::support::SupportError as InquiryError;
use dbtree_core::tree::InvalidPosition;

use crate::limits::LimitExceeded;

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Object)]
pub struct ErrorBody {
    /// A stable snake_case code, for programs.
    pub code: String,
    /// What went wrong, for people; names the offending field where there is one.
    pub message: String,
    /// Numbers and names the message refers to (for example `field`, `retryAfterSeconds`).
    pub details: Value,
}

/// The statuses dbtree answers errors with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// 400: the request is malformed.
    BadRequest,
    /// 401: no valid credentials.
    Unauthorized,
    /// 403: not allowed.
    Forbidden,
    /// 404: no such thing (for this caller).
    NotFound,
    /// 409: conflicts with the current state.
    Conflict,
    /// 408: the request body did not arrive in time.
    RequestTimeout,
    /// 413: the request body is larger than the server accepts.
    PayloadTooLarge,
    /// 422: a rule refuses it.
    Unprocessable,
    /// 429: too many requests; retry after the given seconds.
    TooManyRequests(u32),
    /// 503: a dependency or capacity is unavailable; retry after the given seconds.
    Unavailable(u32),
    /// 507: not enough node capacity.
    InsufficientStorage,
    /// 500: our fault; the body is opaque.
    Internal,
}

impl Status {
    /// The HTTP status code.
    pub fn code(self) -> u16 {
        match self {
            Status::BadRequest => 400,
            Status::Unauthorized => 401,
            Status::Forbidden => 403,
            Status::NotFound => 404,
            Status::Conflict => 409,
            Status::RequestTimeout => 408,
            Status::PayloadTooLarge => 413,
            Status::Unprocessable => 422,
            Status::TooManyRequests(_) => 429,
            Status::Unavailable(_) => 503,
            Status::InsufficientStorage => 507,
            Status::Internal => 500,
        }
    }
}

/// An error on its way to the client.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// Its status.
    pub status: Status,
    /// Its body.
    pub body: Box<ErrorBody>,
}

impl Problem {
    /// A problem with details.
    pub fn new(status: Status, code: &str, message: impl Into<String>, details: Value) -> Self {
        Self {
            status,
            body: Box::new(ErrorBody {
                code: code.into(),
                message: message.into(),
                details,
            }),
        }
    }

    /// A malformed field.
    pub fn invalid(field: &str, code: &str, message: impl Into<String>) -> Self {
        Self::new(Status::BadRequest, code, message, json!({ "field": field }))
    }

    /// An opaque 500. The cause is logged here, once, with its chain.
    pub fn internal(error: &dyn std::error::Error) -> Self {
        tracing::error!(error = %chain(error), "internal error");
        Self::new(
            Status::Internal,
            "internal_error",
            "something went wrong on our side; please retry later",
            json!({}),
        )
    }

    /// The client must authenticate.
    pub fn unauthorized(code: &str, message: &str) -> Self {
        Self::new(Status::Unauthorized, code, message, json!({}))
    }

    /// Seconds to wait, for 429 and 503 responses (their `Retry-After`).
    pub fn retry_after(&self) -> u32 {
        match self.status {
            Status::TooManyRequests(s) | Status::Unavailable(s) => s,
            _ => 0,
        }
    }

    /// A 503 with `Retry-After`: something the request needs is not available right now.
    pub fn unavailable(code: &str, message: impl Into<String>, retry_after_secs: u32) -> Self {
        Self::new(
            Status::Unavailable(retry_after_secs),
            code,
            message,
            json!({ "retryAfterSeconds": retry_after_secs }),
        )
    }

    /// A dependency (database, Redis) did not answer: 503 `service_unavailable`. The cause is
    /// logged here, once, as a warning (it is an outage, not a bug).
    pub fn dependency_down(error: &dyn std::error::Error) -> Self {
        tracing::warn!(error = %chain(error), "a dependency is unavailable");
        Self::unavailable(
            "service_unavailable",
            "the service is temporarily unavailable; please retry shortly",
            DEPENDENCY_RETRY_SECS,
        )
    }
}

/// `Retry-After` of `service_unavailable`: long enough not to hammer a recovering dependency.
pub const DEPENDENCY_RETRY_SECS: u32 = 5;

/// An error and its causes, `: `-separated.
fn chain(error: &dyn std::error::Error) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    chain
}

/// A problem travelling as a framework error (from a security-scheme checker or a payload
/// parser), turned back into itself by [`from_framework`].
#[derive(Clone, Debug, thiserror::Error)]
#[error("{}", .0.body.message)]
pub struct ProblemError(pub Problem);

impl poem::error::ResponseError for ProblemError {
    fn status(&self) -> poem::http::StatusCode {
        poem::http::StatusCode::from_u16(self.0.status.code())
            .unwrap_or(poem::http::StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// Maps a core error to the problem the client sees.
pub trait IntoProblem {
    /// The problem.
    fn problem(&self) -> Problem;
}

impl IntoProblem for InternalError {
    fn problem(&self) -> Problem {
        match self {
            InternalError::Backend(e) if e.is_unavailable() => Problem::dependency_down(self),
            InternalError::Backend(_)
            | InternalError::Entropy(_)
            | InternalError::Cluster(_)
            | InternalError::Mail(_)
            | InternalError::Inconsistent(_) => Problem::internal(self),
        }
    }
}

impl IntoProblem for LimitExceeded {
    fn problem(&self) -> Problem {
        match self {
            LimitExceeded::BodyTooLarge { limit_bytes } => Problem::new(
                Status::PayloadTooLarge,
                "payload_too_large",
                format!("body: {self}"),
                json!({ "field": "body", "limitBytes": limit_bytes }),
            ),
            LimitExceeded::BodyTooSlow { timeout_secs } => Problem::new(
                Status::RequestTimeout,
                "request_timeout",
                format!("body: {self}"),
                json!({ "field": "body", "timeoutSeconds": timeout_secs }),
            ),
            LimitExceeded::StreamsFromClient { limit } => Problem::new(
                Status::TooManyRequests(STREAM_RETRY_SECS),
                "too_many_streams",
                self.to_string(),
                json!({ "limit": limit, "retryAfterSeconds": STREAM_RETRY_SECS }),
            ),
            LimitExceeded::Streams { limit } => Problem::new(
                Status::Unavailable(STREAM_RETRY_SECS),
                "stream_capacity_reached",
                self.to_string(),
                json!({ "limit": limit, "retryAfterSeconds": STREAM_RETRY_SECS }),
            ),
        }
    }
}

/// `Retry-After` when no event stream is free.
const STREAM_RETRY_SECS: u32 = 30;

impl IntoProblem for EmailError {
    fn problem(&self) -> Problem {
        match self {
            EmailError::Empty | EmailError::TooLong { .. } | EmailError::Malformed => {
                Problem::invalid("email", "invalid_email", format!("email: {self}"))
            }
            EmailError::DisposableDomain { domain } => Problem::new(
                Status::Unprocessable,
                "disposable_email",
                format!("email: {self}"),
                json!({ "field": "email", "domain": domain }),
            ),
        }
    }
}

impl IntoProblem for CodeIssueRefusal {
    fn problem(&self) -> Problem {
        let (code, secs) = match self {
            CodeIssueRefusal::ResendTooSoon { retry_after_secs } => {
                ("resend_too_soon", *retry_after_secs)
            }
            CodeIssueRefusal::TooManyCodes { retry_after_secs } => {
                ("too_many_codes", *retry_after_secs)
            }
        };
        Problem::new(
            Status::TooManyRequests(secs),
            code,
            self.to_string(),
            json!({ "retryAfterSeconds": secs }),
        )
    }
}

fn rate_limited(code: &str, message: String, secs: u32) -> Problem {
    Problem::new(
        Status::TooManyRequests(secs),
        code,
        message,
        json!({ "retryAfterSeconds": secs }),
    )
}

impl IntoProblem for RequestCodeError {
    fn problem(&self) -> Problem {
        match self {
            RequestCodeError::InvalidEmail(e) => e.problem(),
            RequestCodeError::RateLimited { retry_after_secs } => {
                rate_limited("too_many_requests", self.to_string(), *retry_after_secs)
            }
            RequestCodeError::Refused(r) => r.problem(),
            RequestCodeError::MailUnavailable(_) => Problem::unavailable(
                "mail_unavailable",
                "the sign-in code could not be sent; please retry in a moment",
                10,
            ),
            RequestCodeError::Internal(e) => e.problem(),
        }
    }
}

impl IntoProblem for InvalidCode {
    fn problem(&self) -> Problem {
        Problem::invalid("code", "invalid_code", format!("code: {self}"))
    }
}

impl IntoProblem for VerifyError {
    fn problem(&self) -> Problem {
        match self {
            VerifyError::InvalidEmail(e) => e.problem(),
            VerifyError::InvalidCode(e) => e.problem(),
            VerifyError::RateLimited { retry_after_secs } => {
                rate_limited("too_many_requests", self.to_string(), *retry_after_secs)
            }
            VerifyError::WrongCode { attempts_left } => Problem::new(
                Status::Unauthorized,
                "wrong_code",
                self.to_string(),
                json!({ "attemptsLeft": attempts_left }),
            ),
            VerifyError::CodeLocked => Problem::new(
                Status::Forbidden,
                "code_locked",
                self.to_string(),
                json!({}),
            ),
            VerifyError::CodeExpired => Problem::unauthorized("code_expired", &self.to_string()),
            VerifyError::NoCode => Problem::unauthorized("no_pending_code", &self.to_string()),
            VerifyError::Internal(e) => e.problem(),
        }
    }
}

impl IntoProblem for AuthError {
    fn problem(&self) -> Problem {
        match self {
            AuthError::MalformedToken => {
                Problem::unauthorized("invalid_token", "the bearer token is malformed")
            }
            AuthError::InvalidSession => Problem::unauthorized(
                "session_invalid",
                "the session is invalid or has expired; sign in again",
            ),
            AuthError::Internal(e) => e.problem(),
        }
    }
}

impl IntoProblem for DeleteAccountError {
    fn problem(&self) -> Problem {
        match self {
            DeleteAccountError::UnknownAccount => Problem::new(
                Status::NotFound,
                "account_not_found",
                self.to_string(),
                json!({}),
            ),
            DeleteAccountError::Internal(e) => e.problem(),
        }
    }
}

impl IntoProblem for InvalidPosition {
    fn problem(&self) -> Problem {
        Problem::invalid("position", "invalid_position", format!("position: {self}"))
    }
}

impl IntoProblem for InvalidId {
    fn problem(&self) -> Problem {
        Problem::new(
            Status::BadRequest,
            "invalid_id",
            self.to_string(),
            json!({ "field": "id" }),
        )
    }
}

impl IntoProblem for StartQuizError {
    fn problem(&self) -> Problem {
        match self {
            StartQuizError::Cooldown { until } => Problem::new(
                Status::Conflict,
                "harvest_cooldown",
                self.to_string(),
                json!({ "until": until.to_rfc3339() }),
            ),
            StartQuizError::StorageFull { cap } => Problem::new(
                Status::Unprocessable,
                "lemon_storage_full",
                self.to_string(),
                json!({ "cap": cap.get() }),
            ),
            StartQuizError::NotRipe { regrows_at } => Problem::new(
                Status::Conflict,
                "lemon_not_ripe",
                self.to_string(),
                json!({ "regrowsAt": regrows_at.map(|t| t.to_rfc3339()) }),
            ),
            StartQuizError::QuizInProgress { until } => Problem::new(
                Status::Conflict,
                "quiz_in_progress",
                self.to_string(),
                json!({ "until": until.map(|t| t.to_rfc3339()) }),
            ),
            StartQuizError::Internal(e) => e.problem(),
        }
    }
}

impl IntoProblem for AnswerError {
    fn problem(&self) -> Problem {
        match self {
            AnswerError::UnknownAttempt => Problem::new(
                Status::NotFound,
                "attempt_not_found",
                self.to_string(),
                json!({}),
            ),
            AnswerError::InvalidOption { max } => Problem::new(
                Status::BadRequest,
                "invalid_option",
                format!("option: {self}"),
                json!({ "field": "option", "max": max }),
            ),
            AnswerError::AlreadyAnswered => Problem::new(
                Status::Conflict,
                "already_answered",
                self.to_string(),
                json!({}),
            ),
            AnswerError::Abandoned => Problem::new(
                Status::Conflict,
                "quiz_abandoned",
                self.to_string(),
                json!({}),
            ),
            AnswerError::TimeExpired { late_ms } => Problem::new(
                Status::Conflict,
                "quiz_time_expired",
                self.to_string(),
                json!({ "lateMs": late_ms }),
            ),
            AnswerError::Internal(e) => e.problem(),
        }
    }
}

impl IntoProblem for AbandonError {
    fn problem(&self) -> Problem {
        match self {
            AbandonError::UnknownAttempt => Problem::new(
                Status::NotFound,
                "attempt_not_found",
                self.to_string(),
                json!({}),
            ),
            AbandonError::Internal(e) => e.problem(),
        }
    }
}

impl IntoProblem for ClickRefusal {
    fn problem(&self) -> Problem {
        match self {
            ClickRefusal::OutsidePlayArea => {
                Problem::invalid("x", "invalid_click", format!("x, y: {self}"))
            }
            ClickRefusal::NegativeOffset => Problem::invalid(
                "clickOffsetMs",
                "invalid_click",
                format!("clickOffsetMs: {self}"),
            ),
            ClickRefusal::AfterWindow {
                offset_ms,
                window_ms,
            } => Problem::new(
                Status::Unprocessable,
                "click_after_window",
                format!("clickOffsetMs: {self}"),
                json!({ "field": "clickOffsetMs", "clickOffsetMs": offset_ms, "windowMs": window_ms }),
            ),
            ClickRefusal::Missed { distance, allowed } => Problem::new(
                Status::Unprocessable,
                "click_missed",
                self.to_string(),
                json!({ "distance": distance, "allowed": allowed }),
            ),
        }
    }
}

impl IntoProblem for HarvestRefusal {
    fn problem(&self) -> Problem {
        match self {
            HarvestRefusal::NotEligible => Problem::new(
                Status::Conflict,
                "no_quiz_passed",
                self.to_string(),
                json!({}),
            ),
            HarvestRefusal::AlreadyHarvested => Problem::new(
                Status::Conflict,
                "lemon_already_harvested",
                self.to_string(),
                json!({}),
            ),
            HarvestRefusal::WindowClosed { elapsed_ms } => Problem::new(
                Status::Conflict,
                "harvest_window_closed",
                self.to_string(),
                json!({ "elapsedMs": elapsed_ms }),
            ),
            HarvestRefusal::Click(c) => c.problem(),
        }
    }
}

impl IntoProblem for HarvestError {
    fn problem(&self) -> Problem {
        match self {
            HarvestError::UnknownAttempt => Problem::new(
                Status::NotFound,
                "attempt_not_found",
                self.to_string(),
                json!({}),
            ),
            HarvestError::Refused(r) => r.problem(),
            HarvestError::Cooldown { until } => Problem::new(
                Status::Conflict,
                "harvest_cooldown",
                self.to_string(),
                json!({ "until": until.to_rfc3339() }),
            ),
            HarvestError::StorageFull { cap } => Problem::new(
                Status::Unprocessable,
                "lemon_storage_full",
                self.to_string(),
                json!({ "cap": cap.get() }),
            ),
            HarvestError::Internal(e) => e.problem(),
        }
    }
}

impl IntoProblem for InvalidName {
    fn problem(&self) -> Problem {
        Problem::invalid("name", "invalid_name", format!("name: {self}"))
    }
}

impl IntoProblem for SpecError {
    fn problem(&self) -> Problem {
        let field = match self {
            SpecError::Cpu { .. } | SpecError::CpuStep { .. } => "resources.cpu",
            SpecError::Memory { .. } => "resources.memoryMib",
            SpecError::Disk { .. } => "resources.diskGib",
        };
        Problem::invalid(field, "invalid_resources", self.to_string())
    }
}

impl IntoProblem for CapacityExceeded {
    fn problem(&self) -> Problem {
        let resource = match self.resource {
            Scarce::Cpu => "cpu",
            Scarce::Memory => "memory",
        };
        Problem::new(
            Status::InsufficientStorage,
            "capacity_exceeded",
            format!("the node has no room for this instance: {self}"),
            json!({ "resource": resource, "requested": self.requested, "free": self.free }),
        )
    }
}

impl IntoProblem for CreateRefusal {
    fn problem(&self) -> Problem {
        match self {
            CreateRefusal::InstanceLimit { used, limit } => Problem::new(
                Status::Conflict,
                "instance_limit",
                self.to_string(),
                json!({ "used": used, "limit": limit }),
            ),
            CreateRefusal::NameTaken => Problem::new(
                Status::Conflict,
                "name_taken",
                format!("name: {self}"),
                json!({ "field": "name" }),
            ),
            CreateRefusal::InsufficientLemons {
                required,
                available,
            } => Problem::new(
                Status::Unprocessable,
                "insufficient_lemons",
                self.to_string(),
                json!({ "required": required.get(), "available": available.get() }),
            ),
            CreateRefusal::Capacity(c) => c.problem(),
        }
    }
}

impl IntoProblem for NodePortError {
    fn problem(&self) -> Problem {
        Problem::unavailable(
            "node_ports_exhausted",
            format!("no NodePort is free right now ({self}); retry later"),
            60,
        )
    }
}

impl IntoProblem for CreateError {
    fn problem(&self) -> Problem {
        match self {
            CreateError::Refused(r) => r.problem(),
            CreateError::NoNodePort(p) => p.problem(),
            CreateError::ProvisioningFailed { instance, reason } => Problem::new(
                Status::Unavailable(30),
                "provisioning_failed",
                format!(
                    "the instance could not be provisioned: {reason}; its creation cost was refunded"
                ),
                json!({ "instanceId": instance.to_string(), "reason": reason, "retryAfterSeconds": 30 }),
            ),
            CreateError::Internal(e) => e.problem(),
        }
    }
}

impl IntoProblem for TransitionRefused {
    fn problem(&self) -> Problem {
        Problem::new(
            Status::Conflict,
            "invalid_state",
            format!("not possible while the instance is {}", self.from),
            json!({ "status": self.from.as_str() }),
        )
    }
}

impl IntoProblem for StartRefusal {
    fn problem(&self) -> Problem {
        match self {
            StartRefusal::InsufficientLemons {
                required,
                available,
            } => Problem::new(
                Status::Unprocessable,
                "insufficient_lemons",
                self.to_string(),
                json!({ "required": required.get(), "available": available.get() }),
            ),
            StartRefusal::Capacity(c) => c.problem(),
        }
    }
}

impl IntoProblem for InstanceActionError {
    fn problem(&self) -> Problem {
        match self {
            InstanceActionError::NotFound => Problem::new(
                Status::NotFound,
                "instance_not_found",
                self.to_string(),
                json!({}),
            ),
            InstanceActionError::Transition(t) => t.problem(),
            InstanceActionError::Start(s) => s.problem(),
            InstanceActionError::NotRunning { status } => Problem::new(
                Status::Conflict,
                "instance_not_running",
                self.to_string(),
                json!({ "status": status.as_str() }),
            ),
            InstanceActionError::Cluster(e) => Problem::unavailable(
                "cluster_unavailable",
                format!(
                    "the cluster could not apply the change ({}); nothing changed, retry later",
                    e.message
                ),
                10,
            ),
            InstanceActionError::PortBusy { .. } => Problem::new(
                Status::Conflict,
                "port_busy",
                format!(
                    "{self}; it stays stopped and keeps its port: start it again once the port \
                     is free"
                ),
                json!({}),
            ),
            InstanceActionError::Internal(e) => e.problem(),
        }
    }
}

impl IntoProblem for RangeError {
    fn problem(&self) -> Problem {
        Problem::new(
            Status::BadRequest,
            "out_of_range",
            self.to_string(),
            json!({ "field": self.field, "min": self.min, "max": self.max }),
        )
    }
}

impl IntoProblem for InquiryError {
    fn problem(&self) -> Problem {
        Problem::new(
            Status::BadRequest,
            "invalid_inquiry",
            self.to_string(),
            json!({ "field": self.field, "min": self.min, "max": self.max }),
        )
    }
}

impl IntoProblem for SupportError {
    fn problem(&self) -> Problem {
        match self {
            SupportError::RateLimited { retry_after_secs } => {
                rate_limited("too_many_requests", self.to_string(), *retry_after_secs)
            }
            SupportError::Internal(e) => e.problem(),
        }
    }
}

impl IntoProblem for QuizError {
    fn problem(&self) -> Problem {
        let field = match self {
            QuizError::Length { field, .. } | QuizError::Unknown { field, .. } => field,
            QuizError::OptionCount { .. } | QuizError::DuplicateOption { .. } => "options",
            QuizError::CorrectOptionOutOfRange { .. } => "correctOption",
            QuizError::TimeLimit { .. } => "timeLimitSeconds",
        };
        Problem::invalid(field, "invalid_quiz", format!("{field}: {self}"))
    }
}

impl IntoProblem for QuizAdminError {
    fn problem(&self) -> Problem {
        match self {
            QuizAdminError::Invalid(e) => e.problem(),
            QuizAdminError::Duplicate => Problem::new(
                Status::Conflict,
                "quiz_exists",
                self.to_string(),
                json!({ "field": "question" }),
            ),
            QuizAdminError::Internal(e) => e.problem(),
        }
    }
}

/// An operation produced a status its response enum does not declare: answered as a 500 and
/// logged loudly, because the spec would be wrong otherwise.
pub fn undeclared(operation: &str, problem: Problem) -> ErrorBody {
    tracing::error!(operation, code = %problem.body.code, status = problem.status.code(), "undeclared error status");
    ErrorBody {
        code: "internal_error".into(),
        message: "something went wrong on our side; please retry later".into(),
        details: json!({}),
    }
}

/// Turns a request the framework could not parse (bad JSON, a wrong type, a missing or oversize
/// field, a bad parameter, a missing bearer token) into a problem naming what is wrong.
pub fn from_framework(error: &poem::Error, path_param: Option<&str>) -> Problem {
    if let Some(ProblemError(problem)) = error.downcast_ref::<ProblemError>() {
        return problem.clone();
    }
    if error.status() == poem::http::StatusCode::UNAUTHORIZED {
        return Problem::unauthorized(
            "unauthenticated",
            "an `Authorization: Bearer <token>` header is required",
        );
    }
    let full = error.to_string();
    let payload = full.strip_prefix("parse request payload error: ");
    let mut message = payload.unwrap_or(&full).to_owned();
    if let Some(name) = path_param {
        message = message.replace("path `param0`", &format!("path parameter `{name}`"));
    }
    let field = field_in(&message);
    let code = match (payload, field.as_deref()) {
        (Some(_), Some("body")) => "invalid_json",
        (Some(_), _) => "invalid_body",
        (None, _) => "invalid_request",
    };
    let details = match &field {
        Some(f) => json!({ "field": f }),
        None => json!({}),
    };
    let message = match &field {
        Some(f) if !message.contains(f.as_str()) => format!("{f}: {message}"),
        _ => message,
    };
    Problem::new(Status::BadRequest, code, message, details)
}

/// The field a framework parse error is about, if it names one.
fn field_in(message: &str) -> Option<String> {
    for marker in ["field `", "parameter `"] {
        if let Some(start) = message.find(marker) {
            let rest = &message[start + marker.len()..];
            let end = rest.find(['`', '"'])?;
            return Some(rest[..end].to_owned());
        }
    }
    None
}

#[cfg(test)]
pub(super) mod tests {
    use chrono::Utc;
    use dbtree_core::auth::CodeIssueRefusal;
    use dbtree_core::boundary::{BackendError, ClusterError, MailError};
    use dbtree_core::ids::InstanceId;
    use dbtree_core::instance::{InstanceEvent, InstanceStatus, MilliCpu};
    use dbtree_core::lemons::Lemons;

    use super::*;

    fn internal() -> InternalError {
        InternalError::Inconsistent("test".into())
    }

    fn capacity() -> CapacityExceeded {
        CapacityExceeded {
            resource: Scarce::Memory,
            requested: 512,
            free: 100,
        }
    }

    /// Every core error variant the API can meet, with its expected status and code.
    pub(crate) fn table() -> Vec<(Problem, u16, &'static str)> {
        let l = Lemons::new;
        let refusal = CodeIssueRefusal::ResendTooSoon {
            retry_after_secs: 7,
        };
        let transition = TransitionRefused {
            from: InstanceStatus::Stopped,
            event: InstanceEvent::StopRequested,
        };
        let row = |p: &dyn IntoProblem, status, code| (p.problem(), status, code);
        vec![
            row(&EmailError::Empty, 400, "invalid_email"),
            row(&EmailError::TooLong { max: 254 }, 400, "invalid_email"),
            row(&EmailError::Malformed, 400, "invalid_email"),
            row(
                &EmailError::DisposableDomain {
                    domain: "x.y".into(),
                },
                422,
                "disposable_email",
            ),
            row(&refusal, 429, "resend_too_soon"),
            row(
                &CodeIssueRefusal::TooManyCodes {
                    retry_after_secs: 9,
                },
                429,
                "too_many_codes",
            ),
            row(
                &RequestCodeError::InvalidEmail(EmailError::Malformed),
                400,
                "invalid_email",
            ),
            row(
                &RequestCodeError::RateLimited {
                    retry_after_secs: 3,
                },
                429,
                "too_many_requests",
            ),
            row(&RequestCodeError::Refused(refusal), 429, "resend_too_soon"),
            row(
                &RequestCodeError::MailUnavailable(MailError::Unavailable("down".into())),
                503,
                "mail_unavailable",
            ),
            row(
                &RequestCodeError::Internal(internal()),
                500,
                "internal_error",
            ),
            row(&InvalidCode, 400, "invalid_code"),
            row(
                &VerifyError::InvalidEmail(EmailError::Empty),
                400,
                "invalid_email",
            ),
            row(&VerifyError::InvalidCode(InvalidCode), 400, "invalid_code"),
            row(
                &VerifyError::RateLimited {
                    retry_after_secs: 1,
                },
                429,
                "too_many_requests",
            ),
            row(
                &VerifyError::WrongCode { attempts_left: 2 },
                401,
                "wrong_code",
            ),
            row(&VerifyError::CodeLocked, 403, "code_locked"),
            row(&VerifyError::CodeExpired, 401, "code_expired"),
            row(&VerifyError::NoCode, 401, "no_pending_code"),
            row(&VerifyError::Internal(internal()), 500, "internal_error"),
            row(&AuthError::MalformedToken, 401, "invalid_token"),
            row(&AuthError::InvalidSession, 401, "session_invalid"),
            row(&AuthError::Internal(internal()), 500, "internal_error"),
            row(
                &DeleteAccountError::UnknownAccount,
                404,
                "account_not_found",
            ),
            row(
                &DeleteAccountError::Internal(internal()),
                500,
                "internal_error",
            ),
            row(&InvalidPosition(10), 400, "invalid_position"),
            row(&InvalidId("x".into()), 400, "invalid_id"),
            row(
                &StartQuizError::Cooldown { until: Utc::now() },
                409,
                "harvest_cooldown",
            ),
            row(
                &StartQuizError::StorageFull { cap: l(500) },
                422,
                "lemon_storage_full",
            ),
            row(
                &StartQuizError::NotRipe { regrows_at: None },
                409,
                "lemon_not_ripe",
            ),
            row(
                &StartQuizError::QuizInProgress { until: None },
                409,
                "quiz_in_progress",
            ),
            row(&StartQuizError::Internal(internal()), 500, "internal_error"),
            row(&AnswerError::UnknownAttempt, 404, "attempt_not_found"),
            row(
                &AnswerError::InvalidOption { max: 3 },
                400,
                "invalid_option",
            ),
            row(&AnswerError::AlreadyAnswered, 409, "already_answered"),
            row(&AnswerError::Abandoned, 409, "quiz_abandoned"),
            row(&AbandonError::UnknownAttempt, 404, "attempt_not_found"),
            row(&AbandonError::Internal(internal()), 500, "internal_error"),
            row(
                &AnswerError::TimeExpired { late_ms: 5 },
                409,
                "quiz_time_expired",
            ),
            row(&AnswerError::Internal(internal()), 500, "internal_error"),
            row(&ClickRefusal::OutsidePlayArea, 400, "invalid_click"),
            row(&ClickRefusal::NegativeOffset, 400, "invalid_click"),
            row(
                &ClickRefusal::AfterWindow {
                    offset_ms: 5001,
                    window_ms: 5000,
                },
                422,
                "click_after_window",
            ),
            row(
                &ClickRefusal::Missed {
                    distance: 0.3,
                    allowed: 0.088,
                },
                422,
                "click_missed",
            ),
            row(&HarvestRefusal::NotEligible, 409, "no_quiz_passed"),
            row(
                &HarvestRefusal::AlreadyHarvested,
                409,
                "lemon_already_harvested",
            ),
            row(
                &HarvestRefusal::WindowClosed { elapsed_ms: 5001 },
                409,
                "harvest_window_closed",
            ),
            row(
                &HarvestRefusal::Click(ClickRefusal::NegativeOffset),
                400,
                "invalid_click",
            ),
            row(&HarvestError::UnknownAttempt, 404, "attempt_not_found"),
            row(
                &HarvestError::Refused(HarvestRefusal::AlreadyHarvested),
                409,
                "lemon_already_harvested",
            ),
            row(
                &HarvestError::Cooldown { until: Utc::now() },
                409,
                "harvest_cooldown",
            ),
            row(
                &HarvestError::StorageFull { cap: l(500) },
                422,
                "lemon_storage_full",
            ),
            row(&HarvestError::Internal(internal()), 500, "internal_error"),
            row(
                &InvalidName::Length { min: 3, max: 40 },
                400,
                "invalid_name",
            ),
            row(&InvalidName::Characters, 400, "invalid_name"),
            row(&InvalidName::Edge, 400, "invalid_name"),
            row(
                &SpecError::Cpu {
                    min: MilliCpu(100),
                    max: MilliCpu(2000),
                },
                400,
                "invalid_resources",
            ),
            row(
                &SpecError::CpuStep { step: MilliCpu(50) },
                400,
                "invalid_resources",
            ),
            row(
                &SpecError::Memory {
                    min: 128,
                    max: 4096,
                },
                400,
                "invalid_resources",
            ),
            row(
                &SpecError::Disk { min: 1, max: 50 },
                400,
                "invalid_resources",
            ),
            row(&capacity(), 507, "capacity_exceeded"),
            row(
                &CreateRefusal::InstanceLimit { used: 2, limit: 2 },
                409,
                "instance_limit",
            ),
            row(&CreateRefusal::NameTaken, 409, "name_taken"),
            row(
                &CreateRefusal::InsufficientLemons {
                    required: l(6),
                    available: l(5),
                },
                422,
                "insufficient_lemons",
            ),
            row(
                &CreateRefusal::Capacity(capacity()),
                507,
                "capacity_exceeded",
            ),
            row(
                &NodePortError::Exhausted {
                    first: 30000,
                    last: 31999,
                },
                503,
                "node_ports_exhausted",
            ),
            row(
                &NodePortError::Reserved { port: 30080 },
                503,
                "node_ports_exhausted",
            ),
            row(
                &NodePortError::OutOfRange {
                    port: 1,
                    first: 30000,
                    last: 31999,
                },
                503,
                "node_ports_exhausted",
            ),
            row(
                &CreateError::Refused(CreateRefusal::NameTaken),
                409,
                "name_taken",
            ),
            row(
                &CreateError::NoNodePort(NodePortError::Exhausted { first: 1, last: 2 }),
                503,
                "node_ports_exhausted",
            ),
            row(
                &CreateError::ProvisioningFailed {
                    instance: InstanceId::from_random_bytes([1; 16]),
                    reason: "no binary".into(),
                },
                503,
                "provisioning_failed",
            ),
            row(&CreateError::Internal(internal()), 500, "internal_error"),
            row(&transition, 409, "invalid_state"),
            row(
                &StartRefusal::InsufficientLemons {
                    required: l(1),
                    available: l(0),
                },
                422,
                "insufficient_lemons",
            ),
            row(
                &StartRefusal::Capacity(capacity()),
                507,
                "capacity_exceeded",
            ),
            row(&InstanceActionError::NotFound, 404, "instance_not_found"),
            row(
                &InstanceActionError::Transition(transition),
                409,
                "invalid_state",
            ),
            row(
                &InstanceActionError::Start(StartRefusal::Capacity(capacity())),
                507,
                "capacity_exceeded",
            ),
            row(
                &InstanceActionError::NotRunning {
                    status: InstanceStatus::Stopped,
                },
                409,
                "instance_not_running",
            ),
            row(
                &InstanceActionError::Cluster(ClusterError::transient("timeout")),
                503,
                "cluster_unavailable",
            ),
            row(
                &InstanceActionError::PortBusy {
                    message: "port 30001 is already in use".into(),
                },
                409,
                "port_busy",
            ),
            row(
                &InstanceActionError::Internal(internal()),
                500,
                "internal_error",
            ),
            row(
                &RangeError {
                    field: "limit",
                    min: 1,
                    max: 100,
                },
                400,
                "out_of_range",
            ),
            row(
                &InquiryError {
                    field: "subject",
                    min: 3,
                    max: 120,
                },
                400,
                "invalid_inquiry",
            ),
            row(
                &SupportError::RateLimited {
                    retry_after_secs: 60,
                },
                429,
                "too_many_requests",
            ),
            row(&SupportError::Internal(internal()), 500, "internal_error"),
            row(
                &QuizError::Length {
                    field: "question",
                    min: 10,
                    max: 500,
                },
                400,
                "invalid_quiz",
            ),
            row(
                &QuizError::OptionCount { min: 2, max: 6 },
                400,
                "invalid_quiz",
            ),
            row(
                &QuizError::DuplicateOption { index: 1 },
                400,
                "invalid_quiz",
            ),
            row(
                &QuizError::CorrectOptionOutOfRange { options: 3 },
                400,
                "invalid_quiz",
            ),
            row(
                &QuizError::TimeLimit { min: 10, max: 30 },
                400,
                "invalid_quiz",
            ),
            row(
                &QuizError::Unknown {
                    field: "category",
                    value: "x".into(),
                },
                400,
                "invalid_quiz",
            ),
            row(
                &QuizAdminError::Invalid(QuizError::DuplicateOption { index: 1 }),
                400,
                "invalid_quiz",
            ),
            row(&QuizAdminError::Duplicate, 409, "quiz_exists"),
            row(&QuizAdminError::Internal(internal()), 500, "internal_error"),
            row(&internal(), 500, "internal_error"),
            row(&down(), 503, "service_unavailable"),
            row(
                &RequestCodeError::Internal(down()),
                503,
                "service_unavailable",
            ),
            row(&VerifyError::Internal(down()), 503, "service_unavailable"),
            row(&AuthError::Internal(down()), 503, "service_unavailable"),
            row(
                &StartQuizError::Internal(down()),
                503,
                "service_unavailable",
            ),
            row(&SupportError::Internal(down()), 503, "service_unavailable"),
            row(
                &InternalError::Backend(BackendError::new("a plain failure")),
                500,
                "internal_error",
            ),
            row(
                &LimitExceeded::BodyTooLarge { limit_bytes: 65536 },
                413,
                "payload_too_large",
            ),
            row(
                &LimitExceeded::BodyTooSlow { timeout_secs: 30 },
                408,
                "request_timeout",
            ),
            row(
                &LimitExceeded::StreamsFromClient { limit: 20 },
                429,
                "too_many_streams",
            ),
            row(
                &LimitExceeded::Streams { limit: 1000 },
                503,
                "stream_capacity_reached",
            ),
        ]
    }

    /// Redis or PostgreSQL did not answer.
    pub(crate) fn down() -> InternalError {
        InternalError::Backend(BackendError::unavailable(
            "Redis: take a quiz lock",
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        ))
    }

    #[test]
    fn every_core_error_has_its_status_and_code_and_no_domain_error_is_a_500() {
        for (problem, status, code) in table() {
            assert_eq!(
                (problem.status.code(), problem.body.code.as_str()),
                (status, code),
                "{}",
                problem.body.message
            );
            if status == 500 {
                assert_eq!(
                    problem.body.message, "something went wrong on our side; please retry later",
                    "5xx bodies are opaque"
                );
            } else {
                assert!(!problem.body.message.is_empty());
            }
            if status == 429 || status == 503 {
                assert!(
                    problem.retry_after() > 0,
                    "{} needs Retry-After",
                    problem.body.code
                );
                assert_eq!(
                    problem.body.details["retryAfterSeconds"],
                    problem.retry_after()
                );
            }
        }
        let domain_errors = table()
            .into_iter()
            .filter(|(_, _, code)| *code != "internal_error")
            .count();
        assert!(
            domain_errors >= 80,
            "the table covers the variants ({domain_errors})"
        );
    }

    #[test]
    fn messages_name_their_field() {
        for (problem, _, _) in table() {
            if let Some(field) = problem.body.details.get("field").and_then(|f| f.as_str()) {
                let last = field.rsplit('.').next().unwrap_or(field);
                assert!(
                    problem.body.message.contains(last),
                    "{} does not name {field}",
                    problem.body.message
                );
            }
        }
    }

    /// The web app says every code in words of its own (web/js/messages.js); a code without a
    /// sentence would show the server's raw message.
    #[test]
    fn the_web_app_has_a_sentence_for_every_code() {
        let sentences = include_str!("../../web/js/messages.js");
        let framework = [
            "invalid_json",
            "invalid_body",
            "invalid_request",
            "unauthenticated",
            "forbidden",
            "quiz_not_found",
            "invalid_id",
        ];
        let codes = table()
            .into_iter()
            .map(|(_, _, code)| code)
            .chain(framework);
        let missing: Vec<&str> = codes
            .filter(|code| !sentences.contains(&format!("\n  {code}: (")))
            .collect();
        assert!(missing.is_empty(), "no sentence for {missing:?}");
    }
}
