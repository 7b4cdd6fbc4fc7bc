//! Public figures and the caller's own history.

use std::str::FromStr;
use std::sync::Arc;

use dbtree_core::ids::InstanceId;
use dbtree_core::stats::{PageRequest, harvest_history_days};
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use super::accounts::Area;
use super::dto::{
    CapacityDto, DailyHarvestDto, HarvestHistoryDto, LeaderboardDto, StatsDto, TransactionDto,
    TransactionPageDto,
};
use super::problem::{ErrorBody, Problem};
use super::{BearerAuth, OrProblem, from_problem, respond};
use crate::state::ServerState;

/// Figures.
pub struct StatsApi {
    state: Arc<ServerState>,
}

impl StatsApi {
    pub(super) fn new(state: Arc<ServerState>) -> Self {
        Self { state }
    }
}

impl std::fmt::Debug for StatsApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StatsApi")
    }
}

macro_rules! public_response {
    ($name:ident, $dto:ty, $doc:literal) => {
        #[derive(ApiResponse)]
        #[oai(bad_request_handler = "super::bad_request")]
        pub(super) enum $name {
            #[doc = $doc]
            #[oai(status = 200)]
            Ok(Json<$dto>),
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
        from_problem!($name {
            BadRequest,
            Unavailable,
            Internal
        });
    };
}

public_response!(StatsResponse, StatsDto, "Global figures.");
public_response!(
    LeaderboardResponse,
    LeaderboardDto,
    "Top balances and today's quiz masters, emails masked."
);
public_response!(
    CapacityResponse,
    CapacityDto,
    "The node's capacity in aggregate, and which presets fit now."
);

#[derive(ApiResponse)]
#[oai(bad_request_handler = "super::bad_request")]
pub(super) enum TransactionsResponse {
    /// A page of the caller's ledger, newest first.
    #[oai(status = 200)]
    Ok(Json<TransactionPageDto>),
    /// `limit` is not 1–100, `offset` is negative, or `instanceId` is malformed.
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
from_problem!(TransactionsResponse {
    BadRequest,
    Unauthorized,
    Unavailable,
    Internal
});

#[derive(ApiResponse)]
#[oai(bad_request_handler = "super::bad_request")]
pub(super) enum HarvestHistoryResponse {
    /// Lemons harvested per UTC day, oldest first.
    #[oai(status = 200)]
    Ok(Json<HarvestHistoryDto>),
    /// `days` is not 1–90.
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
from_problem!(HarvestHistoryResponse {
    BadRequest,
    Unauthorized,
    Unavailable,
    Internal
});

#[OpenApi(prefix_path = "/v1", tag = "Area::Stats")]
impl StatsApi {
    /// Global figures: lemons harvested, live users, instances created.
    #[oai(path = "/stats", method = "get", operation_id = "getStats")]
    async fn stats(&self) -> StatsResponse {
        respond(async {
            let mut stats = StatsDto::from(self.state.app.stats.global().await.or_problem()?);
            stats.welcome_bonus = self.state.app.policy.ledger.welcome_bonus.get();
            Ok(StatsResponse::Ok(Json(stats)))
        })
        .await
    }

    /// The leaderboard.
    #[oai(path = "/leaderboard", method = "get", operation_id = "getLeaderboard")]
    async fn leaderboard(&self) -> LeaderboardResponse {
        respond(async {
            Ok(LeaderboardResponse::Ok(Json(
                self.state
                    .app
                    .stats
                    .leaderboard()
                    .await
                    .or_problem()?
                    .into(),
            )))
        })
        .await
    }

    /// The node's capacity (aggregates only).
    #[oai(
        path = "/system/capacity",
        method = "get",
        operation_id = "getCapacity"
    )]
    async fn capacity(&self) -> CapacityResponse {
        respond(async {
            Ok(CapacityResponse::Ok(Json(
                self.state.app.stats.capacity().await.or_problem()?.into(),
            )))
        })
        .await
    }

    /// The caller's ledger history.
    #[oai(
        path = "/me/transactions",
        method = "get",
        operation_id = "listTransactions"
    )]
    async fn transactions(
        &self,
        auth: BearerAuth,
        /// Entries per page, 1–100 (default 20).
        limit: Query<Option<i64>>,
        /// Entries to skip (default 0).
        offset: Query<Option<i64>>,
        /// Only entries about this instance.
        #[oai(name = "instanceId")]
        instance_id: Query<Option<String>>,
    ) -> TransactionsResponse {
        respond(async {
            let page =
                PageRequest::new(limit.0.unwrap_or(20), offset.0.unwrap_or(0)).or_problem()?;
            let instance = match instance_id.0.as_deref() {
                Some(text) => Some(InstanceId::from_str(text).map_err(|_| {
                    Problem::invalid(
                        "instanceId",
                        "invalid_id",
                        "instanceId: not a valid instance id",
                    )
                })?),
                None => None,
            };
            let who = &auth.0;
            let found = self
                .state
                .app
                .stats
                .transactions(who.user.id, instance, page)
                .await
                .or_problem()?;
            let names = self
                .state
                .app
                .stats
                .instance_names(who.user.id, found.items.iter().filter_map(|e| e.instance))
                .await
                .or_problem()?;
            Ok(TransactionsResponse::Ok(Json(TransactionPageDto {
                items: found
                    .items
                    .iter()
                    .map(|e| {
                        let mut dto = TransactionDto::from(e);
                        dto.instance_name = e
                            .instance
                            .and_then(|i| names.get(&i))
                            .map(ToString::to_string);
                        dto
                    })
                    .collect(),
                total: found.total,
                limit: page.limit,
                offset: page.offset,
            })))
        })
        .await
    }

    /// The caller's daily harvests.
    #[oai(
        path = "/me/harvests",
        method = "get",
        operation_id = "listDailyHarvests"
    )]
    async fn harvests(
        &self,
        auth: BearerAuth,
        /// Days of history, 1–90 (default 7).
        days: Query<Option<i64>>,
    ) -> HarvestHistoryResponse {
        respond(async {
            let days = harvest_history_days(days.0.unwrap_or(7)).or_problem()?;
            let who = &auth.0;
            let history = self
                .state
                .app
                .stats
                .daily_harvests(who.user.id, days)
                .await
                .or_problem()?;
            Ok(HarvestHistoryResponse::Ok(Json(HarvestHistoryDto {
                days: history.iter().map(DailyHarvestDto::from).collect(),
            })))
        })
        .await
    }
}
