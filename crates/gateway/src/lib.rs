//! The request path of modelplane: `/v1` in the OpenAI API, routed to cloud
//! providers and local engines, metered and guarded.
//!
//! Everything a request needs is in memory: keys (by token hash) and each
//! org's routes with their opened keys are cached for a few seconds and
//! dropped at once when this replica changes them; the upstreams' circuit
//! breakers live in [`health::Registry`]; usage leaves through
//! [`usage::UsageRecorder`]'s channel. So a request touches the database
//! only when a cache entry is cold.

mod cache;
mod client;
pub use client::{collect_bounded, Collected};
mod governance;
pub mod health;
mod limits;
mod probe;
pub mod providers;
mod proxy;
mod routing;
pub mod spin;
pub mod usage;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use http::HeaderMap;
use modelplane_domain::key::Scope;
use modelplane_service::auth::{self, Principal};
use modelplane_service::secrets::SecretBox;
use modelplane_service::ServiceError;
use modelplane_store::Store;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use cache::{Cached, Freshness};

pub use health::UpstreamSnapshot;
pub use modelplane_domain::usage::Endpoint;
pub use proxy::GatewayResponse;

/// One provider's configuration (`[providers.<slug>]`).
#[derive(Debug, Clone, Default)]
pub struct ProviderSettings {
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    /// The model a paid health probe asks (default: a small model of the provider).
    pub probe_model: Option<String>,
}

#[derive(Debug, Clone)]
pub struct GatewaySettings {
    pub providers: HashMap<String, ProviderSettings>,
    /// Where usage records spill when the database falls behind.
    pub spill_dir: PathBuf,
    /// How long a cached key or route table is trusted.
    pub cache_ttl: Duration,
    /// How often this replica adds its keys' token and spend counts to the
    /// shared counters and reads the other replicas' back.
    pub limits_sync: Duration,
    /// How long an org's provider model listing is served fresh.
    pub provider_models_ttl: Duration,
    /// How long a provider listing or probe may take.
    pub probe_timeout: Duration,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            providers: HashMap::new(),
            spill_dir: PathBuf::from("data"),
            cache_ttl: Duration::from_secs(5),
            limits_sync: Duration::from_millis(200),
            provider_models_ttl: Duration::from_secs(60),
            probe_timeout: Duration::from_secs(10),
        }
    }
}

/// The gateway. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    secrets: SecretBox,
    settings: GatewaySettings,
    /// For provider listings and free probes (admin calls, not `/v1`),
    /// built on first use.
    client: std::sync::OnceLock<reqwest::Client>,
    /// The upstream client of threads without their own, built on first use.
    upstream: std::sync::OnceLock<client::UpstreamClient>,
    /// Keys by token hash.
    keys: cache::CacheMap<String, Arc<Principal>>,
    routes: routing::RouteCache,
    health: health::Registry,
    usage: usage::UsageRecorder,
    limiter: Arc<limits::Limiter>,
    catalog_cache: governance::CatalogCacheCell,
    listings: providers::ListingCache,
    /// Stops the background tasks (the limits' sync).
    stop: CancellationToken,
    tasks: TaskTracker,
}

thread_local! {
    /// Whether this thread is an event loop's, with an upstream client of
    /// its own (see [`Gateway::use_own_client`]).
    static OWNS_CLIENT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// That client, built on the thread's first upstream request (a client
    /// holds the TLS roots: about a megabyte an idle server need not hold).
    static OWN_CLIENT: std::cell::OnceCell<client::UpstreamClient> = const { std::cell::OnceCell::new() };
}

/// The HTTP client for provider listings and free probes.
fn admin_client() -> reqwest::Client {
    reqwest::Client::builder()
        // A proxy passes redirects back rather than following them.
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1024)
        .pool_idle_timeout(Duration::from_secs(90))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default()
}

/// Keys cached at most; past this the cache starts over.
const KEY_CACHE_MAX: usize = 100_000;

