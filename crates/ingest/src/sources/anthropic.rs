//! Anthropic: `GET /v1/models?limit=N` with `x-api-key` and
//! `anthropic-version: 2023-06-01`; pages of
//! `{"data":[ModelInfo],"has_more","first_id","last_id"}`, newest first,
//! followed forward with `after_id=<last_id>` while `has_more`.
//!
//! `capabilities` is an open tree whose every leaf is `{"supported": bool}`,
//! with dated feature names inside; it is read as an open map. `lifecycle`,
//! `deprecated_at`, `retires_at` and `line` appear in some API versions only.

use std::collections::BTreeMap;

use modelplane_domain::catalog::{Lifecycle, ModelFacts, Source, SourceRecord};
use serde::Deserialize;
use serde_json::Value;

use crate::sources::common::{date_from_text, list_by_cursor, modalities, CursorPaging};
use crate::{PageSink, SourceClient, SourceError};

pub const PROVIDER: &str = "anthropic";
pub const API_VERSION: &str = "2023-06-01";
/// The largest `limit` the API takes.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// One page of the listing; `data` must be an array.
#[derive(Debug, Deserialize)]
pub struct ModelPage {
    pub data: Vec<Value>,
    #[serde(default)]
    pub has_more: bool,
    #[serde(default)]
    pub last_id: Option<String>,
}

