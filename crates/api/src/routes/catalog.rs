//! The global catalog: `/api/v1/catalog/*` and `/api/v1/resolve`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use modelplane_domain::catalog::{
    Alias, CatalogChange, CatalogModel, FieldOrigin, Lifecycle, ModelFacts,
};
use modelplane_domain::page::Page;
use modelplane_domain::time::Timestamp;
use modelplane_service::catalog::{self, CatalogCreate, CatalogView, Resolution};
use modelplane_store::{CatalogFilter, CatalogSort, CatalogSortKey, Listing};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Auth, IdPath};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_catalog, create_catalog_model))
        .routes(routes!(get_catalog_model, update_catalog_model))
        .routes(routes!(catalog_history))
        .routes(routes!(list_providers))
        .routes(routes!(resolve))
}

/// A catalog model as the API shows it: identity, every known fact (absent
/// when no source gave it), lifecycle, provenance per field, names, and what
/// each source last said.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogModelBody {
    pub id: Uuid,
    pub provider: String,
    pub model_id: String,
    pub display_name: String,
    pub lifecycle: Lifecycle,
    #[serde(flatten)]
    pub facts: ModelFacts,
    /// False once the provider's listing has missed it for several complete runs.
    pub listed: bool,
    #[schema(value_type = String, format = DateTime)]
    pub first_seen_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub last_seen_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// For each field: the source that set it (or `manual`) and when.
    pub provenance: BTreeMap<String, FieldOrigin>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aliases: Option<Vec<Alias>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<SourceListing>>,
}

/// What one source last said about the model.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceListing {
    pub source: String,
    /// The non-secret names of the credentials whose listing showed it.
    pub credentials: Vec<String>,
    /// Complete runs in a row that did not list it.
    pub missed_runs: i64,
    #[schema(value_type = String, format = DateTime)]
    pub first_listed_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub changed_at: Timestamp,
    /// The entry as the source last sent it.
    #[schema(value_type = Object)]
    pub raw: Value,
}

impl From<CatalogModel> for CatalogModelBody {
    fn from(m: CatalogModel) -> Self {
        CatalogModelBody {
            id: m.id,
            display_name: m.display_name().to_owned(),
            lifecycle: m.lifecycle(),
            provider: m.provider,
            model_id: m.model_id,
            facts: ModelFacts {
                display_name: None,
                lifecycle: None,
                ..m.facts
            },
            listed: m.listed,
            first_seen_at: m.first_seen_at,
            last_seen_at: m.last_seen_at,
            updated_at: m.updated_at,
            provenance: m.provenance,
            aliases: None,
            sources: None,
        }
    }
}

impl From<Listing> for SourceListing {
    fn from(l: Listing) -> Self {
        SourceListing {
            source: l.source,
            credentials: l.credentials,
            missed_runs: l.missed_runs,
            first_listed_at: l.first_listed_at,
            changed_at: l.changed_at,
            raw: l.raw,
        }
    }
}