impl Gateway {
    /// Builds the gateway and starts its usage writer (needs a Tokio runtime).
    pub fn start(store: Store, secrets: SecretBox, settings: GatewaySettings) -> Gateway {
        let usage = usage::UsageRecorder::start(store.clone(), settings.spill_dir.clone());
        let limiter = Arc::new(limits::Limiter::new(store.clone(), settings.limits_sync));
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(limiter.clone().run(stop.clone()));
        Gateway {
            inner: Arc::new(Inner {
                store,
                secrets,
                client: std::sync::OnceLock::new(),
                upstream: std::sync::OnceLock::new(),
                keys: RwLock::new(HashMap::new()),
                routes: routing::RouteCache::default(),
                health: health::Registry::default(),
                usage,
                limiter,
                catalog_cache: governance::CatalogCacheCell::default(),
                listings: providers::ListingCache::default(),
                stop,
                tasks,
                settings,
            }),
        }
    }

    /// Gives the calling thread an upstream client of its own. Called by
    /// each event loop's thread (a current-thread runtime): the pooled
    /// upstream connections a request there opens are then driven by that
    /// same loop, so relaying an answer never wakes another thread.
    pub fn use_own_client(&self) {
        OWNS_CLIENT.with(|owns| owns.set(true));
    }

    /// The calling thread's own upstream client, else the shared one.
    fn upstream_client(&self) -> client::UpstreamClient {
        if OWNS_CLIENT.with(std::cell::Cell::get) {
            OWN_CLIENT.with(|c| {
                c.get_or_init(client::UpstreamClient::for_event_loop)
                    .clone()
            })
        } else {
            self.inner
                .upstream
                .get_or_init(client::UpstreamClient::new)
                .clone()
        }
    }

    /// The client for provider listings and free probes.
    fn admin_client(&self) -> &reqwest::Client {
        self.inner.client.get_or_init(admin_client)
    }

    pub fn secrets(&self) -> &SecretBox {
        &self.inner.secrets
    }

    /// Forgets an org's cached routes and keys after this replica changed them.
    pub fn forget_org(&self, org_id: Uuid) {
        self.inner.routes.forget(org_id);
    }

    /// Forgets an org's cached provider listings as well as its routes
    /// (after its provider keys changed here).
    pub fn forget_provider_keys(&self, org_id: Uuid) {
        self.inner.routes.forget(org_id);
        self.forget_listings(org_id);
    }

    /// Forgets every cached key (after a key was revoked or changed here).
    pub fn forget_keys(&self) {
        if let Ok(mut keys) = self.inner.keys.write() {
            keys.clear();
        }
    }

    /// Writes every queued usage record; call at shutdown.
    pub async fn shutdown(&self) {
        self.inner.stop.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        self.inner.usage.shutdown().await;
    }

