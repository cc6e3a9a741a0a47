//! Usage: one record per gateway request, written off the request path.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use chrono::{DateTime, Utc};

/// Which OpenAI endpoint a request called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
}

impl Endpoint {
    pub const ALL: [Endpoint; 3] = [Self::ChatCompletions, Self::Completions, Self::Embeddings];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChatCompletions => "chat_completions",
            Self::Completions => "completions",
            Self::Embeddings => "embeddings",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The path under an OpenAI-compatible base URL (which ends in `/v1`).
    pub fn path(self) -> &'static str {
        match self {
            Self::ChatCompletions => "/chat/completions",
            Self::Completions => "/completions",
            Self::Embeddings => "/embeddings",
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UsageStatus {
    /// The upstream answered 2xx and the answer reached the client.
    Ok,
    /// Every upstream tried failed, or the last one answered an error.
    UpstreamError,
    /// The client went away before the answer was complete; the upstream
    /// request was cancelled.
    Cancelled,
    /// An org policy refused the request.
    Blocked,
    /// A key limit or budget refused the request.
    RateLimited,
    /// The request itself was refused (malformed, unknown model, model not allowed).
    Invalid,
}

impl UsageStatus {
    pub const ALL: [UsageStatus; 6] = [
        Self::Ok,
        Self::UpstreamError,
        Self::Cancelled,
        Self::Blocked,
        Self::RateLimited,
        Self::Invalid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::UpstreamError => "upstream_error",
            Self::Cancelled => "cancelled",
            Self::Blocked => "blocked",
            Self::RateLimited => "rate_limited",
            Self::Invalid => "invalid",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// One gateway request, as metered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageRecord {
    pub id: Uuid,
    pub org_id: Uuid,
    pub key_id: Uuid,
    pub user_id: Option<Uuid>,
    pub endpoint: Endpoint,
    /// The model name the client asked for.
    pub requested_model: String,
    /// The route that served it, if a route did.
    pub route: Option<String>,
    /// The upstream that answered last (`provider:base_url`), if one was tried.
    pub upstream: Option<String>,
    /// The model id the upstream was asked for.
    pub upstream_model: Option<String>,
    pub status: UsageStatus,
    /// The HTTP status the client received.
    pub http_status: u16,
    pub stream: bool,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub total_tokens: Option<i64>,
    /// Priced from the catalog where the model's prices are known.
    pub cost_usd: Option<f64>,
    /// From the request's arrival to the last byte of the answer.
    pub latency_ms: f64,
    /// For streams: from arrival to the first byte of the answer.
    pub ttft_ms: Option<f64>,
    /// How many upstream attempts were made.
    pub attempts: u32,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
}
