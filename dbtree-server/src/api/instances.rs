//! Database instances: create, list, inspect, start, stop, rotate credentials, delete.

use std::str::FromStr;
use std::sync::Arc;

use dbtree_core::billing::Runway;
use dbtree_core::ids::InstanceId;
use dbtree_core::instance::{Credentials, Instance, InstanceName};
use dbtree_core::service::Authenticated;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use super::accounts::Area;
use super::body::JsonBody;
use super::catalog::requested_spec;
use super::dto::{
    CliDto, ConnectionDto, CreateInstanceRequest, CreatedInstanceDto, CredentialsDto,
    InstanceDetailDto, InstanceDto, UsageDto,
};
use super::problem::{ErrorBody, Problem};
use super::{BearerAuth, OrProblem, from_problem, respond};
use crate::state::ServerState;

/// Database instances.
pub struct InstanceApi {
    state: Arc<ServerState>,
}

impl InstanceApi {
    pub(super) fn new(state: Arc<ServerState>) -> Self {
        Self { state }
    }

    fn credentials(&self, instance: &Instance, credentials: &Credentials) -> CredentialsDto {
        let port = instance.node_port.map_or(0, |p| p.get());
        CredentialsDto {
            username: credentials.username.clone(),
            password: credentials.password.expose().to_owned(),
            uri: instance.engine().connection_uri(
                &self.state.public_host,
                port,
                credentials.password.expose(),
            ),
        }
    }

    fn detail(
        &self,
        instance: &Instance,
        runway: &Runway,
        server: Option<String>,
    ) -> InstanceDetailDto {
        let host = &self.state.public_host;
        let connection = instance.node_port.map(|port| ConnectionDto {
            host: host.clone(),
            port: port.get(),
            uri_template: instance.engine().uri_template(host, port.get()),
            cli: CliDto::new(instance.engine(), host, port.get()),
        });
        InstanceDetailDto {
            instance: self.with_runway(instance, runway),
            connection,
            server,
        }
    }

    /// The caller's runway: when billing will pause and delete each instance.
    async fn runway(&self, who: &Authenticated) -> Result<Runway, Problem> {
        self.state
            .app
            .billing
            .runway(who.user.id, who.user.balance)
            .await
            .or_problem()
    }

    fn with_runway(&self, instance: &Instance, runway: &Runway) -> InstanceDto {
        InstanceDto::from(instance).with_runway(instance, runway, &self.state.app.policy.billing)
    }
}

impl std::fmt::Debug for InstanceApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InstanceApi")
    }
}

fn instance_id(text: &str) -> Result<InstanceId, Problem> {
    InstanceId::from_str(text)
        .map_err(|_| Problem::invalid("id", "invalid_id", "id: not a valid instance id"))
}

