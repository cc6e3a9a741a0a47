//! LiteLLM's price map: `GET {base}/BerriAI/litellm/main/model_prices_and_context_window.json`,
//! one JSON object keyed by model name; no auth, no pagination. The default
//! `base_url` is `https://raw.githubusercontent.com` (the file as committed
//! on LiteLLM's `main` branch); a mirror serving the same path works too.
//!
//! Each key is a LiteLLM model name, often with a routing prefix
//! (`azure/gpt-4o`, `bedrock/us-east-1/anthropic.claude-v2`,
//! `vertex_ai/gemini-2.5-pro`, `gemini/gemini-2.5-pro`); `litellm_provider`
//! names the provider (`openai`, `bedrock_converse`,
//! `vertex_ai-language-models`, `text-completion-openai`, …), mapped to a
//! catalog slug by [`provider`]. The `sample_spec` key documents the schema
//! and is skipped, as is an entry that is not an object or has no
//! `litellm_provider`.
//!
//! Model id: the key without a first segment that names the entry's own
//! provider (`azure/`, `vertex_ai/`, `gemini/` for Google, …). On AWS
//! Bedrock and Azure the segments left before the last are region, route
//! or commitment qualifiers (`us-east-1/`, `eu/`, `1-month-commitment/`),
//! so the model id is the last segment. A key that differs from its model
//! id is an alias, of source `bedrock`, `vertex` or `azure` on those
//! platforms and `litellm` elsewhere.
//!
//! **Several keys for one model** (the same provider and model id, e.g.
//! `gpt-4o` and `openai/gpt-4o`, or Bedrock's regional prices): one record
//! whose facts and `raw` are those of the key with the fewest `/` segments
//! (the plain on-demand listing; on a tie the key that sorts first, the
//! order the document is read in), with every key as an alias.
//!
//! Facts: `input_cost_per_token` / `output_cost_per_token` /
//! `cache_read_input_token_cost` (USD per token, × 10⁶); `max_input_tokens`
//! → context window, `max_output_tokens` → max output (`max_tokens` is
//! ambiguous in LiteLLM's own schema and is not read); `mode` and the
//! `supports_*_input` / `_output` flags → modalities; every boolean
//! `supports_<x>` → capability `<x>`, with `function_calling` as `tools`,
//! `response_schema` as `structured_output` and `native_streaming` as
//! `streaming`; an embedding `mode` adds `embeddings`; `deprecation_date`
//! with the lifecycle that follows from it (no date sets no lifecycle).

use std::collections::{BTreeMap, HashMap};

use modelplane_domain::catalog::{Alias, Lifecycle, ModelFacts, Pricing, Provider, SourceRecord};
use serde_json::{Map, Value};

use super::common;
use super::common::{push_in_chunks, query_params, today, usd_per_million};
use crate::{PageSink, SourceClient, SourceError};

/// Where the file lives under the base URL.
pub const PATH: &str = "/BerriAI/litellm/main/model_prices_and_context_window.json";

/// The key that documents the schema rather than a model.
const SAMPLE_SPEC: &str = "sample_spec";

/// Lists every model LiteLLM prices.
pub async fn list(client: &SourceClient, sink: &mut dyn PageSink) -> Result<(), SourceError> {
    let url = client.url(PATH, &query_params(client))?;
    let fetched = client.get(url, &[]).await?;
    let document: Map<String, Value> = fetched.json()?;
    push_in_chunks(sink, parse_prices(document, &today())).await
}

/// The catalog provider of a `litellm_provider` value or a key's routing
/// prefix: LiteLLM's per-product Vertex providers are Vertex,
/// `text-completion-*` is the provider's completion endpoint, Codestral is
/// Mistral's.
pub fn provider(name: &str) -> Provider {
    let name = name.trim();
    let name = name.strip_prefix("text-completion-").unwrap_or(name);
    let name = if name.starts_with("vertex_ai") {
        "vertex_ai"
    } else {
        match name {
            "codestral" => "mistral",
            "azure_text" => "azure",
            other => other,
        }
    };
    Provider::from_name(name)
}

