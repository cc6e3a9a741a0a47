use std::borrow::Cow;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, ETAG};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::SecondsFormat;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use modelplane_domain::model::{
    Model, ModelChanges, ModelCreate, RiskTier, TagsMode, ValidationStatus,
};
use modelplane_domain::org::RiskFramework;
use modelplane_domain::page::Page;
use modelplane_domain::sections::ModelSections;
use modelplane_service::Principal;
use modelplane_service::{models, orgs};
use modelplane_store::ModelFilter;

use super::audit::AuditList;
use super::catalog::CatalogModelBody;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::extract::{ApiJson, ApiQuery, Auth, IdPath, IfMatch};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_models, create_model))
        .routes(routes!(get_model, replace_model, patch_model, delete_model))
        .routes(routes!(model_history))
        .routes(routes!(export_models))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ModelQuery {
    risk_tier: Option<RiskTier>,
    validation_status: Option<ValidationStatus>,
    /// Case-insensitive substring of the provider.
    provider: Option<String>,
    /// Full text over model_id, display_name and description; every word must prefix-match.
    search: Option<String>,
    /// Exact owner, case-insensitively.
    owner: Option<String>,
    /// `key:value`; repeat to require several tags.
    #[serde(default)]
    tag: Vec<String>,
    /// Same as `provider`: a case-insensitive substring of the provider.
    provider_search: Option<String>,
    /// Models in a department whose name contains this (case-insensitively).
    department_search: Option<String>,
    /// Models used by an agent whose name contains this (case-insensitively).
    agent_search: Option<String>,
    /// Exact provider; repeat for any of several.
    #[serde(default)]
    provider_id: Vec<String>,
    /// Department id; repeat for any of several.
    #[serde(default)]
    department_id: Vec<uuid::Uuid>,
    /// Agent id; repeat for any of several.
    #[serde(default)]
    agent_id: Vec<uuid::Uuid>,
    /// Default 50, at most 200.
    limit: Option<i64>,
    offset: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    #[default]
    Csv,
    Json,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `csv` (default) or `json`.
    format: Option<ExportFormat>,
    /// `summary` (default): the governance record; `full`: every section
    /// (as the model's users see them, catalog facts filled in), its
    /// departments and agents by name, and its catalog entry, one row per
    /// model.
    view: Option<ExportView>,
    /// Only this model: its id or its `model_id`.
    model_id: Option<String>,
    risk_tier: Option<RiskTier>,
    validation_status: Option<ValidationStatus>,
    provider: Option<String>,
    provider_search: Option<String>,
    search: Option<String>,
    owner: Option<String>,
    #[serde(default)]
    tag: Vec<String>,
    department_search: Option<String>,
    agent_search: Option<String>,
    #[serde(default)]
    provider_id: Vec<String>,
    #[serde(default)]
    department_id: Vec<uuid::Uuid>,
    #[serde(default)]
    agent_id: Vec<uuid::Uuid>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportView {
    #[default]
    Summary,
    Full,
}

fn parse_tags(raw: Vec<String>) -> ApiResult<Vec<(String, String)>> {
    raw.into_iter()
        .map(|t| match t.split_once(':') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(ApiError::validation("tag", "must be key:value")),
        })
        .collect()
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

/// The store filter of the list and the export, which take the same filters.
fn model_filter(
    risk_tier: Option<RiskTier>,
    validation_status: Option<ValidationStatus>,
    provider: Option<String>,
    search: Option<String>,
    owner: Option<String>,
    tag: Vec<String>,
) -> ApiResult<ModelFilter> {
    Ok(ModelFilter {
        risk_tier,
        validation_status,
        provider: non_empty(provider),
        search: non_empty(search),
        owner: non_empty(owner),
        tags: parse_tags(tag)?,
        ..ModelFilter::default()
    })
}

/// Every filter the list takes, as the list, the facets and bulk `all: true`
/// requests share them.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelFilters {
    pub risk_tier: Option<RiskTier>,
    pub validation_status: Option<ValidationStatus>,
    pub provider: Option<String>,
    pub provider_search: Option<String>,
    pub search: Option<String>,
    pub owner: Option<String>,
    #[serde(default)]
    pub tag: Vec<String>,
    pub department_search: Option<String>,
    pub agent_search: Option<String>,
    #[serde(default)]
    pub provider_id: Vec<String>,
    #[serde(default)]
    pub department_id: Vec<uuid::Uuid>,
    #[serde(default)]
    pub agent_id: Vec<uuid::Uuid>,
}

