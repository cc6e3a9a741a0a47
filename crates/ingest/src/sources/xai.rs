//! xAI: `GET /v1/language-models` (`{"models":[LanguageModel]}`, with
//! modalities, aliases and prices) and `GET /v1/models` (OpenAI-compatible,
//! `{"data":[{id,…}]}`, which also lists image and other non-language
//! models), both with `Authorization: Bearer <key>` and no pagination. Both
//! are filtered by the key's ACLs.
//!
//! Prices are integers in USD cents per 100 million tokens: USD per million
//! is the value / 10 000. A bad key is HTTP 400 `{"code","error"}`, which the
//! shared client reports as an auth error.

use std::collections::{BTreeMap, HashSet};

use modelplane_domain::catalog::{Alias, ModelFacts, Pricing, Source, SourceRecord};
use serde::Deserialize;
use serde_json::Value;

use crate::sources::common::modalities;
use crate::{PageSink, SourceClient, SourceError};

pub const PROVIDER: &str = "xai";

/// `GET /v1/language-models`; `models` must be an array.
#[derive(Debug, Deserialize)]
pub struct LanguageModels {
    pub models: Vec<Value>,
}

/// `GET /v1/models`; `data` must be an array.
#[derive(Debug, Deserialize)]
pub struct ModelList {
    pub data: Vec<Value>,
}

pub async fn list(client: &SourceClient, sink: &mut dyn PageSink) -> Result<(), SourceError> {
    let key = client.api_key(Source::XaiApi.as_str())?;
    let headers = [("authorization", format!("Bearer {key}"))];
    let query: Vec<(&str, String)> = client
        .settings()
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();

    let url = client.url("/v1/language-models", &query)?;
    let language: LanguageModels = client.get(url, &headers).await?.json()?;
    let records = parse_language_models(&language);
    let mut known: HashSet<String> = HashSet::new();
    for record in &records {
        known.insert(record.model_id.clone());
        known.extend(record.aliases.iter().map(|a| a.alias.clone()));
    }
    sink.page(records).await?;

    let url = client.url("/v1/models", &query)?;
    let all: ModelList = client.get(url, &headers).await?.json()?;
    let others = parse_other_models(&all, &known);
    if !others.is_empty() {
        sink.page(others).await?;
    }
    Ok(())
}

/// The records of `/v1/language-models`; entries without an id are skipped.
pub fn parse_language_models(page: &LanguageModels) -> Vec<SourceRecord> {
    page.models
        .iter()
        .filter_map(|entry| {
            let record = language_model(entry);
            if record.is_none() {
                tracing::warn!(source = "xai-api", %entry, "listing entry without an id; skipped");
            }
            record
        })
        .collect()
}

/// Minimal records for the `/v1/models` entries that `/v1/language-models`
/// did not list under an id or alias (`known`): image models and the like.
pub fn parse_other_models(page: &ModelList, known: &HashSet<String>) -> Vec<SourceRecord> {
    let mut seen = HashSet::new();
    page.data
        .iter()
        .filter_map(|entry| {
            let id = entry.get("id")?.as_str()?.trim();
            if id.is_empty() || known.contains(id) || !seen.insert(id.to_owned()) {
                return None;
            }
            Some(SourceRecord {
                provider: PROVIDER.to_owned(),
                model_id: id.to_owned(),
                facts: ModelFacts::default(),
                aliases: Vec::new(),
                raw: SourceRecord::raw_of(entry),
            })
        })
        .collect()
}

/// USD per million tokens from USD cents per 100 million tokens. The API
/// types prices as int64, which proto3 JSON may send as a string.
pub fn usd_per_million(value: &Value) -> Option<f64> {
    let cents_per_100m = value
        .as_f64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse::<f64>().ok()))
        .filter(|v| v.is_finite() && *v >= 0.0)?;
    Some(cents_per_100m / 10_000.0)
}

