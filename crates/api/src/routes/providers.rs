//! `/api/v1/admin/providers` and friends: the cloud providers the gateway
//! reaches for the caller's org, their models, health and model status.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use modelplane_gateway::providers::{ModelStatus, ProviderHealth, ProviderInfo, ProviderModels};
use modelplane_service::providers;

use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Auth};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_providers, set_provider_keys))
        .routes(routes!(provider_models))
        .routes(routes!(provider_health))
        .routes(routes!(provider_model_status))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderList {
    pub providers: Vec<ProviderInfo>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderKeysInput {
    /// Provider slug → its API key, or `null` to remove the org's key (the
    /// configured platform key, if any, applies again).
    #[schema(value_type = BTreeMap<String, Option<String>>)]
    pub keys: BTreeMap<String, Option<String>>,
}

/// Every provider the gateway knows, whether it is configured for this org
/// and where its key comes from (admin). Keys are never returned.
#[utoipa::path(get, path = "/api/v1/admin/providers", tag = "gateway",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = ProviderList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_providers(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<ProviderList>> {
    Ok(Json(ProviderList {
        providers: s.gateway.providers(&p).await?,
    }))
}

/// Sets or removes the org's provider keys (admin, audited without the
/// keys). Keys are encrypted at rest with the server's secret key.
#[utoipa::path(put, path = "/api/v1/admin/providers", tag = "gateway", request_body = ProviderKeysInput,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = ProviderList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn set_provider_keys(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<ProviderKeysInput>,
) -> ApiResult<Json<ProviderList>> {
    providers::set_keys(&s.store, s.gateway.secrets(), &p, body.keys).await?;
    s.gateway.forget_provider_keys(p.org_id);
    Ok(Json(ProviderList {
        providers: s.gateway.providers(&p).await?,
    }))
}

/// The models every configured provider lists (admin). Cached for 60 s per
/// org; an older list is answered at once (`stale: true`) while a fresh one
/// is fetched in the background. `providers` says how each listing went.
#[utoipa::path(get, path = "/api/v1/admin/provider-models", tag = "gateway",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = ProviderModels), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn provider_models(
    State(s): State<AppState>,
    Auth(p): Auth,
) -> ApiResult<Json<ProviderModels>> {
    Ok(Json((*s.gateway.provider_models(&p).await?).clone()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HealthQuery {
    /// Send a one-token chat (`max_tokens: 1`) with each provider's probe
    /// model instead of the free probe (its model listing). Costs tokens.
    paid: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderHealthList {
    pub providers: Vec<ProviderHealth>,
}

/// Probes every configured provider in parallel (admin): `up`,
/// `rate_limited`, `overloaded`, `timeout`, `unreachable` or `error_<code>`.
#[utoipa::path(get, path = "/api/v1/admin/provider-health", tag = "gateway", params(HealthQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = ProviderHealthList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn provider_health(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<HealthQuery>,
) -> ApiResult<Json<ProviderHealthList>> {
    Ok(Json(ProviderHealthList {
        providers: s
            .gateway
            .provider_health(&p, q.paid.unwrap_or(false))
            .await?,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelStatusInput {
    /// 1 to 20 model names, as a client would send them.
    pub models: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelStatusList {
    pub models: Vec<ModelStatus>,
}

/// Probes each model where a request for it would go, with a one-token
/// chat (admin; costs tokens): `up`, `rate_limited`, `not_found`,
/// `unavailable`, `timeout` or `error`, with the latency.
#[utoipa::path(post, path = "/api/v1/admin/provider-model-status", tag = "gateway", request_body = ModelStatusInput,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = ModelStatusList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn provider_model_status(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<ModelStatusInput>,
) -> ApiResult<Json<ModelStatusList>> {
    Ok(Json(ModelStatusList {
        models: s.gateway.model_status(&p, &body.models).await?,
    }))
}
