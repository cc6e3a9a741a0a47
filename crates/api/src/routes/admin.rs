//! Maintenance of what the store precomputes.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use modelplane_service::maintenance;

use crate::error::{ApiResult, ErrorBody};
use crate::extract::Auth;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(refresh))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefreshResult {
    pub success: bool,
    /// What was rebuilt: `model_counts` (the org's), and for a superadmin
    /// the full-text indexes and the planner's statistics.
    pub refreshed_views: Vec<String>,
    /// Cache entries dropped; modelplane keeps no response caches, so none.
    pub invalidated_tags: Vec<String>,
    /// Models counted in the caller's org.
    pub models_counted: i64,
}

/// Rebuilds the org's precomputed model counts from its models (and, for a
/// superadmin, compacts the full-text indexes). Counts and facets are never
/// stale after an acknowledged write; this repairs and compacts.
#[utoipa::path(post, path = "/api/v1/admin/refresh", tag = "models",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = RefreshResult), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn refresh(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<RefreshResult>> {
    let done = maintenance::refresh(&s.store, &p).await?;
    Ok(Json(RefreshResult {
        success: true,
        refreshed_views: done.refreshed_views,
        invalidated_tags: done.invalidated_tags,
        models_counted: done.models_counted,
    }))
}