impl ModelPage {
    /// The `after_id` of the next page: `last_id`, or the last entry's id
    /// when the service left `last_id` out.
    pub fn next_cursor(&self) -> Option<String> {
        if !self.has_more {
            return None;
        }
        self.last_id.clone().or_else(|| {
            self.data
                .last()
                .and_then(|e| e.get("id"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
    }
}

pub async fn list(client: &SourceClient, sink: &mut dyn PageSink) -> Result<(), SourceError> {
    let key = client.api_key(Source::AnthropicApi.as_str())?;
    let headers = [
        ("x-api-key", key.to_owned()),
        ("anthropic-version", API_VERSION.to_owned()),
    ];
    let paging = CursorPaging {
        path: "/v1/models",
        headers: &headers,
        size_param: "limit",
        max_page_size: MAX_PAGE_SIZE,
        cursor_param: "after_id",
    };
    list_by_cursor(client, sink, paging, ModelPage::next_cursor, parse_page).await
}

/// The records of one page; entries without an id are skipped.
pub fn parse_page(page: &ModelPage) -> Vec<SourceRecord> {
    page.data
        .iter()
        .filter_map(|entry| {
            let record = to_record(entry);
            if record.is_none() {
                tracing::warn!(source = "anthropic-api", %entry, "listing entry without an id; skipped");
            }
            record
        })
        .collect()
}

/// One `ModelInfo`; None when it has no id.
///
/// Modalities are set only when `capabilities` is present: without it the
/// listing does not say whether images or PDFs are accepted. The lifecycle
/// is set only from the explicit `lifecycle` field (a past `retires_at` on a
/// deprecated model means retirement is overdue, not that it happened).
pub fn to_record(entry: &Value) -> Option<SourceRecord> {
    let id = entry.get("id")?.as_str()?.trim();
    if id.is_empty() {
        return None;
    }
    let text = |key: &str| entry.get(key).and_then(Value::as_str).map(str::to_owned);
    let date = |key: &str| {
        entry
            .get(key)
            .and_then(Value::as_str)
            .and_then(date_from_text)
    };
    let int = |key: &str| entry.get(key).and_then(Value::as_i64);

    let mut facts = ModelFacts {
        display_name: text("display_name").filter(|s| !s.is_empty()),
        family: text("line").filter(|s| !s.is_empty()),
        release_date: date("created_at"),
        context_window: int("max_input_tokens"),
        max_output_tokens: int("max_tokens"),
        deprecation_date: date("deprecated_at"),
        shutdown_date: date("retires_at"),
        lifecycle: entry
            .get("lifecycle")
            .and_then(Value::as_str)
            .and_then(lifecycle),
        ..ModelFacts::default()
    };
    if let Some(caps) = entry.get("capabilities").and_then(Value::as_object) {
        let capabilities = capabilities(caps);
        let has = |key: &str| capabilities.get(key) == Some(&Value::Bool(true));
        let mut inputs = vec!["text"];
        if has("vision") {
            inputs.push("image");
        }
        if has("pdf_input") {
            inputs.push("pdf");
        }
        facts.modalities_in = Some(modalities(inputs));
        facts.modalities_out = Some(vec!["text".to_owned()]);
        facts.capabilities = Some(capabilities);
    }
    Some(SourceRecord {
        provider: PROVIDER.to_owned(),
        model_id: id.to_owned(),
        facts,
        aliases: Vec::new(),
        raw: SourceRecord::raw_of(entry),
    })
}

/// `active` / `deprecated` / `retired` (calls fail: sunset). `legacy`, a
/// word of Anthropic's deprecations page, is a model still fully served that
/// no deprecation has been announced for: active.
pub fn lifecycle(value: &str) -> Option<Lifecycle> {
    match value.trim().to_lowercase().as_str() {
        "active" | "legacy" => Some(Lifecycle::Active),
        "deprecated" => Some(Lifecycle::Deprecated),
        "retired" => Some(Lifecycle::Sunset),
        _ => None,
    }
}

/// The effort levels in the order they are listed; others follow, sorted.
const EFFORT_ORDER: [&str; 6] = ["minimal", "low", "medium", "high", "xhigh", "max"];

/// The capability tree as the catalog's map: each `{supported}` leaf becomes a
/// boolean under the catalog's name for it (or its own name), and `effort`
/// becomes the list of supported `reasoning_efforts`.
pub fn capabilities(caps: &serde_json::Map<String, Value>) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for (key, value) in caps {
        let Some(supported) = leaf_supported(value) else {
            continue;
        };
        if key == "effort" {
            if !supported {
                continue;
            }
            let mut levels: Vec<&str> = value
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(level, leaf)| *level != "supported" && leaf_supported(leaf) == Some(true))
                .map(|(level, _)| level.as_str())
                .collect();
            levels.sort_by_key(|level| {
                (
                    EFFORT_ORDER
                        .iter()
                        .position(|known| known == level)
                        .unwrap_or(EFFORT_ORDER.len()),
                    level.to_string(),
                )
            });
            if !levels.is_empty() {
                out.insert("reasoning_efforts".to_owned(), Value::from(levels));
            }
            continue;
        }
        let name = match key.as_str() {
            "image_input" => "vision",
            "structured_outputs" => "structured_output",
            "thinking" => "reasoning",
            other => other,
        };
        out.insert(name.to_owned(), Value::Bool(supported));
    }
    out
}

/// A `{"supported": bool}` leaf (or a bare boolean).
fn leaf_supported(value: &Value) -> Option<bool> {
    value
        .as_bool()
        .or_else(|| value.get("supported").and_then(Value::as_bool))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opus() -> Value {
        json!({
            "id": "claude-opus-4-6", "type": "model", "display_name": "Claude Opus 4.6",
            "created_at": "2026-02-04T00:00:00Z", "max_input_tokens": 1000000, "max_tokens": 128000,
            "capabilities": {
                "batch": {"supported": true},
                "citations": {"supported": false},
                "code_execution": {"supported": true},
                "image_input": {"supported": true},
                "pdf_input": {"supported": true},
                "structured_outputs": {"supported": true},
                "effort": {"supported": true, "max": {"supported": true}, "low": {"supported": true},
                           "high": {"supported": true}, "medium": {"supported": false}},
                "thinking": {"supported": true, "types": {"adaptive": {"supported": true}}},
                "context_management": {"supported": true, "compact_20260112": {"supported": true}},
                "memory_20270101": {"supported": false}
            }
        })
    }

    #[test]
    fn model_info_maps_names_limits_and_release_date() {
        let record = to_record(&opus()).expect("a record");
        assert_eq!(record.provider, "anthropic");
        assert_eq!(record.model_id, "claude-opus-4-6");
        let f = &record.facts;
        assert_eq!(f.display_name.as_deref(), Some("Claude Opus 4.6"));
        assert_eq!(f.release_date.as_deref(), Some("2026-02-04"));
        assert_eq!(f.context_window, Some(1_000_000));
        assert_eq!(f.max_output_tokens, Some(128_000));
        assert_eq!(f.lifecycle, None);
        assert_eq!(f.family, None);
        assert_eq!(record.raw_value(), opus());
    }

    #[test]
    fn capability_leaves_become_catalog_booleans_and_effort_levels() {
        let record = to_record(&opus()).expect("a record");
        let caps = record.facts.capabilities.expect("capabilities");
        let expected = json!({
            "batch": true, "citations": false, "code_execution": true, "vision": true,
            "pdf_input": true, "structured_output": true, "reasoning": true,
            "reasoning_efforts": ["low", "high", "max"],
            "context_management": true, "memory_20270101": false
        });
        assert_eq!(serde_json::to_value(&caps).expect("json"), expected);
        assert_eq!(
            record.facts.modalities_in,
            Some(vec!["image".into(), "pdf".into(), "text".into()])
        );
        assert_eq!(record.facts.modalities_out, Some(vec!["text".into()]));
    }

    #[test]
    fn an_entry_without_capabilities_claims_no_modalities() {
        let entry = json!({"id": "claude-sonnet-4-5-20250929", "display_name": "Claude Sonnet 4.5",
                           "created_at": "2025-09-29T00:00:00Z"});
        let record = to_record(&entry).expect("a record");
        assert_eq!(record.facts.capabilities, None);
        assert_eq!(record.facts.modalities_in, None);
        assert_eq!(record.facts.modalities_out, None);
    }

    #[test]
    fn epoch_created_at_is_an_unknown_release_date() {
        let entry = json!({"id": "claude-2.0", "created_at": "1970-01-01T00:00:00Z"});
        assert_eq!(
            to_record(&entry).expect("a record").facts.release_date,
            None
        );
    }

    #[test]
    fn lifecycle_fields_map_to_lifecycle_dates_and_family() {
        let entry = json!({"id": "claude-3-haiku-20240307", "lifecycle": "deprecated",
                           "deprecated_at": "2026-02-01T00:00:00Z", "retires_at": "2026-08-01T00:00:00Z",
                           "line": "haiku"});
        let f = to_record(&entry).expect("a record").facts;
        assert_eq!(f.lifecycle, Some(Lifecycle::Deprecated));
        assert_eq!(f.deprecation_date.as_deref(), Some("2026-02-01"));
        assert_eq!(f.shutdown_date.as_deref(), Some("2026-08-01"));
        assert_eq!(f.family.as_deref(), Some("haiku"));
        assert_eq!(lifecycle("retired"), Some(Lifecycle::Sunset));
        assert_eq!(lifecycle("active"), Some(Lifecycle::Active));
        assert_eq!(lifecycle("someday"), None);
    }

    #[test]
    fn the_next_cursor_is_last_id_while_has_more() {
        let page: ModelPage = serde_json::from_value(json!({
            "data": [{"id": "a"}, {"id": "b"}], "has_more": true, "first_id": "a", "last_id": "b"
        }))
        .expect("page");
        assert_eq!(page.next_cursor().as_deref(), Some("b"));
        let no_last: ModelPage =
            serde_json::from_value(json!({"data": [{"id": "a"}, {"id": "c"}], "has_more": true}))
                .expect("page");
        assert_eq!(no_last.next_cursor().as_deref(), Some("c"));
        let done: ModelPage = serde_json::from_value(
            json!({"data": [{"id": "a"}], "has_more": false, "last_id": "a"}),
        )
        .expect("page");
        assert_eq!(done.next_cursor(), None);
        assert!(serde_json::from_value::<ModelPage>(json!({"data": null})).is_err());
    }
}
