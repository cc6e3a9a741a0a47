//! Ingestion admin: start runs, watch them, configure source credentials.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use modelplane_domain::catalog::{ChangeAction, FieldChange, Provider, Source};
use modelplane_domain::ingestion::{IngestionRun, RunStatus, RunTrigger};
use modelplane_domain::key::Scope;
use modelplane_domain::page::Page;
use modelplane_domain::time::Timestamp;
use modelplane_service::ingestion::{parse_source, SourceStatus};
use modelplane_service::{Entity, ServiceError};
use modelplane_store::RunFilter;

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Auth};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_ingest))
        .routes(routes!(list_runs))
        .routes(routes!(get_run))
        .routes(routes!(list_sources))
        .routes(routes!(put_credential, delete_credential))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunBody {
    pub id: i64,
    pub source: Source,
    /// The provider whose listing the source is; null for cross-provider sources.
    pub provider: Option<Provider>,
    pub status: RunStatus,
    pub trigger: RunTrigger,
    /// The replica that ran it.
    pub node: String,
    pub models_added: i64,
    pub models_updated: i64,
    pub models_unchanged: i64,
    /// Models marked as no longer listed by this run.
    pub models_unlisted: i64,
    /// Distinct models the listing held.
    pub records_seen: i64,
    /// The non-secret name of the credential the listing was read with.
    pub credential: Option<String>,
    pub error_message: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub completed_at: Option<Timestamp>,
}

