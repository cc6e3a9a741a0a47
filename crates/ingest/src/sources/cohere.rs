//! Cohere: `GET /v1/models?page_size=N` with `Authorization: Bearer <key>`;
//! pages of `{"models":[GetModelResponse],"next_page_token"?}`, followed with
//! `page_token` until the token is absent.
//!
//! A model says what it is through `endpoints` (`chat`, `embed`, `rerank`,
//! …) and what it can do through `features`; `is_deprecated` carries no
//! dates. Fine-tuned models are listed too: they exist for the key's
//! organisation only, which the runner records with the credential.

use std::collections::BTreeMap;

use modelplane_domain::catalog::{Lifecycle, ModelFacts, Source, SourceRecord};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::sources::common::{as_i64, list_by_cursor, CursorPaging};
use crate::{PageSink, SourceClient, SourceError};

pub const PROVIDER: &str = "cohere";
/// The largest `page_size` the API takes.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// One page; `models` must be an array.
#[derive(Debug, Deserialize)]
pub struct ModelPage {
    pub models: Vec<Value>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}

impl ModelPage {
    /// The `page_token` of the next page; an absent or empty token ends the listing.
    pub fn next_cursor(&self) -> Option<String> {
        self.next_page_token.clone().filter(|t| !t.is_empty())
    }
}

pub async fn list(client: &SourceClient, sink: &mut dyn PageSink) -> Result<(), SourceError> {
    let key = client.api_key(Source::CohereApi.as_str())?;
    let headers = [("authorization", format!("Bearer {key}"))];
    let paging = CursorPaging {
        path: "/v1/models",
        headers: &headers,
        size_param: "page_size",
        max_page_size: MAX_PAGE_SIZE,
        cursor_param: "page_token",
    };
    list_by_cursor(client, sink, paging, ModelPage::next_cursor, parse_page).await
}

/// The records of one page; entries without a name are skipped.
pub fn parse_page(page: &ModelPage) -> Vec<SourceRecord> {
    page.models
        .iter()
        .filter_map(|entry| {
            let record = to_record(entry);
            if record.is_none() {
                tracing::warn!(source = "cohere-api", %entry, "listing entry without a name; skipped");
            }
            record
        })
        .collect()
}

fn strings(entry: &Value, key: &str) -> Option<Vec<String>> {
    entry.get(key).and_then(Value::as_array).map(|items| {
        items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    })
}

/// One `GetModelResponse`; None when it has no name.
pub fn to_record(entry: &Value) -> Option<SourceRecord> {
    let name = entry.get("name")?.as_str()?.trim();
    if name.is_empty() {
        return None;
    }
    let endpoints = strings(entry, "endpoints");
    let embeds = endpoints
        .as_ref()
        .is_some_and(|e| e.iter().any(|e| e == "embed"));

    let mut capabilities = BTreeMap::new();
    for feature in strings(entry, "features").unwrap_or_default() {
        let key = match feature.as_str() {
            "json_schema" => "structured_output".to_owned(),
            other => other.to_owned(),
        };
        capabilities.insert(key, Value::Bool(true));
    }
    if let Some(endpoints) = &endpoints {
        if embeds {
            capabilities.insert("embeddings".to_owned(), Value::Bool(true));
        }
        capabilities.insert("endpoints".to_owned(), json!(endpoints));
    }
    if let Some(default) = entry
        .pointer("/sampling_defaults/temperature")
        .and_then(Value::as_f64)
    {
        capabilities.insert("temperature".to_owned(), json!({ "default": default }));
    }

    let facts = ModelFacts {
        context_window: entry.get("context_length").and_then(as_i64),
        modalities_out: embeds.then(|| vec!["embedding".to_owned()]),
        capabilities: (!capabilities.is_empty()).then_some(capabilities),
        lifecycle: entry
            .get("is_deprecated")
            .and_then(Value::as_bool)
            .map(|deprecated| {
                if deprecated {
                    Lifecycle::Deprecated
                } else {
                    Lifecycle::Active
                }
            }),
        ..ModelFacts::default()
    };
    Some(SourceRecord {
        provider: PROVIDER.to_owned(),
        model_id: name.to_owned(),
        facts,
        aliases: Vec::new(),
        raw: SourceRecord::raw_of(entry),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_model_maps_features_context_and_lifecycle() {
        let entry = json!({
            "name": "command-a-reasoning-08-2025", "is_deprecated": false, "endpoints": ["chat"],
            "finetuned": false, "context_length": 288768.0, "default_endpoints": [],
            "features": ["json_mode", "json_schema", "tools", "reasoning", "citations", "tool_images"],
            "sampling_defaults": {"temperature": 0.6, "p": 0.95}
        });
        let record = to_record(&entry).expect("a record");
        assert_eq!(record.provider, "cohere");
        assert_eq!(record.model_id, "command-a-reasoning-08-2025");
        assert_eq!(record.facts.context_window, Some(288_768));
        assert_eq!(record.facts.lifecycle, Some(Lifecycle::Active));
        assert_eq!(record.facts.modalities_out, None);
        assert_eq!(
            serde_json::to_value(record.facts.capabilities.as_ref().expect("caps")).expect("json"),
            json!({"json_mode": true, "structured_output": true, "tools": true, "reasoning": true,
                   "citations": true, "tool_images": true, "endpoints": ["chat"],
                   "temperature": {"default": 0.6}})
        );
        assert_eq!(record.raw_value(), entry);
    }

    #[test]
    fn an_embed_model_outputs_embeddings_and_null_features_are_tolerated() {
        let entry = json!({"name": "embed-v4.0", "endpoints": ["embed"], "features": null,
                           "context_length": 128000});
        let f = to_record(&entry).expect("a record").facts;
        assert_eq!(f.modalities_out, Some(vec!["embedding".to_owned()]));
        let caps = f.capabilities.expect("caps");
        assert_eq!(caps["embeddings"], json!(true));
        assert_eq!(caps["endpoints"], json!(["embed"]));
        assert_eq!(f.lifecycle, None);
    }

    #[test]
    fn deprecated_models_and_fine_tunes_are_kept() {
        let deprecated =
            json!({"name": "command", "is_deprecated": true, "endpoints": ["chat", "generate"]});
        let f = to_record(&deprecated).expect("a record").facts;
        assert_eq!(f.lifecycle, Some(Lifecycle::Deprecated));
        let tuned = json!({"name": "acme-support-ft", "finetuned": true});
        assert_eq!(
            to_record(&tuned).expect("a record").model_id,
            "acme-support-ft"
        );
        assert!(to_record(&json!({"is_deprecated": true})).is_none());
    }

    #[test]
    fn the_page_token_is_followed_until_absent_and_models_must_be_a_list() {
        let more: ModelPage =
            serde_json::from_value(json!({"models": [], "next_page_token": "p2"})).expect("page");
        assert_eq!(more.next_cursor().as_deref(), Some("p2"));
        let last: ModelPage = serde_json::from_value(json!({"models": []})).expect("page");
        assert_eq!(last.next_cursor(), None);
        assert!(serde_json::from_value::<ModelPage>(json!({"models": {"name": "x"}})).is_err());
        assert!(serde_json::from_value::<ModelPage>(json!({})).is_err());
    }
}