impl ModelFilters {
    pub fn into_search(self) -> ApiResult<models::ModelSearch> {
        if self.provider.is_some() && self.provider_search.is_some() {
            return Err(ApiError::validation(
                "provider_search",
                "give provider or provider_search, not both",
            ));
        }
        let mut filter = model_filter(
            self.risk_tier,
            self.validation_status,
            self.provider.or(self.provider_search),
            self.search,
            self.owner,
            self.tag,
        )?;
        filter.provider_ids = self.provider_id;
        filter.department_ids = self.department_id;
        filter.agent_ids = self.agent_id;
        Ok(models::ModelSearch {
            filter,
            department_search: non_empty(self.department_search),
            agent_search: non_empty(self.agent_search),
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub models: Vec<ModelBody>,
    /// For providers, departments and agents: each value with its count of
    /// models under the current filters.
    pub facets: Facets,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Facets {
    pub providers: Vec<FacetEntry>,
    pub departments: Vec<FacetEntry>,
    pub agents: Vec<FacetEntry>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FacetEntry {
    /// The provider name, or the department's or agent's id.
    pub id: String,
    pub name: String,
    pub count: i64,
}

impl From<modelplane_store::ModelFacets> for Facets {
    fn from(f: modelplane_store::ModelFacets) -> Self {
        let entries = |values: Vec<modelplane_store::FacetValue>| {
            values
                .into_iter()
                .map(|v| FacetEntry {
                    id: v.id,
                    name: v.name,
                    count: v.count,
                })
                .collect()
        };
        Facets {
            providers: entries(f.providers),
            departments: entries(f.departments),
            agents: entries(f.agents),
        }
    }
}

/// An inventory entry: the org's own fields, and where it links to the
/// catalog, the catalog's facts under `catalog` (the org's fields, such as
/// `display_name` and `description`, win where both exist).
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelBody {
    #[serde(flatten)]
    pub model: Model,
    /// The sections as users of the model see them: the org's own, and for
    /// each section the org left unset, the linked catalog model's facts.
    pub effective_sections: ModelSections,
    /// The org's agents that use this model (active or not).
    pub agent_ids: Vec<uuid::Uuid>,
    /// Whether the caller may edit this model.
    pub can_edit: bool,
    /// Why not, when `can_edit` is false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog: Option<CatalogModelBody>,
}

/// The bodies of `models`, each with its catalog facts and what the caller
/// may do with it.
pub(crate) async fn bodies(
    s: &AppState,
    p: &Principal,
    models: Vec<Model>,
) -> ApiResult<Vec<ModelBody>> {
    let ids: Vec<uuid::Uuid> = models.iter().map(|m| m.id).collect();
    let (catalog, scope, mut agents) = tokio::try_join!(
        models::catalog_of(&s.store, &models),
        models::edit_scope(&s.store, p),
        models::agents_of(&s.store, p, &ids)
    )?;
    Ok(models
        .into_iter()
        .map(|model| {
            let entry = model.catalog_id.and_then(|id| catalog.get(&id));
            let disabled_reason = scope.refusal(&model);
            ModelBody {
                agent_ids: agents.remove(&model.id).unwrap_or_default(),
                effective_sections: model.sections.effective(entry),
                can_edit: disabled_reason.is_none(),
                disabled_reason,
                catalog: entry.cloned().map(CatalogModelBody::from),
                model,
            }
        })
        .collect())
}

/// The response of one model, with its version as `ETag` for `If-Match`.
pub(super) async fn with_etag(s: &AppState, p: &Principal, model: Model) -> ApiResult<Response> {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", model.version)) {
        headers.insert(ETAG, v);
    }
    let body = bodies(s, p, vec![model]).await?.pop();
    Ok((headers, Json(body)).into_response())
}

/// Lists the org's models, newest first, with the filtered total.
#[utoipa::path(get, path = "/api/v1/models", tag = "models", params(ModelQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = ModelList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_models(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<ModelQuery>,
) -> ApiResult<Json<ModelList>> {
    let filters = ModelFilters {
        risk_tier: q.risk_tier,
        validation_status: q.validation_status,
        provider: q.provider,
        provider_search: q.provider_search,
        search: q.search,
        owner: q.owner,
        tag: q.tag,
        department_search: q.department_search,
        agent_search: q.agent_search,
        provider_id: q.provider_id,
        department_id: q.department_id,
        agent_id: q.agent_id,
    };
    Ok(Json(model_list(&s, &p, filters, q.limit, q.offset).await?))
}

/// One page of the caller's models under `filters`, as the list answers it
/// (also the MCP `search_models` tool's answer).
pub(crate) async fn model_list(
    s: &AppState,
    p: &Principal,
    filters: ModelFilters,
    limit: Option<i64>,
    offset: Option<i64>,
) -> ApiResult<ModelList> {
    let page = Page::parse(limit, offset)?;
    let (listed, facets) = models::list(&s.store, p, filters.into_search()?, page).await?;
    Ok(ModelList {
        total: listed.total,
        limit: page.limit,
        offset: page.offset,
        models: bodies(s, p, listed.items).await?,
        facets: facets.into(),
    })
}

/// Registers a model. `model_id`, `provider` and `risk_tier` are required.
#[utoipa::path(post, path = "/api/v1/models", tag = "models", request_body = ModelCreate,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = ModelBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody, description = "model_already_exists")))]
async fn create_model(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<ModelCreate>,
) -> ApiResult<(StatusCode, Response)> {
    let model = models::create(&s.store, &p, body).await?;
    Ok((StatusCode::CREATED, with_etag(&s, &p, model).await?))
}

#[utoipa::path(get, path = "/api/v1/models/{id}", tag = "models", params(("id" = uuid::Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = ModelBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody, description = "model_not_found")))]
async fn get_model(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    let model = models::get(&s.store, &p, id).await?;
    with_etag(&s, &p, model).await
}

/// Partial update; `tags` replaces the whole map. Send `If-Match: <version>`
/// (or `expected_version`) to refuse a stale edit with 409.
#[utoipa::path(put, path = "/api/v1/models/{id}", tag = "models", params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header, description = "The version the edit is based on")),
    request_body = ModelChanges,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = ModelBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "version_conflict"), (status = 422, body = ErrorBody, description = "invalid_status_transition")))]
