//! One module per source. Each exposes
//! `pub async fn list(client: &SourceClient, sink: &mut dyn PageSink) -> Result<(), SourceError>`
//! and pure `parse_*` functions from the service's wire types to
//! [`SourceRecord`](modelplane_domain::catalog::SourceRecord)s, tested on their own.

pub mod anthropic;
pub mod cohere;
pub mod common;
pub mod deprecations;
pub mod google;
pub mod huggingface;
pub mod litellm;
pub mod mistral;
pub mod models_dev;
pub mod openai;
pub mod openrouter;
pub mod xai;
