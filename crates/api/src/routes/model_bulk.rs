//! Bulk create, update and delete of inventory models, and duplicate. Each
//! answers one result per item, in request order: the model, or the error
//! envelope that item alone would have got.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use modelplane_domain::model::{Model, ModelChanges, ModelCreate};
use modelplane_service::model_bulk::{self, ItemResult};
use modelplane_service::models;
use modelplane_service::Principal;

use super::models::{bodies, with_etag, ModelBody, ModelFilters};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{parse_json, parse_value, ApiJson, Auth, IdPath};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(bulk_create))
        .routes(routes!(bulk_update))
        .routes(routes!(bulk_delete))
        .routes(routes!(duplicate_model))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkCreate {
    /// Up to 1,000 create requests, each as `POST /api/v1/models` takes it.
    /// Each is kept as raw JSON and parsed on its own, so one malformed item
    /// fails alone.
    #[schema(value_type = Vec<ModelCreate>)]
    pub models: Vec<Box<RawValue>>,
}

/// Either `models` (each an `id` plus the fields to change, as `PATCH`
/// takes them) or `all: true` with `filters`, `excluded_ids` and `set`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkUpdate {
    #[schema(value_type = Option<Vec<Object>>)]
    pub models: Option<Vec<Value>>,
    #[serde(default)]
    pub all: bool,
    #[serde(default)]
    pub filters: Option<ModelFilters>,
    #[serde(default)]
    pub excluded_ids: Vec<Uuid>,
    pub set: Option<ModelChanges>,
}

/// Either `model_ids` or `all: true` with `filters` and `excluded_ids`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkDelete {
    pub model_ids: Option<Vec<Uuid>>,
    #[serde(default)]
    pub all: bool,
    #[serde(default)]
    pub filters: Option<ModelFilters>,
    #[serde(default)]
    pub excluded_ids: Vec<Uuid>,
}

/// One item's outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkItem {
    /// The item's position in the request.
    pub index: usize,
    pub ok: bool,
    /// The status the item alone would have answered with.
    pub status: u16,
    /// The model id the item names, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ErrorBody>)]
    pub error: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkResults {
    pub results: Vec<BulkItem>,
}

/// The results of items whose bodies were parsed (`Ok`) or refused while
/// parsing (`Err`), with the service's outcome of the parsed ones in order.
async fn results(
    s: &AppState,
    p: &Principal,
    parsed: Vec<(Option<Uuid>, Result<(), ApiError>)>,
    outcomes: Vec<ItemResult>,
    ok_status: StatusCode,
    with_model: bool,
) -> ApiResult<BulkResults> {
    let mut outcomes = outcomes.into_iter();
    let mut items = Vec::with_capacity(parsed.len());
    let mut done: Vec<(usize, Model)> = Vec::new();
    for (index, (id, parse)) in parsed.into_iter().enumerate() {
        let outcome = match parse {
            Err(e) => Err(e),
            Ok(()) => match outcomes.next() {
                Some(r) => r.map_err(ApiError::from),
                None => Err(ApiError::from(modelplane_service::ServiceError::Conflict(
                    "the item was not processed".into(),
                ))),
            },
        };
        match outcome {
            Ok(model) => {
                items.push(BulkItem {
                    index,
                    ok: true,
                    status: ok_status.as_u16(),
                    id: Some(model.id),
                    model: None,
                    error: None,
                });
                done.push((index, model));
            }
            Err(e) => {
                let (status, body) = e.into_parts();
                items.push(BulkItem {
                    index,
                    ok: false,
                    status: status.as_u16(),
                    id,
                    model: None,
                    error: serde_json::to_value(body).ok(),
                });
            }
        }
    }
    if with_model {
        let (positions, models): (Vec<usize>, Vec<Model>) = done.into_iter().unzip();
        for (position, body) in positions.into_iter().zip(bodies(s, p, models).await?) {
            items[position].model = Some(body);
        }
    }
    Ok(BulkResults { results: items })
}

/// Creates up to 1,000 models; one bad item never fails the others, and
/// each created model is audited.
#[utoipa::path(post, path = "/api/v1/models/bulk-create", tag = "models", request_body = BulkCreate,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = BulkResults), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn bulk_create(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<BulkCreate>,
) -> ApiResult<Json<BulkResults>> {
    let mut parsed = Vec::with_capacity(body.models.len());
    let mut inputs = Vec::new();
    for item in body.models {
        match parse_json::<ModelCreate>(item.get().as_bytes()) {
            Ok(input) => {
                inputs.push(input);
                parsed.push((None, Ok(())));
            }
            Err(e) => parsed.push((None, Err(e))),
        }
    }
    let outcomes = model_bulk::bulk_create(&s.store, &p, inputs).await?;
    Ok(Json(
        results(&s, &p, parsed, outcomes, StatusCode::CREATED, true).await?,
    ))
}

