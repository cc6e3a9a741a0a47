//! models.dev: `GET {base}/api.json`, one document, no auth, no pagination.
//!
//! The body is an object keyed by provider id (`anthropic`, `amazon-bedrock`,
//! `google-vertex`, …), each with `models` keyed by model id. Prices are USD
//! per one million tokens already. The configured `params` go on the query
//! (models.dev filters by model `type`, e.g. `type=all`).
//!
//! Mapping: provider slug from the provider id ([`Provider::from_name`]);
//! model id = the key under `models`; `name` → display name, `description`,
//! `family`; `modalities` (a model whose `type` is `embedding` outputs an
//! embedding whatever `modalities.output` says); `limit.context` / `.output`
//! (0 means unknown); `cost.input` / `.output` / `.cache_read` (a
//! `cache_write` price has no place in [`Pricing`] and stays in `raw`);
//! `open_weights`, `license`, `release_date`, `knowledge` → knowledge
//! cutoff; `status: "deprecated"` → deprecated, no status (or `alpha` /
//! `beta`) → active, `alpha` / `beta` also kept as capability `status`;
//! capabilities `tools` (`tool_call`, a boolean or `{supported}`),
//! `reasoning`, `reasoning_efforts` (from `reasoning_options`),
//! `structured_output`, `attachment`, `temperature`, `embeddings`.
//! Records go to the sink in chunks of [`CHUNK`].

use std::collections::BTreeMap;

use modelplane_domain::catalog::{Lifecycle, ModelFacts, Pricing, Provider, SourceRecord};
use serde_json::{Map, Value};

use super::common;
use super::common::{push_in_chunks, query_params};
use crate::{PageSink, SourceClient, SourceError};

/// Lists every model of every provider models.dev knows.
pub async fn list(client: &SourceClient, sink: &mut dyn PageSink) -> Result<(), SourceError> {
    let url = client.url("/api.json", &query_params(client))?;
    let fetched = client.get(url, &[]).await?;
    let document: Map<String, Value> = fetched.json()?;
    push_in_chunks(sink, parse_api(document)).await
}

/// Every model of the document, provider by provider. A provider entry that
/// is not an object with a `models` object, and a model that is not an
/// object, are skipped.
pub fn parse_api(document: Map<String, Value>) -> Vec<SourceRecord> {
    let mut records = Vec::new();
    for (key, provider) in document {
        let Value::Object(mut provider) = provider else {
            continue;
        };
        let Some(Value::Object(models)) = provider.remove("models") else {
            continue;
        };
        let id = provider.get("id").and_then(Value::as_str).unwrap_or(&key);
        let slug = Provider::from_name(id).slug;
        if slug.is_empty() {
            continue;
        }
        for (model_id, model) in models {
            if model_id.trim().is_empty() || !model.is_object() {
                continue;
            }
            records.push(SourceRecord {
                provider: slug.clone(),
                model_id,
                facts: parse_model(&model),
                aliases: Vec::new(),
                raw: SourceRecord::raw_of(&model),
            });
        }
    }
    records
}

/// The facts of one models.dev model object.
pub fn parse_model(model: &Value) -> ModelFacts {
    let text = |name: &str| {
        model
            .get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let flag = |name: &str| model.get(name).and_then(Value::as_bool);
    let date = |name: &str| {
        model
            .get(name)
            .and_then(Value::as_str)
            .and_then(common::date_from_text)
    };
    let limit = |name: &str| {
        model
            .pointer(&format!("/limit/{name}"))
            .and_then(common::as_i64)
            .filter(|n| *n > 0)
    };
    let embedding = model.get("type").and_then(Value::as_str) == Some("embedding");
    let modalities = |side: &str| {
        model
            .pointer(&format!("/modalities/{side}"))
            .and_then(Value::as_array)
            .map(|items| common::modalities(items.iter().filter_map(Value::as_str)))
    };
    let status = model.get("status").and_then(Value::as_str);

    let mut capabilities = BTreeMap::new();
    let tools = match model.get("tool_call") {
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::Object(o)) => o.get("supported").and_then(Value::as_bool),
        _ => None,
    };
    let booleans = [
        ("tools", tools),
        ("reasoning", flag("reasoning")),
        ("structured_output", flag("structured_output")),
        ("attachment", flag("attachment")),
        ("temperature", flag("temperature")),
        ("embeddings", embedding.then_some(true)),
    ];
    for (name, value) in booleans {
        if let Some(value) = value {
            capabilities.insert(name.to_owned(), Value::Bool(value));
        }
    }
    let efforts: Vec<Value> = model
        .get("reasoning_options")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|option| option.get("type").and_then(Value::as_str) == Some("effort"))
        .filter_map(|option| option.get("values").and_then(Value::as_array))
        .flatten()
        .filter(|v| v.as_str().is_some_and(|s| s != "null"))
        .cloned()
        .collect();
    if !efforts.is_empty() {
        capabilities.insert("reasoning_efforts".to_owned(), Value::Array(efforts));
    }
    if let Some(stage @ ("alpha" | "beta")) = status {
        capabilities.insert("status".to_owned(), Value::from(stage));
    }

    ModelFacts {
        display_name: text("name"),
        description: text("description"),
        family: text("family"),
        modalities_in: modalities("input"),
        modalities_out: if embedding {
            Some(vec!["embedding".to_owned()])
        } else {
            modalities("output")
        },
        context_window: limit("context"),
        max_output_tokens: limit("output"),
        pricing: model.get("cost").and_then(pricing),
        capabilities: (!capabilities.is_empty()).then_some(capabilities),
        open_weights: flag("open_weights"),
        license: text("license"),
        release_date: date("release_date"),
        knowledge_cutoff: date("knowledge"),
        lifecycle: Some(if status == Some("deprecated") {
            Lifecycle::Deprecated
        } else {
            Lifecycle::Active
        }),
        ..ModelFacts::default()
    }
}

