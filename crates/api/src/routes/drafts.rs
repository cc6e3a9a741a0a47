//! Drafts of inventory models: taken from a model or blank, patched with
//! `expected_version`, listed per author, published atomically.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use modelplane_domain::draft::{Draft, DraftForm};
use modelplane_service::drafts;

use super::models::with_etag;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, Auth, IdPath};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(draft_from_model))
        .routes(routes!(list_drafts, create_draft))
        .routes(routes!(get_draft, patch_draft, delete_draft))
        .routes(routes!(publish_draft))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DraftList {
    pub drafts: Vec<Draft>,
}

/// The answer to an accepted patch: the draft's new version and form.
#[derive(Debug, Serialize, ToSchema)]
pub struct DraftPatched {
    pub draft_id: Uuid,
    pub new_version: i64,
    pub form_state: DraftForm,
    pub draft: Draft,
}

/// `expected_version` plus any fields of the form; `null` clears a field.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DraftPatch {
    pub expected_version: i64,
    #[serde(flatten)]
    #[schema(value_type = DraftForm)]
    pub fields: Map<String, Value>,
}

/// Starts a draft of a model, its form filled from the model as it is now.
#[utoipa::path(post, path = "/api/v1/models/{id}/drafts", tag = "drafts", params(("id" = Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = Draft), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn draft_from_model(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
) -> ApiResult<(StatusCode, Json<Draft>)> {
    let draft = drafts::from_model(&s.store, &p, id).await?;
    Ok((StatusCode::CREATED, Json(draft)))
}

/// Starts a draft of a new model; the body (optional) is its initial form.
#[utoipa::path(post, path = "/api/v1/drafts", tag = "drafts", request_body(content = Option<DraftForm>),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = Draft), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn create_draft(
    State(s): State<AppState>,
    Auth(p): Auth,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Draft>)> {
    let initial: Map<String, Value> = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        crate::extract::parse_json(&body)?
    };
    let draft = drafts::blank(&s.store, &p, &initial).await?;
    Ok((StatusCode::CREATED, Json(draft)))
}

/// The caller's own drafts with their form state, most recent first.
#[utoipa::path(get, path = "/api/v1/drafts", tag = "drafts",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = DraftList), (status = 403, body = ErrorBody)))]
async fn list_drafts(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<DraftList>> {
    Ok(Json(DraftList {
        drafts: drafts::list(&s.store, &p).await?,
    }))
}

/// One of the caller's drafts; another author's reads as not found.
#[utoipa::path(get, path = "/api/v1/drafts/{id}", tag = "drafts", params(("id" = Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Draft), (status = 404, body = ErrorBody, description = "draft_not_found")))]
async fn get_draft(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
) -> ApiResult<Json<Draft>> {
    Ok(Json(drafts::get(&s.store, &p, id).await?))
}

/// Patches the form. `expected_version` must be the draft's current
/// version (409 `version_conflict` otherwise); each accepted patch adds one.
#[utoipa::path(patch, path = "/api/v1/drafts/{id}", tag = "drafts", params(("id" = Uuid, Path)),
    request_body = DraftPatch,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = DraftPatched), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "version_conflict")))]
async fn patch_draft(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<DraftPatch>,
) -> ApiResult<Json<DraftPatched>> {
    let draft = drafts::patch(&s.store, &p, id, body.expected_version, &body.fields).await?;
    Ok(Json(DraftPatched {
        draft_id: draft.id,
        new_version: draft.version,
        form_state: draft.form_state.clone(),
        draft,
    }))
}

/// Discards a draft.
#[utoipa::path(delete, path = "/api/v1/drafts/{id}", tag = "drafts", params(("id" = Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_draft(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
) -> ApiResult<StatusCode> {
    drafts::discard(&s.store, &p, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Applies the draft to its model (200) or creates the new model of a blank
/// draft (201), atomically, audited, and removes the draft. 409
/// `version_conflict` if the model changed since the draft was taken.
#[utoipa::path(post, path = "/api/v1/drafts/{id}/publish", tag = "drafts", params(("id" = Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = super::models::ModelBody), (status = 201, body = super::models::ModelBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn publish_draft(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    let (model, published) = drafts::publish(&s.store, &p, id).await?;
    let response = with_etag(&s, &p, model).await?;
    Ok(match published {
        drafts::Published::Created => (StatusCode::CREATED, response).into_response(),
        drafts::Published::Updated => response,
    })
}