#[derive(ApiResponse)]
#[oai(bad_request_handler = "super::bad_request")]
pub(super) enum CreateInstanceResponse {
    /// Created and paid for; provisioning. The password is shown only here.
    #[oai(status = 201)]
    Created(Json<CreatedInstanceDto>),
    /// The body is malformed; `details.field` names the field (`name`, `engine`, `preset`,
    /// `resources.cpu`…).
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing, malformed or expired bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// Two live instances already (`instance_limit`) or the name is taken (`name_taken`).
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// Not enough lemons for the creation cost plus one hour (`insufficient_lemons`).
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// No NodePort free, or the cluster refused the instance (refunded: `provisioning_failed`); or
    /// a dependency (database or Redis) is unreachable (`service_unavailable`).
    /// Retry after `Retry-After` seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u32),
    /// The node has no room for it (`capacity_exceeded`).
    #[oai(status = 507)]
    InsufficientStorage(Json<ErrorBody>),
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
from_problem!(CreateInstanceResponse {
    BadRequest,
    Unauthorized,
    Conflict,
    Unprocessable,
    Unavailable,
    InsufficientStorage,
    RequestTimeout,
    PayloadTooLarge,
    Internal
});

#[derive(ApiResponse)]
#[oai(bad_request_handler = "super::bad_request")]
pub(super) enum ListInstancesResponse {
    /// The caller's instances, newest first.
    #[oai(status = 200)]
    Ok(Json<Vec<InstanceDto>>),
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
from_problem!(ListInstancesResponse {
    BadRequest,
    Unauthorized,
    Unavailable,
    Internal
});

#[derive(ApiResponse)]
#[oai(bad_request_handler = "super::bad_request")]
pub(super) enum InstanceResponse {
    /// The instance with its connection details.
    #[oai(status = 200)]
    Ok(Json<Box<InstanceDetailDto>>),
    /// The id is malformed.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing, malformed or expired bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// No such instance of the caller.
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
from_problem!(InstanceResponse { BadRequest, Unauthorized, NotFound, Unavailable, Internal } path "id");

#[derive(ApiResponse)]
#[oai(bad_request_handler = "super::bad_request")]
pub(super) enum InstanceActionResponse {
    /// Done; the instance as it is now.
    #[oai(status = 200)]
    Ok(Json<InstanceDto>),
    /// The id is malformed.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing, malformed or expired bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// No such instance of the caller.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// Not possible in the instance's state (`invalid_state`), or, starting, another program
    /// holds the instance's port on the host (`port_busy`: it stays stopped).
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// Starting needs one affordable hour (`insufficient_lemons`).
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// The node has no room to start it (`capacity_exceeded`).
    #[oai(status = 507)]
    InsufficientStorage(Json<ErrorBody>),
    /// A dependency (database or Redis) is unreachable (`service_unavailable`); retry after
    /// `Retry-After` seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u32),
    /// Internal error.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
}
from_problem!(InstanceActionResponse { BadRequest, Unauthorized, NotFound, Conflict, Unprocessable, InsufficientStorage, Unavailable, Internal } path "id");

#[derive(ApiResponse)]
#[oai(bad_request_handler = "super::bad_request")]
pub(super) enum RotateResponse {
    /// The new credentials, shown only here; the old password no longer works.
    #[oai(status = 200)]
    Ok(Json<CredentialsDto>),
    /// The id is malformed.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing, malformed or expired bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// No such instance of the caller.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The instance is not running (`instance_not_running`).
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The cluster could not apply it; nothing changed (`cluster_unavailable`); or a dependency
    /// (database or Redis) is unreachable (`service_unavailable`).
    /// Retry after `Retry-After` seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u32),
    /// Internal error.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
}
from_problem!(RotateResponse { BadRequest, Unauthorized, NotFound, Conflict, Unavailable, Internal } path "id");

#[derive(ApiResponse)]
#[oai(bad_request_handler = "super::bad_request")]
pub(super) enum UsageResponse {
    /// What the engine reports (or why it cannot be asked now).
    #[oai(status = 200)]
    Ok(Json<UsageDto>),
    /// The id is malformed.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing, malformed or expired bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// No such instance of the caller.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The cluster could not ask the engine now (`cluster_unavailable`), or the store is out of
    /// reach (`service_unavailable`); retry after the given seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u32),
    /// Internal error.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
}
from_problem!(UsageResponse { BadRequest, Unauthorized, NotFound, Unavailable, Internal } path "id");

#[OpenApi(prefix_path = "/v1", tag = "Area::Instances")]
impl InstanceApi {
    /// Create an instance.
    ///
    /// Needs the creation cost plus one hour on the balance; debits the creation cost. Body:
    /// `{name, engine, preset}` or `{name, engine, resources: {cpu, memoryMib, diskGib}}`.
    #[oai(path = "/instances", method = "post", operation_id = "createInstance")]
    async fn create(
        &self,
        auth: BearerAuth,
        body: JsonBody<CreateInstanceRequest>,
    ) -> CreateInstanceResponse {
        respond(async {
            let name = InstanceName::parse(&body.name).or_problem()?;
            let spec = requested_spec(body.engine, body.preset, body.resources.as_ref())?;
            let who = &auth.0;
            let created = self
                .state
                .app
                .instances
                .create(&who.user, name, spec)
                .await
                .or_problem()?;
            self.state.metrics.charged(created.debit.delta);
            Ok(CreateInstanceResponse::Created(Json(CreatedInstanceDto {
                credentials: self.credentials(&created.instance, &created.credentials),
                instance: (&created.instance).into(),
            })))
        })
        .await
    }

