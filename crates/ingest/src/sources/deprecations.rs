//! deprecations.info: `GET {base}/v1/deprecations.json`, a static JSON array
//! of deprecation notices scraped daily from the providers' pages; no auth,
//! no pagination.
//!
//! Each row names a provider by display name (`OpenAI`, `Google Vertex`,
//! `AWS Bedrock`, `Azure`, …, mapped with [`Provider::from_name`]) and a
//! `model_id`, with `deprecation_date`, `shutdown_date` (`""` when unknown),
//! `replacement_models` (null when none is named) and the notice's `url`.
//! The lifecycle follows from the dates on the day of the run
//! ([`Lifecycle::from_dates`]): a shutdown date reached is `sunset` (calls
//! fail), a deprecation date reached or a shutdown announced is `deprecated`
//! (still callable), otherwise `active`. Only lifecycle facts are set.
//!
//! Rules:
//! - **Not a model**: a `model_id` that is empty, holds whitespace (`Reusable
//!   prompts`, `Assistants API`) or starts with `/` (an endpoint such as
//!   `/v1/connectors`) names a feature, not a model; the row is skipped.
//!   Provider model ids never contain spaces.
//! - **Several rows for one model** (the same provider slug and model id,
//!   e.g. regional retirements): one record with the earliest deprecation
//!   date and the earliest known shutdown date (an unknown one never wins
//!   over a known one), every replacement named by any row (first-seen
//!   order), the first row's `url`, and as `raw` the array of those rows as
//!   received (a single row's `raw` is the row itself).
//! - A row that is not an object or lacks a string `provider` or `model_id`
//!   is skipped; a field of unexpected type reads as absent.

use std::collections::HashMap;

use modelplane_domain::catalog::{Lifecycle, ModelFacts, Provider, SourceRecord};
use serde_json::Value;

use super::common;
use super::common::{push_in_chunks, query_params, today};
use crate::{PageSink, SourceClient, SourceError};

/// Lists every deprecation notice as a lifecycle record per model.
pub async fn list(client: &SourceClient, sink: &mut dyn PageSink) -> Result<(), SourceError> {
    let url = client.url("/v1/deprecations.json", &query_params(client))?;
    let fetched = client.get(url, &[]).await?;
    let rows: Vec<Value> = fetched.json()?;
    push_in_chunks(sink, parse_deprecations(rows, &today())).await
}

/// Whether a `model_id` names a model rather than a feature or endpoint.
pub fn is_model_id(model_id: &str) -> bool {
    !model_id.is_empty() && !model_id.starts_with('/') && !model_id.chars().any(char::is_whitespace)
}

/// The rows as one record per (provider, model id), in the order each
/// model first appears, with lifecycles as of `today` (`YYYY-MM-DD`).
pub fn parse_deprecations(rows: Vec<Value>, today: &str) -> Vec<SourceRecord> {
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    for row in rows {
        let Some(notice) = Notice::read(&row) else {
            continue;
        };
        let key = (notice.provider.clone(), notice.model_id.clone());
        match index.get(&key) {
            Some(&i) => groups[i].add(notice, row),
            None => {
                index.insert(key, groups.len());
                groups.push(Group::new(notice, row));
            }
        }
    }
    groups.into_iter().map(|g| g.record(today)).collect()
}

/// What one row says.
struct Notice {
    provider: String,
    model_id: String,
    deprecation_date: Option<String>,
    shutdown_date: Option<String>,
    replacement_models: Option<Vec<String>>,
    url: Option<String>,
}

impl Notice {
    fn read(row: &Value) -> Option<Notice> {
        let text = |name: &str| row.get(name).and_then(Value::as_str).map(str::trim);
        let provider = text("provider").filter(|p| !p.is_empty())?;
        let model_id = text("model_id").filter(|m| is_model_id(m))?;
        let slug = Provider::from_name(provider).slug;
        if slug.is_empty() {
            return None;
        }
        let replacement_models =
            row.get("replacement_models")
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::trim)
                        .filter(|m| !m.is_empty())
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                });
        Some(Notice {
            provider: slug,
            model_id: model_id.to_owned(),
            deprecation_date: text("deprecation_date").and_then(common::date_from_text),
            shutdown_date: text("shutdown_date").and_then(common::date_from_text),
            replacement_models,
            url: text("url").filter(|u| !u.is_empty()).map(str::to_owned),
        })
    }
}

/// The rows of one model, folded as they come.
struct Group {
    notice: Notice,
    rows: Vec<Value>,
}

impl Group {
    fn new(notice: Notice, row: Value) -> Group {
        Group {
            notice,
            rows: vec![row],
        }
    }

    fn add(&mut self, other: Notice, row: Value) {
        let n = &mut self.notice;
        n.deprecation_date = earliest(n.deprecation_date.take(), other.deprecation_date);
        n.shutdown_date = earliest(n.shutdown_date.take(), other.shutdown_date);
        if let Some(more) = other.replacement_models {
            let known = n.replacement_models.get_or_insert_with(Vec::new);
            for model in more {
                if !known.contains(&model) {
                    known.push(model);
                }
            }
        }
        if n.url.is_none() {
            n.url = other.url;
        }
        self.rows.push(row);
    }

