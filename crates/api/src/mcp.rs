//! `/mcp`: the Model Context Protocol over the streamable HTTP transport, so
//! that AI agents can search the inventory and the catalog as tools.
//!
//! [`authenticate`] runs before rmcp reads a request: a request without a
//! valid API key (`Authorization: Bearer` or `X-Api-Key`, as for REST) is
//! refused with the usual 401 envelope, and the caller's [`Principal`] rides
//! on in the request's extensions. rmcp hands each tool call the request's
//! [`Parts`], from which [`Caller`] takes the principal. The tools call the
//! same functions as the REST handlers and answer with the same bodies, so
//! scopes and tenancy are decided by the service exactly as for REST; a
//! refusal is a tool result flagged `isError` whose content is the REST error
//! envelope, stable `code` included (`forbidden`, `model_not_found`…).
//!
//! The endpoint is stateless: it issues no `Mcp-Session-Id` and answers every
//! POST on its own with `application/json`. Each request carries its key, so
//! a session would add no authority, only state: in-memory sessions would tie
//! a client to one replica, could be presented with another key, and would
//! hold SSE streams open across a graceful shutdown.

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use http::request::Parts;
use rmcp::handler::server::common::{AsRequestContext, FromContextPart};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{tool, tool_handler, tool_router, ErrorData, ServerHandler};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use modelplane_domain::agent::{AgentCreate, AgentUpdate};
use modelplane_domain::model::{RiskTier, ValidationStatus};
use modelplane_domain::page::Page;
use modelplane_domain::patch::Patch;
use modelplane_domain::staged::{StagedStatus, StagedWrite};
use modelplane_service::staged;
use modelplane_service::Principal;
use modelplane_store::CatalogFilter;
use modelplane_store::StagedFilter;

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::Auth;
use crate::routes::catalog::{catalog_list, non_empty, resolve_body, CatalogList};
use crate::routes::models::{bodies, model_list, ModelBody, ModelFilters};
use crate::routes::staged_changes::{StagedAccepted, StagedChangeList};
use crate::state::AppState;

/// Where the endpoint is mounted.
pub const PATH: &str = "/mcp";

/// The tools `/mcp` offers, by name, as `tools/list` shows them.
pub const TOOL_NAMES: [&str; 8] = [
    "get_model",
    "list_staged_changes",
    "resolve_model",
    "search_catalog",
    "search_models",
    "stage_agent_create",
    "stage_agent_delete",
    "stage_agent_update",
];

/// The `/mcp` route: API-key authentication, then rmcp's streamable HTTP
/// service. Not part of the OpenAPI document.
pub fn router(state: AppState) -> Router<AppState> {
    let tools = ModelplaneMcp::read_tools() + ModelplaneMcp::staged_tools();
    let handler_state = state.clone();
    let service = StreamableHttpService::new(
        move || {
            Ok(ModelplaneMcp {
                state: handler_state.clone(),
                tools: tools.clone(),
            })
        },
        Arc::new(NeverSessionManager::default()),
        StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_sse_keep_alive(None)
            .with_max_request_body_bytes(crate::MAX_BODY_BYTES)
            // rmcp refuses every Host but loopback by default, against DNS
            // rebinding of servers without credentials. Every request here
            // needs an API key that a rebinding page cannot know, and the
            // server is reached under whatever name its operator gives it.
            .disable_allowed_hosts(),
    );
    Router::new()
        .route_service(PATH, service)
        .route_layer(axum::middleware::from_fn_with_state(state, authenticate))
}