async fn replace_model(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
    IfMatch(v): IfMatch,
    ApiJson(body): ApiJson<ModelChanges>,
) -> ApiResult<Response> {
    let model = models::update(&s.store, &p, id, body, TagsMode::Replace, v).await?;
    with_etag(&s, &p, model).await
}

/// Partial update; `tags` merges, a null value removing that key.
#[utoipa::path(patch, path = "/api/v1/models/{id}", tag = "models", params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header, description = "The version the edit is based on")),
    request_body = ModelChanges,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = ModelBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "version_conflict"), (status = 422, body = ErrorBody, description = "invalid_status_transition")))]
async fn patch_model(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
    IfMatch(v): IfMatch,
    ApiJson(body): ApiJson<ModelChanges>,
) -> ApiResult<Response> {
    let model = models::update(&s.store, &p, id, body, TagsMode::Merge, v).await?;
    with_etag(&s, &p, model).await
}

/// Removes a model from the inventory; its history stays.
#[utoipa::path(delete, path = "/api/v1/models/{id}", tag = "models", params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_model(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
    IfMatch(v): IfMatch,
) -> ApiResult<StatusCode> {
    models::delete(&s.store, &p, id, v).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    limit: Option<i64>,
    offset: Option<i64>,
}

/// Every change of a model, newest first, field by field; kept after deletion.
#[utoipa::path(get, path = "/api/v1/models/{id}/history", tag = "models", params(("id" = uuid::Uuid, Path), PageQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = AuditList), (status = 404, body = ErrorBody)))]
async fn model_history(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<AuditList>> {
    let page = Page::parse(q.limit, q.offset)?;
    let listed = models::history(&s.store, &p, id, page).await?;
    Ok(Json(AuditList {
        total: listed.total,
        limit: page.limit,
        offset: page.offset,
        events: listed.items,
    }))
}

/// The seed's columns first, then what an examiner needs beyond them.
pub(super) const CSV_COLUMNS: [&str; 21] = [
    "id",
    "model_id",
    "provider",
    "display_name",
    "risk_tier",
    "validation_status",
    "owner",
    "description",
    "tags",
    "last_seen_at",
    "created_at",
    "updated_at",
    "intended_use",
    "limitations",
    "developer",
    "validator",
    "vendor",
    "last_validated_at",
    "next_review_at",
    "version",
    "risk_framework",
];

pub(super) fn ts(t: &Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .unwrap_or_default()
}

/// An RFC 4180 writer into memory, with room for `bytes` of output.
pub(super) fn csv_writer(bytes: usize) -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::with_capacity(bytes))
}

/// The summary columns of one model, in `CSV_COLUMNS` order; text fields are
/// borrowed, so a row costs the formatted ids and times, not a copy of each.
pub(super) fn summary_record(m: &Model, framework: RiskFramework) -> Vec<Cow<'_, str>> {
    fn text(v: &Option<String>) -> Cow<'_, str> {
        Cow::Borrowed(v.as_deref().unwrap_or_default())
    }
    vec![
        Cow::Owned(m.id.to_string()),
        Cow::Borrowed(m.model_id.as_str()),
        Cow::Borrowed(m.provider.as_str()),
        Cow::Borrowed(m.display_name.as_str()),
        Cow::Borrowed(m.risk_tier.as_str()),
        Cow::Borrowed(m.validation_status.as_str()),
        text(&m.owner),
        text(&m.description),
        Cow::Owned(serde_json::to_string(&m.tags).unwrap_or_else(|_| "{}".to_owned())),
        Cow::Owned(ts(&m.last_seen_at)),
        Cow::Owned(ts(&Some(m.created_at))),
        Cow::Owned(ts(&Some(m.updated_at))),
        text(&m.intended_use),
        text(&m.limitations),
        text(&m.developer),
        text(&m.validator),
        text(&m.vendor),
        Cow::Owned(ts(&m.last_validated_at)),
        Cow::Owned(ts(&m.next_review_at)),
        Cow::Owned(m.version.to_string()),
        Cow::Borrowed(framework.as_str()),
    ]
}

