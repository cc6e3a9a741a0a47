//! Agents. Every write also takes `stage: true` (in the JSON body; for a
//! `DELETE`, `?stage=true` or the body `{"stage": true}`), which records it
//! as a staged change answered with 202 instead of applying it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use modelplane_domain::agent::{Agent, AgentCreate, AgentUpdate};
use modelplane_domain::page::Page;
use modelplane_domain::staged::StagedWrite;
use modelplane_service::{agents, staged};
use modelplane_store::AgentFilter;

use super::staged_changes::{accepted, StagedAccepted};
use super::{LookupItem, LookupList};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiQuery, Auth, IdPath, IdempotencyKey, OptionalJson, StageableJson};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_agents, create_agent))
        .routes(routes!(lookup_agents))
        .routes(routes!(get_agent, update_agent, delete_agent))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AgentQuery {
    /// Case-insensitive substring of the name.
    q: Option<String>,
    active: Option<bool>,
    /// Default 50, at most 200.
    limit: Option<i64>,
    offset: Option<i64>,
}

impl AgentQuery {
    fn split(self) -> ApiResult<(AgentFilter, Page)> {
        let page = Page::parse(self.limit, self.offset)?;
        let filter = AgentFilter {
            q: self.q,
            active: self.active,
        };
        Ok((filter, page))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentList {
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub agents: Vec<Agent>,
}

/// Lists the org's agents by name, each with its models (registry:read).
#[utoipa::path(get, path = "/api/v1/agents", tag = "agents", params(AgentQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = AgentList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_agents(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<AgentQuery>,
) -> ApiResult<Json<AgentList>> {
    let (filter, page) = q.split()?;
    let listed = agents::list(&s.store, &p, filter, page).await?;
    Ok(Json(AgentList {
        total: listed.total,
        limit: page.limit,
        offset: page.offset,
        agents: listed.items,
    }))
}

/// `{id, name}` of the org's agents, for select inputs (registry:read).
#[utoipa::path(get, path = "/api/v1/agents/lookup", tag = "agents", params(AgentQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = LookupList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn lookup_agents(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<AgentQuery>,
) -> ApiResult<Json<LookupList>> {
    let (filter, page) = q.split()?;
    let listed = agents::list(&s.store, &p, filter, page).await?;
    Ok(Json(LookupList {
        total: listed.total,
        limit: page.limit,
        offset: page.offset,
        items: listed
            .items
            .into_iter()
            .map(|a| LookupItem {
                id: a.id,
                name: a.name,
            })
            .collect(),
    }))
}

/// The body of `POST /api/v1/agents`: the agent, plus `stage`.
#[derive(Deserialize, ToSchema)]
#[expect(
    dead_code,
    reason = "documents the body that `StageableJson<AgentCreate>` reads"
)]
struct AgentCreateBody {
    #[serde(flatten)]
    agent: AgentCreate,
    /// `true`: record the create as a staged change (202) instead.
    stage: Option<bool>,
}

/// The body of `PATCH /api/v1/agents/{id}`: the changes, plus `stage`.
#[derive(Deserialize, ToSchema)]
#[expect(
    dead_code,
    reason = "documents the body that `StageableJson<AgentUpdate>` reads"
)]
struct AgentUpdateBody {
    #[serde(flatten)]
    changes: AgentUpdate,
    /// `true`: record the update as a staged change (202) instead.
    stage: Option<bool>,
}

/// `?stage=true` on a `DELETE`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StageQuery {
    /// `true`: record the delete as a staged change (202) instead.
    stage: Option<bool>,
}

/// The optional body of a `DELETE`: `{"stage": true}`, as `?stage=true`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StageBody {
    stage: bool,
}

/// Creates an agent (registry:write). Every `model_ids` entry must be an
/// inventory model of the org. With `"stage": true` the create is checked
/// the same way but only recorded, as a pending staged change named by the
/// request's `Idempotency-Key` (or a new key), and answered with 202.
#[utoipa::path(post, path = "/api/v1/agents", tag = "agents", request_body = AgentCreateBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "With `stage`, also the staged change's key")),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = Agent), (status = 202, body = StagedAccepted, description = "staged, not applied"), (status = 400, body = ErrorBody, description = "validation_error, e.g. an unknown model id under model_ids"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody, description = "agent_already_exists"), (status = 422, body = ErrorBody, description = "idempotency_key_reused")))]
async fn create_agent(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdempotencyKey(key): IdempotencyKey,
    StageableJson { body, stage }: StageableJson<AgentCreate>,
) -> ApiResult<Response> {
    if stage {
        let write = StagedWrite::CreateAgent(body);
        return Ok(accepted(staged::stage(&s.store, &p, write, key).await?));
    }
    let agent = agents::create(&s.store, &p, body).await?;
    Ok((StatusCode::CREATED, Json(agent)).into_response())
}

#[utoipa::path(get, path = "/api/v1/agents/{id}", tag = "agents", params(("id" = uuid::Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Agent), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "agent_not_found")))]
async fn get_agent(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
) -> ApiResult<Json<Agent>> {
    Ok(Json(agents::get(&s.store, &p, id).await?))
}

/// Partial update (registry:write); `model_ids` replaces the list. Send
/// `expected_version` to refuse a stale edit with 409 `version_conflict`.
/// With `"stage": true`, checked and recorded as a staged change (202).
#[utoipa::path(patch, path = "/api/v1/agents/{id}", tag = "agents", request_body = AgentUpdateBody,
    params(("id" = uuid::Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "With `stage`, also the staged change's key")),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Agent), (status = 202, body = StagedAccepted, description = "staged, not applied"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "version_conflict or agent_already_exists"), (status = 422, body = ErrorBody, description = "idempotency_key_reused")))]
async fn update_agent(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
    IdempotencyKey(key): IdempotencyKey,
    StageableJson { body, stage }: StageableJson<AgentUpdate>,
) -> ApiResult<Response> {
    if stage {
        let write = StagedWrite::UpdateAgent { id, changes: body };
        return Ok(accepted(staged::stage(&s.store, &p, write, key).await?));
    }
    Ok(Json(agents::update(&s.store, &p, id, body).await?).into_response())
}

/// Deletes an agent (registry:write); its history stays in the audit trail.
/// With `?stage=true` (or the body `{"stage": true}`), checked and recorded
/// as a staged change (202).
#[utoipa::path(delete, path = "/api/v1/agents/{id}", tag = "agents",
    params(("id" = uuid::Uuid, Path), StageQuery, ("Idempotency-Key" = Option<String>, Header, description = "With `stage`, also the staged change's key")),
    request_body(content = Option<StageBody>),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 204), (status = 202, body = StagedAccepted, description = "staged, not applied"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody, description = "idempotency_key_reused")))]
async fn delete_agent(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
    IdempotencyKey(key): IdempotencyKey,
    ApiQuery(query): ApiQuery<StageQuery>,
    OptionalJson(body): OptionalJson<StageBody>,
) -> ApiResult<Response> {
    if query.stage.unwrap_or(false) || body.is_some_and(|b| b.stage) {
        let write = StagedWrite::DeleteAgent { id };
        return Ok(accepted(staged::stage(&s.store, &p, write, key).await?));
    }
    agents::delete(&s.store, &p, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
