//! OpenRouter: `GET {base}/api/v1/models`, one `{"data": [...]}` document;
//! no auth needed (a configured key is sent as `Bearer`), no pagination.
//!
//! An OpenRouter id is `<provider>/<model>` (`openai/gpt-4o`, `x-ai/grok-4`,
//! `meta-llama/llama-3.1-8b-instruct`): the provider slug comes from the
//! prefix ([`Provider::from_name`]), the model id is what follows the first
//! `/`, and the full id is an alias of source `openrouter` (so is a
//! `canonical_slug` that differs); `hugging_face_id` is an alias of source
//! `huggingface` and means the weights are open.
//!
//! Prices are strings in USD **per token**: `prompt` → input,
//! `completion` → output, `input_cache_read` → cached input, each × 10⁶;
//! OpenRouter's `-1` ("varies by route") reads as unknown. `context_length`
//! → context window, `top_provider.max_completion_tokens` → max output,
//! `architecture.input_modalities` / `output_modalities`, `created` →
//! release date, `knowledge_cutoff`, `expiration_date` → shutdown date (and
//! the lifecycle that follows from it; no date sets no lifecycle), `name`
//! without its `Vendor: ` prefix → display name, `description`.
//! `supported_parameters` → capabilities `tools`, `structured_output`
//! (`structured_outputs`), `json_mode` (`response_format`), `reasoning`
//! (`reasoning` / `include_reasoning`), `temperature`, each true or false.
//!
//! **Variants**: an id with a `:tag` suffix (`…:free`, `…:extended`,
//! `…:thinking`) is the same model served on other terms, not another
//! model. It becomes an alias (source `openrouter`) of its base model's
//! record and adds no facts of its own. When the listing has the variant
//! only, the variant's entry makes the base model's record, without
//! pricing if it is `:free` (a promotional price is not the model's).

use std::collections::{BTreeMap, HashMap};

use modelplane_domain::catalog::{Alias, Lifecycle, ModelFacts, Pricing, Provider, SourceRecord};
use serde::Deserialize;
use serde_json::Value;

use super::common;
use super::common::{push_in_chunks, query_params, today, usd_per_million};
use crate::{PageSink, SourceClient, SourceError};

/// The alias source of OpenRouter ids.
pub const ALIAS_SOURCE: &str = "openrouter";

#[derive(Deserialize)]
struct Envelope {
    data: Vec<Value>,
}

/// Lists every model OpenRouter routes to.
pub async fn list(client: &SourceClient, sink: &mut dyn PageSink) -> Result<(), SourceError> {
    let url = client.url("/api/v1/models", &query_params(client))?;
    let headers: Vec<(&str, String)> = client
        .settings()
        .api_key
        .as_deref()
        .map(|key| ("authorization", format!("Bearer {key}")))
        .into_iter()
        .collect();
    let fetched = client.get(url, &headers).await?;
    let envelope: Envelope = fetched.json()?;
    push_in_chunks(sink, parse_models(envelope.data, &today())).await
}

/// The `data` entries as records, variants folded into their base model.
/// Entries that are not objects with a string `id` are skipped.
pub fn parse_models(entries: Vec<Value>, today: &str) -> Vec<SourceRecord> {
    let mut records: Vec<SourceRecord> = Vec::new();
    // Full OpenRouter id of a base model → its record.
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut variants: Vec<(String, Value)> = Vec::new();
    for entry in entries {
        let Some(id) = entry.get("id").and_then(Value::as_str).map(str::trim) else {
            continue;
        };
        if id.is_empty() {
            continue;
        }
        if let Some((base, _)) = id.split_once(':') {
            variants.push((base.to_owned(), entry));
            continue;
        }
        let id = id.to_owned();
        if by_id.contains_key(&id) {
            continue;
        }
        let record = parse_model(&id, entry, today);
        by_id.insert(id, records.len());
        records.push(record);
    }
    for (base, entry) in variants {
        let Some(id) = entry.get("id").and_then(Value::as_str).map(str::to_owned) else {
            continue;
        };
        if let Some(&i) = by_id.get(&base) {
            add_alias(&mut records[i], Alias::new(id, ALIAS_SOURCE));
            continue;
        }
        let free = id.ends_with(":free");
        let mut record = parse_model(&base, entry, today);
        if free {
            record.facts.pricing = None;
        }
        add_alias(&mut record, Alias::new(id, ALIAS_SOURCE));
        by_id.insert(base, records.len());
        records.push(record);
    }
    records
}

fn add_alias(record: &mut SourceRecord, alias: Alias) {
    if !record.aliases.contains(&alias) {
        record.aliases.push(alias);
    }
}

