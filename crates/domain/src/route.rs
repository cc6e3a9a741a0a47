//! Gateway routes: a public model name an org's applications call, and the
//! upstreams that serve it, tried in priority order with weights inside a
//! priority. Also the table of providers the gateway knows.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::required_text;
use crate::patch::Patch;
use crate::ValidationError;

pub const NAME_MAX: usize = 200;
pub const UPSTREAMS_MAX: usize = 16;
pub const RETRIES_MAX: u32 = 5;
pub const TIMEOUT_MS_MIN: u64 = 100;
pub const TIMEOUT_MS_MAX: u64 = 600_000;
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
pub const WEIGHT_MAX: u32 = 1_000;
pub const API_KEY_MAX: usize = 1_000;

/// How the gateway speaks to an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WireFormat {
    /// The OpenAI API: bodies and stream chunks pass through unchanged.
    Openai,
    /// Anthropic's Messages API, translated both ways.
    Anthropic,
    /// Google's Gemini API, translated both ways.
    Google,
}

/// A provider the gateway can route to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayProvider {
    pub slug: &'static str,
    pub name: &'static str,
    pub wire: WireFormat,
    /// Where it is reached by default; `None` for engines that run wherever
    /// the operator put them (their upstreams must give `base_url`).
    pub base_url: Option<&'static str>,
}

const fn p(
    slug: &'static str,
    name: &'static str,
    wire: WireFormat,
    base_url: Option<&'static str>,
) -> GatewayProvider {
    GatewayProvider {
        slug,
        name,
        wire,
        base_url,
    }
}

/// Every provider the gateway knows. OpenAI-compatible base URLs end in
/// `/v1` (or the provider's equivalent), as the OpenAI SDK expects.
pub const PROVIDERS: &[GatewayProvider] = &[
    p(
        "openai",
        "OpenAI",
        WireFormat::Openai,
        Some("https://api.openai.com/v1"),
    ),
    p(
        "anthropic",
        "Anthropic",
        WireFormat::Anthropic,
        Some("https://api.anthropic.com/v1"),
    ),
    p(
        "google",
        "Google Gemini",
        WireFormat::Google,
        Some("https://generativelanguage.googleapis.com/v1beta"),
    ),
    p(
        "mistral",
        "Mistral",
        WireFormat::Openai,
        Some("https://api.mistral.ai/v1"),
    ),
    p(
        "xai",
        "xAI",
        WireFormat::Openai,
        Some("https://api.x.ai/v1"),
    ),
    p(
        "deepseek",
        "DeepSeek",
        WireFormat::Openai,
        Some("https://api.deepseek.com/v1"),
    ),
    p(
        "groq",
        "Groq",
        WireFormat::Openai,
        Some("https://api.groq.com/openai/v1"),
    ),
    p(
        "together",
        "Together AI",
        WireFormat::Openai,
        Some("https://api.together.xyz/v1"),
    ),
    p(
        "fireworks",
        "Fireworks",
        WireFormat::Openai,
        Some("https://api.fireworks.ai/inference/v1"),
    ),
    p(
        "deepinfra",
        "DeepInfra",
        WireFormat::Openai,
        Some("https://api.deepinfra.com/v1/openai"),
    ),
    p(
        "cerebras",
        "Cerebras",
        WireFormat::Openai,
        Some("https://api.cerebras.ai/v1"),
    ),
    p(
        "sambanova",
        "SambaNova",
        WireFormat::Openai,
        Some("https://api.sambanova.ai/v1"),
    ),
    p(
        "nvidia",
        "NVIDIA NIM",
        WireFormat::Openai,
        Some("https://integrate.api.nvidia.com/v1"),
    ),
    p(
        "moonshot",
        "Moonshot / Kimi",
        WireFormat::Openai,
        Some("https://api.moonshot.ai/v1"),
    ),
    p(
        "openrouter",
        "OpenRouter",
        WireFormat::Openai,
        Some("https://openrouter.ai/api/v1"),
    ),
    p("vllm", "vLLM", WireFormat::Openai, None),
    p("llamacpp", "llama.cpp server", WireFormat::Openai, None),
    p(
        "openai-compatible",
        "Any OpenAI-compatible URL",
        WireFormat::Openai,
        None,
    ),
];

