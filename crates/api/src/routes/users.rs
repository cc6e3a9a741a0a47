use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use modelplane_domain::page::Page;
use modelplane_domain::user::{Role, User, UserCreate, UserUpdate};
use modelplane_service::users;
use modelplane_store::UserFilter;

use super::{LookupItem, LookupList};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Auth, IdPath};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(lookup_users))
        .routes(routes!(get_user, update_user, delete_user))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// Another org's users (superadmin only).
    org_id: Option<Uuid>,
    role: Option<Role>,
    /// Case-insensitive substring of email or name.
    q: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub users: Vec<User>,
}

/// Lists the users of the key's org (admin).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(UserQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = UserList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_users(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<UserQuery>,
) -> ApiResult<Json<UserList>> {
    let page = Page::parse(q.limit, q.offset)?;
    let filter = UserFilter {
        org_id: q.org_id,
        role: q.role,
        q: q.q,
    };
    let listed = users::list(&s.store, &p, filter, page).await?;
    Ok(Json(UserList {
        total: listed.total,
        limit: page.limit,
        offset: page.offset,
        users: listed.items,
    }))
}

/// `{id, name}` of the org's users, for select inputs (registry:read).
#[utoipa::path(get, path = "/api/v1/users/lookup", tag = "users", params(UserQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = LookupList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn lookup_users(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<UserQuery>,
) -> ApiResult<Json<LookupList>> {
    let page = Page::parse(q.limit, q.offset)?;
    let listed = users::lookup(&s.store, &p, q.org_id, q.q, page).await?;
    Ok(Json(LookupList {
        total: listed.total,
        limit: page.limit,
        offset: page.offset,
        items: listed
            .items
            .into_iter()
            .map(|u| LookupItem {
                id: u.id,
                name: u.name,
            })
            .collect(),
    }))
}

/// Creates a user in the key's org (admin).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = UserCreate,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = User), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody, description = "user_already_exists")))]
async fn create_user(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<UserCreate>,
) -> ApiResult<(StatusCode, Json<User>)> {
    Ok((
        StatusCode::CREATED,
        Json(users::create(&s.store, &p, body).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = User), (status = 404, body = ErrorBody)))]
async fn get_user(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
) -> ApiResult<Json<User>> {
    Ok(Json(users::get(&s.store, &p, id).await?))
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", params(("id" = Uuid, Path)), request_body = UserUpdate,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = User), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn update_user(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<UserUpdate>,
) -> ApiResult<Json<User>> {
    Ok(Json(users::update(&s.store, &p, id, body).await?))
}

/// Deletes a user; their keys stop working at once.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", params(("id" = Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_user(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
) -> ApiResult<StatusCode> {
    users::delete(&s.store, &p, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
