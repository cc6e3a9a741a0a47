//! Staged changes: writes sent with `stage: true`, listed and decided here.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use modelplane_domain::page::Page;
use modelplane_domain::staged::{StagedChange, StagedEntity, StagedStatus};
use modelplane_service::staged::{self, Decision};
use modelplane_store::StagedFilter;

use crate::error::{envelope, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Auth, KeyPath};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_staged_changes))
        .routes(routes!(get_staged_change, decide_staged_change))
}

/// The 202 answer to a write sent with `stage: true`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StagedAccepted {
    /// Names the change: `/api/v1/staged-changes/{idempotency_key}`.
    pub idempotency_key: String,
    pub staged_change: StagedChange,
}

/// The 202 answer to a staged write.
pub fn accepted(change: StagedChange) -> Response {
    let body = StagedAccepted {
        idempotency_key: change.idempotency_key.clone(),
        staged_change: change,
    };
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StagedQuery {
    status: Option<StagedStatus>,
    entity: Option<StagedEntity>,
    /// Default 50, at most 200.
    limit: Option<i64>,
    offset: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StagedChangeList {
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub staged_changes: Vec<StagedChange>,
}

/// `{"accept": true}` applies the change, `{"accept": false}` drops it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StagedDecision {
    pub accept: bool,
}

/// Lists the org's staged changes, newest first (registry:read).
#[utoipa::path(get, path = "/api/v1/staged-changes", tag = "staged-changes", params(StagedQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = StagedChangeList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_staged_changes(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<StagedQuery>,
) -> ApiResult<Json<StagedChangeList>> {
    let page = Page::parse(q.limit, q.offset)?;
    let filter = StagedFilter {
        status: q.status,
        entity: q.entity,
    };
    let listed = staged::list(&s.store, &p, filter, page).await?;
    Ok(Json(StagedChangeList {
        total: listed.total,
        limit: page.limit,
        offset: page.offset,
        staged_changes: listed.items,
    }))
}

/// One staged change, by its idempotency key (registry:read).
#[utoipa::path(get, path = "/api/v1/staged-changes/{idempotency_key}", tag = "staged-changes",
    params(("idempotency_key" = String, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = StagedChange), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "staged_change_not_found")))]
async fn get_staged_change(
    State(s): State<AppState>,
    Auth(p): Auth,
    KeyPath(key): KeyPath,
) -> ApiResult<Json<StagedChange>> {
    Ok(Json(staged::get(&s.store, &p, &key).await?))
}

/// Decides a pending change (registry:write). Accepting applies the write
/// as its own route would (audited as the caller) and answers the change
/// as `applied` with the record in `result`, or as `failed` with the error
/// the write was refused with in `result` (nothing applied). Rejecting
/// answers it as `rejected`. Either way the decision is final.
#[utoipa::path(post, path = "/api/v1/staged-changes/{idempotency_key}", tag = "staged-changes",
    params(("idempotency_key" = String, Path)), request_body = StagedDecision,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = StagedChange), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "staged_change_not_found"), (status = 409, body = ErrorBody, description = "staged_change_already_decided")))]
async fn decide_staged_change(
    State(s): State<AppState>,
    Auth(p): Auth,
    KeyPath(key): KeyPath,
    ApiJson(body): ApiJson<StagedDecision>,
) -> ApiResult<Json<StagedChange>> {
    let decision = if body.accept {
        Decision::Accept
    } else {
        Decision::Reject
    };
    Ok(Json(
        staged::decide(&s.store, &p, &key, decision, envelope).await?,
    ))
}
