use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use modelplane_domain::department::{Department, DepartmentCreate, DepartmentUpdate};
use modelplane_domain::page::Page;
use modelplane_service::departments;

use super::{LookupItem, LookupList};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Auth, IdPath};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_departments, create_department))
        .routes(routes!(lookup_departments))
        .routes(routes!(
            get_department,
            update_department,
            delete_department
        ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DepartmentQuery {
    /// Case-insensitive substring of the name.
    q: Option<String>,
    /// Default 50, at most 200.
    limit: Option<i64>,
    offset: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DepartmentList {
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub departments: Vec<Department>,
}

/// Lists the org's departments by name (registry:read).
#[utoipa::path(get, path = "/api/v1/departments", tag = "departments", params(DepartmentQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = DepartmentList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_departments(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<DepartmentQuery>,
) -> ApiResult<Json<DepartmentList>> {
    let page = Page::parse(q.limit, q.offset)?;
    let listed = departments::list(&s.store, &p, q.q, page).await?;
    Ok(Json(DepartmentList {
        total: listed.total,
        limit: page.limit,
        offset: page.offset,
        departments: listed.items,
    }))
}

/// `{id, name}` of the org's departments, for select inputs (registry:read).
#[utoipa::path(get, path = "/api/v1/departments/lookup", tag = "departments", params(DepartmentQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = LookupList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn lookup_departments(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<DepartmentQuery>,
) -> ApiResult<Json<LookupList>> {
    let page = Page::parse(q.limit, q.offset)?;
    let listed = departments::list(&s.store, &p, q.q, page).await?;
    Ok(Json(LookupList {
        total: listed.total,
        limit: page.limit,
        offset: page.offset,
        items: listed
            .items
            .into_iter()
            .map(|d| LookupItem {
                id: d.id,
                name: d.name,
            })
            .collect(),
    }))
}

/// Creates a department in the key's org (admin).
#[utoipa::path(post, path = "/api/v1/departments", tag = "departments", request_body = DepartmentCreate,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = Department), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody, description = "department_already_exists")))]
async fn create_department(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<DepartmentCreate>,
) -> ApiResult<(StatusCode, Json<Department>)> {
    Ok((
        StatusCode::CREATED,
        Json(departments::create(&s.store, &p, body).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/departments/{id}", tag = "departments", params(("id" = uuid::Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Department), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "department_not_found")))]
async fn get_department(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
) -> ApiResult<Json<Department>> {
    Ok(Json(departments::get(&s.store, &p, id).await?))
}

/// Renames or re-describes a department (admin); `description: null` clears it.
#[utoipa::path(patch, path = "/api/v1/departments/{id}", tag = "departments", params(("id" = uuid::Uuid, Path)), request_body = DepartmentUpdate,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Department), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "department_already_exists")))]
async fn update_department(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<DepartmentUpdate>,
) -> ApiResult<Json<Department>> {
    Ok(Json(departments::update(&s.store, &p, id, body).await?))
}

/// Deletes a department that no model and no user belongs to (admin).
#[utoipa::path(delete, path = "/api/v1/departments/{id}", tag = "departments", params(("id" = uuid::Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "department_in_use, with details {department_id, models, users}")))]
async fn delete_department(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
) -> ApiResult<StatusCode> {
    departments::delete(&s.store, &p, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
