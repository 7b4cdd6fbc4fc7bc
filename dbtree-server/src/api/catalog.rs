//! The preset catalogue and quotes.

use std::sync::Arc;

use dbtree_core::instance::{Engine, InstanceSpec, Resources, catalogue};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use super::accounts::Area;
use super::body::JsonBody;
use super::dto::{EngineDto, PresetDto, PresetEntryDto, PriceDto, QuoteRequest, ResourcesDto};
use super::problem::{ErrorBody, Problem};
use super::{OrProblem, from_problem, respond};
use crate::state::ServerState;

/// Presets and prices.
pub struct CatalogApi {
    state: Arc<ServerState>,
}

impl CatalogApi {
    pub(super) fn new(state: Arc<ServerState>) -> Self {
        Self { state }
    }
}

impl std::fmt::Debug for CatalogApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CatalogApi")
    }
}

/// The specification a request describes: exactly one of `preset` and `resources`.
pub(super) fn requested_spec(
    engine: EngineDto,
    preset: Option<PresetDto>,
    resources: Option<&ResourcesDto>,
) -> Result<InstanceSpec, Problem> {
    let engine = Engine::from(engine);
    match (preset, resources) {
        (Some(size), None) => Ok(InstanceSpec::Preset {
            engine,
            size: size.into(),
        }),
        (None, Some(r)) => {
            let resources = Resources::custom(r.cpu, r.memory_mib, r.disk_gib).or_problem()?;
            Ok(InstanceSpec::Custom { engine, resources })
        }
        (Some(_), Some(_)) => Err(Problem::invalid(
            "preset",
            "invalid_spec",
            "preset: give either `preset` or `resources`, not both",
        )),
        (None, None) => Err(Problem::invalid(
            "preset",
            "invalid_spec",
            "preset: give a `preset` (tiny, small, medium, large) or custom `resources`",
        )),
    }
}

#[derive(ApiResponse)]
#[oai(bad_request_handler = "super::bad_request")]
pub(super) enum PresetsResponse {
    /// Every engine in every preset size, with prices.
    #[oai(status = 200)]
    Ok(Json<Vec<PresetEntryDto>>),
    /// The request is malformed.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Internal error.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
}
from_problem!(PresetsResponse {
    BadRequest,
    Internal
});

#[derive(ApiResponse)]
#[oai(bad_request_handler = "super::bad_request")]
pub(super) enum QuoteResponse {
    /// The price: exactly what creating the instance would charge.
    #[oai(status = 200)]
    Ok(Json<PriceDto>),
    /// The specification is malformed or out of bounds; `details.field` names the field.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
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
from_problem!(QuoteResponse {
    BadRequest,
    RequestTimeout,
    PayloadTooLarge,
    Internal
});

#[OpenApi(prefix_path = "/v1", tag = "Area::Catalog")]
impl CatalogApi {
    /// The preset catalogue.
    #[oai(path = "/presets", method = "get", operation_id = "listPresets")]
    async fn presets(&self) -> PresetsResponse {
        let entries = catalogue()
            .into_iter()
            .map(|p| PresetEntryDto {
                engine: p.engine.into(),
                preset: p.size.into(),
                resources: p.resources.into(),
                price: p.price.into(),
            })
            .collect();
        PresetsResponse::Ok(Json(entries))
    }

    /// Price a specification (a preset, or custom resources).
    #[oai(path = "/quotes", method = "post", operation_id = "quote")]
    async fn quote(&self, body: JsonBody<QuoteRequest>) -> QuoteResponse {
        respond(async {
            let spec = requested_spec(body.engine, body.preset, body.resources.as_ref())?;
            Ok(QuoteResponse::Ok(Json(
                self.state.app.instances.quote(&spec).into(),
            )))
        })
        .await
    }
}
