//! Mistral: `GET /v1/models` with `Authorization: Bearer <key>`, one page
//! (`{"object":"list","data":[BaseModelCard | FTModelCard]}`).
//!
//! Every alias is also listed as an entry of its own (`id:
//! "mistral-medium-latest"`, `name: "mistral-medium-2508"`), so entries are
//! grouped by `name` (else `id`) into one record per model, named by `name`,
//! with the other ids and the `aliases` lists as official aliases. A 401
//! says `{"detail":"Unauthorized"}` for a revoked and an exhausted key alike.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use modelplane_domain::catalog::{Alias, Lifecycle, ModelFacts, Source, SourceRecord};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::sources::common::date_from_text;
use crate::{PageSink, SourceClient, SourceError};

pub const PROVIDER: &str = "mistral";

/// The listing envelope; `data` must be an array.
#[derive(Debug, Deserialize)]
pub struct ModelList {
    pub data: Vec<Value>,
}

pub async fn list(client: &SourceClient, sink: &mut dyn PageSink) -> Result<(), SourceError> {
    let key = client.api_key(Source::MistralApi.as_str())?;
    let query = super::common::query_params(client);
    let url = client.url("/v1/models", &query)?;
    let fetched = client
        .get(url, &[("authorization", format!("Bearer {key}"))])
        .await?;
    let page: ModelList = fetched.json()?;
    sink.page(parse_page(&page, &super::common::today())).await
}