pub fn provider(slug: &str) -> Option<&'static GatewayProvider> {
    PROVIDERS.iter().find(|p| p.slug == slug)
}

/// One upstream of a route, as shown: the key is never returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Upstream {
    /// A slug of [`PROVIDERS`]; picks the wire format.
    pub provider: String,
    /// The model id the upstream knows the model by.
    pub model: String,
    /// Default: the provider's configured base URL.
    pub base_url: Option<String>,
    /// Whether this upstream has its own key (else the provider's configured key is used).
    pub api_key_set: bool,
    pub weight: u32,
    pub priority: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Route {
    pub id: Uuid,
    pub org_id: Uuid,
    /// The model name clients send; unique within the org.
    pub name: String,
    pub upstreams: Vec<Upstream>,
    /// Further attempts after the first fails (connection error, timeout, 429, 5xx).
    pub retries: u32,
    /// Per attempt, until the answer's headers arrive.
    pub timeout_ms: u64,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An upstream as written by a client.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamInput {
    pub provider: String,
    pub model: String,
    #[serde(default)]
    pub base_url: Option<String>,
    /// Absent on an update: keep the key this upstream had (same position,
    /// provider and base URL); `null`: no own key.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub api_key: Patch<String>,
    #[serde(default)]
    pub weight: Option<u32>,
    #[serde(default)]
    pub priority: Option<i32>,
}

/// The body of a create, and of a replace (`PUT`).
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteInput {
    pub name: String,
    pub upstreams: Vec<UpstreamInput>,
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// On `PUT`: the version the change was based on; a stale one is refused with 409.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

/// A checked upstream; its key is still in clear here, the service seals it.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedUpstream {
    pub provider: String,
    pub model: String,
    pub base_url: Option<String>,
    pub api_key: Patch<String>,
    pub weight: u32,
    pub priority: i32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CheckedRoute {
    pub name: String,
    pub upstreams: Vec<CheckedUpstream>,
    pub retries: u32,
    pub timeout_ms: u64,
}

/// Route names are what clients put in `model`: visible ASCII without spaces.
pub fn check_name(name: &str) -> Result<String, ValidationError> {
    let name = required_text("name", name, NAME_MAX)?;
    if !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ValidationError::new(
            "name",
            "must be visible ASCII characters without spaces",
        ));
    }
    Ok(name)
}

