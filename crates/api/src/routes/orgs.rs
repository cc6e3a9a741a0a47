use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use modelplane_domain::org::{Org, OrgCreate, OrgUpdate};
use modelplane_domain::page::Page;
use modelplane_service::orgs;

use super::{LookupItem, LookupList};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Auth, IdPath};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_orgs, create_org))
        .routes(routes!(lookup_orgs))
        .routes(routes!(get_org, update_org, delete_org))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrgQuery {
    /// Case-insensitive substring of the name.
    q: Option<String>,
    /// Default 50, at most 200.
    limit: Option<i64>,
    offset: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgList {
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub orgs: Vec<Org>,
}

/// Lists orgs: all of them for a superadmin key, otherwise the key's own.
#[utoipa::path(get, path = "/api/v1/orgs", tag = "orgs", params(OrgQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = OrgList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_orgs(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<OrgQuery>,
) -> ApiResult<Json<OrgList>> {
    let page = Page::parse(q.limit, q.offset)?;
    let listed = orgs::list(&s.store, &p, q.q.as_deref(), page).await?;
    Ok(Json(OrgList {
        total: listed.total,
        limit: page.limit,
        offset: page.offset,
        orgs: listed.items,
    }))
}

/// `{id, name}` of the orgs the key can see, for select inputs.
#[utoipa::path(get, path = "/api/v1/orgs/lookup", tag = "orgs", params(OrgQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = LookupList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn lookup_orgs(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<OrgQuery>,
) -> ApiResult<Json<LookupList>> {
    let page = Page::parse(q.limit, q.offset)?;
    let listed = orgs::list(&s.store, &p, q.q.as_deref(), page).await?;
    Ok(Json(LookupList {
        total: listed.total,
        limit: page.limit,
        offset: page.offset,
        items: listed
            .items
            .into_iter()
            .map(|o| LookupItem {
                id: o.id,
                name: o.name,
            })
            .collect(),
    }))
}

/// Creates an org (superadmin).
#[utoipa::path(post, path = "/api/v1/orgs", tag = "orgs", request_body = OrgCreate,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = Org), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody, description = "org_already_exists")))]
async fn create_org(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<OrgCreate>,
) -> ApiResult<(StatusCode, Json<Org>)> {
    Ok((
        StatusCode::CREATED,
        Json(orgs::create(&s.store, &p, body).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/orgs/{id}", tag = "orgs", params(("id" = uuid::Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Org), (status = 404, body = ErrorBody)))]
async fn get_org(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
) -> ApiResult<Json<Org>> {
    Ok(Json(orgs::get(&s.store, &p, id).await?))
}

/// Renames an org or changes its risk framework (superadmin, or admin of that org).
#[utoipa::path(patch, path = "/api/v1/orgs/{id}", tag = "orgs", params(("id" = uuid::Uuid, Path)), request_body = OrgUpdate,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Org), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn update_org(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<OrgUpdate>,
) -> ApiResult<Json<Org>> {
    Ok(Json(orgs::update(&s.store, &p, id, body).await?))
}

/// Deletes an org with its users, keys and models; its audit trail stays (superadmin).
#[utoipa::path(delete, path = "/api/v1/orgs/{id}", tag = "orgs", params(("id" = uuid::Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_org(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
) -> ApiResult<StatusCode> {
    orgs::delete(&s.store, &p, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
