//! Each org's routes as the request path uses them: opened keys, resolved
//! base URLs and the upstreams' live state, cached per org.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use modelplane_domain::policy::PolicyRule;
use modelplane_domain::route::{provider, GatewayProvider, StoredRoute, DEFAULT_TIMEOUT_MS};
use modelplane_domain::usage::Endpoint;
use modelplane_service::ServiceError;
use uuid::Uuid;

use crate::cache::{self, CacheMap, Cached, Freshness};
use crate::governance::UpstreamFacts;
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
    /// What the model behind it is (catalog, inventory), looked up on first use.
    pub facts: tokio::sync::OnceCell<Arc<UpstreamFacts>>,
    /// Request URLs and the credential header, built once per route load
    /// rather than parsed and formatted on every request.
    pub targets: Targets,
}

impl LiveUpstream {
    /// Whether `other` sends the same model to the same place (in another
    /// load of the route table).
    fn same_target(&self, other: &LiveUpstream) -> bool {
        self.provider.slug == other.provider.slug
            && self.model == other.model
            && self.base_url == other.base_url
    }
}

/// An upstream's request URLs by endpoint, parsed when the route is loaded;
/// `None` where the base URL is not an absolute http(s) URL (an attempt
/// there fails, as one to an unreachable host does).
#[derive(Debug)]
pub(crate) struct Targets {
    chat: Option<http::Uri>,
    chat_stream: Option<http::Uri>,
    completions: Option<http::Uri>,
    embeddings: Option<http::Uri>,
    /// The credential header of the provider's wire format, marked sensitive.
    pub auth: Option<(http::HeaderName, http::HeaderValue)>,
}

impl Targets {
    fn new(p: &GatewayProvider, model: &str, base_url: &str, api_key: Option<&str>) -> Targets {
        use modelplane_domain::route::WireFormat;
        let url = |path: &str| request_uri(&format!("{base_url}{path}"));
        let (chat, chat_stream, completions, embeddings) = match p.wire {
            WireFormat::Openai => {
                let chat = url(Endpoint::ChatCompletions.path());
                (
                    chat.clone(),
                    chat,
                    url(Endpoint::Completions.path()),
                    url(Endpoint::Embeddings.path()),
                )
            }
            WireFormat::Anthropic => {
                let chat = url("/messages");
                (chat.clone(), chat, None, None)
            }
            WireFormat::Google => (
                url(&modelplane_wire::google::chat_path(model, false)),
                url(&modelplane_wire::google::chat_path(model, true)),
                None,
                None,
            ),
        };
        let auth = api_key.and_then(|key| {
            let (name, value) = match p.wire {
                WireFormat::Openai => (http::header::AUTHORIZATION, format!("Bearer {key}")),
                WireFormat::Anthropic => (http::HeaderName::from_static("x-api-key"), key.into()),
                WireFormat::Google => (http::HeaderName::from_static("x-goog-api-key"), key.into()),
            };
            let mut value = http::HeaderValue::try_from(value).ok()?;
            value.set_sensitive(true);
            Some((name, value))
        });
        Targets {
            chat,
            chat_stream,
            completions,
            embeddings,
            auth,
        }
    }

    /// The parsed URL of `endpoint` (`stream` picks Gemini's streaming method).
    pub fn url(&self, endpoint: Endpoint, stream: bool) -> Option<http::Uri> {
        match endpoint {
            Endpoint::ChatCompletions if stream => self.chat_stream.clone(),
            Endpoint::ChatCompletions => self.chat.clone(),
            Endpoint::Completions => self.completions.clone(),
            Endpoint::Embeddings => self.embeddings.clone(),
        }
    }
}

/// An absolute `http`/`https` URL as a request URI. It goes through the URL
/// standard's parser first, which normalizes it (IDNA hosts, percent
/// encoding) as a browser or reqwest would.
pub(crate) fn request_uri(url: &str) -> Option<http::Uri> {
    let parsed = reqwest::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return None;
    }
    parsed.as_str().parse().ok()
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

/// Routes made for names without a stored route, kept per table.
const ADHOC_MAX: usize = 10_000;

/// One org's routes, provider keys and policy.
#[derive(Debug)]
pub(crate) struct OrgTable {
    pub routes: HashMap<String, Arc<LiveRoute>>,
    /// Opened keys the org set per provider.
    provider_keys: HashMap<String, String>,
    /// The org's policy rules, in order.
    pub policy: Vec<PolicyRule>,
    /// `provider/model` and provider-listed names routed so far.
    adhoc: Mutex<HashMap<String, Arc<LiveRoute>>>,
}

#[derive(Debug, Default)]
pub(crate) struct RouteCache {
    orgs: CacheMap<Uuid, Arc<OrgTable>>,
}

impl RouteCache {
    pub fn forget(&self, org_id: Uuid) {
        if let Ok(mut orgs) = self.orgs.write() {
            orgs.remove(&org_id);
        }
    }

    pub async fn table(&self, gw: &Gateway, org_id: Uuid) -> Result<Arc<OrgTable>, ServiceError> {
        if let Some(entry) = cache::get(&self.orgs, &org_id) {
            match entry.check(gw.inner.settings.cache_ttl, Instant::now()) {
                Freshness::Fresh => return Ok(entry.value().clone()),
                Freshness::Reload => {
                    let table = entry.value().clone();
                    spawn_reload(gw, org_id, entry);
                    return Ok(table);
                }
                Freshness::Expired => {}
            }
        }
        let table = Arc::new(load(gw, org_id).await?);
        if let Ok(mut orgs) = self.orgs.write() {
            orgs.insert(org_id, Arc::new(Cached::new(table.clone())));
        }
        Ok(table)
    }
}