/// The record of one entry listed as `id` (an OpenRouter id without a
/// variant suffix).
pub fn parse_model(id: &str, entry: Value, today: &str) -> SourceRecord {
    let (vendor, model_id) = match id.split_once('/') {
        Some((vendor, model)) if !vendor.is_empty() && !model.is_empty() => (vendor, model),
        _ => ("openrouter", id),
    };
    let mut aliases = vec![Alias::new(id, ALIAS_SOURCE)];
    let text = |name: &str| {
        entry
            .get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    if let Some(slug) = text("canonical_slug").filter(|s| *s != id) {
        aliases.push(Alias::new(slug, ALIAS_SOURCE));
    }
    let hugging_face_id = text("hugging_face_id");
    if let Some(hf) = hugging_face_id {
        aliases.push(Alias::new(hf, "huggingface"));
    }
    let facts = facts(&entry, today, hugging_face_id.is_some());
    SourceRecord {
        provider: Provider::from_name(vendor).slug,
        model_id: model_id.to_owned(),
        facts,
        aliases,
        raw: SourceRecord::raw_of(&entry),
    }
}

fn facts(entry: &Value, today: &str, has_weights: bool) -> ModelFacts {
    let text = |name: &str| {
        entry
            .get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let modalities = |name: &str| {
        entry
            .get("architecture")
            .and_then(|a| a.get(name))
            .and_then(Value::as_array)
            .map(|items| common::modalities(items.iter().filter_map(Value::as_str)))
            .filter(|m| !m.is_empty())
    };
    let positive = |v: Option<&Value>| v.and_then(common::as_i64).filter(|n| *n > 0);
    let shutdown_date = text("expiration_date").and_then(common::date_from_text);
    let display_name = text("name").map(|name| match name.split_once(": ") {
        Some((_, rest)) if !rest.trim().is_empty() => rest.trim().to_owned(),
        _ => name.to_owned(),
    });
    ModelFacts {
        display_name,
        description: text("description").map(str::to_owned),
        modalities_in: modalities("input_modalities"),
        modalities_out: modalities("output_modalities"),
        context_window: positive(entry.get("context_length")),
        max_output_tokens: positive(entry.pointer("/top_provider/max_completion_tokens")),
        pricing: entry.get("pricing").and_then(pricing),
        capabilities: entry
            .get("supported_parameters")
            .and_then(Value::as_array)
            .map(|params| capabilities(params.iter().filter_map(Value::as_str))),
        open_weights: has_weights.then_some(true),
        release_date: entry
            .get("created")
            .and_then(common::as_i64)
            .and_then(common::date_from_unix),
        knowledge_cutoff: text("knowledge_cutoff").and_then(common::date_from_text),
        lifecycle: shutdown_date
            .as_deref()
            .map(|date| Lifecycle::from_dates(None, Some(date), today)),
        shutdown_date,
        ..ModelFacts::default()
    }
}

/// OpenRouter's per-token price strings as catalog pricing per 1M tokens;
/// None when no input, output or cached-input price reads.
pub fn pricing(prices: &Value) -> Option<Pricing> {
    let price = |name: &str| {
        let value = prices.get(name)?;
        let per_token = match value {
            Value::String(s) => s.trim().parse::<f64>().ok()?,
            other => other.as_f64()?,
        };
        usd_per_million(per_token)
    };
    let pricing = Pricing {
        input: price("prompt"),
        output: price("completion"),
        cached_input: price("input_cache_read"),
        currency: "USD".to_owned(),
    };
    (pricing.input.is_some() || pricing.output.is_some() || pricing.cached_input.is_some())
        .then_some(pricing)
}

/// Capabilities from `supported_parameters`.
pub fn capabilities<'a>(params: impl Iterator<Item = &'a str>) -> BTreeMap<String, Value> {
    let params: Vec<&str> = params.collect();
    let has = |name: &str| params.contains(&name);
    [
        ("tools", has("tools")),
        ("structured_output", has("structured_outputs")),
        ("json_mode", has("response_format")),
        ("reasoning", has("reasoning") || has("include_reasoning")),
        ("temperature", has("temperature")),
    ]
    .into_iter()
    .map(|(name, on)| (name.to_owned(), Value::Bool(on)))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TODAY: &str = "2026-06-01";

    fn entry(id: &str) -> Value {
        json!({
            "id": id, "canonical_slug": id, "hugging_face_id": "", "name": "Vendor: Model",
            "created": 1763587502, "description": "A model.", "context_length": 131072,
            "architecture": {"input_modalities": ["text", "image", "file"], "output_modalities": ["text"]},
            "pricing": {"prompt": "0.0000002", "completion": "0.0000005", "input_cache_read": "0.00000005",
                        "web_search": "0.005"},
            "top_provider": {"context_length": 131072, "max_completion_tokens": 30000},
            "supported_parameters": ["max_tokens", "tools", "structured_outputs", "include_reasoning",
                                     "temperature"],
            "expiration_date": null
        })
    }

    #[test]
    fn an_entry_maps_provider_prices_limits_and_capabilities() {
        let records = parse_models(vec![entry("x-ai/grok-4.1-fast")], TODAY);
        let r = &records[0];
        assert_eq!(r.provider, "xai");
        assert_eq!(r.model_id, "grok-4.1-fast");
        assert_eq!(r.aliases, [Alias::new("x-ai/grok-4.1-fast", "openrouter")]);
        let f = &r.facts;
        assert_eq!(f.display_name.as_deref(), Some("Model"));
        assert_eq!(
            f.pricing,
            Some(Pricing {
                input: Some(0.2),
                output: Some(0.5),
                cached_input: Some(0.05),
                currency: "USD".into()
            })
        );
        assert_eq!(f.context_window, Some(131_072));
        assert_eq!(f.max_output_tokens, Some(30_000));
        assert_eq!(
            f.modalities_in,
            Some(vec!["file".into(), "image".into(), "text".into()])
        );
        assert_eq!(f.release_date.as_deref(), Some("2025-11-19"));
        assert_eq!(f.lifecycle, None);
        assert_eq!(f.open_weights, None);
        let caps = f.capabilities.as_ref().expect("capabilities");
        assert_eq!(caps["tools"], json!(true));
        assert_eq!(caps["structured_output"], json!(true));
        assert_eq!(caps["reasoning"], json!(true));
        assert_eq!(caps["temperature"], json!(true));
        assert_eq!(caps["json_mode"], json!(false));
    }

    #[test]
    fn an_expiration_date_is_a_shutdown_date() {
        let mut e = entry("x-ai/grok-4.1-fast");
        e["expiration_date"] = json!("2026-05-15");
        let f = &parse_models(vec![e], TODAY)[0].facts;
        assert_eq!(f.shutdown_date.as_deref(), Some("2026-05-15"));
        assert_eq!(f.lifecycle, Some(Lifecycle::Sunset));
    }

    #[test]
    fn variants_become_aliases_of_their_base_model() {
        let mut free = entry("meta-llama/llama-3.3-70b-instruct:free");
        free["pricing"] = json!({"prompt": "0", "completion": "0"});
        let records = parse_models(
            vec![free.clone(), entry("meta-llama/llama-3.3-70b-instruct")],
            TODAY,
        );
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].provider, "meta");
        assert_eq!(records[0].model_id, "llama-3.3-70b-instruct");
        assert_eq!(
            records[0].aliases,
            [
                Alias::new("meta-llama/llama-3.3-70b-instruct", "openrouter"),
                Alias::new("meta-llama/llama-3.3-70b-instruct:free", "openrouter"),
            ]
        );
        assert_eq!(
            records[0].facts.pricing.as_ref().and_then(|p| p.input),
            Some(0.2)
        );

        let orphan = parse_models(vec![free], TODAY);
        assert_eq!(orphan.len(), 1);
        assert_eq!(orphan[0].model_id, "llama-3.3-70b-instruct");
        assert_eq!(orphan[0].facts.pricing, None);
        assert_eq!(
            orphan[0].aliases,
            [
                Alias::new("meta-llama/llama-3.3-70b-instruct", "openrouter"),
                Alias::new("meta-llama/llama-3.3-70b-instruct:free", "openrouter"),
            ]
        );
    }

    #[test]
    fn canonical_slug_and_hugging_face_id_are_aliases() {
        let mut e = entry("ibm-granite/granite-4.1-8b");
        e["canonical_slug"] = json!("ibm-granite/granite-4.1-8b-20260429");
        e["hugging_face_id"] = json!("ibm-granite/granite-4.1-8b");
        let r = &parse_models(vec![e], TODAY)[0];
        assert_eq!(r.provider, "ibm-granite");
        assert_eq!(
            r.aliases,
            [
                Alias::new("ibm-granite/granite-4.1-8b", "openrouter"),
                Alias::new("ibm-granite/granite-4.1-8b-20260429", "openrouter"),
                Alias::new("ibm-granite/granite-4.1-8b", "huggingface"),
            ]
        );
        assert_eq!(r.facts.open_weights, Some(true));
    }

    #[test]
    fn odd_prices_and_entries_are_tolerated() {
        let prices = json!({"prompt": "-1", "completion": "free", "input_cache_read": 0.000001});
        assert_eq!(
            pricing(&prices),
            Some(Pricing {
                input: None,
                output: None,
                cached_input: Some(1.0),
                currency: "USD".into()
            })
        );
        assert_eq!(pricing(&json!({"prompt": "-1", "completion": "-1"})), None);
        let mut odd = entry("openai/gpt-x");
        odd["context_length"] = json!("big");
        odd["architecture"] = json!("text->text");
        odd["supported_parameters"] = json!({"tools": true});
        let records = parse_models(vec![odd, json!({"id": 7}), json!("openai/gpt-y")], TODAY);
        assert_eq!(records.len(), 1);
        let f = &records[0].facts;
        assert_eq!(f.context_window, None);
        assert_eq!(f.modalities_in, None);
        assert_eq!(f.capabilities, None);
    }
}
