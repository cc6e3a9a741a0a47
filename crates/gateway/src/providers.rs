//! Cloud providers as an org's admins see them: which are configured (a
//! key of the org's own or the platform's, or an engine's base URL), the
//! models they list (cached a minute per org, a stale list served at once
//! while a fresh one is fetched), their health, and the availability of
//! single models.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use modelplane_domain::key::Scope;
use modelplane_domain::route::{GatewayProvider, WireFormat, PROVIDERS};
use modelplane_domain::usage::Endpoint;
use modelplane_service::auth::Principal;
use modelplane_service::ServiceError;
use modelplane_wire::openai::RequestHead;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::proxy::Unsendable;
use crate::routing::{LiveUpstream, OrgTable};
use crate::Gateway;

/// Pages of one provider's listing read at most.
const LISTING_PAGES_MAX: usize = 20;
/// The most of a one-token chat's answer a probe reads.
const PROBE_ANSWER_MAX: usize = 1024 * 1024;
/// Models probed per `provider-model-status` call.
pub const MODEL_STATUS_MAX: usize = 20;

/// Where a provider's key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    /// Set by the org through the API (sealed in the database).
    Org,
    /// From the server's configuration (`[providers.<slug>]`).
    Config,
}

/// One provider as listed (the key itself is never shown).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProviderInfo {
    pub provider: String,
    pub name: String,
    /// `openai` (OpenAI-compatible), `anthropic` or `google`.
    pub wire: WireFormat,
    /// Whether the gateway can route to it: it has a key, or it is an
    /// engine with a configured base URL.
    pub configured: bool,
    pub key_source: Option<KeySource>,
    pub base_url: Option<String>,
}

/// A model a provider lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ProviderModel {
    pub id: String,
    pub name: String,
    pub provider: String,
}

/// How one provider's listing went.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ListingStatus {
    pub provider: String,
    /// `ok`, or the probe status of the failure (`unreachable`, `error_401`, …).
    pub status: String,
    pub models: usize,
    pub detail: String,
}

/// Every configured provider's models.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProviderModels {
    pub models: Vec<ProviderModel>,
    pub providers: Vec<ListingStatus>,
    pub fetched_at: DateTime<Utc>,
    /// The list is older than a minute; a fresh one is being fetched.
    pub stale: bool,
}

/// One provider's health.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProviderHealth {
    pub provider: String,
    /// `up`, `rate_limited`, `overloaded`, `timeout`, `unreachable` or `error_<code>`.
    pub status: String,
    pub latency_ms: Option<u64>,
    pub detail: String,
}

/// One model's availability.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModelStatus {
    pub model: String,
    pub provider: Option<String>,
    /// `up`, `rate_limited`, `not_found`, `unavailable`, `timeout` or `error`.
    pub status: String,
    pub latency_ms: Option<u64>,
    pub detail: String,
}

#[derive(Debug)]
struct Cached {
    list: Arc<ProviderModels>,
    at: Instant,
    refreshing: bool,
}

/// Provider listings per org.
#[derive(Debug, Default)]
pub(crate) struct ListingCache {
    orgs: Mutex<HashMap<Uuid, Cached>>,
}

/// The probe status of an HTTP answer (`provider-health`'s vocabulary).
pub fn health_status(status: u16) -> String {
    match status {
        200..=299 => "up".to_owned(),
        429 => "rate_limited".to_owned(),
        503 | 529 => "overloaded".to_owned(),
        s => format!("error_{s}"),
    }
}

/// The availability of a model from an HTTP answer (`provider-model-status`'s vocabulary).
pub fn model_status(status: u16) -> &'static str {
    match status {
        200..=299 => "up",
        429 => "rate_limited",
        404 => "not_found",
        502..=504 | 529 => "unavailable",
        _ => "error",
    }
}

