//! Ingestion sources: one real HTTP client per catalog source, each turning
//! that service's documented listing API (auth header, pagination, field
//! names, error bodies) into [`SourceRecord`]s.
//!
//! A source pushes its records page by page into a [`PageSink`] and returns
//! when the listing is complete; it knows nothing of the store. The runner
//! in `modelplane-service` decides what to write. [`http::SourceClient`]
//! holds what every source shares: the configured base URL and credential,
//! retries with backoff on 429 / 5xx / timeouts (honouring `Retry-After`
//! and the services' own backoff hints), bounded bodies, and one readable
//! error per failure.

pub mod http;
pub mod sources;

use async_trait::async_trait;
use modelplane_domain::catalog::{Source, SourceRecord};

pub use http::{SourceClient, SourceSettings};

/// Why a listing failed. Every variant renders as the run's readable
/// `error_message`.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The service refused the credential (401/403, or the 400 that Gemini
    /// and xAI send for a bad key).
    #[error("authentication failed (HTTP {status}): {message}")]
    Auth { status: u16, message: String },
    /// A status that retrying did not cure, or a client error.
    #[error("HTTP {status}: {message}")]
    Http { status: u16, message: String },
    #[error("request timed out after {attempts} attempts: {url}")]
    Timeout { url: String, attempts: u32 },
    #[error("connection to {url} failed after {attempts} attempts: {message}")]
    Transport {
        url: String,
        attempts: u32,
        message: String,
    },
    /// The body is not what the service documents (bad JSON, truncated,
    /// wrong shape, too large).
    #[error("malformed response from {url}: {detail}")]
    Malformed { url: String, detail: String },
    /// The source needs a credential and none is configured.
    #[error("no API key configured for {0}")]
    MissingCredential(&'static str),
    /// The configuration is unusable (e.g. a base URL that does not parse).
    #[error("bad configuration: {0}")]
    Config(String),
    /// The consumer of the pages failed (e.g. the database).
    #[error("{0}")]
    Sink(String),
}

/// Receives a listing page by page, in order.
#[async_trait]
pub trait PageSink: Send {
    async fn page(&mut self, records: Vec<SourceRecord>) -> Result<(), SourceError>;
}

/// Collects every record in memory: for tests and small listings.
#[derive(Debug, Default)]
pub struct Collect {
    pub pages: Vec<Vec<SourceRecord>>,
}

impl Collect {
    pub fn records(&self) -> impl Iterator<Item = &SourceRecord> {
        self.pages.iter().flatten()
    }
}

#[async_trait]
impl PageSink for Collect {
    async fn page(&mut self, records: Vec<SourceRecord>) -> Result<(), SourceError> {
        self.pages.push(records);
        Ok(())
    }
}

/// Whether `source` needs an API key to list anything.
pub fn needs_credential(source: Source) -> bool {
    matches!(
        source,
        Source::OpenaiApi
            | Source::AnthropicApi
            | Source::GoogleApi
            | Source::MistralApi
            | Source::CohereApi
            | Source::XaiApi
    )
}

/// The public origin of each source, the default `base_url`.
pub fn default_base_url(source: Source) -> &'static str {
    match source {
        Source::OpenaiApi => "https://api.openai.com",
        Source::AnthropicApi => "https://api.anthropic.com",
        Source::GoogleApi => "https://generativelanguage.googleapis.com",
        Source::MistralApi => "https://api.mistral.ai",
        Source::CohereApi => "https://api.cohere.com",
        Source::XaiApi => "https://api.x.ai",
        Source::Huggingface => "https://huggingface.co",
        Source::DeprecationsInfo => "https://deprecations.info",
        Source::ModelsDev => "https://models.dev",
        Source::Openrouter => "https://openrouter.ai",
        Source::LitellmPrices => "https://raw.githubusercontent.com",
    }
}

/// Lists every model of `source`, page by page, into `sink`.
pub async fn list(
    source: Source,
    client: &SourceClient,
    sink: &mut dyn PageSink,
) -> Result<(), SourceError> {
    if needs_credential(source) && client.settings().api_key.is_none() {
        return Err(SourceError::MissingCredential(source.as_str()));
    }
    match source {
        Source::OpenaiApi => sources::openai::list(client, sink).await,
        Source::AnthropicApi => sources::anthropic::list(client, sink).await,
        Source::GoogleApi => sources::google::list(client, sink).await,
        Source::MistralApi => sources::mistral::list(client, sink).await,
        Source::CohereApi => sources::cohere::list(client, sink).await,
        Source::XaiApi => sources::xai::list(client, sink).await,
        Source::Huggingface => sources::huggingface::list(client, sink).await,
        Source::DeprecationsInfo => sources::deprecations::list(client, sink).await,
        Source::ModelsDev => sources::models_dev::list(client, sink).await,
        Source::Openrouter => sources::openrouter::list(client, sink).await,
        Source::LitellmPrices => sources::litellm::list(client, sink).await,
    }
}
