//! `/api/v1/routes`: the org's gateway routes (public model name → upstreams).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use modelplane_domain::route::{Route, RouteInput};
use modelplane_service::routes;

use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, Auth, IdPath};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_routes, create_route))
        .routes(routes!(get_route, replace_route, delete_route))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RouteList {
    pub total: i64,
    pub routes: Vec<Route>,
}

/// The org's routes by name (registry:read). Keys are never returned, only `api_key_set`.
#[utoipa::path(get, path = "/api/v1/routes", tag = "gateway",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = RouteList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_routes(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<RouteList>> {
    let routes = routes::list(&s.store, &p).await?;
    Ok(Json(RouteList {
        total: i64::try_from(routes.len()).unwrap_or(i64::MAX),
        routes,
    }))
}

/// Creates a route (admin). Upstreams are tried by ascending `priority`,
/// by `weight` within a priority; `retries` further attempts fall back on
/// connection errors, timeouts, 429 and 5xx. `api_key` is sealed at rest.
#[utoipa::path(post, path = "/api/v1/routes", tag = "gateway", request_body = RouteInput,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = Route), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody, description = "route_already_exists")))]
async fn create_route(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<RouteInput>,
) -> ApiResult<(StatusCode, Json<Route>)> {
    let route = routes::create(&s.store, s.gateway.secrets(), &p, body).await?;
    s.gateway.forget_org(route.org_id);
    Ok((StatusCode::CREATED, Json(route)))
}

#[utoipa::path(get, path = "/api/v1/routes/{id}", tag = "gateway", params(("id" = uuid::Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Route), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "route_not_found")))]
async fn get_route(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
) -> ApiResult<Json<Route>> {
    Ok(Json(routes::get(&s.store, &p, id).await?))
}

/// Replaces a route (admin). An upstream sent without `api_key` keeps the
/// key it had at the same position (same provider and base URL);
/// `expected_version` refuses a stale edit with 409.
#[utoipa::path(put, path = "/api/v1/routes/{id}", tag = "gateway", params(("id" = uuid::Uuid, Path)), request_body = RouteInput,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Route), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "version_conflict or route_already_exists")))]
async fn replace_route(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<RouteInput>,
) -> ApiResult<Json<Route>> {
    let route = routes::replace(&s.store, s.gateway.secrets(), &p, id, body).await?;
    s.gateway.forget_org(route.org_id);
    Ok(Json(route))
}

#[utoipa::path(delete, path = "/api/v1/routes/{id}", tag = "gateway", params(("id" = uuid::Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_route(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
) -> ApiResult<StatusCode> {
    routes::delete(&s.store, &p, id).await?;
    s.gateway.forget_org(p.org_id);
    Ok(StatusCode::NO_CONTENT)
}
