use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use modelplane_domain::key::{ApiKey, KeyCreate, KeyUpdate};
use modelplane_domain::page::Page;
use modelplane_service::keys;
use modelplane_store::{KeyFilter, KeySort};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Auth, IdPath};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key, update_key))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct KeyQuery {
    /// Another org's keys (superadmin only; a superadmin without it sees all orgs).
    org_id: Option<Uuid>,
    user_id: Option<Uuid>,
    /// Case-insensitive substring of the name or token prefix.
    q: Option<String>,
    /// `created_at`, `-created_at` (default), `name`, `-name`, `last_used_at`, `-last_used_at`.
    sort: Option<String>,
    /// Include revoked keys (default false).
    include_revoked: Option<bool>,
    limit: Option<i64>,
    offset: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub keys: Vec<ApiKey>,
}

/// A new key with its token, which is shown this once and never again.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub key: ApiKey,
    /// The secret token. Store it now: only its hash is kept.
    pub token: String,
}

/// Lists API keys (admin); never returns tokens.
#[utoipa::path(get, path = "/api/v1/keys", tag = "keys", params(KeyQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = KeyList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_keys(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<KeyQuery>,
) -> ApiResult<Json<KeyList>> {
    let page = Page::parse(q.limit, q.offset)?;
    let sort = match q.sort.as_deref() {
        None => KeySort::default(),
        Some(s) => KeySort::parse(s).ok_or_else(|| {
            ApiError::validation(
                "sort",
                "must be one of created_at, -created_at, name, -name, last_used_at, -last_used_at",
            )
        })?,
    };
    let filter = KeyFilter {
        org_id: q.org_id,
        user_id: q.user_id,
        q: q.q,
        include_revoked: q.include_revoked.unwrap_or(false),
        sort,
    };
    let listed = keys::list(&s.store, &p, filter, page).await?;
    Ok(Json(KeyList {
        total: listed.total,
        limit: page.limit,
        offset: page.offset,
        keys: listed.items,
    }))
}

/// Creates a key and returns its token once (admin). A key never grants
/// more than its creator holds, and a user's role caps a user-bound key.
#[utoipa::path(post, path = "/api/v1/keys", tag = "keys", request_body = KeyCreate,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = CreatedKey), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn create_key(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<KeyCreate>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    let created = keys::create(&s.store, &p, body).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            key: created.key,
            token: created.token,
        }),
    ))
}

/// Revokes a key; it stops working at once.
#[utoipa::path(delete, path = "/api/v1/keys/{id}", tag = "keys", params(("id" = Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_key(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
) -> ApiResult<StatusCode> {
    keys::revoke(&s.store, &p, id).await?;
    // This replica stops accepting it at once; others within the gateway's cache TTL.
    s.gateway.forget_keys();
    Ok(StatusCode::NO_CONTENT)
}

/// Renames a key or changes its gateway limits (admin): a field given
/// replaces the value, `null` removes that limit. This replica applies it at
/// once; others within the gateway's cache TTL.
#[utoipa::path(patch, path = "/api/v1/keys/{id}", tag = "keys", params(("id" = Uuid, Path)), request_body = KeyUpdate,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = ApiKey), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_key(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<KeyUpdate>,
) -> ApiResult<Json<ApiKey>> {
    let key = keys::update(&s.store, &p, id, body).await?;
    s.gateway.forget_keys();
    Ok(Json(key))
}
