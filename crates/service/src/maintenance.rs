//! `POST /api/v1/admin/refresh`: rebuild what is precomputed for search and
//! counts. Nothing here is needed for correctness (counts are kept in the
//! same transaction as every write, facets are computed per request); it
//! repairs a database edited by hand and compacts the search indexes.

use modelplane_domain::key::Scope;
use modelplane_store::Store;

use crate::error::Result;
use crate::Principal;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refreshed {
    /// What was rebuilt, e.g. `model_counts`, `models_fts`.
    pub refreshed_views: Vec<String>,
    /// Cache entries dropped (modelplane keeps no response caches).
    pub invalidated_tags: Vec<String>,
    /// Models counted in the caller's org.
    pub models_counted: i64,
}

/// An org admin recounts their org; a superadmin also compacts the shared
/// full-text indexes and refreshes the planner's statistics.
pub async fn refresh(store: &Store, p: &Principal) -> Result<Refreshed> {
    p.require(Scope::Admin)?;
    let models_counted = store.recount_models(p.org_id).await?;
    let mut refreshed_views = vec!["model_counts".to_owned()];
    if p.is_superadmin() {
        store.optimize_search().await?;
        store.analyze().await?;
        refreshed_views.extend(store.search_indexes().iter().map(|s| (*s).to_owned()));
        refreshed_views.push("planner_statistics".to_owned());
    }
    Ok(Refreshed {
        refreshed_views,
        invalidated_tags: Vec::new(),
        models_counted,
    })
}
