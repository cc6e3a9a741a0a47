//! Google Gemini API: `GET /v1beta/models?pageSize=N` with the key in the
//! `x-goog-api-key` header (kept out of the URL, which is logged); pages of
//! `{"models":[Model],"nextPageToken"?}`, followed with `pageToken` until the
//! token is absent.
//!
//! The API's id is the resource name without `models/`. The listing has no
//! lifecycle, pricing or input modalities; what it says about a model's kind
//! is in `supportedGenerationMethods`. A bad key is HTTP 400
//! `API_KEY_INVALID`, which the shared client reports as an auth error; a
//! quota error carries its backoff in the body (`RetryInfo.retryDelay`).

use std::collections::BTreeMap;

use modelplane_domain::catalog::{ModelFacts, Source, SourceRecord};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::sources::common::{list_by_cursor, CursorPaging};
use crate::{PageSink, SourceClient, SourceError};

pub const PROVIDER: &str = "google";
/// The server caps `pageSize` at 1000.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// One page. Proto3 JSON leaves an empty repeated field out, so a page with
/// no models may be `{}`; `models` present but not an array is malformed.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelPage {
    #[serde(default)]
    pub models: Vec<Value>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}

impl ModelPage {
    /// The `pageToken` of the next page; an absent or empty token ends the listing.
    pub fn next_cursor(&self) -> Option<String> {
        self.next_page_token.clone().filter(|t| !t.is_empty())
    }
}

pub async fn list(client: &SourceClient, sink: &mut dyn PageSink) -> Result<(), SourceError> {
    let key = client.api_key(Source::GoogleApi.as_str())?;
    let headers = [("x-goog-api-key", key.to_owned())];
    let paging = CursorPaging {
        path: "/v1beta/models",
        headers: &headers,
        size_param: "pageSize",
        max_page_size: MAX_PAGE_SIZE,
        cursor_param: "pageToken",
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
                tracing::warn!(source = "google-api", %entry, "listing entry without a name; skipped");
            }
            record
        })
        .collect()
}