fn csv_chunk(models: &[Model], framework: RiskFramework) -> Result<Bytes, csv::Error> {
    let mut w = csv_writer(models.len() * 320);
    for m in models {
        w.write_record(summary_record(m, framework).iter().map(|f| f.as_bytes()))?;
    }
    w.into_inner()
        .map(Bytes::from)
        .map_err(|e| e.into_error().into())
}

fn json_chunk(models: &[Model], first: bool) -> Result<Bytes, serde_json::Error> {
    let mut out = Vec::with_capacity(models.len() * 512);
    for (i, m) in models.iter().enumerate() {
        if !(first && i == 0) {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, m)?;
    }
    Ok(Bytes::from(out))
}

/// The whole inventory (with the same filters as the list) as CSV (RFC 4180)
/// or JSON, streamed in batches so memory stays flat.
#[utoipa::path(get, path = "/api/v1/model-inventory-export", tag = "models", params(ExportQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, content_type = "text/csv", body = String, description = "CSV with a header row"),
        (status = 200, content_type = "application/json", body = ModelList, description = "`{models, total}`"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn export_models(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> ApiResult<Response> {
    let format = q.format.unwrap_or_default();
    let view = q.view.unwrap_or_default();
    let mut search = ModelFilters {
        risk_tier: q.risk_tier,
        validation_status: q.validation_status,
        provider: q.provider,
        provider_search: q.provider_search,
        search: q.search,
        owner: q.owner,
        tag: q.tag,
        department_search: q.department_search,
        agent_search: q.agent_search,
        provider_id: q.provider_id,
        department_id: q.department_id,
        agent_id: q.agent_id,
    }
    .into_search()?;
    search.filter.model_ref = non_empty(q.model_id);
    let framework = orgs::get(&s.store, &p, p.org_id).await?.risk_framework;
    if view == ExportView::Full {
        return super::model_export::full_export(&s, &p, search, format, framework).await;
    }
    let filter = models::resolve_search(&s.store, &p, search).await?;
    let batches = models::export(&s.store, &p, filter)?;
    let to_io = |e: String| {
        tracing::error!(error = %e, "export aborted");
        std::io::Error::other(e)
    };
    let (content_type, extension, body) = match format {
        ExportFormat::Csv => {
            let mut header = csv_writer(0);
            // Writing into memory cannot fail; if it ever did, it is our bug.
            header.write_record(CSV_COLUMNS).map_err(|e| {
                tracing::error!(error = %e, "could not write the CSV header");
                ApiError::new(ErrorCode::Internal, "internal error; see the server log")
            })?;
            let header = header.into_inner().map(Bytes::from).unwrap_or_default();
            let rows = batches.map(move |batch| {
                batch
                    .map_err(|e| to_io(e.to_string()))
                    .and_then(|b| csv_chunk(&b, framework).map_err(|e| to_io(e.to_string())))
            });
            let stream = futures::stream::once(async move { Ok(header) }).chain(rows);
            ("text/csv; charset=utf-8", "csv", Body::from_stream(stream))
        }
        ExportFormat::Json => {
            let count = Arc::new(AtomicI64::new(0));
            let counted = count.clone();
            let rows = batches.map(move |batch| {
                batch.map_err(|e| to_io(e.to_string())).and_then(|b| {
                    let first = counted.fetch_add(b.len() as i64, Ordering::SeqCst) == 0;
                    json_chunk(&b, first).map_err(|e| to_io(e.to_string()))
                })
            });
            let open = futures::stream::once(async { Ok(Bytes::from_static(b"{\"models\":[")) });
            let close = futures::stream::once(async move {
                Ok::<_, std::io::Error>(Bytes::from(format!(
                    "],\"total\":{}}}",
                    count.load(Ordering::SeqCst)
                )))
            });
            (
                "application/json",
                "json",
                Body::from_stream(open.chain(rows).chain(close)),
            )
        }
    };
    Ok(attachment(content_type, extension, body))
}

/// A streamed download named `model-inventory-<date>.<extension>`.
pub(super) fn attachment(content_type: &'static str, extension: &str, body: Body) -> Response {
    let date = chrono::Utc::now().format("%Y-%m-%d");
    let disposition = format!("attachment; filename=\"model-inventory-{date}.{extension}\"");
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        response.headers_mut().insert(CONTENT_DISPOSITION, v);
    }
    response
}
