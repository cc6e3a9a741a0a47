//! Each org's routes as the request path uses them: opened keys, resolved
//! base URLs and the upstreams' live state, cached per org.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use modelplane_domain::route::{provider, GatewayProvider, StoredRoute, DEFAULT_TIMEOUT_MS};
use modelplane_service::ServiceError;
use uuid::Uuid;

use crate::health::UpstreamState;
use crate::Gateway;

#[derive(Debug)]
pub(crate) struct LiveUpstream {
    pub provider: &'static GatewayProvider,
    pub model: String,
    pub base_url: String,
    /// How usage names it: `provider:base_url` (made once, not per request).
    pub label: String,
    pub api_key: Option<String>,
    pub weight: u32,
    pub priority: i32,
    pub state: Arc<UpstreamState>,
}

#[derive(Debug)]
pub(crate) struct LiveRoute {
    pub name: String,
    /// Whether a stored route (not a `provider/model` name) serves it.
    pub stored: bool,
    pub retries: u32,
    pub timeout: Duration,
    pub upstreams: Vec<LiveUpstream>,
}

/// One org's routes and provider keys.
#[derive(Debug)]
pub(crate) struct OrgTable {
    pub routes: HashMap<String, Arc<LiveRoute>>,
    /// Opened keys the org set per provider.
    provider_keys: HashMap<String, String>,
    loaded: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct RouteCache {
    orgs: RwLock<HashMap<Uuid, Arc<OrgTable>>>,
}

impl RouteCache {
    pub fn forget(&self, org_id: Uuid) {
        if let Ok(mut orgs) = self.orgs.write() {
            orgs.remove(&org_id);
        }
    }

    pub async fn table(&self, gw: &Gateway, org_id: Uuid) -> Result<Arc<OrgTable>, ServiceError> {
        let ttl = gw.inner.settings.cache_ttl;
        if let Ok(orgs) = self.orgs.read() {
            if let Some(t) = orgs.get(&org_id) {
                if t.loaded.elapsed() < ttl {
                    return Ok(t.clone());
                }
            }
        }
        let table = Arc::new(load(gw, org_id).await?);
        if let Ok(mut orgs) = self.orgs.write() {
            orgs.insert(org_id, table.clone());
        }
        Ok(table)
    }
}

/// The key an upstream of `provider` uses when it has none of its own: the
/// org's, else the configured one.
fn provider_key(gw: &Gateway, org_keys: &HashMap<String, String>, slug: &str) -> Option<String> {
    org_keys.get(slug).cloned().or_else(|| {
        gw.inner
            .settings
            .providers
            .get(slug)
            .and_then(|p| p.api_key.clone())
    })
}

/// The base URL of `provider` when an upstream gives none.
fn provider_base_url(gw: &Gateway, p: &GatewayProvider) -> Option<String> {
    gw.inner
        .settings
        .providers
        .get(p.slug)
        .and_then(|s| s.base_url.clone())
        .or_else(|| p.base_url.map(str::to_owned))
}

async fn load(gw: &Gateway, org_id: Uuid) -> Result<OrgTable, ServiceError> {
    let store = &gw.inner.store;
    let secrets = &gw.inner.secrets;
    let mut provider_keys = HashMap::new();
    for (slug, sealed) in store.provider_keys(org_id).await? {
        match secrets.open(&sealed) {
            Ok(key) => {
                provider_keys.insert(slug, key);
            }
            Err(e) => tracing::error!(provider = %slug, error = %e, "cannot open a provider key"),
        }
    }
    let mut routes = HashMap::new();
    for stored in store.list_routes(org_id).await? {
        let route = live_route(gw, &provider_keys, &stored);
        routes.insert(stored.name.clone(), Arc::new(route));
    }
    Ok(OrgTable {
        routes,
        provider_keys,
        loaded: Instant::now(),
    })
}

fn live_route(
    gw: &Gateway,
    provider_keys: &HashMap<String, String>,
    stored: &StoredRoute,
) -> LiveRoute {
    let upstreams = stored
        .upstreams
        .iter()
        .filter_map(|u| {
            let p = provider(&u.provider)?;
            let base_url = u.base_url.clone().or_else(|| provider_base_url(gw, p))?;
            let api_key = match &u.sealed_key {
                Some(sealed) => match gw.inner.secrets.open(sealed) {
                    Ok(k) => Some(k),
                    Err(e) => {
                        tracing::error!(route = %stored.name, error = %e, "cannot open an upstream key");
                        None
                    }
                },
                None => provider_key(gw, provider_keys, p.slug),
            };
            Some(LiveUpstream {
                provider: p,
                model: u.model.clone(),
                state: gw.inner.health.get(p.slug, &base_url),
                label: format!("{}:{base_url}", p.slug),
                base_url,
                api_key,
                weight: u.weight,
                priority: u.priority,
            })
        })
        .collect();
    LiveRoute {
        name: stored.name.clone(),
        stored: true,
        retries: stored.retries,
        timeout: Duration::from_millis(stored.timeout_ms),
        upstreams,
    }
}

impl OrgTable {
    /// The route serving `model`: a stored route of that name, else a
    /// `provider/model` name whose provider is usable (it has a key, or it
    /// is an engine with a configured base URL).
    pub fn resolve(&self, gw: &Gateway, model: &str) -> Option<Arc<LiveRoute>> {
        if let Some(r) = self.routes.get(model) {
            return Some(r.clone());
        }
        let (slug, upstream_model) = model.split_once('/')?;
        let p = provider(slug)?;
        let api_key = provider_key(gw, &self.provider_keys, p.slug);
        let configured_url = gw
            .inner
            .settings
            .providers
            .get(p.slug)
            .and_then(|s| s.base_url.clone());
        if api_key.is_none() && configured_url.is_none() {
            return None;
        }
        let base_url = configured_url.or_else(|| p.base_url.map(str::to_owned))?;
        if upstream_model.is_empty() {
            return None;
        }
        Some(Arc::new(LiveRoute {
            name: model.to_owned(),
            stored: false,
            retries: 1,
            timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
            upstreams: vec![LiveUpstream {
                provider: p,
                model: upstream_model.to_owned(),
                state: gw.inner.health.get(p.slug, &base_url),
                label: format!("{}:{base_url}", p.slug),
                base_url,
                api_key,
                weight: 1,
                priority: 0,
            }],
        }))
    }

    /// The model names a key of this org can call by route.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.routes.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}