    /// The caller's instances.
    #[oai(path = "/instances", method = "get", operation_id = "listInstances")]
    async fn list(&self, auth: BearerAuth) -> ListInstancesResponse {
        respond(async {
            let who = &auth.0;
            let mine = self
                .state
                .app
                .instances
                .list(who.user.id)
                .await
                .or_problem()?;
            let runway = self.runway(who).await?;
            Ok(ListInstancesResponse::Ok(Json(
                mine.iter().map(|i| self.with_runway(i, &runway)).collect(),
            )))
        })
        .await
    }

    /// One instance, with how to connect to it.
    #[oai(path = "/instances/:id", method = "get", operation_id = "getInstance")]
    async fn get(&self, auth: BearerAuth, id: Path<String>) -> InstanceResponse {
        respond(async {
            let id = instance_id(&id)?;
            let who = &auth.0;
            let instance = self
                .state
                .app
                .instances
                .get(who.user.id, id)
                .await
                .or_problem()?;
            let runway = self.runway(who).await?;
            let server = self.state.app.instances.server_of(&instance).await;
            Ok(InstanceResponse::Ok(Json(Box::new(
                self.detail(&instance, &runway, server),
            ))))
        })
        .await
    }

    /// What the instance's engine itself reports about its use: memory, disk and connections,
    /// next to what the instance may use.
    #[oai(
        path = "/instances/:id/usage",
        method = "get",
        operation_id = "getInstanceUsage"
    )]
    async fn usage(&self, auth: BearerAuth, id: Path<String>) -> UsageResponse {
        respond(async {
            let id = instance_id(&id)?;
            let who = &auth.0;
            let (instance, report) = self
                .state
                .app
                .instances
                .usage(who.user.id, id)
                .await
                .or_problem()?;
            let now = self.state.clock.now();
            Ok(UsageResponse::Ok(Json(UsageDto::new(
                &instance, report, now,
            ))))
        })
        .await
    }

    /// Delete an instance and its data.
    #[oai(
        path = "/instances/:id",
        method = "delete",
        operation_id = "deleteInstance"
    )]
    async fn delete(&self, auth: BearerAuth, id: Path<String>) -> InstanceActionResponse {
        respond(async {
            let id = instance_id(&id)?;
            let who = &auth.0;
            let instance = self
                .state
                .app
                .instances
                .delete(who.user.id, id)
                .await
                .or_problem()?;
            Ok(InstanceActionResponse::Ok(Json((&instance).into())))
        })
        .await
    }

    /// Start a stopped or paused instance.
    #[oai(
        path = "/instances/:id/start",
        method = "post",
        operation_id = "startInstance"
    )]
    async fn start(&self, auth: BearerAuth, id: Path<String>) -> InstanceActionResponse {
        respond(async {
            let id = instance_id(&id)?;
            let who = &auth.0;
            let instance = self
                .state
                .app
                .instances
                .start(who.user.id, id)
                .await
                .or_problem()?;
            Ok(InstanceActionResponse::Ok(Json((&instance).into())))
        })
        .await
    }

    /// Stop a running instance (data kept, billing stops).
    #[oai(
        path = "/instances/:id/stop",
        method = "post",
        operation_id = "stopInstance"
    )]
    async fn stop(&self, auth: BearerAuth, id: Path<String>) -> InstanceActionResponse {
        respond(async {
            let id = instance_id(&id)?;
            let who = &auth.0;
            let instance = self
                .state
                .app
                .instances
                .stop(who.user.id, id)
                .await
                .or_problem()?;
            Ok(InstanceActionResponse::Ok(Json((&instance).into())))
        })
        .await
    }

    /// Replace the password of a running instance (shown once).
    #[oai(
        path = "/instances/:id/credentials",
        method = "post",
        operation_id = "rotateCredentials"
    )]
    async fn rotate(&self, auth: BearerAuth, id: Path<String>) -> RotateResponse {
        respond(async {
            let id = instance_id(&id)?;
            let who = &auth.0;
            let (instance, credentials) = self
                .state
                .app
                .instances
                .rotate_credentials(who.user.id, id)
                .await
                .or_problem()?;
            Ok(RotateResponse::Ok(Json(
                self.credentials(&instance, &credentials),
            )))
        })
        .await
    }
}
