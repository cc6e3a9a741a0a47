//! `/api/v1/admin/upstreams`: the gateway's view of each upstream.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use modelplane_gateway::UpstreamSnapshot;

use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiQuery, Auth};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_upstreams))
        .routes(routes!(refresh_health))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UpstreamList {
    pub upstreams: Vec<UpstreamSnapshot>,
}

/// Health of every upstream of the org's routes on this replica: circuit
/// state, moving latency, last status and error, last check (admin).
#[utoipa::path(get, path = "/api/v1/admin/upstreams", tag = "gateway",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = UpstreamList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_upstreams(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<UpstreamList>> {
    Ok(Json(UpstreamList {
        upstreams: s.gateway.upstream_health(&p).await?,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RefreshQuery {
    /// Send a one-token completion instead of the free probe (`GET /models`,
    /// or an engine's `/health`). Costs tokens.
    paid: Option<bool>,
}

/// Probes every upstream of the org's routes now, in parallel (admin).
#[utoipa::path(post, path = "/api/v1/admin/upstreams/refresh-health", tag = "gateway", params(RefreshQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = UpstreamList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn refresh_health(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<RefreshQuery>,
) -> ApiResult<Json<UpstreamList>> {
    Ok(Json(UpstreamList {
        upstreams: s
            .gateway
            .probe_upstreams(&p, q.paid.unwrap_or(false))
            .await?,
    }))
}