/// One `Model`; None when it has no name.
pub fn to_record(entry: &Value) -> Option<SourceRecord> {
    let name = entry.get("name")?.as_str()?.trim();
    let id = name.strip_prefix("models/").unwrap_or(name);
    if id.is_empty() {
        return None;
    }
    let text = |key: &str| {
        entry
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let methods: Option<Vec<&str>> = entry
        .get("supportedGenerationMethods")
        .and_then(Value::as_array)
        .map(|m| m.iter().filter_map(Value::as_str).collect());
    let embeds = methods
        .as_ref()
        .is_some_and(|m| m.contains(&"embedContent"));

    let mut capabilities = BTreeMap::new();
    let temperature = entry.get("temperature").and_then(Value::as_f64);
    let max_temperature = entry.get("maxTemperature").and_then(Value::as_f64);
    if temperature.is_some() || max_temperature.is_some() {
        let mut t = json!({"min": 0.0});
        if let Some(max) = max_temperature {
            t["max"] = json!(max);
        }
        if let Some(default) = temperature {
            t["default"] = json!(default);
        }
        capabilities.insert("temperature".to_owned(), t);
    }
    if let Some(thinking) = entry.get("thinking").and_then(Value::as_bool) {
        capabilities.insert("reasoning".to_owned(), Value::Bool(thinking));
    }
    if let Some(methods) = &methods {
        let batch = methods
            .iter()
            .any(|m| matches!(*m, "batchGenerateContent" | "asyncBatchEmbedContent"));
        capabilities.insert("batch".to_owned(), Value::Bool(batch));
        if embeds {
            capabilities.insert("embeddings".to_owned(), Value::Bool(true));
        }
        capabilities.insert("generation_methods".to_owned(), json!(methods));
    }

    let facts = ModelFacts {
        display_name: text("displayName"),
        description: text("description"),
        context_window: entry.get("inputTokenLimit").and_then(Value::as_i64),
        // An embedding model's `outputTokenLimit` is 1: not an output limit.
        max_output_tokens: entry
            .get("outputTokenLimit")
            .and_then(Value::as_i64)
            .filter(|_| !embeds),
        modalities_out: embeds.then(|| vec!["embedding".to_owned()]),
        capabilities: (!capabilities.is_empty()).then_some(capabilities),
        ..ModelFacts::default()
    };
    Some(SourceRecord {
        provider: PROVIDER.to_owned(),
        model_id: id.to_owned(),
        facts,
        aliases: Vec::new(),
        raw: SourceRecord::raw_of(entry),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flash() -> Value {
        json!({
            "name": "models/gemini-2.5-flash", "version": "001", "displayName": "Gemini 2.5 Flash",
            "description": "Mid-size multimodal model.", "inputTokenLimit": 1048576,
            "outputTokenLimit": 65536,
            "supportedGenerationMethods": ["generateContent", "countTokens", "batchGenerateContent"],
            "temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2, "thinking": true
        })
    }

    #[test]
    fn a_gemini_model_maps_id_limits_temperature_and_methods() {
        let record = to_record(&flash()).expect("a record");
        assert_eq!(record.provider, "google");
        assert_eq!(record.model_id, "gemini-2.5-flash");
        let f = &record.facts;
        assert_eq!(f.display_name.as_deref(), Some("Gemini 2.5 Flash"));
        assert_eq!(f.description.as_deref(), Some("Mid-size multimodal model."));
        assert_eq!(f.context_window, Some(1_048_576));
        assert_eq!(f.max_output_tokens, Some(65_536));
        assert_eq!(f.modalities_out, None);
        let caps = serde_json::to_value(f.capabilities.as_ref().expect("caps")).expect("json");
        assert_eq!(
            caps,
            json!({
                "temperature": {"min": 0.0, "max": 2.0, "default": 1.0},
                "reasoning": true,
                "batch": true,
                "generation_methods": ["generateContent", "countTokens", "batchGenerateContent"]
            })
        );
        assert_eq!(record.raw_value(), flash());
    }

    #[test]
    fn an_embedding_model_outputs_embeddings_without_an_output_limit() {
        let entry = json!({
            "name": "models/gemini-embedding-001", "inputTokenLimit": 2048, "outputTokenLimit": 1,
            "supportedGenerationMethods": ["embedContent", "countTokens", "asyncBatchEmbedContent"]
        });
        let f = to_record(&entry).expect("a record").facts;
        assert_eq!(f.modalities_out, Some(vec!["embedding".to_owned()]));
        assert_eq!(f.max_output_tokens, None);
        assert_eq!(f.context_window, Some(2048));
        let caps = f.capabilities.expect("caps");
        assert_eq!(caps["embeddings"], json!(true));
        assert_eq!(caps["batch"], json!(true));
        assert!(!caps.contains_key("temperature"));
        assert!(!caps.contains_key("reasoning"));
    }

    #[test]
    fn a_model_without_optional_fields_has_only_its_id() {
        let record = to_record(&json!({"name": "models/aqa"})).expect("a record");
        assert_eq!(record.model_id, "aqa");
        assert_eq!(record.facts, ModelFacts::default());
        assert!(to_record(&json!({"name": "models/"})).is_none());
        assert!(to_record(&json!({"displayName": "nameless"})).is_none());
    }

    #[test]
    fn an_empty_page_is_the_last_and_models_must_be_a_list() {
        let empty: ModelPage = serde_json::from_value(json!({})).expect("page");
        assert!(parse_page(&empty).is_empty());
        assert_eq!(empty.next_cursor(), None);
        let blank: ModelPage =
            serde_json::from_value(json!({"models": [], "nextPageToken": ""})).expect("page");
        assert_eq!(blank.next_cursor(), None);
        let more: ModelPage =
            serde_json::from_value(json!({"models": [flash()], "nextPageToken": "tok"}))
                .expect("page");
        assert_eq!(more.next_cursor().as_deref(), Some("tok"));
        assert!(serde_json::from_value::<ModelPage>(json!({"models": "x"})).is_err());
    }
}