impl From<IngestionRun> for RunBody {
    fn from(r: IngestionRun) -> Self {
        RunBody {
            id: r.id,
            provider: r.source.provider(),
            source: r.source,
            status: r.status,
            trigger: r.trigger,
            node: r.node,
            models_added: r.models_added,
            models_updated: r.models_updated,
            models_unchanged: r.models_unchanged,
            models_unlisted: r.models_unlisted,
            records_seen: r.records_seen,
            credential: r.credential,
            error_message: r.error_message,
            started_at: r.started_at,
            completed_at: r.completed_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunEnvelope {
    pub ingestion_run: RunBody,
}

/// Starts an ingestion run of one source; it continues in the background.
/// 400 `bad_request` for an unknown, disabled or unconfigured source; 409
/// `ingestion_run_in_progress` while a run of that source is running.
#[utoipa::path(post, path = "/api/v1/admin/ingest/{source}", tag = "ingestion",
    params(("source" = String, Path, description = "openai-api, anthropic-api, google-api, mistral-api, cohere-api, xai-api, huggingface, deprecations-info, models-dev, openrouter, litellm-prices")),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 202, body = RunEnvelope), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn start_ingest(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(source): Path<String>,
) -> ApiResult<(StatusCode, Json<RunEnvelope>)> {
    let run = s.ingestion.start(&p, &source).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(RunEnvelope {
            ingestion_run: run.into(),
        }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    source: Option<String>,
    status: Option<RunStatus>,
    limit: Option<i64>,
    offset: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunList {
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub ingestion_runs: Vec<RunBody>,
}

/// Recent ingestion runs, newest first.
#[utoipa::path(get, path = "/api/v1/admin/ingestion-runs", tag = "ingestion", params(RunQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = RunList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_runs(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<RunQuery>,
) -> ApiResult<Json<RunList>> {
    p.require(Scope::Admin)?;
    let page = Page::parse(q.limit, q.offset)?;
    let source = q.source.as_deref().map(parse_source).transpose()?;
    let (total, runs) = s
        .store
        .list_runs(
            &RunFilter {
                source,
                status: q.status,
            },
            page,
        )
        .await
        .map_err(ServiceError::from)?;
    Ok(Json(RunList {
        total,
        limit: page.limit,
        offset: page.offset,
        ingestion_runs: runs.into_iter().map(RunBody::from).collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunChange {
    pub catalog_id: Uuid,
    /// `provider/model_id`.
    pub model: String,
    pub action: ChangeAction,
    pub changes: Vec<FieldChange>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunChanges {
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub items: Vec<RunChange>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunDetail {
    pub ingestion_run: RunBody,
    /// The models this run added, updated, unlisted or relisted, with their field changes.
    pub changes: RunChanges,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page of the run's changes.
    limit: Option<i64>,
    offset: Option<i64>,
}

/// One run with the per-model changes it made.
#[utoipa::path(get, path = "/api/v1/admin/ingestion-runs/{id}", tag = "ingestion",
    params(("id" = i64, Path, description = "Run id"), PageQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = RunDetail), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_run(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<RunDetail>> {
    p.require(Scope::Admin)?;
    let page = Page::parse(q.limit, q.offset)?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::validation("id", "must be an integer run id"))?;
    let run = s
        .store
        .get_run(id)
        .await
        .map_err(ServiceError::from)?
        .ok_or(ServiceError::NotFound(Entity::IngestionRun))?;
    let (total, changes) = s
        .store
        .run_changes(id, page)
        .await
        .map_err(ServiceError::from)?;
    Ok(Json(RunDetail {
        ingestion_run: run.into(),
        changes: RunChanges {
            total,
            limit: page.limit,
            offset: page.offset,
            items: changes
                .into_iter()
                .map(|(c, model)| RunChange {
                    catalog_id: c.catalog_id,
                    model,
                    action: c.action,
                    changes: c.changes,
                })
                .collect(),
        },
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourceBody {
    pub source: Source,
    pub provider: Option<Provider>,
    pub enabled: bool,
    pub base_url: String,
    /// Whether the source needs an API key to list anything.
    pub needs_credential: bool,
    /// Where its API key comes from: `api`, `config`, `environment`, or null. The key itself is never returned.
    pub credential: Option<String>,
    /// `off` or `every <seconds>s`.
    pub schedule: String,
    /// Why runs are skipped (disabled, no key), if they are.
    pub skipped: Option<String>,
    pub last_run: Option<RunBody>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_run_at: Option<Timestamp>,
}

impl From<SourceStatus> for SourceBody {
    fn from(s: SourceStatus) -> Self {
        SourceBody {
            provider: s.source.provider(),
            source: s.source,
            enabled: s.enabled,
            base_url: s.base_url,
            needs_credential: s.needs_credential,
            credential: s.credential.map(str::to_owned),
            schedule: s.schedule.describe(),
            skipped: s.skipped,
            last_run: s.last_run.map(RunBody::from),
            next_run_at: s.next_run_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourceList {
    pub sources: Vec<SourceBody>,
}

/// Every ingestion source: configuration (never the key), schedule, last run.
#[utoipa::path(get, path = "/api/v1/admin/sources", tag = "ingestion",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = SourceList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_sources(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<SourceList>> {
    let sources = s.ingestion.sources(&p).await?;
    Ok(Json(SourceList {
        sources: sources.into_iter().map(SourceBody::from).collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialBody {
    api_key: String,
}

/// Sets a source's API key: encrypted at rest, never returned; wins over the configured key.
#[utoipa::path(put, path = "/api/v1/admin/sources/{source}/credential", tag = "ingestion",
    params(("source" = String, Path, description = "Source slug")), request_body = CredentialBody,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn put_credential(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(source): Path<String>,
    ApiJson(body): ApiJson<CredentialBody>,
) -> ApiResult<StatusCode> {
    s.ingestion
        .set_credential(&p, &source, &body.api_key)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes the API key set through the API (the configured one applies again).
#[utoipa::path(delete, path = "/api/v1/admin/sources/{source}/credential", tag = "ingestion",
    params(("source" = String, Path, description = "Source slug")),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn delete_credential(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(source): Path<String>,
) -> ApiResult<StatusCode> {
    s.ingestion.delete_credential(&p, &source).await?;
    Ok(StatusCode::NO_CONTENT)
}