/// The models of a listing body, in each wire format's shape.
fn parse_listing(wire: WireFormat, slug: &str, body: &Value) -> Vec<ProviderModel> {
    let (items, id_key, name_key) = match wire {
        WireFormat::Openai => (body.get("data"), "id", "name"),
        WireFormat::Anthropic => (body.get("data"), "id", "display_name"),
        WireFormat::Google => (body.get("models"), "name", "displayName"),
    };
    items
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|m| {
                    let id = m.get(id_key)?.as_str()?;
                    let id = id.strip_prefix("models/").unwrap_or(id);
                    if id.is_empty() || id.len() > 300 {
                        return None;
                    }
                    let name = m
                        .get(name_key)
                        .and_then(Value::as_str)
                        .unwrap_or(id)
                        .to_owned();
                    Some(ProviderModel {
                        id: id.to_owned(),
                        name,
                        provider: slug.to_owned(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The next page's query of a listing, if it says there is one.
fn next_page(wire: WireFormat, body: &Value) -> Option<(&'static str, String)> {
    match wire {
        WireFormat::Openai => None,
        WireFormat::Anthropic => {
            if body.get("has_more").and_then(Value::as_bool) == Some(true) {
                let last = body.get("last_id")?.as_str()?;
                Some(("after_id", last.to_owned()))
            } else {
                None
            }
        }
        WireFormat::Google => body
            .get("nextPageToken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(|t| ("pageToken", t.to_owned())),
    }
}

/// A short readable reason from an error answer.
fn detail_of(body: &[u8]) -> String {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    let msg = v
        .as_ref()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("message"))
                .or_else(|| v.get("error"))
        })
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    msg.chars().take(300).collect()
}

fn elapsed_ms(started: Instant) -> Option<u64> {
    u64::try_from(started.elapsed().as_millis()).ok()
}

impl Gateway {
    /// `provider/model` upstream for a configured provider, as the table would route it.
    fn provider_upstream(
        &self,
        table: &OrgTable,
        p: &'static GatewayProvider,
        model: &str,
    ) -> Option<LiveUpstream> {
        let (base_url, api_key) = self.provider_access(table, p)?;
        Some(self.live_upstream(p, model, base_url, api_key, 1, 0))
    }

    /// The base URL and key the gateway reaches `p` with, when it is configured.
    pub(crate) fn provider_access(
        &self,
        table: &OrgTable,
        p: &GatewayProvider,
    ) -> Option<(String, Option<String>)> {
        let api_key = table.provider_key(self, p.slug);
        let configured_url = self
            .inner
            .settings
            .providers
            .get(p.slug)
            .and_then(|s| s.base_url.clone());
        if api_key.is_none() && configured_url.is_none() {
            return None;
        }
        let base_url = configured_url.or_else(|| p.base_url.map(str::to_owned))?;
        Some((base_url, api_key))
    }

    /// Every provider the gateway knows, and whether this org can use it.
    pub async fn providers(&self, p: &Principal) -> Result<Vec<ProviderInfo>, ServiceError> {
        p.require(Scope::Admin)?;
        let table = self.inner.routes.table(self, p.org_id).await?;
        Ok(PROVIDERS
            .iter()
            .map(|provider| {
                let p = provider;
                let key_source = if table.has_org_key(p.slug) {
                    Some(KeySource::Org)
                } else if self
                    .inner
                    .settings
                    .providers
                    .get(p.slug)
                    .is_some_and(|s| s.api_key.is_some())
                {
                    Some(KeySource::Config)
                } else {
                    None
                };
                let access = self.provider_access(&table, p);
                ProviderInfo {
                    provider: p.slug.to_owned(),
                    name: p.name.to_owned(),
                    wire: p.wire,
                    configured: access.is_some(),
                    key_source,
                    base_url: access
                        .map(|(u, _)| u)
                        .or_else(|| p.base_url.map(str::to_owned)),
                }
            })
            .collect())
    }

    fn configured_upstreams(&self, table: &OrgTable) -> Vec<LiveUpstream> {
        PROVIDERS
            .iter()
            .filter_map(|p| self.provider_upstream(table, p, ""))
            .collect()
    }

    /// One provider's listing, every page.
    async fn list_provider(
        &self,
        u: &LiveUpstream,
    ) -> Result<Vec<ProviderModel>, (String, String)> {
        let mut out = Vec::new();
        let mut page: Option<(&'static str, String)> = None;
        for _ in 0..LISTING_PAGES_MAX {
            let mut req = self.admin_client().get(format!("{}/models", u.base_url));
            req = match u.provider.wire {
                WireFormat::Anthropic => req.query(&[("limit", "1000")]),
                WireFormat::Google => req.query(&[("pageSize", "1000")]),
                WireFormat::Openai => req,
            };
            if let Some((k, v)) = &page {
                req = req.query(&[(*k, v.as_str())]);
            }
            req = self.authorize(req, u);
            let resp =
                match tokio::time::timeout(self.inner.settings.probe_timeout, req.send()).await {
                    Err(_) => {
                        return Err((
                            "timeout".into(),
                            "the listing did not answer in time".into(),
                        ))
                    }
                    Ok(Err(e)) => return Err(("unreachable".into(), e.to_string())),
                    Ok(Ok(r)) => r,
                };
            let status = resp.status().as_u16();
            let body = tokio::time::timeout(self.inner.settings.probe_timeout, resp.bytes())
                .await
                .map_err(|_| ("timeout".to_owned(), "the listing broke off".to_owned()))?
                .map_err(|e| ("unreachable".to_owned(), e.to_string()))?;
            if !(200..300).contains(&status) {
                return Err((health_status(status), detail_of(&body)));
            }
            let v: Value = serde_json::from_slice(&body)
                .map_err(|e| ("error_invalid_json".to_owned(), e.to_string()))?;
            out.extend(parse_listing(u.provider.wire, u.provider.slug, &v));
            page = next_page(u.provider.wire, &v);
            if page.is_none() {
                break;
            }
        }
        Ok(out)
    }

    fn authorize(&self, req: reqwest::RequestBuilder, u: &LiveUpstream) -> reqwest::RequestBuilder {
        match (&u.api_key, u.provider.wire) {
            (None, _) => req,
            (Some(k), WireFormat::Openai) => req.bearer_auth(k),
            (Some(k), WireFormat::Anthropic) => req
                .header("x-api-key", k)
                .header("anthropic-version", modelplane_wire::anthropic::API_VERSION),
            (Some(k), WireFormat::Google) => req.header("x-goog-api-key", k),
        }
    }

    async fn fetch_listings(&self, table: &OrgTable) -> ProviderModels {
        let upstreams = self.configured_upstreams(table);
        let results = join_all(upstreams.iter().map(|u| self.list_provider(u))).await;
        let mut models = Vec::new();
        let mut providers = Vec::new();
        for (u, r) in upstreams.iter().zip(results) {
            match r {
                Ok(list) => {
                    providers.push(ListingStatus {
                        provider: u.provider.slug.to_owned(),
                        status: "ok".into(),
                        models: list.len(),
                        detail: String::new(),
                    });
                    models.extend(list);
                }
                Err((status, detail)) => providers.push(ListingStatus {
                    provider: u.provider.slug.to_owned(),
                    status,
                    models: 0,
                    detail,
                }),
            }
        }
        models.sort_by(|a, b| (&a.provider, &a.id).cmp(&(&b.provider, &b.id)));
        models.dedup();
        ProviderModels {
            models,
            providers,
            fetched_at: Utc::now(),
            stale: false,
        }
    }

    /// Every configured provider's models: fresh for a minute, then served
    /// stale at once while one fetch refreshes it in the background.
    pub async fn provider_models(
        &self,
        p: &Principal,
    ) -> Result<Arc<ProviderModels>, ServiceError> {
        p.require(Scope::Admin)?;
        self.listing(p.org_id).await
    }

    pub(crate) async fn listing(&self, org_id: Uuid) -> Result<Arc<ProviderModels>, ServiceError> {
        let table = self.inner.routes.table(self, org_id).await?;
        let stale = {
            let mut orgs = crate::lock(&self.inner.listings.orgs);
            match orgs.get_mut(&org_id) {
                Some(c) if c.at.elapsed() < self.inner.settings.provider_models_ttl => {
                    return Ok(c.list.clone())
                }
                Some(c) => {
                    let start = !c.refreshing;
                    c.refreshing = true;
                    let mut list = (*c.list).clone();
                    list.stale = true;
                    Some((Arc::new(list), start))
                }
                None => None,
            }
        };
        match stale {
            Some((list, start)) => {
                if start {
                    let gw = self.clone();
                    let table = table.clone();
                    tokio::spawn(async move {
                        let fresh = Arc::new(gw.fetch_listings(&table).await);
                        let mut orgs = crate::lock(&gw.inner.listings.orgs);
                        orgs.insert(
                            org_id,
                            Cached {
                                list: fresh,
                                at: Instant::now(),
                                refreshing: false,
                            },
                        );
                    });
                }
                Ok(list)
            }
            None => {
                let fresh = Arc::new(self.fetch_listings(&table).await);
                let mut orgs = crate::lock(&self.inner.listings.orgs);
                orgs.insert(
                    org_id,
                    Cached {
                        list: fresh.clone(),
                        at: Instant::now(),
                        refreshing: false,
                    },
                );
                Ok(fresh)
            }
        }
    }

    /// The org's listing if one was fetched (fresh or stale), without fetching.
    pub(crate) fn cached_provider_models(&self, org_id: Uuid) -> Option<Arc<ProviderModels>> {
        crate::lock(&self.inner.listings.orgs)
            .get(&org_id)
            .map(|c| c.list.clone())
    }

    /// Forgets an org's listings (after its provider keys changed).
    pub(crate) fn forget_listings(&self, org_id: Uuid) {
        crate::lock(&self.inner.listings.orgs).remove(&org_id);
    }

    /// The configured provider that lists `model`, as a one-upstream route.
    pub(crate) async fn listed_upstream(
        &self,
        table: &OrgTable,
        org_id: Uuid,
        model: &str,
    ) -> Option<LiveUpstream> {
        let listing = self.listing(org_id).await.ok()?;
        let found = listing.models.iter().find(|m| m.id == model)?;
        let p = modelplane_domain::route::provider(&found.provider)?;
        self.provider_upstream(table, p, model)
    }

    /// Probes every configured provider at once. The default probe is free
    /// (the listing); `paid` sends a one-token chat with the provider's
    /// probe model instead.
    pub async fn provider_health(
        &self,
        p: &Principal,
        paid: bool,
    ) -> Result<Vec<ProviderHealth>, ServiceError> {
        p.require(Scope::Admin)?;
        let table = self.inner.routes.table(self, p.org_id).await?;
        let upstreams: Vec<LiveUpstream> = PROVIDERS
            .iter()
            .filter_map(|p| {
                let model = self.probe_model(p);
                self.provider_upstream(&table, p, &model)
            })
            .collect();
        let probes = upstreams.iter().map(|u| async move {
            let started = Instant::now();
            let (status, detail) = if paid {
                match self.one_token_chat(u).await {
                    Ok((s, body)) => (
                        health_status(s),
                        if (200..300).contains(&s) {
                            String::new()
                        } else {
                            detail_of(&body)
                        },
                    ),
                    Err(kind) => kind,
                }
            } else {
                match self.list_provider(u).await {
                    Ok(_) => ("up".to_owned(), String::new()),
                    Err(kind) => kind,
                }
            };
            ProviderHealth {
                provider: u.provider.slug.to_owned(),
                status,
                latency_ms: elapsed_ms(started),
                detail,
            }
        });
        Ok(join_all(probes).await)
    }

    /// The model a paid probe of `p` asks: `[providers.<slug>].probe_model`,
    /// else a small model of the provider.
    fn probe_model(&self, p: &GatewayProvider) -> String {
        if let Some(m) = self
            .inner
            .settings
            .providers
            .get(p.slug)
            .and_then(|s| s.probe_model.clone())
        {
            return m;
        }
        match p.slug {
            "openai" => "gpt-4o-mini",
            "anthropic" => "claude-3-5-haiku-latest",
            "google" => "gemini-2.0-flash",
            "mistral" => "mistral-small-latest",
            "xai" => "grok-3-mini",
            "deepseek" => "deepseek-chat",
            "groq" => "llama-3.1-8b-instant",
            "together" => "meta-llama/Llama-3.2-3B-Instruct-Turbo",
            "fireworks" => "accounts/fireworks/models/llama-v3p1-8b-instruct",
            "deepinfra" => "meta-llama/Meta-Llama-3.1-8B-Instruct",
            "cerebras" => "llama3.1-8b",
            "sambanova" => "Meta-Llama-3.1-8B-Instruct",
            "nvidia" => "meta/llama-3.1-8b-instruct",
            "moonshot" => "moonshot-v1-8k",
            "openrouter" => "openrouter/auto",
            _ => "default",
        }
        .to_owned()
    }

    /// A `max_tokens: 1` chat to `u` in its wire format: the answer's status
    /// and body, or the failure as (status, detail).
    async fn one_token_chat(
        &self,
        u: &LiveUpstream,
    ) -> Result<(u16, bytes::Bytes), (String, String)> {
        let body = serde_json::json!({
            "model": u.model,
            "max_tokens": 1,
            "messages": [{"role": "user", "content": "ping"}],
        })
        .to_string();
        let body = bytes::Bytes::from(body);
        let head = RequestHead::parse(&body).map_err(|e| ("error".to_owned(), e.to_string()))?;
        let req = self
            .build_request(u, Endpoint::ChatCompletions, &head, &body)
            .map_err(|e| match e {
                Unsendable::Refused(r) => ("error".to_owned(), r.message),
                Unsendable::BadUrl(msg) => ("unreachable".to_owned(), msg),
            })?;
        let client = self.upstream_client();
        let resp =
            match tokio::time::timeout(self.inner.settings.probe_timeout, client.send(req)).await {
                Err(_) => return Err(("timeout".into(), "no answer in time".into())),
                Ok(Err(e)) => return Err(("unreachable".into(), e.to_string())),
                Ok(Ok(r)) => r,
            };
        let status = resp.status().as_u16();
        let read = crate::client::read_bounded(resp, PROBE_ANSWER_MAX);
        let body = tokio::time::timeout(self.inner.settings.probe_timeout, read)
            .await
            .map_err(|_| ("timeout".to_owned(), "the answer broke off".to_owned()))?
            .unwrap_or_default();
        Ok((status, body))
    }

    /// Probes up to 20 model names, each where a request for it would go
    /// (its route's first upstream, its `provider/model` provider, or the
    /// configured provider that lists it), with a one-token chat.
    pub async fn model_status(
        &self,
        p: &Principal,
        models: &[String],
    ) -> Result<Vec<ModelStatus>, ServiceError> {
        p.require(Scope::Admin)?;
        if models.is_empty() || models.len() > MODEL_STATUS_MAX {
            return Err(modelplane_domain::ValidationError::new(
                "models",
                format!("give 1 to {MODEL_STATUS_MAX} model ids"),
            )
            .into());
        }
        if let Some(i) = models
            .iter()
            .position(|m| m.trim().is_empty() || m.len() > 300)
        {
            return Err(modelplane_domain::ValidationError::new(
                format!("models[{i}]"),
                "must be a model id of 1 to 300 characters",
            )
            .into());
        }
        let org_id = p.org_id;
        let table = self.inner.routes.table(self, org_id).await?;
        let probes = models.iter().map(|name| {
            let table = table.clone();
            async move {
                let Some(route) = table.resolve(self, org_id, name).await else {
                    return ModelStatus {
                        model: name.clone(),
                        provider: None,
                        status: "not_found".into(),
                        latency_ms: None,
                        detail: "no route, provider prefix or configured provider listing serves this model".into(),
                    };
                };
                let Some(u) = route.upstreams.first() else {
                    return ModelStatus {
                        model: name.clone(),
                        provider: None,
                        status: "unavailable".into(),
                        latency_ms: None,
                        detail: "the route has no usable upstream".into(),
                    };
                };
                let started = Instant::now();
                let (status, detail) = match self.one_token_chat(u).await {
                    Ok((s, body)) => (
                        model_status(s).to_owned(),
                        if (200..300).contains(&s) { String::new() } else { detail_of(&body) },
                    ),
                    Err((kind, detail)) => (
                        if kind == "timeout" { "timeout".to_owned() } else if kind == "unreachable" { "unavailable".to_owned() } else { "error".to_owned() },
                        detail,
                    ),
                };
                ModelStatus {
                    model: name.clone(),
                    provider: Some(u.provider.slug.to_owned()),
                    status,
                    latency_ms: elapsed_ms(started),
                    detail,
                }
            }
        });
        Ok(join_all(probes).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn probe_answers_map_to_the_seeds_statuses() {
        // (HTTP status, provider-health, provider-model-status)
        let table = [
            (200, "up", "up"),
            (429, "rate_limited", "rate_limited"),
            (503, "overloaded", "unavailable"),
            (529, "overloaded", "unavailable"),
            (404, "error_404", "not_found"),
            (401, "error_401", "error"),
            (500, "error_500", "error"),
            (502, "error_502", "unavailable"),
        ];
        for (status, health, model) in table {
            assert_eq!(health_status(status), health, "{status}");
            assert_eq!(model_status(status), model, "{status}");
        }
    }

    #[test]
    fn listings_are_read_in_each_wire_format_with_their_paging() {
        let openai = json!({"object": "list", "data": [{"id": "gpt-4o", "object": "model"}, {"id": ""}, {"x": 1}]});
        let got = parse_listing(WireFormat::Openai, "openai", &openai);
        assert_eq!(
            got,
            vec![ProviderModel {
                id: "gpt-4o".into(),
                name: "gpt-4o".into(),
                provider: "openai".into()
            }]
        );
        assert_eq!(next_page(WireFormat::Openai, &openai), None);

        let anthropic = json!({"data": [{"id": "claude-sonnet-4-5", "display_name": "Claude Sonnet 4.5", "type": "model"}],
                               "has_more": true, "first_id": "claude-sonnet-4-5", "last_id": "claude-sonnet-4-5"});
        let got = parse_listing(WireFormat::Anthropic, "anthropic", &anthropic);
        assert_eq!(got[0].name, "Claude Sonnet 4.5");
        assert_eq!(
            next_page(WireFormat::Anthropic, &anthropic),
            Some(("after_id", "claude-sonnet-4-5".into()))
        );

        let google = json!({"models": [{"name": "models/gemini-2.0-flash", "displayName": "Gemini 2.0 Flash"}], "nextPageToken": "abc"});
        let got = parse_listing(WireFormat::Google, "google", &google);
        assert_eq!(got[0].id, "gemini-2.0-flash");
        assert_eq!(
            next_page(WireFormat::Google, &google),
            Some(("pageToken", "abc".into()))
        );
        assert_eq!(
            next_page(
                WireFormat::Google,
                &json!({"models": [], "nextPageToken": ""})
            ),
            None
        );
        assert!(parse_listing(WireFormat::Openai, "x", &json!({"data": "nope"})).is_empty());
    }

    #[test]
    fn error_details_come_from_any_common_error_shape() {
        assert_eq!(
            detail_of(br#"{"error": {"message": "bad key"}}"#),
            "bad key"
        );
        assert_eq!(detail_of(br#"{"message": "slow down"}"#), "slow down");
        assert_eq!(detail_of(br#"{"error": "nope"}"#), "nope");
        assert_eq!(detail_of(b"plain text"), "plain text");
    }
}
