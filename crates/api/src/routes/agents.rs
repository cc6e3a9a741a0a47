use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use modelplane_domain::agent::{Agent, AgentCreate, AgentUpdate};
use modelplane_domain::page::Page;
use modelplane_service::agents;
use modelplane_store::AgentFilter;

use super::{LookupItem, LookupList};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Auth, IdPath};
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

/// Creates an agent (registry:write). Every `model_ids` entry must be an
/// inventory model of the org.
#[utoipa::path(post, path = "/api/v1/agents", tag = "agents", request_body = AgentCreate,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = Agent), (status = 400, body = ErrorBody, description = "validation_error, e.g. an unknown model id under model_ids"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody, description = "agent_already_exists")))]
async fn create_agent(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<AgentCreate>,
) -> ApiResult<(StatusCode, Json<Agent>)> {
    Ok((
        StatusCode::CREATED,
        Json(agents::create(&s.store, &p, body).await?),
    ))
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
#[utoipa::path(patch, path = "/api/v1/agents/{id}", tag = "agents", params(("id" = uuid::Uuid, Path)), request_body = AgentUpdate,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Agent), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "version_conflict or agent_already_exists")))]
async fn update_agent(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<AgentUpdate>,
) -> ApiResult<Json<Agent>> {
    Ok(Json(agents::update(&s.store, &p, id, body).await?))
}

/// Deletes an agent (registry:write); its history stays in the audit trail.
#[utoipa::path(delete, path = "/api/v1/agents/{id}", tag = "agents", params(("id" = uuid::Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_agent(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
) -> ApiResult<StatusCode> {
    agents::delete(&s.store, &p, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