/// Splits `{id, ...changes}` into its id and its changes.
fn update_item(item: Value) -> (Option<Uuid>, ApiResult<(Uuid, ModelChanges)>) {
    let Value::Object(mut fields) = item else {
        return (
            None,
            Err(ApiError::validation(
                "models",
                "each item must be an object",
            )),
        );
    };
    let id = match fields.remove("id").map(parse_value::<Uuid>) {
        Some(Ok(id)) => id,
        Some(Err(_)) => return (None, Err(ApiError::validation("id", "must be a model id"))),
        None => return (None, Err(ApiError::validation("id", "missing field `id`"))),
    };
    let changes = parse_value::<ModelChanges>(Value::Object(fields));
    (Some(id), changes.map(|c| (id, c)))
}

/// Updates many models: `{models: [{id, ...changes}]}`, or `{all: true,
/// filters, excluded_ids, set}` for every model the filters select (at most
/// 10,000). Each item is applied like a `PATCH`, audited on its own.
#[utoipa::path(post, path = "/api/v1/models/bulk-update", tag = "models", request_body = BulkUpdate,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = BulkResults), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn bulk_update(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<BulkUpdate>,
) -> ApiResult<Json<BulkResults>> {
    let mut parsed = Vec::new();
    let mut items = Vec::new();
    match (body.models, body.all) {
        (Some(models), false) => {
            if body.set.is_some() || body.filters.is_some() || !body.excluded_ids.is_empty() {
                return Err(ApiError::validation(
                    "models",
                    "set, filters and excluded_ids go with all: true",
                ));
            }
            for item in models {
                let (id, result) = update_item(item);
                match result {
                    Ok(item) => {
                        items.push(item);
                        parsed.push((id, Ok(())));
                    }
                    Err(e) => parsed.push((id, Err(e))),
                }
            }
        }
        (None, true) => {
            let set = body
                .set
                .ok_or_else(|| ApiError::validation("set", "required with all: true"))?;
            let search = body.filters.unwrap_or_default().into_search()?;
            let filter = models::resolve_search(&s.store, &p, search).await?;
            let ids = model_bulk::select_all(&s.store, &p, &filter, &body.excluded_ids).await?;
            for id in ids {
                items.push((id, model_bulk::set_for_each(&set)));
                parsed.push((Some(id), Ok(())));
            }
        }
        _ => {
            return Err(ApiError::validation(
                "models",
                "give either models or all: true",
            ))
        }
    }
    let outcomes = model_bulk::bulk_update(&s.store, &p, items).await?;
    Ok(Json(
        results(&s, &p, parsed, outcomes, StatusCode::OK, true).await?,
    ))
}

/// Deletes many models: `{model_ids: [...]}` or `{all: true, filters,
/// excluded_ids}`. A model used by an active agent is refused (409
/// `model_in_use`) without failing the others.
#[utoipa::path(post, path = "/api/v1/models/bulk-delete", tag = "models", request_body = BulkDelete,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = BulkResults), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn bulk_delete(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<BulkDelete>,
) -> ApiResult<Json<BulkResults>> {
    let ids = match (body.model_ids, body.all) {
        (Some(ids), false) => {
            if body.filters.is_some() || !body.excluded_ids.is_empty() {
                return Err(ApiError::validation(
                    "model_ids",
                    "filters and excluded_ids go with all: true",
                ));
            }
            ids
        }
        (None, true) => {
            let search = body.filters.unwrap_or_default().into_search()?;
            let filter = models::resolve_search(&s.store, &p, search).await?;
            model_bulk::select_all(&s.store, &p, &filter, &body.excluded_ids).await?
        }
        _ => {
            return Err(ApiError::validation(
                "model_ids",
                "give either model_ids or all: true",
            ))
        }
    };
    let parsed = ids.iter().map(|id| (Some(*id), Ok(()))).collect();
    let outcomes = model_bulk::bulk_delete(&s.store, &p, ids).await?;
    Ok(Json(
        results(&s, &p, parsed, outcomes, StatusCode::OK, false).await?,
    ))
}

/// Copies a model with every section under a new id; its `model_id` gets a
/// `-copy` suffix (`-copy-2`… when taken) and its validation starts over at
/// `draft`. Audited as a `duplicate` naming its source.
#[utoipa::path(post, path = "/api/v1/models/{id}/duplicate", tag = "models", params(("id" = Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = ModelBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn duplicate_model(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
) -> ApiResult<(StatusCode, Response)> {
    let copy = model_bulk::duplicate(&s.store, &p, id).await?;
    Ok((StatusCode::CREATED, with_etag(&s, &p, copy).await?))
}