fn text<'a>(entry: &'a Value, key: &str) -> Option<&'a str> {
    entry
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// One record per model, in listing order, as of `today` (`YYYY-MM-DD`).
///
/// An entry belongs to the model its `name` says; an entry without a name
/// whose id another entry lists among its `aliases` belongs to that entry's
/// model; any other entry is a model of its own, named by its id.
pub fn parse_page(page: &ModelList, today: &str) -> Vec<SourceRecord> {
    let mut canonical_of: HashMap<&str, &str> = HashMap::new();
    for entry in &page.data {
        if let Some(name) = text(entry, "name") {
            for alias in aliases_of(entry) {
                canonical_of.entry(alias).or_insert(name);
            }
        }
    }
    let mut groups: Vec<(&str, Vec<&Value>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for entry in &page.data {
        let Some(id) = text(entry, "id") else {
            tracing::warn!(source = "mistral-api", %entry, "listing entry without an id; skipped");
            continue;
        };
        let key = text(entry, "name")
            .or_else(|| canonical_of.get(id).copied())
            .unwrap_or(id);
        match index.get(key) {
            Some(&i) => groups[i].1.push(entry),
            None => {
                index.insert(key, groups.len());
                groups.push((key, vec![entry]));
            }
        }
    }
    groups
        .into_iter()
        .map(|(model_id, entries)| to_record(model_id, &entries, today))
        .collect()
}

fn aliases_of(entry: &Value) -> impl Iterator<Item = &str> {
    entry
        .get("aliases")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The record of one model from all its entries (at least one). Facts come
/// from the entry whose id is the model's name when there is one, else from
/// the first; every other id and listed alias becomes an official alias.
pub fn to_record(model_id: &str, entries: &[&Value], today: &str) -> SourceRecord {
    let main: &Value = entries
        .iter()
        .find(|e| text(e, "id") == Some(model_id))
        .or(entries.first())
        .copied()
        .unwrap_or(&Value::Null);
    let names: BTreeSet<&str> = entries
        .iter()
        .flat_map(|e| text(e, "id").into_iter().chain(aliases_of(e)))
        .filter(|name| *name != model_id)
        .collect();

    let mut capabilities = BTreeMap::new();
    if let Some(caps) = main.get("capabilities").and_then(Value::as_object) {
        for (key, value) in caps {
            let name = match key.as_str() {
                "function_calling" => "tools",
                "completion_fim" => "fim",
                other => other,
            };
            capabilities.insert(name.to_owned(), value.clone());
        }
    }
    if let Some(default) = main
        .get("default_model_temperature")
        .and_then(Value::as_f64)
    {
        capabilities.insert("temperature".to_owned(), json!({ "default": default }));
    }

    let mut facts = ModelFacts {
        description: text(main, "description").map(str::to_owned),
        context_window: main.get("max_context_length").and_then(Value::as_i64),
        capabilities: (!capabilities.is_empty()).then_some(capabilities),
        replacement_models: text(main, "deprecation_replacement_model").map(|m| vec![m.to_owned()]),
        ..ModelFacts::default()
    };
    // `deprecation` is always part of a model card; null means none announced.
    if let Some(deprecation) = main.get("deprecation") {
        let date = deprecation.as_str().and_then(date_from_text);
        facts.lifecycle = Some(Lifecycle::from_dates(date.as_deref(), None, today));
        facts.deprecation_date = date;
    }
    SourceRecord {
        provider: PROVIDER.to_owned(),
        model_id: model_id.to_owned(),
        facts,
        aliases: names
            .into_iter()
            .map(|name| Alias::new(name, "official"))
            .collect(),
        raw: SourceRecord::raw_of(main),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: &str = "2026-09-01";

    fn page(data: Value) -> ModelList {
        serde_json::from_value(json!({"object": "list", "data": data})).expect("envelope")
    }

    fn medium(id: &str, aliases: &[&str]) -> Value {
        json!({
            "id": id, "object": "model", "created": 1766520693, "owned_by": "mistralai",
            "capabilities": {"completion_chat": true, "function_calling": true, "completion_fim": false,
                             "vision": true, "audio_speech": false},
            "name": "mistral-medium-2508", "description": "Mistral Medium 3.1",
            "max_context_length": 131072, "aliases": aliases, "deprecation": null,
            "deprecation_replacement_model": null, "default_model_temperature": 0.3, "type": "base"
        })
    }

    #[test]
    fn alias_entries_fold_into_one_record_named_by_name() {
        let records = parse_page(
            &page(json!([
                medium(
                    "mistral-medium-latest",
                    &["mistral-medium-2508", "mistral-medium"]
                ),
                medium(
                    "mistral-medium-2508",
                    &["mistral-medium-latest", "mistral-medium"]
                ),
            ])),
            TODAY,
        );
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(r.model_id, "mistral-medium-2508");
        assert_eq!(
            r.aliases,
            vec![
                Alias::new("mistral-medium", "official"),
                Alias::new("mistral-medium-latest", "official"),
            ]
        );
        // The raw payload is the entry listed under the canonical id.
        assert_eq!(r.raw_value()["id"], "mistral-medium-2508");
    }

    #[test]
    fn an_unnamed_entry_listed_as_another_models_alias_joins_that_model() {
        let mut tiny = medium("mistral-tiny", &[]);
        tiny["name"] = Value::Null;
        let records = parse_page(
            &page(json!([
                tiny,
                medium("mistral-medium-2508", &["mistral-tiny"])
            ])),
            TODAY,
        );
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].model_id, "mistral-medium-2508");
        assert_eq!(
            records[0].aliases,
            vec![Alias::new("mistral-tiny", "official")]
        );
    }

    #[test]
    fn capabilities_temperature_and_context_map_to_catalog_names() {
        let r = &parse_page(&page(json!([medium("mistral-medium-2508", &[])])), TODAY)[0];
        let f = &r.facts;
        assert_eq!(f.description.as_deref(), Some("Mistral Medium 3.1"));
        assert_eq!(f.context_window, Some(131_072));
        assert_eq!(f.lifecycle, Some(Lifecycle::Active));
        assert_eq!(f.deprecation_date, None);
        assert_eq!(f.replacement_models, None);
        assert_eq!(
            serde_json::to_value(f.capabilities.as_ref().expect("caps")).expect("json"),
            json!({"completion_chat": true, "tools": true, "fim": false, "vision": true,
                   "audio_speech": false, "temperature": {"default": 0.3}})
        );
    }

    #[test]
    fn a_deprecation_date_sets_lifecycle_and_replacement() {
        let entry = json!({"id": "mistral-small-2409", "name": null, "aliases": [],
                           "deprecation": "2026-03-31T00:00:00Z",
                           "deprecation_replacement_model": "mistral-small-latest"});
        let past = &parse_page(&page(json!([entry.clone()])), TODAY)[0];
        assert_eq!(past.model_id, "mistral-small-2409");
        assert!(past.aliases.is_empty());
        assert_eq!(past.facts.deprecation_date.as_deref(), Some("2026-03-31"));
        assert_eq!(past.facts.lifecycle, Some(Lifecycle::Deprecated));
        assert_eq!(
            past.facts.replacement_models,
            Some(vec!["mistral-small-latest".to_owned()])
        );
        let before = &parse_page(&page(json!([entry])), "2026-01-01")[0];
        assert_eq!(before.facts.lifecycle, Some(Lifecycle::Active));
    }

    #[test]
    fn fine_tunes_and_sparse_entries_are_kept_under_their_id() {
        let records = parse_page(
            &page(json!([
                {"id": "ft:open-mistral-7b:587a6b29:20240514:7e773925", "type": "fine-tuned",
                 "name": null, "root": "open-mistral-7b"},
                {"id": "codestral-2501"},
                {"name": "no-id"}
            ])),
            TODAY,
        );
        let ids: Vec<&str> = records.iter().map(|r| r.model_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "ft:open-mistral-7b:587a6b29:20240514:7e773925",
                "codestral-2501"
            ]
        );
        assert_eq!(records[1].facts, ModelFacts::default());
    }
}