    /// The caller of a `/v1` request, from `Authorization: Bearer` or
    /// `X-Api-Key`: a key with the `gateway` scope.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Principal>, ServiceError> {
        let token = bearer(headers).ok_or(ServiceError::Unauthorized)?;
        let hash = auth::hash_token(token);
        let principal = match cache::get(&self.inner.keys, &hash) {
            Some(entry) => match entry.check(self.inner.settings.cache_ttl, Instant::now()) {
                Freshness::Fresh => entry.value().clone(),
                Freshness::Reload => {
                    self.reload_key(token.to_owned(), hash, entry.clone());
                    entry.value().clone()
                }
                Freshness::Expired => self.load_key(token, hash).await?,
            },
            None => self.load_key(token, hash).await?,
        };
        if !principal.has(Scope::Gateway) {
            return Err(ServiceError::Forbidden(
                "this key lacks the gateway scope".into(),
            ));
        }
        Ok(principal)
    }

    /// Reads the key of `token` from the database and caches it.
    async fn load_key(&self, token: &str, hash: String) -> Result<Arc<Principal>, ServiceError> {
        let principal = Arc::new(auth::authenticate(&self.inner.store, token).await?);
        if let Ok(mut keys) = self.inner.keys.write() {
            if keys.len() >= KEY_CACHE_MAX {
                keys.clear();
            }
            keys.insert(hash, Arc::new(Cached::new(principal.clone())));
        }
        Ok(principal)
    }

    /// Reads the key of `token` again in the background and puts it in
    /// place of `old` (see [`cache`]); a key that no longer authenticates
    /// (revoked, expired) leaves the cache, so its next request is refused.
    fn reload_key(&self, token: String, hash: String, old: Arc<Cached<Arc<Principal>>>) {
        let gw = self.clone();
        self.inner.tasks.spawn(async move {
            let reloaded = match auth::authenticate(&gw.inner.store, &token).await {
                Ok(p) => Some(Arc::new(p)),
                Err(ServiceError::Unauthorized) => None,
                Err(e) => {
                    tracing::debug!(error = %e, "reloading a cached key failed; it expires as usual");
                    return;
                }
            };
            cache::replace(&gw.inner.keys, hash, &old, reloaded);
        });
    }

    /// Every upstream this replica knows, with its health, and which of the
    /// caller's routes use it.
    pub async fn upstreams(&self, org_id: Uuid) -> Result<Vec<UpstreamSnapshot>, ServiceError> {
        let table = self.inner.routes.table(self, org_id).await?;
        let mut by_upstream: HashMap<(String, String), Vec<String>> = HashMap::new();
        for route in table.routes.values() {
            for u in &route.upstreams {
                by_upstream
                    .entry((u.state.provider.clone(), u.state.base_url.clone()))
                    .or_default()
                    .push(route.name.clone());
            }
        }
        Ok(self
            .inner
            .health
            .all()
            .into_iter()
            .filter_map(|s| {
                let key = (s.provider.clone(), s.base_url.clone());
                by_upstream.remove(&key).map(|mut models| {
                    models.sort();
                    models.dedup();
                    s.snapshot(models)
                })
            })
            .collect())
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(http::header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        let (scheme, token) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

impl Gateway {
    /// `GET /v1/models`: the route names the caller's org serves, in
    /// OpenAI's list shape.
    pub async fn list_models(&self, headers: &HeaderMap) -> GatewayResponse {
        let principal = match self.authenticate(headers).await {
            Ok(p) => p,
            Err(e) => return proxy::service_error_response(&e),
        };
        let table = match self.inner.routes.table(self, principal.org_id).await {
            Ok(t) => t,
            Err(e) => return proxy::service_error_response(&e),
        };
        let mut names: Vec<String> = table
            .names()
            .into_iter()
            .filter(|n| principal.limits.allows_model(n))
            .map(str::to_owned)
            .collect();
        // Models a configured provider lists are callable by name too; only
        // a listing already fetched is shown (this call never waits on one).
        if let Some(listed) = self.cached_provider_models(principal.org_id) {
            for m in &listed.models {
                if !table.routes.contains_key(&m.id) && principal.limits.allows_model(&m.id) {
                    names.push(m.id.clone());
                }
            }
        }
        names.sort_unstable();
        names.dedup();
        let data: Vec<serde_json::Value> = names
            .into_iter()
            .map(|name| {
                serde_json::json!({
                    "id": name,
                    "object": "model",
                    "created": 0,
                    "owned_by": "modelplane",
                })
            })
            .collect();
        let body = serde_json::json!({ "object": "list", "data": data }).to_string();
        let mut resp = http::Response::new(axum::body::Body::from(body));
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        resp
    }

    /// An OpenAI-shaped error for the `/v1` layer's own refusals (unknown
    /// path, body too large, unreadable body).
    pub fn error(status: http::StatusCode, code: &str, message: &str) -> GatewayResponse {
        let kind = match status.as_u16() {
            401 => modelplane_wire::openai::ErrorType::Authentication,
            403 => modelplane_wire::openai::ErrorType::Permission,
            404 => modelplane_wire::openai::ErrorType::NotFound,
            429 => modelplane_wire::openai::ErrorType::RateLimit,
            s if s >= 500 => modelplane_wire::openai::ErrorType::Server,
            _ => modelplane_wire::openai::ErrorType::InvalidRequest,
        };
        proxy::error_response(status, kind, code, message)
    }
}

impl Gateway {
    /// `GET /api/v1/admin/upstreams` (admin): the caller's org's upstreams.
    pub async fn upstream_health(
        &self,
        p: &Principal,
    ) -> Result<Vec<UpstreamSnapshot>, ServiceError> {
        p.require(Scope::Admin)?;
        self.upstreams(p.org_id).await
    }

    /// `POST /api/v1/admin/upstreams/refresh-health` (admin).
    pub async fn probe_upstreams(
        &self,
        p: &Principal,
        paid: bool,
    ) -> Result<Vec<UpstreamSnapshot>, ServiceError> {
        p.require(Scope::Admin)?;
        self.refresh_health(p.org_id, paid).await
    }
}

/// Locks a mutex, also when a panic elsewhere poisoned it (the data is
/// counters and caches, still usable).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}
