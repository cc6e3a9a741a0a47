//! What the gateway knows of the model behind an upstream: the catalog
//! entry it is (lifecycle, prices) and the org's inventory entry it matches
//! (risk tier, validation status, the org's own prices). Policies are
//! decided on these facts and usage is priced from them.
//!
//! A request's model matches the inventory by the route's name, by the
//! upstream's model id (both ignoring case), or by the catalog model the
//! upstream's id is an alias of (an inventory entry linked to that catalog
//! model). Facts are computed once per upstream per route-table load (so at
//! most every `cache_ttl`), and catalog identifications are shared by every
//! org for a minute.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use modelplane_domain::catalog::{Lifecycle, Pricing};
use modelplane_domain::policy::{ModelFacts, Registered};
use modelplane_service::catalog;
use modelplane_store::GovernedModel;
use uuid::Uuid;

use crate::routing::LiveUpstream;
use crate::Gateway;

/// How long a catalog identification is trusted.
const CATALOG_TTL: Duration = Duration::from_secs(60);
const CATALOG_CACHE_MAX: usize = 50_000;

/// The catalog entry an upstream model is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CatalogFacts {
    pub id: Uuid,
    pub lifecycle: Lifecycle,
    pub pricing: Option<Pricing>,
}

/// Everything the request path needs to know of one upstream's model.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct UpstreamFacts {
    pub catalog: Option<CatalogFacts>,
    pub registered: Option<GovernedModel>,
    /// The org's own price when its inventory entry sets one, else the catalog's.
    pub pricing: Option<Pricing>,
}

impl UpstreamFacts {
    pub fn policy_view<'a>(&self, requested: &'a str, u: &'a LiveUpstream) -> ModelFacts<'a> {
        ModelFacts {
            requested,
            upstream_model: &u.model,
            provider: u.provider.slug,
            registered: self.registered.as_ref().map(|m| Registered {
                risk_tier: m.risk_tier,
                validation_status: m.validation_status,
            }),
            lifecycle: self.catalog.as_ref().map(|c| c.lifecycle),
        }
    }
}

type CatalogCache = HashMap<(String, String), (Option<CatalogFacts>, Instant)>;

/// Catalog identifications shared by every org.
#[derive(Debug, Default)]
pub(crate) struct CatalogCacheCell {
    map: RwLock<CatalogCache>,
}

/// Picks the inventory entry a request matches: by route name, then by
/// upstream model id, then by catalog link.
pub(crate) fn best_match(
    found: Vec<GovernedModel>,
    route_name: &str,
    upstream_model: &str,
    catalog_id: Option<Uuid>,
) -> Option<GovernedModel> {
    let rank = |m: &GovernedModel| {
        if m.model_id.eq_ignore_ascii_case(route_name) {
            0
        } else if m.model_id.eq_ignore_ascii_case(upstream_model) {
            1
        } else if catalog_id.is_some() && m.catalog_id == catalog_id {
            2
        } else {
            3
        }
    };
    found
        .into_iter()
        .filter(|m| rank(m) < 3)
        .min_by_key(|m| rank(m))
}

impl Gateway {
    /// The facts of `u` serving `route_name` for `org_id` (cached on the
    /// upstream for the life of its route table).
    pub(crate) async fn facts(
        &self,
        org_id: Uuid,
        route_name: &str,
        u: &LiveUpstream,
    ) -> Arc<UpstreamFacts> {
        let loaded = u
            .facts
            .get_or_try_init(|| async {
                self.load_facts(org_id, route_name, u).await.map(Arc::new)
            })
            .await;
        match loaded {
            Ok(f) => f.clone(),
            Err(e) => {
                tracing::warn!(error = %e, model = %u.model, "cannot look up what the model is; treating it as unregistered and unknown to the catalog");
                Arc::new(UpstreamFacts::default())
            }
        }
    }

    async fn load_facts(
        &self,
        org_id: Uuid,
        route_name: &str,
        u: &LiveUpstream,
    ) -> Result<UpstreamFacts, modelplane_service::ServiceError> {
        let catalog = self.catalog_facts(u).await?;
        let mut names = vec![route_name.to_lowercase(), u.model.to_lowercase()];
        names.dedup();
        let ids: Vec<Uuid> = catalog.iter().map(|c| c.id).collect();
        let found = self
            .inner
            .store
            .governed_models(org_id, &names, &ids)
            .await?;
        let registered = best_match(found, route_name, &u.model, catalog.as_ref().map(|c| c.id));
        // A registered entry linked to the catalog tells the lifecycle when
        // the upstream's own id did not.
        let catalog = match (&catalog, &registered) {
            (
                None,
                Some(GovernedModel {
                    catalog_id: Some(id),
                    ..
                }),
            ) => self
                .inner
                .store
                .get_catalog(*id)
                .await?
                .map(|m| CatalogFacts {
                    id: m.id,
                    lifecycle: m.lifecycle(),
                    pricing: m.facts.pricing.clone(),
                }),
            _ => catalog,
        };
        let pricing = registered
            .as_ref()
            .and_then(|r| r.pricing.clone())
            .or_else(|| catalog.as_ref().and_then(|c| c.pricing.clone()));
        Ok(UpstreamFacts {
            catalog,
            registered,
            pricing,
        })
    }

    async fn catalog_facts(
        &self,
        u: &LiveUpstream,
    ) -> Result<Option<CatalogFacts>, modelplane_service::ServiceError> {
        let key = (u.provider.slug.to_owned(), u.model.clone());
        if let Ok(map) = self.inner.catalog_cache.map.read() {
            if let Some((facts, at)) = map.get(&key) {
                if at.elapsed() < CATALOG_TTL {
                    return Ok(facts.clone());
                }
            }
        }
        let engine = u.provider.base_url.is_none();
        let found = catalog::identify(&self.inner.store, u.provider.slug, &u.model, engine)
            .await?
            .map(|m| CatalogFacts {
                id: m.id,
                lifecycle: m.lifecycle(),
                pricing: m.facts.pricing.clone(),
            });
        if let Ok(mut map) = self.inner.catalog_cache.map.write() {
            if map.len() >= CATALOG_CACHE_MAX {
                map.clear();
            }
            map.insert(key, (found.clone(), Instant::now()));
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelplane_domain::model::{RiskTier, ValidationStatus};

    fn entry(model_id: &str, catalog_id: Option<Uuid>) -> GovernedModel {
        GovernedModel {
            model_id: model_id.into(),
            risk_tier: RiskTier::Tier2,
            validation_status: ValidationStatus::Draft,
            catalog_id,
            pricing: None,
        }
    }

    #[test]
    fn the_route_name_wins_over_the_upstream_id_over_the_catalog_link() {
        let cat = Uuid::now_v7();
        let all = vec![
            entry("gpt-4o-2024-08-06", Some(cat)),
            entry("GPT-4o", None),
            entry("Chat-Default", None),
        ];
        let pick = |found: Vec<GovernedModel>| {
            best_match(found, "chat-default", "gpt-4o", Some(cat)).map(|m| m.model_id)
        };
        assert_eq!(pick(all.clone()).as_deref(), Some("Chat-Default"));
        assert_eq!(pick(all[..2].to_vec()).as_deref(), Some("GPT-4o"));
        assert_eq!(
            pick(all[..1].to_vec()).as_deref(),
            Some("gpt-4o-2024-08-06")
        );
        assert_eq!(
            best_match(all[..1].to_vec(), "chat-default", "gpt-4o", None),
            None,
            "a catalog link counts only when the upstream model is that catalog model"
        );
        assert_eq!(pick(vec![entry("other", None)]), None);
    }
}
