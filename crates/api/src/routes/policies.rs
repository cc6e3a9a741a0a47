//! `/api/v1/policies`: the org's gateway policy.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use modelplane_domain::policy::PolicyRule;
use modelplane_service::policies;

use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, Auth};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_policy, put_policy))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyBody {
    /// In order: the first rule whose `if` holds decides; no match allows.
    pub rules: Vec<PolicyRule>,
    /// 0 until a policy is first set.
    pub version: i64,
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<policies::Policy> for PolicyBody {
    fn from(p: policies::Policy) -> Self {
        PolicyBody {
            rules: p.rules,
            version: p.version,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyInput {
    pub rules: Vec<PolicyRule>,
    /// The version the change was based on; a stale one is refused with 409.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

/// The org's gateway policy (registry:read).
#[utoipa::path(get, path = "/api/v1/policies", tag = "gateway",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = PolicyBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn get_policy(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<PolicyBody>> {
    Ok(Json(policies::get(&s.store, &p).await?.into()))
}

/// Replaces the org's gateway policy (admin, audited). Every request is
/// checked against the rules in order; the first rule whose `if` holds
/// decides (`block`: 403 naming the rule; `allow`: through), and a request
/// no rule matches is allowed. Conditions: `registered`, `risk_tier`,
/// `risk_tier_not`, `validation_status`, `validation_status_not`,
/// `lifecycle`, `provider`, `model` (all given must hold). A request's model
/// is matched to the inventory by route name, upstream model id or catalog
/// alias; an unregistered model counts as `tier_4`.
#[utoipa::path(put, path = "/api/v1/policies", tag = "gateway", request_body = PolicyInput,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = PolicyBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody, description = "version_conflict")))]
async fn put_policy(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<PolicyInput>,
) -> ApiResult<Json<PolicyBody>> {
    let policy = policies::put(&s.store, &p, body.rules, body.expected_version).await?;
    s.gateway.forget_org(p.org_id);
    Ok(Json(policy.into()))
}