/// One `LanguageModel`; None when it has no id.
///
/// A cached-input price of 0 means the model has no prompt caching, not that
/// cached tokens are free, so it is left out.
pub fn language_model(entry: &Value) -> Option<SourceRecord> {
    let id = entry.get("id")?.as_str()?.trim();
    if id.is_empty() {
        return None;
    }
    let price = |key: &str| entry.get(key).and_then(usd_per_million);
    let list = |key: &str| {
        entry
            .get(key)
            .and_then(Value::as_array)
            .map(|items| modalities(items.iter().filter_map(Value::as_str)))
    };
    let input = price("prompt_text_token_price");
    let output = price("completion_text_token_price");
    let cached_input = price("cached_prompt_text_token_price").filter(|p| *p > 0.0);
    let pricing = (input.is_some() || output.is_some()).then(|| Pricing {
        input,
        output,
        cached_input,
        currency: "USD".to_owned(),
    });
    let modalities_in = list("input_modalities");
    let capabilities = modalities_in.as_ref().map(|m| {
        BTreeMap::from([(
            "vision".to_owned(),
            Value::Bool(m.iter().any(|m| m == "image")),
        )])
    });
    let mut aliases: Vec<Alias> = entry
        .get("aliases")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != id)
        .map(|a| Alias::new(a, "official"))
        .collect();
    aliases.sort();
    aliases.dedup();
    Some(SourceRecord {
        provider: PROVIDER.to_owned(),
        model_id: id.to_owned(),
        facts: ModelFacts {
            modalities_in,
            modalities_out: list("output_modalities"),
            pricing,
            capabilities,
            ..ModelFacts::default()
        },
        aliases,
        raw: SourceRecord::raw_of(entry),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn grok3() -> Value {
        json!({
            "id": "grok-3", "fingerprint": "fp_1", "created": 1743724800, "object": "model",
            "owned_by": "xai", "version": "1.0", "input_modalities": ["text"],
            "output_modalities": ["text"], "prompt_text_token_price": 30000,
            "cached_prompt_text_token_price": 7500, "prompt_image_token_price": 0,
            "completion_text_token_price": 150000, "search_price": 250000000,
            "aliases": ["grok-3-latest", "grok-3-beta"]
        })
    }

    #[test]
    fn prices_in_cents_per_100m_tokens_become_usd_per_million() {
        let record = language_model(&grok3()).expect("a record");
        assert_eq!(
            record.facts.pricing,
            Some(Pricing {
                input: Some(3.0),
                output: Some(15.0),
                cached_input: Some(0.75),
                currency: "USD".into(),
            })
        );
        assert_eq!(usd_per_million(&json!("2000")), Some(0.2));
        assert_eq!(usd_per_million(&json!(-1)), None);
        assert_eq!(usd_per_million(&json!(null)), None);
    }

    #[test]
    fn a_language_model_maps_modalities_and_official_aliases() {
        let record = language_model(&grok3()).expect("a record");
        assert_eq!(record.provider, "xai");
        assert_eq!(record.model_id, "grok-3");
        assert_eq!(record.facts.modalities_in, Some(vec!["text".to_owned()]));
        assert_eq!(record.facts.modalities_out, Some(vec!["text".to_owned()]));
        assert_eq!(record.facts.release_date, None);
        assert_eq!(
            record.aliases,
            vec![
                Alias::new("grok-3-beta", "official"),
                Alias::new("grok-3-latest", "official"),
            ]
        );
        assert_eq!(record.raw_value(), grok3());
    }

    #[test]
    fn image_input_means_vision_and_a_zero_cached_price_is_no_caching() {
        let entry = json!({"id": "grok-2-vision-1212", "input_modalities": ["text", "image"],
                           "output_modalities": ["text"], "prompt_text_token_price": 20000,
                           "cached_prompt_text_token_price": 0, "completion_text_token_price": 100000});
        let f = language_model(&entry).expect("a record").facts;
        assert_eq!(f.modalities_in, Some(vec!["image".into(), "text".into()]));
        assert_eq!(f.capabilities.expect("caps")["vision"], json!(true));
        let pricing = f.pricing.expect("pricing");
        assert_eq!(pricing.input, Some(2.0));
        assert_eq!(pricing.cached_input, None);
    }

    #[test]
    fn a_model_without_prices_has_no_pricing() {
        let f = language_model(&json!({"id": "grok-x"}))
            .expect("a record")
            .facts;
        assert_eq!(f, ModelFacts::default());
    }

    #[test]
    fn other_models_are_those_not_listed_as_language_models_or_aliases() {
        let page: ModelList = serde_json::from_value(json!({"object": "list", "data": [
            {"id": "grok-3"}, {"id": "grok-3-latest"}, {"id": "grok-2-image-1212", "owned_by": "xai"},
            {"id": "grok-2-image-1212"}, {"object": "model"}
        ]}))
        .expect("envelope");
        let known: HashSet<String> = ["grok-3", "grok-3-latest"].map(String::from).into();
        let others = parse_other_models(&page, &known);
        assert_eq!(others.len(), 1);
        assert_eq!(others[0].model_id, "grok-2-image-1212");
        assert_eq!(others[0].facts, ModelFacts::default());
        assert_eq!(others[0].raw_value()["owned_by"], "xai");
    }
}