/// The source of an alias from `provider`'s platform.
fn alias_source(provider_slug: &str) -> &'static str {
    match provider_slug {
        "aws-bedrock" => "bedrock",
        "google-vertex" => "vertex",
        "azure" => "azure",
        _ => "litellm",
    }
}

/// The model id of `key` for the provider `provider_slug`.
pub fn model_id<'a>(key: &'a str, provider_slug: &str) -> &'a str {
    let rest = match key.split_once('/') {
        Some((prefix, rest)) if !rest.is_empty() && provider(prefix).slug == provider_slug => rest,
        _ => key,
    };
    if matches!(provider_slug, "aws-bedrock" | "azure") {
        rest.rsplit('/').find(|s| !s.is_empty()).unwrap_or(rest)
    } else {
        rest
    }
}

/// Every priced model of the document as of `today` (`YYYY-MM-DD`), keys
/// naming one model folded into one record.
pub fn parse_prices(document: Map<String, Value>, today: &str) -> Vec<SourceRecord> {
    // (provider, model id) → (record, `/` count of the key its facts are from).
    let mut records: Vec<(SourceRecord, usize)> = Vec::new();
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    for (key, entry) in document {
        let key = key.trim();
        if key.is_empty() || key == SAMPLE_SPEC || !entry.is_object() {
            continue;
        }
        let Some(provider_name) = entry
            .get("litellm_provider")
            .and_then(Value::as_str)
            .filter(|p| !p.trim().is_empty())
        else {
            continue;
        };
        let slug = provider(provider_name).slug;
        let id = model_id(key, &slug);
        if slug.is_empty() || id.is_empty() {
            continue;
        }
        let alias = (key != id).then(|| Alias::new(key, alias_source(&slug)));
        let depth = key.matches('/').count();
        let group = (slug, id.to_owned());
        if let Some(&i) = index.get(&group) {
            let (record, best) = &mut records[i];
            if let Some(alias) = alias {
                record.aliases.push(alias);
            }
            if depth < *best {
                *best = depth;
                record.facts = facts(&entry, today);
                record.raw = SourceRecord::raw_of(&entry);
            }
            continue;
        }
        let (provider, model_id) = group.clone();
        index.insert(group, records.len());
        let record = SourceRecord {
            provider,
            model_id,
            facts: facts(&entry, today),
            aliases: alias.into_iter().collect(),
            raw: SourceRecord::raw_of(&entry),
        };
        records.push((record, depth));
    }
    records
        .into_iter()
        .map(|(mut record, _)| {
            record.aliases.sort();
            record.aliases.dedup();
            record
        })
        .collect()
}

/// The facts of one price entry.
pub fn facts(entry: &Value, today: &str) -> ModelFacts {
    let positive = |name: &str| entry.get(name).and_then(common::as_i64).filter(|n| *n > 0);
    let mode = entry.get("mode").and_then(Value::as_str).unwrap_or("");
    let supports = |name: &str| {
        entry
            .get(format!("supports_{name}").as_str())
            .and_then(Value::as_bool)
            == Some(true)
    };
    let (modalities_in, modalities_out) = modalities(mode, supports);

    let mut capabilities = BTreeMap::new();
    if let Value::Object(fields) = entry {
        for (name, value) in fields {
            let (Some(capability), Value::Bool(on)) = (name.strip_prefix("supports_"), value)
            else {
                continue;
            };
            let capability = match capability {
                "function_calling" => "tools",
                "response_schema" => "structured_output",
                "native_streaming" => "streaming",
                other => other,
            };
            capabilities.insert(capability.to_owned(), Value::Bool(*on));
        }
    }
    if mode == "embedding" {
        capabilities.insert("embeddings".to_owned(), Value::Bool(true));
    }

    let deprecation_date = entry
        .get("deprecation_date")
        .and_then(Value::as_str)
        .and_then(common::date_from_text);
    ModelFacts {
        modalities_in,
        modalities_out,
        context_window: positive("max_input_tokens"),
        max_output_tokens: positive("max_output_tokens"),
        pricing: pricing(entry),
        capabilities: (!capabilities.is_empty()).then_some(capabilities),
        lifecycle: deprecation_date
            .as_deref()
            .map(|date| Lifecycle::from_dates(Some(date), None, today)),
        deprecation_date,
        ..ModelFacts::default()
    }
}