/// Refuses a request without a valid API key with the 401 envelope before
/// rmcp reads it; otherwise passes the caller on in the request's extensions.
async fn authenticate(Auth(principal): Auth, mut request: Request, next: Next) -> Response {
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// The key that authenticated the HTTP request carrying a tool call.
struct Caller(Principal);

impl<C: AsRequestContext> FromContextPart<C> for Caller {
    fn from_context_part(context: &mut C) -> Result<Self, ErrorData> {
        context
            .as_request_context()
            .extensions
            .get::<Parts>()
            .and_then(|parts| parts.extensions.get::<Principal>())
            .cloned()
            .map(Caller)
            // Unreachable through `router`, whose middleware authenticates
            // every request; a tool must never run for nobody.
            .ok_or_else(|| {
                ErrorData::internal_error("the request carries no authenticated key", None)
            })
    }
}

/// A tool's answer: the REST body as structured content (and as JSON text),
/// or the REST error envelope flagged as a tool error.
fn answer<T: Serialize>(result: ApiResult<T>) -> CallToolResult {
    let value = result.and_then(|body| {
        serde_json::to_value(body).map_err(|e| {
            tracing::error!(error = %e, "an MCP answer did not serialize");
            ApiError::new(ErrorCode::Internal, "internal error; see the server log")
        })
    });
    match value {
        Ok(value) => CallToolResult::structured(value),
        Err(err) => {
            let (_, envelope) = err.into_parts();
            CallToolResult::structured_error(json!(envelope))
        }
    }
}

/// The string enum of `values`, for arguments whose type has no schemars
/// schema of its own.
fn string_enum(values: Vec<&'static str>) -> Schema {
    schemars::json_schema!({ "type": "string", "enum": values })
}

fn risk_tier_schema(_: &mut SchemaGenerator) -> Schema {
    string_enum(RiskTier::ALL.iter().map(|t| t.as_str()).collect())
}

fn staged_status_schema(_: &mut SchemaGenerator) -> Schema {
    string_enum(StagedStatus::ALL.iter().map(|s| s.as_str()).collect())
}

fn validation_status_schema(_: &mut SchemaGenerator) -> Schema {
    string_enum(ValidationStatus::ALL.iter().map(|s| s.as_str()).collect())
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SearchModelsArgs {
    /// Full text over model_id, display_name and description; every word must prefix-match.
    search: Option<String>,
    /// Exact provider names (as in the `providers` facet); a model matches any of them.
    #[serde(default)]
    provider_id: Vec<String>,
    /// Department ids (as in the `departments` facet); a model in any of them matches.
    #[serde(default)]
    department_id: Vec<Uuid>,
    /// Agent ids (as in the `agents` facet); a model used by any of them matches.
    #[serde(default)]
    agent_id: Vec<Uuid>,
    /// Models in a department whose name contains this, case-insensitively.
    department_search: Option<String>,
    /// Models used by an agent whose name contains this, case-insensitively.
    agent_search: Option<String>,
    /// Model-risk tier; tier_1 is the most material.
    #[serde(default)]
    #[schemars(schema_with = "risk_tier_schema")]
    risk_tier: Option<RiskTier>,
    /// Where the model stands in its validation lifecycle.
    #[serde(default)]
    #[schemars(schema_with = "validation_status_schema")]
    validation_status: Option<ValidationStatus>,
    /// Page size: default 50, at most 200.
    limit: Option<i64>,
    /// Models to skip, for the next page.
    offset: Option<i64>,
}

impl SearchModelsArgs {
    fn filters(self) -> ModelFilters {
        ModelFilters {
            search: self.search,
            provider_id: self.provider_id,
            department_id: self.department_id,
            agent_id: self.agent_id,
            department_search: self.department_search,
            agent_search: self.agent_search,
            risk_tier: self.risk_tier,
            validation_status: self.validation_status,
            ..ModelFilters::default()
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GetModelArgs {
    /// The inventory model's id.
    id: Uuid,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ResolveModelArgs {
    /// Any model string: `gpt-4o-2024-08-06`, `openai/gpt-4o`,
    /// `anthropic.claude-3-5-sonnet-20240620-v1:0`…
    q: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SearchCatalogArgs {
    /// Full text over model_id, display name and description; every word must prefix-match.
    search: Option<String>,
    /// Provider slug, e.g. `openai`.
    provider: Option<String>,
    /// A capability the model has: `tools`, `vision`, `reasoning`, `structured_output`, `batch`…
    capability: Option<String>,
    /// A modality the model takes in or puts out: `text`, `image`, `audio`, `video`, `embedding`…
    modality: Option<String>,
    /// Page size: default 50, at most 200.
    limit: Option<i64>,
    /// Models to skip, for the next page.
    offset: Option<i64>,
}

/// The MCP server of one request: the application's state and the tools.
#[derive(Clone)]
struct ModelplaneMcp {
    state: AppState,
    tools: ToolRouter<Self>,
}

/// The read tools, each a thin handler: extract, call one function the REST
/// API also calls, answer.
#[tool_router(router = read_tools)]
impl ModelplaneMcp {
    /// Searches the caller's model inventory, newest first. Answers
    /// `{total, limit, offset, models, facets}`: each model with its
    /// effective sections and linked catalog facts, and for providers,
    /// departments and agents each value with its count under the same
    /// filters. Needs the `registry:read` scope.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn search_models(
        &self,
        Caller(p): Caller,
        Parameters(args): Parameters<SearchModelsArgs>,
    ) -> CallToolResult {
        let (limit, offset) = (args.limit, args.offset);
        answer(model_list(&self.state, &p, args.filters(), limit, offset).await)
    }

    /// One model of the caller's inventory by id, with its effective
    /// sections and linked catalog facts. Needs the `registry:read` scope.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn get_model(
        &self,
        Caller(p): Caller,
        Parameters(args): Parameters<GetModelArgs>,
    ) -> CallToolResult {
        answer(self.model(&p, args.id).await)
    }

    /// Maps any model string to its catalog model: exact id or alias
    /// (confidence 1.0), normalized (0.8: case, date and version suffixes,
    /// provider and platform prefixes) or substring (0.5), with the
    /// replacement of a deprecated or sunset model and other candidates.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn resolve_model(
        &self,
        Caller(_p): Caller,
        Parameters(args): Parameters<ResolveModelArgs>,
    ) -> CallToolResult {
        answer(resolve_body(&self.state, args.q).await)
    }

    /// Searches the global catalog of models every provider offers (shared
    /// by all orgs). Answers `{total, limit, offset, models}`.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn search_catalog(
        &self,
        Caller(_p): Caller,
        Parameters(args): Parameters<SearchCatalogArgs>,
    ) -> CallToolResult {
        answer(self.catalog(args).await)
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct StageCreateArgs {
    /// The agent's name, unique in the org.
    name: String,
    description: Option<String>,
    /// Defaults to true.
    active: Option<bool>,
    /// Inventory model ids the agent uses.
    #[serde(default)]
    model_ids: Vec<Uuid>,
    /// Names the staged change (a new one when absent); repeating a
    /// request with the same key returns the first change.
    idempotency_key: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct StageUpdateArgs {
    /// The agent to change.
    id: Uuid,
    name: Option<String>,
    description: Option<String>,
    active: Option<bool>,
    /// Replaces the agent's whole model list.
    model_ids: Option<Vec<Uuid>>,
    /// The agent's version the change is based on.
    expected_version: Option<i64>,
    idempotency_key: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct StageDeleteArgs {
    /// The agent to delete.
    id: Uuid,
    idempotency_key: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListStagedArgs {
    /// `pending`, `applied`, `rejected` or `failed`.
    #[serde(default)]
    #[schemars(schema_with = "staged_status_schema")]
    status: Option<StagedStatus>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// The staged write tools: an AI agent proposes a change to the org's
/// agents, checked now exactly as the direct write would be but recorded
/// only, as a pending staged change that a person accepts or rejects through
/// `POST /api/v1/staged-changes/{idempotency_key}`. Deciding is deliberately
/// not a tool: the point of staging is that a person approves.
#[tool_router(router = staged_tools)]
impl ModelplaneMcp {
    /// Proposes a new agent (name, description, active, the inventory model
    /// ids it uses). Answers `{idempotency_key, staged_change}`; nothing is
    /// applied until a person accepts it. Needs `registry:write`.
    #[tool(annotations(
        read_only_hint = false,
        destructive_hint = false,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn stage_agent_create(
        &self,
        Caller(p): Caller,
        Parameters(args): Parameters<StageCreateArgs>,
    ) -> CallToolResult {
        let write = StagedWrite::CreateAgent(AgentCreate {
            name: args.name,
            description: args.description,
            active: args.active,
            model_ids: args.model_ids,
        });
        answer(self.stage(&p, write, args.idempotency_key).await)
    }

    /// Proposes a change to an agent (name, description, active, model ids;
    /// `expected_version` guards against a stale base). Applied only once a
    /// person accepts it. Needs `registry:write`.
    #[tool(annotations(
        read_only_hint = false,
        destructive_hint = false,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn stage_agent_update(
        &self,
        Caller(p): Caller,
        Parameters(args): Parameters<StageUpdateArgs>,
    ) -> CallToolResult {
        let changes = AgentUpdate {
            name: args.name,
            description: args.description.map_or(Patch::Absent, Patch::Value),
            active: args.active,
            model_ids: args.model_ids,
            expected_version: args.expected_version,
        };
        let write = StagedWrite::UpdateAgent {
            id: args.id,
            changes,
        };
        answer(self.stage(&p, write, args.idempotency_key).await)
    }

    /// Proposes deleting an agent. Applied only once a person accepts it.
    /// Needs `registry:write`.
    #[tool(annotations(
        read_only_hint = false,
        destructive_hint = true,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn stage_agent_delete(
        &self,
        Caller(p): Caller,
        Parameters(args): Parameters<StageDeleteArgs>,
    ) -> CallToolResult {
        let write = StagedWrite::DeleteAgent { id: args.id };
        answer(self.stage(&p, write, args.idempotency_key).await)
    }

    /// The org's staged changes, newest first, with their status and, once
    /// decided, their result. Needs `registry:read`.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn list_staged_changes(
        &self,
        Caller(p): Caller,
        Parameters(args): Parameters<ListStagedArgs>,
    ) -> CallToolResult {
        answer(self.staged_list(&p, args).await)
    }
}

impl ModelplaneMcp {
    async fn stage(
        &self,
        p: &Principal,
        write: StagedWrite,
        key: Option<String>,
    ) -> ApiResult<StagedAccepted> {
        let change = staged::stage(&self.state.store, p, write, key).await?;
        Ok(StagedAccepted {
            idempotency_key: change.idempotency_key.clone(),
            staged_change: change,
        })
    }

    async fn staged_list(
        &self,
        p: &Principal,
        args: ListStagedArgs,
    ) -> ApiResult<StagedChangeList> {
        let page = Page::parse(args.limit, args.offset)?;
        let filter = StagedFilter {
            status: args.status,
            entity: None,
        };
        let listed = staged::list(&self.state.store, p, filter, page).await?;
        Ok(StagedChangeList {
            total: listed.total,
            limit: page.limit,
            offset: page.offset,
            staged_changes: listed.items,
        })
    }

    async fn model(&self, p: &Principal, id: Uuid) -> ApiResult<ModelBody> {
        let model = modelplane_service::models::get(&self.state.store, p, id).await?;
        bodies(&self.state, p, vec![model])
            .await?
            .pop()
            .ok_or_else(|| ApiError::not_found("model"))
    }

    async fn catalog(&self, args: SearchCatalogArgs) -> ApiResult<CatalogList> {
        let page = Page::parse(args.limit, args.offset)?;
        let filter = CatalogFilter {
            search: non_empty(args.search),
            provider: non_empty(args.provider),
            capability: non_empty(args.capability),
            modality: non_empty(args.modality),
            ..CatalogFilter::default()
        };
        catalog_list(&self.state, &filter, None, page).await
    }
}

#[tool_handler(router = self.tools)]
impl ServerHandler for ModelplaneMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("modelplane", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "modelplane is an organization's register of the AI models it uses (the \
                 inventory: owners, departments, agents, risk tier, validation status) and a \
                 global catalog of the models providers offer. Search the inventory with \
                 search_models and read one entry with get_model; map any model name to the \
                 catalog with resolve_model; browse the catalog with search_catalog. Errors \
                 come back as {\"error\": {\"code\", \"message\"}}.",
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_names_are_the_tools_served() {
        let mut served: Vec<String> = (ModelplaneMcp::read_tools() + ModelplaneMcp::staged_tools())
            .list_all()
            .into_iter()
            .map(|t| t.name.into_owned())
            .collect();
        served.sort();
        assert_eq!(served, TOOL_NAMES);
    }

    #[test]
    fn optional_arguments_are_not_required_and_enums_list_their_values() {
        let tools = ModelplaneMcp::read_tools().list_all();
        let search = tools
            .iter()
            .find(|t| t.name == "search_models")
            .expect("search_models is served");
        let schema = serde_json::Value::Object((*search.input_schema).clone());
        assert_eq!(schema.get("required"), None, "{schema}");
        assert_eq!(
            schema["properties"]["risk_tier"]["enum"],
            json!(["tier_1", "tier_2", "tier_3", "tier_4"]),
            "{schema}"
        );
        assert_eq!(
            schema["properties"]["validation_status"]["enum"][0],
            "draft"
        );
        assert_eq!(schema["properties"]["agent_id"]["items"]["format"], "uuid");
        assert_eq!(schema["additionalProperties"], false, "{schema}");

        let get = tools
            .iter()
            .find(|t| t.name == "get_model")
            .expect("get_model is served");
        assert_eq!(get.input_schema.get("required"), Some(&json!(["id"])));
    }
}