    fn record(self, today: &str) -> SourceRecord {
        let n = self.notice;
        let lifecycle = Lifecycle::from_dates(
            n.deprecation_date.as_deref(),
            n.shutdown_date.as_deref(),
            today,
        );
        let raw = match <[Value; 1]>::try_from(self.rows) {
            Ok([row]) => row,
            Err(rows) => Value::Array(rows),
        };
        SourceRecord {
            provider: n.provider,
            model_id: n.model_id,
            facts: ModelFacts {
                lifecycle: Some(lifecycle),
                deprecation_date: n.deprecation_date,
                shutdown_date: n.shutdown_date,
                replacement_models: n.replacement_models.filter(|r| !r.is_empty()),
                lifecycle_url: n.url,
                ..ModelFacts::default()
            },
            aliases: Vec::new(),
            raw: SourceRecord::raw_of(&raw),
        }
    }
}

/// The earlier of two optional `YYYY-MM-DD` dates; a known date beats None.
fn earliest(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b < a { b } else { a }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TODAY: &str = "2026-06-01";

    fn row(provider: &str, model: &str, deprecation: &str, shutdown: &str) -> Value {
        json!({
            "provider": provider, "model_id": model, "announcement_date": "2026-01-01",
            "deprecation_date": deprecation, "shutdown_date": shutdown,
            "replacement_models": null, "url": format!("https://example.test/{model}"),
            "content_hash": "0000000000000000"
        })
    }

    #[test]
    fn dates_decide_between_active_deprecated_and_sunset() {
        let records = parse_deprecations(
            vec![
                row("OpenAI", "gone", "2026-01-01", "2026-05-01"),
                row("Anthropic", "going", "2026-05-01", "2026-09-01"),
                row("Cohere", "announced", "2026-05-01", ""),
                row("Groq", "later", "2026-09-01", ""),
            ],
            TODAY,
        );
        let lifecycles: Vec<(&str, Lifecycle)> = records
            .iter()
            .map(|r| (r.model_id.as_str(), r.facts.lifecycle.expect("lifecycle")))
            .collect();
        assert_eq!(
            lifecycles,
            [
                ("gone", Lifecycle::Sunset),
                ("going", Lifecycle::Deprecated),
                ("announced", Lifecycle::Deprecated),
                ("later", Lifecycle::Active),
            ]
        );
        assert_eq!(records[2].facts.shutdown_date, None);
        assert_eq!(records[2].facts.replacement_models, None);
        assert_eq!(
            records[0].facts.lifecycle_url.as_deref(),
            Some("https://example.test/gone")
        );
    }

    #[test]
    fn provider_display_names_map_to_slugs() {
        let records = parse_deprecations(
            vec![
                row("OpenAI", "a", "2026-01-01", ""),
                row("Google Vertex", "b", "2026-01-01", ""),
                row("AWS Bedrock", "c", "2026-01-01", ""),
                row("Azure", "d", "2026-01-01", ""),
                row("xAI", "e", "2026-01-01", ""),
            ],
            TODAY,
        );
        let providers: Vec<&str> = records.iter().map(|r| r.provider.as_str()).collect();
        assert_eq!(
            providers,
            ["openai", "google-vertex", "aws-bedrock", "azure", "xai"]
        );
    }

    #[test]
    fn features_and_endpoints_are_not_models() {
        assert!(is_model_id("gpt-4o-2024-05-13"));
        assert!(is_model_id("anthropic.claude-v2:1"));
        assert!(!is_model_id("Reusable prompts"));
        assert!(!is_model_id("/v1/connectors"));
        assert!(!is_model_id(""));
        let records = parse_deprecations(
            vec![
                row("OpenAI", "Reusable prompts", "2026-01-01", ""),
                json!({"provider": "OpenAI"}),
                json!({"provider": 3, "model_id": "x"}),
                json!(["not", "a", "row"]),
                row("OpenAI", "gpt-x", "2026-01-01", ""),
            ],
            TODAY,
        );
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].model_id, "gpt-x");
    }

    #[test]
    fn duplicate_rows_collapse_to_the_earliest_dates() {
        let mut first = row("Azure", "gpt-4o", "2026-03-01", "");
        first["replacement_models"] = json!(["gpt-5"]);
        let mut second = row("Azure", "gpt-4o", "2026-02-01", "2026-10-01");
        second["replacement_models"] = json!(["gpt-5", "gpt-5-mini"]);
        let third = row("Azure", "gpt-4o", "2026-04-01", "2026-08-01");
        let records = parse_deprecations(vec![first.clone(), second.clone(), third.clone()], TODAY);
        assert_eq!(records.len(), 1);
        let f = &records[0].facts;
        assert_eq!(f.deprecation_date.as_deref(), Some("2026-02-01"));
        assert_eq!(f.shutdown_date.as_deref(), Some("2026-08-01"));
        assert_eq!(
            f.replacement_models,
            Some(vec!["gpt-5".to_owned(), "gpt-5-mini".to_owned()])
        );
        assert_eq!(
            f.lifecycle_url.as_deref(),
            Some("https://example.test/gpt-4o")
        );
        assert_eq!(records[0].raw_value(), json!([first, second, third]));
    }
}