/// Per-token costs as catalog pricing per 1M tokens; None when the entry
/// prices no tokens (per-pixel, per-second, per-query models).
pub fn pricing(entry: &Value) -> Option<Pricing> {
    let price = |name: &str| {
        entry
            .get(name)
            .and_then(Value::as_f64)
            .and_then(usd_per_million)
    };
    let pricing = Pricing {
        input: price("input_cost_per_token"),
        output: price("output_cost_per_token"),
        cached_input: price("cache_read_input_token_cost"),
        currency: "USD".to_owned(),
    };
    (pricing.input.is_some() || pricing.output.is_some() || pricing.cached_input.is_some())
        .then_some(pricing)
}

/// Modalities of a LiteLLM `mode`, widened by the `supports_*` flags for
/// chat models; None where the mode does not say.
fn modalities(
    mode: &str,
    supports: impl Fn(&str) -> bool,
) -> (Option<Vec<String>>, Option<Vec<String>>) {
    let (input, output): (&[&str], &[&str]) = match mode {
        "chat" | "completion" | "responses" => {
            let mut input = vec!["text"];
            for (flag, modality) in [
                ("vision", "image"),
                ("pdf_input", "pdf"),
                ("audio_input", "audio"),
                ("video_input", "video"),
            ] {
                if supports(flag) {
                    input.push(modality);
                }
            }
            let mut output = vec!["text"];
            if supports("audio_output") {
                output.push("audio");
            }
            return (
                Some(common::modalities(input)),
                Some(common::modalities(output)),
            );
        }
        "embedding" => (&["text"], &["embedding"]),
        "image_generation" => (&["text"], &["image"]),
        "audio_transcription" => (&["audio"], &["text"]),
        "audio_speech" => (&["text"], &["audio"]),
        "video_generation" => (&["text"], &["video"]),
        "rerank" | "moderation" | "moderations" => (&["text"], &[]),
        _ => (&[], &[]),
    };
    let list =
        |words: &[&str]| (!words.is_empty()).then(|| common::modalities(words.iter().copied()));
    (list(input), list(output))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TODAY: &str = "2026-06-01";

    fn document(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("an object"),
        }
    }

    #[test]
    fn provider_names_and_prefixes_map_to_catalog_slugs() {
        let cases = [
            ("openai", "openai"),
            ("text-completion-openai", "openai"),
            ("bedrock", "aws-bedrock"),
            ("bedrock_converse", "aws-bedrock"),
            ("vertex_ai-language-models", "google-vertex"),
            ("vertex_ai-anthropic_models", "google-vertex"),
            ("vertex_ai", "google-vertex"),
            ("gemini", "google"),
            ("azure", "azure"),
            ("azure_ai", "azure"),
            ("cohere_chat", "cohere"),
            ("codestral", "mistral"),
            ("fireworks_ai", "fireworks-ai"),
        ];
        for (name, slug) in cases {
            assert_eq!(provider(name).slug, slug, "{name}");
        }
    }

    #[test]
    fn routing_prefixes_and_region_qualifiers_leave_the_model_id() {
        let cases = [
            ("gpt-4o", "openai", "gpt-4o"),
            ("openai/gpt-4o", "openai", "gpt-4o"),
            ("azure/gpt-4o", "azure", "gpt-4o"),
            ("azure/eu/gpt-4o-2024-08-06", "azure", "gpt-4o-2024-08-06"),
            (
                "bedrock/us-east-1/anthropic.claude-v2",
                "aws-bedrock",
                "anthropic.claude-v2",
            ),
            ("anthropic.claude-v2", "aws-bedrock", "anthropic.claude-v2"),
            (
                "vertex_ai/gemini-2.5-pro",
                "google-vertex",
                "gemini-2.5-pro",
            ),
            (
                "vertex_ai/meta/llama3-405b",
                "google-vertex",
                "meta/llama3-405b",
            ),
            ("gemini/gemini-2.5-pro", "google", "gemini-2.5-pro"),
            (
                "openrouter/anthropic/claude-3.5",
                "openrouter",
                "anthropic/claude-3.5",
            ),
            (
                "meta-llama/Llama-3-8b",
                "together-ai",
                "meta-llama/Llama-3-8b",
            ),
        ];
        for (key, slug, id) in cases {
            assert_eq!(model_id(key, slug), id, "{key}");
        }
    }

    #[test]
    fn per_token_costs_become_per_million_prices() {
        let entry = json!({
            "input_cost_per_token": 3e-07, "output_cost_per_token": 2.5e-06,
            "cache_read_input_token_cost": 7.5e-08, "litellm_provider": "bedrock_converse",
            "max_input_tokens": 1000000, "max_output_tokens": 64000, "max_tokens": 64000,
            "mode": "chat", "supports_function_calling": true, "supports_vision": true,
            "supports_pdf_input": true, "supports_reasoning": true,
            "supports_response_schema": true, "supports_prompt_caching": true,
            "supports_system_messages": false
        });
        let f = facts(&entry, TODAY);
        assert_eq!(
            f.pricing,
            Some(Pricing {
                input: Some(0.3),
                output: Some(2.5),
                cached_input: Some(0.075),
                currency: "USD".into()
            })
        );
        assert_eq!(f.context_window, Some(1_000_000));
        assert_eq!(f.max_output_tokens, Some(64_000));
        assert_eq!(
            f.modalities_in,
            Some(vec!["image".into(), "pdf".into(), "text".into()])
        );
        assert_eq!(f.modalities_out, Some(vec!["text".into()]));
        let caps = f.capabilities.expect("capabilities");
        assert_eq!(caps["tools"], json!(true));
        assert_eq!(caps["vision"], json!(true));
        assert_eq!(caps["reasoning"], json!(true));
        assert_eq!(caps["structured_output"], json!(true));
        assert_eq!(caps["prompt_caching"], json!(true));
        assert_eq!(caps["system_messages"], json!(false));
        assert_eq!(f.lifecycle, None);
    }

    #[test]
    fn image_and_embedding_modes_and_deprecation_dates() {
        let image = facts(
            &json!({"mode": "image_generation", "input_cost_per_pixel": 1.9e-08, "litellm_provider": "openai"}),
            TODAY,
        );
        assert_eq!(image.pricing, None);
        assert_eq!(image.modalities_out, Some(vec!["image".into()]));
        let embedding = facts(
            &json!({"mode": "embedding", "input_cost_per_token": 2e-08,
                    "deprecation_date": "2026-01-15"}),
            TODAY,
        );
        assert_eq!(embedding.modalities_out, Some(vec!["embedding".into()]));
        assert_eq!(
            embedding.capabilities.expect("caps")["embeddings"],
            json!(true)
        );
        assert_eq!(embedding.deprecation_date.as_deref(), Some("2026-01-15"));
        assert_eq!(embedding.lifecycle, Some(Lifecycle::Deprecated));
    }

    #[test]
    fn keys_of_one_model_collapse_with_every_key_as_an_alias() {
        let doc = document(json!({
            "sample_spec": {"litellm_provider": "one of https://docs.litellm.ai/docs/providers"},
            "bedrock/us-east-1/anthropic.claude-v2": {"litellm_provider": "bedrock",
                "input_cost_per_token": 9e-06, "mode": "chat"},
            "anthropic.claude-v2": {"litellm_provider": "bedrock",
                "input_cost_per_token": 8e-06, "mode": "chat"},
            "bedrock/eu-central-1/anthropic.claude-v2": {"litellm_provider": "bedrock",
                "input_cost_per_token": 8.5e-06, "mode": "chat"},
            "no-provider": {"mode": "chat"},
            "odd": [1, 2, 3]
        }));
        let records = parse_prices(doc, TODAY);
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(
            (r.provider.as_str(), r.model_id.as_str()),
            ("aws-bedrock", "anthropic.claude-v2")
        );
        assert_eq!(r.facts.pricing.as_ref().and_then(|p| p.input), Some(8.0));
        assert_eq!(r.raw_value()["input_cost_per_token"], json!(8e-06));
        assert_eq!(
            r.aliases,
            [
                Alias::new("bedrock/eu-central-1/anthropic.claude-v2", "bedrock"),
                Alias::new("bedrock/us-east-1/anthropic.claude-v2", "bedrock"),
            ]
        );
    }
}