/// Starts [`reload`]. A function of its own: a reload may look up a
/// listed model, which reads the table (`providers`), so the table's
/// future cannot be asked whether a reload's future is `Send`.
fn spawn_reload(gw: &Gateway, org_id: Uuid, old: Arc<Cached<Arc<OrgTable>>>) {
    gw.inner.tasks.spawn(reload(gw.clone(), org_id, old));
}

/// Loads the org's table again in the background, readies what requests
/// used in the table it replaces, and puts it in place of `old` (see
/// [`crate::cache`]).
async fn reload(gw: Gateway, org_id: Uuid, old: Arc<Cached<Arc<OrgTable>>>) {
    let table = match load(&gw, org_id).await {
        Ok(t) => t,
        Err(e) => {
            tracing::debug!(error = %e, %org_id, "reloading a route table failed; it expires as usual");
            return;
        }
    };
    table.warm(&gw, org_id, old.value()).await;
    cache::replace(&gw.inner.routes.orgs, org_id, &old, Some(Arc::new(table)));
}

/// Computes the facts of those upstreams of `route` that requests were sent
/// to in `before`, the route's previous load.
async fn warm_facts(gw: &Gateway, org_id: Uuid, route: &LiveRoute, before: &LiveRoute) {
    for u in &route.upstreams {
        if before
            .upstreams
            .iter()
            .any(|b| b.same_target(u) && b.facts.initialized())
        {
            gw.facts(org_id, &route.name, u).await;
        }
    }
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
    let mut table = OrgTable {
        routes: HashMap::new(),
        provider_keys,
        policy: store
            .get_policy(org_id)
            .await?
            .map(|p| p.rules)
            .unwrap_or_default(),
        adhoc: Mutex::new(HashMap::new()),
    };
    for stored in store.list_routes(org_id).await? {
        let route = live_route(gw, &table, &stored);
        table.routes.insert(stored.name.clone(), Arc::new(route));
    }
    Ok(table)
}

impl Gateway {
    pub(crate) fn live_upstream(
        &self,
        p: &'static GatewayProvider,
        model: &str,
        base_url: String,
        api_key: Option<String>,
        weight: u32,
        priority: i32,
    ) -> LiveUpstream {
        LiveUpstream {
            targets: Targets::new(p, model, &base_url, api_key.as_deref()),
            provider: p,
            model: model.to_owned(),
            state: self.inner.health.get(p.slug, &base_url),
            label: format!("{}:{base_url}", p.slug),
            base_url,
            api_key,
            weight,
            priority,
            facts: tokio::sync::OnceCell::new(),
        }
    }
}

fn live_route(gw: &Gateway, table: &OrgTable, stored: &StoredRoute) -> LiveRoute {
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
                None => table.provider_key(gw, p.slug),
            };
            Some(gw.live_upstream(p, &u.model, base_url, api_key, u.weight, u.priority))
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
    /// The key an upstream of `provider` uses when it has none of its own:
    /// the org's, else the configured one.
    pub fn provider_key(&self, gw: &Gateway, slug: &str) -> Option<String> {
        self.provider_keys.get(slug).cloned().or_else(|| {
            gw.inner
                .settings
                .providers
                .get(slug)
                .and_then(|p| p.api_key.clone())
        })
    }

    pub fn has_org_key(&self, slug: &str) -> bool {
        self.provider_keys.contains_key(slug)
    }

    /// The route serving `model`: a stored route of that name, else a
    /// `provider/model` name whose provider is usable (it has a key, or it
    /// is an engine with a configured base URL), else the configured
    /// provider whose listing has the model.
    pub async fn resolve(&self, gw: &Gateway, org_id: Uuid, model: &str) -> Option<Arc<LiveRoute>> {
        if let Some(r) = self.routes.get(model) {
            return Some(r.clone());
        }
        if let Some(r) = crate::lock(&self.adhoc).get(model) {
            return Some(r.clone());
        }
        let upstream = match model.split_once('/') {
            Some((slug, upstream_model))
                if !upstream_model.is_empty() && provider(slug).is_some() =>
            {
                let p = provider(slug)?;
                let (base_url, api_key) = gw.provider_access(self, p)?;
                Some(gw.live_upstream(p, upstream_model, base_url, api_key, 1, 0))
            }
            _ => None,
        };
        let upstream = match upstream {
            Some(u) => u,
            None => gw.listed_upstream(self, org_id, model).await?,
        };
        let route = Arc::new(LiveRoute {
            name: model.to_owned(),
            stored: false,
            retries: 1,
            timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
            upstreams: vec![upstream],
        });
        let mut adhoc = crate::lock(&self.adhoc);
        if adhoc.len() >= ADHOC_MAX {
            adhoc.clear();
        }
        adhoc.insert(model.to_owned(), route.clone());
        Some(route)
    }

    /// Readies what requests used in `old`, the table this one replaces:
    /// the facts of the upstreams they were sent to (policies and prices)
    /// and the ad hoc routes they named, so that no request waits for them
    /// once this table is in use.
    async fn warm(&self, gw: &Gateway, org_id: Uuid, old: &OrgTable) {
        for (name, route) in &self.routes {
            if let Some(before) = old.routes.get(name) {
                warm_facts(gw, org_id, route, before).await;
            }
        }
        let used: Vec<Arc<LiveRoute>> = crate::lock(&old.adhoc).values().cloned().collect();
        for before in used {
            if let Some(route) = self.resolve(gw, org_id, &before.name).await {
                warm_facts(gw, org_id, &route, &before).await;
            }
        }
    }

    /// The model names a key of this org can call by route.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.routes.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}