/// An `http(s)://host[:port][/path]` URL without query, fragment or
/// credentials; a trailing `/` is dropped.
pub fn check_base_url(field: &str, url: &str) -> Result<String, ValidationError> {
    let url = url.trim();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| ValidationError::new(field, "must start with http:// or https://"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty()
        || url.len() > 2_000
        || url.contains(['?', '#', ' ', '\\'])
        || host.contains('@')
        || url.chars().any(char::is_control)
    {
        return Err(ValidationError::new(
            field,
            "must be an http(s) URL with a host and no query, fragment or credentials",
        ));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

impl RouteInput {
    pub fn check(self) -> Result<CheckedRoute, ValidationError> {
        let name = check_name(&self.name)?;
        if self.upstreams.is_empty() || self.upstreams.len() > UPSTREAMS_MAX {
            return Err(ValidationError::new(
                "upstreams",
                format!("must hold 1 to {UPSTREAMS_MAX} upstreams"),
            ));
        }
        let retries = self.retries.unwrap_or(1);
        if retries > RETRIES_MAX {
            return Err(ValidationError::new(
                "retries",
                format!("must be at most {RETRIES_MAX}"),
            ));
        }
        let timeout_ms = self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if !(TIMEOUT_MS_MIN..=TIMEOUT_MS_MAX).contains(&timeout_ms) {
            return Err(ValidationError::new(
                "timeout_ms",
                format!("must be between {TIMEOUT_MS_MIN} and {TIMEOUT_MS_MAX}"),
            ));
        }
        let mut upstreams = Vec::with_capacity(self.upstreams.len());
        for (i, u) in self.upstreams.into_iter().enumerate() {
            let field = |f: &str| format!("upstreams[{i}].{f}");
            let known = provider(&u.provider).ok_or_else(|| {
                ValidationError::new(
                    field("provider"),
                    format!(
                        "unknown provider; one of: {}",
                        PROVIDERS
                            .iter()
                            .map(|p| p.slug)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?;
            let model = required_text(&field("model"), &u.model, NAME_MAX)?;
            let base_url = u
                .base_url
                .as_deref()
                .map(|b| check_base_url(&field("base_url"), b))
                .transpose()?;
            if base_url.is_none() && known.base_url.is_none() {
                return Err(ValidationError::new(
                    field("base_url"),
                    format!("is required for provider {}", known.slug),
                ));
            }
            if let Patch::Value(key) = &u.api_key {
                if key.is_empty() || key.len() > API_KEY_MAX || key.chars().any(char::is_control) {
                    return Err(ValidationError::new(
                        field("api_key"),
                        format!("must be 1 to {API_KEY_MAX} characters without control characters"),
                    ));
                }
            }
            let weight = u.weight.unwrap_or(1);
            if weight > WEIGHT_MAX {
                return Err(ValidationError::new(
                    field("weight"),
                    format!("must be at most {WEIGHT_MAX}"),
                ));
            }
            upstreams.push(CheckedUpstream {
                provider: known.slug.to_owned(),
                model,
                base_url,
                api_key: u.api_key,
                weight,
                priority: u.priority.unwrap_or(0),
            });
        }
        if upstreams.iter().all(|u| u.weight == 0) {
            return Err(ValidationError::new(
                "upstreams",
                "at least one upstream needs a weight above 0",
            ));
        }
        Ok(CheckedRoute {
            name,
            upstreams,
            retries,
            timeout_ms,
        })
    }
}

/// An upstream as stored: its key sealed by the service's secret box.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredUpstream {
    pub provider: String,
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_key: Option<String>,
    pub weight: u32,
    pub priority: i32,
}

impl StoredUpstream {
    pub fn shown(&self) -> Upstream {
        Upstream {
            provider: self.provider.clone(),
            model: self.model.clone(),
            base_url: self.base_url.clone(),
            api_key_set: self.sealed_key.is_some(),
            weight: self.weight,
            priority: self.priority,
        }
    }

    /// Where requests go: its own base URL, else the provider's.
    pub fn effective_base_url<'a>(&'a self, configured: Option<&'a str>) -> Option<&'a str> {
        self.base_url.as_deref().or(configured)
    }
}

/// A route as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRoute {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub upstreams: Vec<StoredUpstream>,
    pub retries: u32,
    pub timeout_ms: u64,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl StoredRoute {
    pub fn shown(&self) -> Route {
        Route {
            id: self.id,
            org_id: self.org_id,
            name: self.name.clone(),
            upstreams: self.upstreams.iter().map(StoredUpstream::shown).collect(),
            retries: self.retries,
            timeout_ms: self.timeout_ms,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// The key an updated upstream keeps when its `api_key` is absent: the one
/// of the upstream at the same position, if that had the same provider and
/// base URL (else a key would silently follow the route to another host).
pub fn kept_key<'a>(
    previous: &'a [StoredUpstream],
    index: usize,
    next: &CheckedUpstream,
) -> Option<&'a str> {
    previous
        .get(index)
        .filter(|p| p.provider == next.provider && p.base_url == next.base_url)
        .and_then(|p| p.sealed_key.as_deref())
}

/// The order in which a request tries a route's upstreams: lower priority
/// first; inside a priority, a weighted random order (each upstream's
/// chance to come first is its share of the weights; weight 0 never
/// serves). `draw` yields uniform numbers in `[0, 1)`; the caller passes
/// its random source, so the order is testable.
pub fn attempt_order(upstreams: &[(i32, u32)], mut draw: impl FnMut() -> f64) -> Vec<usize> {
    let mut indices: Vec<usize> = (0..upstreams.len())
        .filter(|&i| upstreams[i].1 > 0)
        .collect();
    indices.sort_by_key(|&i| upstreams[i].0);
    let mut out = Vec::with_capacity(indices.len());
    let mut start = 0;
    while start < indices.len() {
        let priority = upstreams[indices[start]].0;
        let end = indices[start..]
            .iter()
            .position(|&i| upstreams[i].0 != priority)
            .map_or(indices.len(), |n| start + n);
        let mut group: Vec<usize> = indices[start..end].to_vec();
        while !group.is_empty() {
            let total: u64 = group.iter().map(|&i| u64::from(upstreams[i].1)).sum();
            let mut target = draw().clamp(0.0, 1.0) * total as f64;
            let mut pick = group.len() - 1;
            for (n, &i) in group.iter().enumerate() {
                let w = f64::from(upstreams[i].1);
                if target < w {
                    pick = n;
                    break;
                }
                target -= w;
            }
            out.push(group.remove(pick));
        }
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: serde_json::Value) -> Result<CheckedRoute, ValidationError> {
        serde_json::from_value::<RouteInput>(json)
            .expect("shape")
            .check()
    }

    #[test]
    fn a_route_takes_defaults_and_checks_providers() {
        let r = input(serde_json::json!({"name": "chat-default", "upstreams": [
            {"provider": "openai", "model": "gpt-4o"}
        ]}))
        .expect("valid");
        assert_eq!(r.retries, 1);
        assert_eq!(r.timeout_ms, DEFAULT_TIMEOUT_MS);
        assert_eq!(r.upstreams[0].weight, 1);
        assert_eq!(r.upstreams[0].api_key, Patch::Absent);

        let e = input(serde_json::json!({"name": "x", "upstreams": [
            {"provider": "nope", "model": "m"}
        ]}))
        .expect_err("unknown provider");
        assert_eq!(e.field, "upstreams[0].provider");

        let e = input(serde_json::json!({"name": "x", "upstreams": [
            {"provider": "vllm", "model": "m"}
        ]}))
        .expect_err("vllm has no default URL");
        assert_eq!(e.field, "upstreams[0].base_url");
    }

    #[test]
    fn bad_route_fields_are_named() {
        let cases = [
            (
                serde_json::json!({"name": "a b", "upstreams": [{"provider": "openai", "model": "m"}]}),
                "name",
            ),
            (
                serde_json::json!({"name": "a", "upstreams": []}),
                "upstreams",
            ),
            (
                serde_json::json!({"name": "a", "retries": 9, "upstreams": [{"provider": "openai", "model": "m"}]}),
                "retries",
            ),
            (
                serde_json::json!({"name": "a", "timeout_ms": 5, "upstreams": [{"provider": "openai", "model": "m"}]}),
                "timeout_ms",
            ),
            (
                serde_json::json!({"name": "a", "upstreams": [{"provider": "openai", "model": "m", "base_url": "ftp://x"}]}),
                "upstreams[0].base_url",
            ),
            (
                serde_json::json!({"name": "a", "upstreams": [{"provider": "openai", "model": "m", "base_url": "http://u:p@x/v1"}]}),
                "upstreams[0].base_url",
            ),
            (
                serde_json::json!({"name": "a", "upstreams": [{"provider": "openai", "model": "m", "weight": 0}]}),
                "upstreams",
            ),
            (
                serde_json::json!({"name": "a", "upstreams": [{"provider": "openai", "model": " "}]}),
                "upstreams[0].model",
            ),
            (
                serde_json::json!({"name": "a", "upstreams": [{"provider": "openai", "model": "m", "api_key": ""}]}),
                "upstreams[0].api_key",
            ),
        ];
        for (body, field) in cases {
            assert_eq!(
                input(body.clone()).expect_err("invalid").field,
                field,
                "{body}"
            );
        }
    }

    #[test]
    fn base_urls_lose_their_trailing_slash() {
        assert_eq!(
            check_base_url("b", "http://127.0.0.1:8000/v1/").expect("valid"),
            "http://127.0.0.1:8000/v1"
        );
    }

    #[test]
    fn attempts_go_by_priority_then_weight() {
        // (priority, weight)
        let ups = [(1, 1), (0, 1), (0, 3), (2, 0)];
        // A draw of 0.0 picks the first of the group in index order.
        assert_eq!(attempt_order(&ups, || 0.0), vec![1, 2, 0]);
        // 0.5 of a total of 4 lands in the weight-3 upstream.
        assert_eq!(attempt_order(&ups, || 0.5), vec![2, 1, 0]);
    }

    #[test]
    fn weights_set_the_share_of_first_attempts() {
        let ups = [(0, 1), (0, 3)];
        let mut seed = 7u64;
        let mut draw = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let firsts = (0..4000)
            .filter(|_| attempt_order(&ups, &mut draw)[0] == 1)
            .count();
        assert!((2800..3200).contains(&firsts), "{firsts} of 4000");
    }
}
