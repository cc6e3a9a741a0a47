pub mod admin;
pub mod agents;
pub mod audit;
pub mod catalog;
pub mod departments;
pub mod docs;
pub mod drafts;
pub mod fallback;
pub mod gateway_routes;
pub mod health;
pub mod ingestion;
pub mod keys;
pub mod local;
pub mod model_bulk;
pub mod model_docs;
pub mod model_export;
pub mod models;
pub mod orgs;
pub mod policies;
pub mod providers;
pub mod staged_changes;
pub mod upstreams;
pub mod usage;
pub mod users;

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// `{id, name}` pairs for select inputs.
#[derive(Debug, Serialize, ToSchema)]
pub struct LookupItem {
    pub id: Uuid,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LookupList {
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub items: Vec<LookupItem>,
}