fn view_body(view: CatalogView) -> CatalogModelBody {
    let mut body = CatalogModelBody::from(view.model);
    body.aliases = Some(view.aliases);
    body.sources = Some(view.listings.into_iter().map(SourceListing::from).collect());
    body
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CatalogSortParam {
    Name,
    #[serde(rename = "-name")]
    NameDesc,
    ReleaseDate,
    #[serde(rename = "-release_date")]
    ReleaseDateDesc,
    Price,
    #[serde(rename = "-price")]
    PriceDesc,
    ContextWindow,
    #[serde(rename = "-context_window")]
    ContextWindowDesc,
    Downloads,
    #[serde(rename = "-downloads")]
    DownloadsDesc,
}

impl From<CatalogSortParam> for CatalogSort {
    fn from(p: CatalogSortParam) -> Self {
        use CatalogSortKey::*;
        use CatalogSortParam as P;
        let (key, descending) = match p {
            P::Name => (Name, false),
            P::NameDesc => (Name, true),
            P::ReleaseDate => (ReleaseDate, false),
            P::ReleaseDateDesc => (ReleaseDate, true),
            P::Price => (Price, false),
            P::PriceDesc => (Price, true),
            P::ContextWindow => (ContextWindow, false),
            P::ContextWindowDesc => (ContextWindow, true),
            P::Downloads => (Downloads, false),
            P::DownloadsDesc => (Downloads, true),
        };
        CatalogSort { key, descending }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CatalogQuery {
    /// Provider slug, e.g. `openai`.
    provider: Option<String>,
    family: Option<String>,
    /// A modality the model takes in or puts out: `text`, `image`, `audio`, `video`, `embedding`…
    modality: Option<String>,
    /// A capability the model has: `tools`, `vision`, `reasoning`, `structured_output`, `batch`…
    capability: Option<String>,
    lifecycle: Option<Lifecycle>,
    open_weights: Option<bool>,
    /// Context window of at least this many tokens.
    min_context_window: Option<i64>,
    /// Input price of at most this many USD per 1M tokens.
    max_input_price: Option<f64>,
    /// Only models still listed (true) or no longer listed (false).
    listed: Option<bool>,
    /// Full text over model_id, display name and description; every word must prefix-match.
    search: Option<String>,
    /// `name`, `release_date`, `price`, `context_window`, `downloads`; `-` first for descending.
    /// Default: by name; a search or filter without `sort` comes in catalog order
    /// (first ingested first; for the Hub, most downloaded first), which is the fastest.
    #[param(value_type = Option<String>)]
    sort: Option<CatalogSortParam>,
    limit: Option<i64>,
    offset: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogList {
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub models: Vec<CatalogModelBody>,
}

/// `s` trimmed, or None when that leaves nothing.
pub(crate) fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// Lists catalog models with filters, full-text search and sorting.
#[utoipa::path(get, path = "/api/v1/catalog/models", tag = "catalog", params(CatalogQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = CatalogList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_catalog(
    State(s): State<AppState>,
    Auth(_p): Auth,
    ApiQuery(q): ApiQuery<CatalogQuery>,
) -> ApiResult<Json<CatalogList>> {
    let page = Page::parse(q.limit, q.offset)?;
    if q.min_context_window.is_some_and(|n| n < 0) {
        return Err(ApiError::validation(
            "min_context_window",
            "must not be negative",
        ));
    }
    if q.max_input_price.is_some_and(|p| !p.is_finite() || p < 0.0) {
        return Err(ApiError::validation(
            "max_input_price",
            "must be a non-negative number",
        ));
    }
    let filter = CatalogFilter {
        provider: non_empty(q.provider),
        family: non_empty(q.family),
        modality: non_empty(q.modality),
        capability: non_empty(q.capability),
        lifecycle: q.lifecycle,
        open_weights: q.open_weights,
        min_context_window: q.min_context_window,
        max_input_price: q.max_input_price,
        listed: q.listed,
        search: non_empty(q.search),
    };
    let sort = q.sort.map(CatalogSort::from);
    Ok(Json(catalog_list(&s, &filter, sort, page).await?))
}

/// One page of catalog models, as the list answers it (also the MCP
/// `search_catalog` tool's answer).
pub(crate) async fn catalog_list(
    s: &AppState,
    filter: &CatalogFilter,
    sort: Option<CatalogSort>,
    page: Page,
) -> ApiResult<CatalogList> {
    let listed = catalog::list(&s.store, filter, sort, page).await?;
    Ok(CatalogList {
        total: listed.total,
        limit: page.limit,
        offset: page.offset,
        models: listed
            .items
            .into_iter()
            .map(CatalogModelBody::from)
            .collect(),
    })
}

/// One catalog model with its aliases, per-field provenance and each source's raw listing.
#[utoipa::path(get, path = "/api/v1/catalog/models/{id}", tag = "catalog",
    params(("id" = Uuid, Path, description = "Catalog model id")),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = CatalogModelBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_catalog_model(
    State(s): State<AppState>,
    Auth(_p): Auth,
    IdPath(id): IdPath,
) -> ApiResult<Json<CatalogModelBody>> {
    Ok(Json(view_body(catalog::get(&s.store, id).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogCreateBody {
    /// A provider slug or name (`openai`, `AWS Bedrock`…).
    provider: String,
    model_id: String,
    /// Any catalog facts (`display_name`, `context_window`, `pricing`…); each is marked `manual`.
    #[serde(default)]
    #[schema(value_type = Object)]
    facts: Map<String, Value>,
    #[serde(default)]
    aliases: Vec<AliasBody>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AliasBody {
    alias: String,
    /// Where the alias is used: `official`, `bedrock`, `vertex`, `azure`…; default `manual`.
    #[serde(default)]
    source: String,
}

/// Adds a model to the catalog by hand (superadmin).
#[utoipa::path(post, path = "/api/v1/catalog/models", tag = "catalog", request_body = CatalogCreateBody,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = CatalogModelBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_catalog_model(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<CatalogCreateBody>,
) -> ApiResult<(StatusCode, Json<CatalogModelBody>)> {
    let mut aliases = Vec::new();
    for a in body.aliases {
        let alias = a.alias.trim();
        if alias.is_empty() || alias.len() > 300 {
            return Err(ApiError::validation(
                "aliases",
                "each alias must be 1 to 300 characters",
            ));
        }
        aliases.push(Alias::new(alias, a.source.trim()));
    }
    let view = catalog::create(
        &s.store,
        &p,
        CatalogCreate {
            provider: body.provider,
            model_id: body.model_id,
            facts: body.facts,
            aliases,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view_body(view))))
}

/// Sets catalog facts by hand (superadmin): each field named takes the value
/// (`null` clears it) and is marked `manual`, so no ingestion overwrites it.
#[utoipa::path(patch, path = "/api/v1/catalog/models/{id}", tag = "catalog",
    params(("id" = Uuid, Path, description = "Catalog model id")),
    request_body(content = Object, description = "Catalog facts to set, e.g. {\"context_window\": 128000}"),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = CatalogModelBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_catalog_model(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
    ApiJson(edits): ApiJson<Map<String, Value>>,
) -> ApiResult<Json<CatalogModelBody>> {
    Ok(Json(view_body(
        catalog::update(&s.store, &p, id, edits).await?,
    )))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    limit: Option<i64>,
    offset: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogHistory {
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub changes: Vec<CatalogChange>,
}

/// Field changes of a catalog model over time (price changes, lifecycle changes…), newest first.
#[utoipa::path(get, path = "/api/v1/catalog/models/{id}/history", tag = "catalog",
    params(("id" = Uuid, Path, description = "Catalog model id"), PageQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = CatalogHistory), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn catalog_history(
    State(s): State<AppState>,
    Auth(_p): Auth,
    IdPath(id): IdPath,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<CatalogHistory>> {
    let page = Page::parse(q.limit, q.offset)?;
    let listed = catalog::history(&s.store, id, page).await?;
    Ok(Json(CatalogHistory {
        total: listed.total,
        limit: page.limit,
        offset: page.offset,
        changes: listed.items,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderBody {
    pub slug: String,
    pub name: String,
    pub models: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderList {
    pub providers: Vec<ProviderBody>,
}

/// Every catalog provider with its model count.
#[utoipa::path(get, path = "/api/v1/catalog/providers", tag = "catalog",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = ProviderList), (status = 401, body = ErrorBody)))]
async fn list_providers(
    State(s): State<AppState>,
    Auth(_p): Auth,
) -> ApiResult<Json<ProviderList>> {
    let providers = catalog::providers(&s.store).await?;
    Ok(Json(ProviderList {
        providers: providers
            .into_iter()
            .map(|p| ProviderBody {
                slug: p.slug,
                name: p.name,
                models: p.models,
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ResolveQuery {
    /// Any model string: `gpt-4o-2024-08-06`, `openai/gpt-4o`, `anthropic.claude-3-5-sonnet-20240620-v1:0`…
    q: String,
}

/// A catalog model in brief.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelRef {
    pub id: Uuid,
    pub provider: String,
    pub model_id: String,
    pub display_name: String,
    pub lifecycle: Lifecycle,
}

impl From<&CatalogModel> for ModelRef {
    fn from(m: &CatalogModel) -> Self {
        ModelRef {
            id: m.id,
            provider: m.provider.clone(),
            model_id: m.model_id.clone(),
            display_name: m.display_name().to_owned(),
            lifecycle: m.lifecycle(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResolveBody {
    pub query: String,
    /// `exact` (1.0), `normalized` (0.8) or `substring` (0.5).
    pub match_type: String,
    pub confidence: f64,
    /// The id or alias that matched, and where the alias comes from.
    pub matched: String,
    pub matched_source: String,
    pub model: CatalogModelBody,
    pub lifecycle: Lifecycle,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deprecation_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_date: Option<String>,
    /// Where the model is deprecated or sunset: the recommended replacement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replacement: Option<ModelRef>,
    /// Other models the string could mean.
    pub alternatives: Vec<ModelRef>,
}

impl ResolveBody {
    fn new(query: String, r: Resolution) -> Self {
        ResolveBody {
            query,
            match_type: r.kind.as_str().to_owned(),
            confidence: r.kind.confidence(),
            matched: r.matched,
            matched_source: r.matched_source,
            lifecycle: r.model.lifecycle(),
            deprecation_date: r.model.facts.deprecation_date.clone(),
            shutdown_date: r.model.facts.shutdown_date.clone(),
            replacement: r.replacement.as_ref().map(ModelRef::from),
            alternatives: r.alternatives.iter().map(ModelRef::from).collect(),
            model: CatalogModelBody::from(r.model),
        }
    }
}

/// Maps any model string to its catalog model: exact (1.0), normalized
/// (0.8: case, date/version suffixes, provider prefixes), substring (0.5).
/// 404 `catalog_model_not_found` when nothing matches.
#[utoipa::path(get, path = "/api/v1/resolve", tag = "catalog", params(ResolveQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = ResolveBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn resolve(
    State(s): State<AppState>,
    Auth(_p): Auth,
    ApiQuery(q): ApiQuery<ResolveQuery>,
) -> ApiResult<Json<ResolveBody>> {
    Ok(Json(resolve_body(&s, q.q).await?))
}

/// The catalog model `q` names, or 404 `catalog_model_not_found` (also the
/// MCP `resolve_model` tool's answer).
pub(crate) async fn resolve_body(s: &AppState, q: String) -> ApiResult<ResolveBody> {
    match catalog::resolve(&s.store, &q).await? {
        Some(r) => Ok(ResolveBody::new(q, r)),
        None => Err(ApiError::new(
            crate::error::ErrorCode::NotFound("catalog_model"),
            format!("no catalog model matches {q:?}"),
        )),
    }
}