/// `cost` (USD per 1M tokens) as catalog pricing; None when it names no
/// input, output or cached-input price.
fn pricing(cost: &Value) -> Option<Pricing> {
    let price = |name: &str| {
        cost.get(name)
            .and_then(Value::as_f64)
            .filter(|p| p.is_finite() && *p >= 0.0)
    };
    let pricing = Pricing {
        input: price("input"),
        output: price("output"),
        cached_input: price("cache_read"),
        currency: "USD".to_owned(),
    };
    (pricing.input.is_some() || pricing.output.is_some() || pricing.cached_input.is_some())
        .then_some(pricing)
}

// Shared by the single-document sources (models.dev, OpenRouter, LiteLLM,
// deprecations.info).

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn document(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("an object"),
        }
    }

    #[test]
    fn a_model_maps_prices_limits_dates_and_capabilities() {
        let model = json!({
            "id": "claude-sonnet-4-5", "name": "Claude Sonnet 4.5", "family": "claude-sonnet",
            "attachment": true, "reasoning": true, "tool_call": true, "temperature": true,
            "structured_output": false,
            "reasoning_options": [{"type": "budget_tokens", "min": 1024},
                                  {"type": "effort", "values": ["low", "high", null]}],
            "knowledge": "2025-07", "release_date": "2025-09-29", "last_updated": "2025-09-29",
            "open_weights": false, "license": "proprietary",
            "cost": {"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75},
            "limit": {"context": 200000, "output": 64000},
            "modalities": {"input": ["text", "image", "pdf"], "output": ["text"]}
        });
        let f = parse_model(&model);
        assert_eq!(f.display_name.as_deref(), Some("Claude Sonnet 4.5"));
        assert_eq!(f.family.as_deref(), Some("claude-sonnet"));
        assert_eq!(
            f.pricing,
            Some(Pricing {
                input: Some(3.0),
                output: Some(15.0),
                cached_input: Some(0.3),
                currency: "USD".into()
            })
        );
        assert_eq!(f.context_window, Some(200_000));
        assert_eq!(f.max_output_tokens, Some(64_000));
        assert_eq!(f.knowledge_cutoff.as_deref(), Some("2025-07-01"));
        assert_eq!(f.release_date.as_deref(), Some("2025-09-29"));
        assert_eq!(f.open_weights, Some(false));
        assert_eq!(f.license.as_deref(), Some("proprietary"));
        assert_eq!(
            f.modalities_in,
            Some(vec!["image".into(), "pdf".into(), "text".into()])
        );
        assert_eq!(f.lifecycle, Some(Lifecycle::Active));
        let caps = f.capabilities.expect("capabilities");
        assert_eq!(caps["tools"], json!(true));
        assert_eq!(caps["reasoning"], json!(true));
        assert_eq!(caps["structured_output"], json!(false));
        assert_eq!(caps["attachment"], json!(true));
        assert_eq!(caps["temperature"], json!(true));
        assert_eq!(caps["reasoning_efforts"], json!(["low", "high"]));
    }

    #[test]
    fn deprecated_status_embedding_type_and_object_tool_call() {
        let model = json!({
            "name": "Embed", "type": "embedding", "status": "deprecated",
            "tool_call": {"supported": false, "streaming": true},
            "modalities": {"input": ["text"], "output": ["text"]},
            "limit": {"context": 0, "output": 0}
        });
        let f = parse_model(&model);
        assert_eq!(f.lifecycle, Some(Lifecycle::Deprecated));
        assert_eq!(f.modalities_out, Some(vec!["embedding".to_owned()]));
        assert_eq!(f.context_window, None);
        assert_eq!(f.max_output_tokens, None);
        assert_eq!(f.pricing, None);
        let caps = f.capabilities.expect("capabilities");
        assert_eq!(caps["tools"], json!(false));
        assert_eq!(caps["embeddings"], json!(true));
        let beta = parse_model(&json!({"status": "beta"}));
        assert_eq!(beta.lifecycle, Some(Lifecycle::Active));
        assert_eq!(beta.capabilities.expect("caps")["status"], json!("beta"));
    }

    #[test]
    fn providers_map_to_slugs_and_odd_entries_are_skipped() {
        let doc = document(json!({
            "amazon-bedrock": {"id": "amazon-bedrock", "models": {
                "anthropic.claude-3-haiku-20240307-v1:0": {"name": "Claude Haiku 3"}}},
            "google-vertex": {"id": "google-vertex", "models": {"gemini-2.5-pro": {"name": "G"},
                "broken": "not an object"}},
            "no-models": {"id": "no-models"},
            "list": [1, 2]
        }));
        let records = parse_api(doc);
        let keys: Vec<(&str, &str)> = records
            .iter()
            .map(|r| (r.provider.as_str(), r.model_id.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("aws-bedrock", "anthropic.claude-3-haiku-20240307-v1:0"),
                ("google-vertex", "gemini-2.5-pro")
            ]
        );
        assert_eq!(records[1].raw_value(), json!({"name": "G"}));
    }
}
