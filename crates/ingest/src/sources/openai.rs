//! OpenAI: `GET /v1/models` with `Authorization: Bearer <key>`, one page
//! (`{"object":"list","data":[Model]}`).
//!
//! The listing knows little: the id, the owner, a `created` time that is not
//! a release date, and (since 2026-08) `shutdown_date`. Fine-tunes
//! (`ft:<base>:<org>::<suffix>`) are listed under their own id and are
//! visible only to the key that made them.

use modelplane_domain::catalog::{Lifecycle, ModelFacts, Source, SourceRecord};
use serde::Deserialize;
use serde_json::Value;

use crate::sources::common::date_from_text;
use crate::{PageSink, SourceClient, SourceError};

pub const PROVIDER: &str = "openai";

/// The listing envelope; `data` must be an array, anything else is malformed.
#[derive(Debug, Deserialize)]
pub struct ModelList {
    pub data: Vec<Value>,
}

pub async fn list(client: &SourceClient, sink: &mut dyn PageSink) -> Result<(), SourceError> {
    let key = client.api_key(Source::OpenaiApi.as_str())?;
    let query = super::common::query_params(client);
    let url = client.url("/v1/models", &query)?;
    let fetched = client
        .get(url, &[("authorization", format!("Bearer {key}"))])
        .await?;
    let page: ModelList = fetched.json()?;
    sink.page(parse_page(&page, &super::common::today())).await
}

/// The records of one listing, as of `today` (`YYYY-MM-DD`).
pub fn parse_page(page: &ModelList, today: &str) -> Vec<SourceRecord> {
    page.data
        .iter()
        .filter_map(|entry| {
            let record = to_record(entry, today);
            if record.is_none() {
                tracing::warn!(source = "openai-api", %entry, "listing entry without an id; skipped");
            }
            record
        })
        .collect()
}

/// One listing entry; None when it has no id.
///
/// The lifecycle is set only when the entry carries `shutdown_date` (null
/// means "no shutdown announced", so the model is active); an entry without
/// the field says nothing about its lifecycle, and leaves it to other sources.
pub fn to_record(entry: &Value, today: &str) -> Option<SourceRecord> {
    let id = entry.get("id")?.as_str()?.trim();
    if id.is_empty() {
        return None;
    }
    let mut facts = ModelFacts::default();
    if let Some(shutdown) = entry.get("shutdown_date") {
        let shutdown = shutdown.as_str().and_then(date_from_text);
        facts.lifecycle = Some(Lifecycle::from_dates(None, shutdown.as_deref(), today));
        facts.shutdown_date = shutdown;
    }
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
    use serde_json::json;

    const TODAY: &str = "2026-09-01";

    #[test]
    fn an_entry_without_lifecycle_fields_sets_only_its_id() {
        let entry =
            json!({"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"});
        let record = to_record(&entry, TODAY).expect("a record");
        assert_eq!(record.provider, "openai");
        assert_eq!(record.model_id, "gpt-4o");
        assert_eq!(record.facts, ModelFacts::default());
        assert_eq!(record.raw_value(), entry);
    }

    #[test]
    fn created_is_not_taken_as_a_release_date() {
        let entry = json!({"id": "gpt-4o", "created": 1715367049});
        let record = to_record(&entry, TODAY).expect("a record");
        assert_eq!(record.facts.release_date, None);
    }

    #[test]
    fn shutdown_date_sets_lifecycle_from_today() {
        let future = json!({"id": "gpt-realtime", "shutdown_date": "2027-01-20"});
        let record = to_record(&future, TODAY).expect("a record");
        assert_eq!(record.facts.shutdown_date.as_deref(), Some("2027-01-20"));
        assert_eq!(record.facts.lifecycle, Some(Lifecycle::Deprecated));

        let past = json!({"id": "gpt-4-32k", "shutdown_date": "2025-06-06T00:00:00Z"});
        let record = to_record(&past, TODAY).expect("a record");
        assert_eq!(record.facts.shutdown_date.as_deref(), Some("2025-06-06"));
        assert_eq!(record.facts.lifecycle, Some(Lifecycle::Sunset));

        let none = json!({"id": "gpt-4.1-mini", "shutdown_date": null});
        let record = to_record(&none, TODAY).expect("a record");
        assert_eq!(record.facts.shutdown_date, None);
        assert_eq!(record.facts.lifecycle, Some(Lifecycle::Active));
    }

    #[test]
    fn fine_tunes_keep_their_own_id_and_entries_without_id_are_skipped() {
        let page: ModelList = serde_json::from_value(json!({"object": "list", "data": [
            {"id": "ft:gpt-4o-mini-2024-07-18:acme-corp::9xYzAbCd", "owned_by": "acme-corp"},
            {"object": "model"},
            {"id": ""},
            "not an object"
        ]}))
        .expect("envelope");
        let records = parse_page(&page, TODAY);
        assert_eq!(records.len(), 1);
        assert_eq!(
            records[0].model_id,
            "ft:gpt-4o-mini-2024-07-18:acme-corp::9xYzAbCd"
        );
    }

    #[test]
    fn an_envelope_whose_data_is_not_a_list_does_not_decode() {
        assert!(serde_json::from_value::<ModelList>(json!({"data": {"id": "x"}})).is_err());
        assert!(serde_json::from_value::<ModelList>(json!({"object": "list"})).is_err());
    }
}
