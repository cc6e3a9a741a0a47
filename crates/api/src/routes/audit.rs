use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use modelplane_domain::audit::{AuditAction, AuditEvent, EntityType};
use modelplane_domain::page::Page;
use modelplane_service::models;
use modelplane_store::AuditFilter;

use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiQuery, Auth};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit_events))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub events: Vec<AuditEvent>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    entity_type: Option<EntityType>,
    entity_id: Option<Uuid>,
    action: Option<AuditAction>,
    actor_key_id: Option<Uuid>,
    actor_user_id: Option<Uuid>,
    /// Events at or after this time (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// Events before this time (RFC 3339).
    until: Option<DateTime<Utc>>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// The org's audit trail, newest first. Keys without `admin` see model
/// events (agent events when they ask for `entity_type=agent`) only.
#[utoipa::path(get, path = "/api/v1/audit-events", tag = "audit", params(AuditQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = AuditList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_audit_events(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditList>> {
    let page = Page::parse(q.limit, q.offset)?;
    let filter = AuditFilter {
        entity_type: q.entity_type,
        entity_id: q.entity_id,
        action: q.action,
        actor_key_id: q.actor_key_id,
        actor_user_id: q.actor_user_id,
        since: q.since,
        until: q.until,
    };
    let listed = models::audit_events(&s.store, &p, filter, page).await?;
    Ok(Json(AuditList {
        total: listed.total,
        limit: page.limit,
        offset: page.offset,
        events: listed.items,
    }))
}
